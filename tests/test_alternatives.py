"""Why this token? The alternatives a local model reports are its real top-k at each step."""

import json
import threading

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from qwen_playground.backends.local import LocalBackend
from qwen_playground.core.generation import Candidate, Done, Metrics, Request, SamplingParams, TextDelta, TokenChoices, TokenStep
from qwen_playground.tasks import compare, token_choices
from qwen_playground.tasks.conversation import AssistantTurn, Conversation, Message, model_messages
from qwen_playground.ui.chat_view import export_json, export_markdown, parse, render, text_of
from qwen_playground.tasks.compare import PaneResult, PaneSetup
from qwen_playground.tasks.streaming import stream_all

GREEDY = SamplingParams(temperature=0, max_new_tokens=12)
MESSAGES = [{"role": "user", "content": "Name a colour."}]


def collect(backend, request):
    return list(backend.stream(request, threading.Event()))


def choices_of(events) -> TokenChoices:
    found = [e for e in events if isinstance(e, TokenChoices)]
    assert len(found) == 1
    return found[0]


@pytest.fixture(scope="module")
def reference(random_model_dir):
    tok = AutoTokenizer.from_pretrained(random_model_dir)
    return tok, AutoModelForCausalLM.from_pretrained(random_model_dir, dtype=torch.float32)


def direct_distributions(reference, messages, generated: list[int]) -> torch.Tensor:
    """One forward pass over prompt + answer: the probabilities the model gives each answer position."""
    tok, model = reference
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    ids = torch.cat([prompt, torch.tensor([generated])], dim=1)
    with torch.no_grad():
        logits = model(ids).logits[0, prompt.shape[1] - 1:-1]
    return logits.float().softmax(-1)


@pytest.mark.parametrize("batching", [True, False], ids=["continuous-batch", "generate-alone"])
def test_alternatives_are_the_models_top_k_at_each_step(demo_config, reference, batching):
    backend = LocalBackend(demo_config.registry, demo_config.settings.model_copy(update={"dtype": "float32", "batching": batching}))
    events = collect(backend, Request("tiny-random", MESSAGES, GREEDY, alternatives=5))
    steps = choices_of(events).steps
    tok, _ = reference
    generated = [s.token_id for s in steps]
    assert "".join(s.token for s in steps) == "".join(e.text for e in events if isinstance(e, TextDelta))  # noise: no special tokens
    assert len(steps) == GREEDY.max_new_tokens
    probs = direct_distributions(reference, MESSAGES, generated)
    for step, row in zip(steps, probs):
        top = row.topk(5)
        assert [c.token for c in step.alternatives] == tok.batch_decode([[i] for i in top.indices.tolist()])
        assert [c.probability for c in step.alternatives] == pytest.approx(top.values.tolist(), rel=1e-3, abs=1e-7)
        assert sum(c.probability for c in step.alternatives) <= 1 + 1e-6
        assert step.token == step.alternatives[0].token  # greedy: the most likely one
        assert step.probability == pytest.approx(step.alternatives[0].probability) and not step.thinking


def test_a_sampled_token_outside_the_top_k_still_has_its_probability(demo_config, reference):
    backend = LocalBackend(demo_config.registry, demo_config.settings.model_copy(update={"dtype": "float32", "batching": False}))
    sampling = SamplingParams(temperature=2.0, top_p=1.0, top_k=0, max_new_tokens=12)  # near-uniform: rarely a top-1 pick
    steps = choices_of(collect(backend, Request("tiny-random", MESSAGES, sampling, alternatives=1))).steps
    generated = [s.token_id for s in steps]
    probs = direct_distributions(reference, MESSAGES, generated)
    chosen = [float(row[i]) for row, i in zip(probs, generated)]
    assert [s.probability for s in steps] == pytest.approx(chosen, rel=1e-3)
    assert any(s.token != s.alternatives[0].token for s in steps)


def test_thinking_tokens_are_marked(backend):
    sampling = GREEDY.model_copy(update={"max_new_tokens": 100})
    events = collect(backend, Request("demo-qwen3", [{"role": "user", "content": "Hi"}], sampling, thinking=True, alternatives=3))
    steps, metrics = choices_of(events).steps, next(e for e in events if isinstance(e, Metrics))
    assert sum(s.thinking for s in steps) == metrics.thinking_tokens > 5
    assert all(s.thinking for s in steps[:metrics.thinking_tokens]) and "</think>" in "".join(s.token for s in steps if s.thinking)
    assert "Hello from a little demo" in "".join(s.token for s in steps if not s.thinking)
    assert all(len(s.alternatives) == 3 for s in steps)


def test_a_request_without_alternatives_gets_none(backend):
    assert not any(isinstance(e, TokenChoices) for e in collect(backend, Request("tiny-random", MESSAGES, GREEDY)))


