"""Inspector, model guide, thinking budget and export through the running app."""

import pytest

from qwen_playground.backends.demo import load_tokenizer
from qwen_playground.core.config import builtin_families
from qwen_playground.ui.chat_view import export_json, export_markdown

FAMILIES = builtin_families()


def test_inspect_endpoint_matches_the_template_and_strips_old_thinking(app):
    client, _ = app
    history, _ = client.predict("First question", [], "demo-qwen3", api_name="/chat")  # demo-qwen3 thinks, then answers
    pieces, notes, counts = client.predict("Second /no_think", history, "demo-qwen3", "Be brief.", True, api_name="/inspect")
    tok = load_tokenizer(FAMILIES["qwen3"])
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "First question"},
                {"role": "assistant", "content": "Hello from a little demo network! Install real weights for useful answers."},
                {"role": "user", "content": "Second /no_think"}]
    expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=True)
    assert counts["text"] == expected and "scripted" not in counts["text"]
    assert counts["total"] == len(tok(expected, add_special_tokens=False).input_ids) == sum(t["tokens"] for t in counts["turns"])
    assert "1 earlier thought" in notes and "/no_think" in notes and "```diff" in notes
    assert any(p["token"] == "<|im_start|>" and p["class_or_confidence"] == "special" for p in pieces)


def test_inspect_needs_something(app):
    client, _ = app
    with pytest.raises(Exception, match="nothing to inspect"):
        client.predict("", [], "demo-qwen3", "", True, api_name="/inspect")


def test_guide_endpoint(app):
    client, _ = app
    table = client.predict("math", 8, 4096, ["Hindi"], api_name="/guide")
    rows = {row[0]: row for row in table["data"]}
    assert "qwen2.5-math-7b-instruct" in rows and "not Hindi" in rows["qwen2.5-math-7b-instruct"][-1]
    assert all(not r[0].startswith("demo") for r in table["data"])
    with pytest.raises(Exception, match="less than minimum value 0.1"):
        client.predict("chat", 0, 4096, [], api_name="/guide")


def test_thinking_budget_through_chat(app):
    client, _ = app
    history, _ = client.predict("Hi", [], "demo-qwen3", "", True, 0.6, 0.95, 20, 0, 1.0, 0.0, 256, 4, api_name="/chat")
    thought = next(m for m in history if (m.get("metadata") or {}).get("title") == "💭 Thinking")
    assert "Considering the limited time by the user" in thought["content"][0]["text"]
    assert "4 thinking tokens" in history[-1]["metadata"]["title"]


def test_conversation_export():
    from qwen_playground.core.generation import Metrics
    from qwen_playground.tasks.conversation import AssistantTurn, Conversation, Message

    turn = AssistantTurn("thought", "A", thinking_s=0.5, metrics=Metrics(5, 1, 1, 0.1, 1.0, 0.5, 1.0))
    conversation = Conversation.of([Message.user("Q"), Message.assistant(turn)])
    md = export_markdown(conversation, {"model": "m"})
    assert "- **model:** m" in md and "<summary>💭 Thinking</summary>" in md and "**assistant:**\n\nA" in md and "*📊 first token" in md
    assert __import__("json").loads(export_json(conversation, {"model": "m"}))["messages"][2]["content"] == "A"