def test_in_one_batch_only_the_request_that_asks_is_recorded_and_with_its_own_tokens(demo_config):
    backend = LocalBackend(demo_config.registry, demo_config.settings.model_copy(update={"dtype": "float32"}))
    other = [{"role": "user", "content": "Something else entirely, and longer, so the rows differ."}]
    requests = [Request("tiny-random", MESSAGES, GREEDY, alternatives=2), Request("tiny-random", other, GREEDY),
                Request("tiny-random", other, GREEDY, alternatives=2)]
    by_index: dict[int, list] = {0: [], 1: [], 2: []}
    for index, event in stream_all(backend, requests):
        by_index[index].append(event)
    assert not any(isinstance(e, TokenChoices) for e in by_index[1])
    for index in (0, 2):
        steps = choices_of(by_index[index]).steps
        assert "".join(s.token for s in steps) == "".join(e.text for e in by_index[index] if isinstance(e, TextDelta))


# ---- what a person sees: the bubble under the answer, the API and the exports ----------------------------------

STEPS = (TokenStep("<think>", 0.9, (Candidate("<think>", 0.9),), thinking=True, token_id=1),
         TokenStep(" $5 | *a*", 0.25, (Candidate(" red", 0.5), Candidate(" $5 | *a*", 0.25)), token_id=2),
         TokenStep("\n", None, (), token_id=3))


def test_the_view_escapes_every_token_and_marks_thinking():
    view = token_choices.to_markdown(TokenChoices(STEPS))
    assert "$" not in view and "*a*" not in view and "| *" not in view  # no token renders as math, emphasis or a table cell
    assert "␣&#36;5 &#124; &#42;a&#42;" in view and "25.0%" in view and "50.0%" in view and "↵" in view and "| 1 💭 |" in view
    assert "&#60;think&#62;" in view and "hsl(108,85%,80%)" in view and "font-style:italic" in view
    assert token_choices.to_markdown(TokenChoices((), "no probabilities here")) == "*no probabilities here*"
    assert token_choices.from_records(token_choices.to_records(TokenChoices(STEPS, "n")), "n") == TokenChoices(STEPS, "n")


def test_the_bubble_follows_the_answer_and_never_goes_back_to_the_model():
    turn = AssistantTurn()
    for event in [TextDelta("Hi"), TokenChoices(STEPS), Metrics(3, 2, 1, 0.1, 10.0, None, 0.5), Done("stop")]:
        turn.apply(event)
    shown = render([Message.assistant(turn)])
    titles = [(m.get("metadata") or {}).get("title", "") for m in shown]
    assert titles[0] == "" and titles[1] == "🔎 Why this token? · 3 tokens" and titles[2].startswith("📊")
    assert render([Message.assistant(turn)], footer=False)[-1] == shown[1]
    history = [{"role": "user", "content": "Hello"}, *shown]
    assert model_messages(parse(history).path(), "", ("<think>", "</think>")) == [
        {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"}]


def test_chat_api_with_alternatives_shows_them_under_the_answer_and_exports_them(app):
    client, _ = app
    history, _ = client.predict("Hi", [], "demo-qwen3", "", True, 0, 0.8, 20, 0.0, 1.0, 0.0, 100, 0, "full", False, True, api_name="/chat")
    titles = [(m.get("metadata") or {}).get("title") or "" for m in history]
    why = next(i for i, t in enumerate(titles) if t.startswith("🔎 Why this token?"))
    assert history[why - 1]["role"] == "assistant" and "Hello from a little demo" in text_of(history[why - 1]["content"])
    assert "| 1 💭 |" in text_of(history[why]["content"]) and "most likely at this step" in text_of(history[why]["content"])
    follow_up, _ = client.predict("Again", history, "demo-qwen3", "", False, 0, 0.8, 20, 0.0, 1.0, 0.0, 100, api_name="/chat")
    assert not any(((m.get("metadata") or {}).get("title") or "").startswith("🔎") for m in follow_up[len(history):])
    settings = {"model": "demo-qwen3"}
    conversation = Conversation.of([Message.user("Hi"), Message.assistant(AssistantTurn(answer="Hi", choices=TokenChoices(STEPS)))])
    assert "🔎 Why this token?" in export_markdown(conversation, settings) and "most likely at this step" in export_json(conversation, settings)


def test_compare_api_gives_each_asking_pane_its_tokens(app):
    client, _ = app
    panes = [{"model": "demo-qwen2.5", "alternatives": True, "max_new_tokens": 24}, {"model": "demo-qwen3", "max_new_tokens": 24}]
    out = client.predict("Hi", panes, api_name="/compare")
    first, second = out["panes"]
    assert "tokens" not in second and len(first["tokens"]) > 3
    answer = text_of(next(m for m in first["messages"] if m["role"] == "assistant" and not m.get("metadata"))["content"])
    assert "".join(t["token"] for t in first["tokens"] if t["token"] != "<|im_end|>") == answer
    assert all(len(t["alternatives"]) == 5 and sum(a["probability"] for a in t["alternatives"]) <= 1 + 1e-6 for t in first["tokens"])
    assert any((m.get("metadata") or {}).get("title", "").startswith("🔎") for m in first["messages"])


def test_compare_export_keeps_the_tokens():
    setup = PaneSetup(model="m", alternatives=True)
    result = PaneResult(setup, "Hi", tokens=token_choices.to_records(TokenChoices(STEPS)))
    assert "most likely at this step" in compare.to_markdown(["p"], [result])
    assert json.loads(compare.to_json(["p"], [result]))["panes"][0]["tokens"][1]["alternatives"][0] == {"token": " red", "probability": 0.5}
