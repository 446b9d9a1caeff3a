"""The transformers backend on tiny real Qwen-architecture models."""

import threading
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from qwen_playground.backends.local import CacheKey, LocalBackend
from qwen_playground.core.config import load_config
from qwen_playground.core.generation import Done, Error, Metrics, Progress, Request, SamplingParams, TextDelta, ThinkingDelta
from qwen_playground.tasks.conversation import AssistantTurn, Conversation, Message, model_messages

from .conftest import break_forward, stop_at_first_text

GREEDY = SamplingParams(temperature=0, max_new_tokens=40)


def collect(backend, request, cancel=None):
    return list(backend.stream(request, cancel or threading.Event()))


def texts(events, kind):
    return "".join(e.text for e in events if isinstance(e, kind))


@pytest.mark.parametrize("batching", [True, False], ids=["continuous-batch", "generate-alone"])
def test_streamed_text_equals_non_streamed_greedy_output(demo_config, random_model_dir, batching):
    # float32: in bfloat16 the batch's paged attention and generate's SDPA round differently, and a random model's
    # near-ties then part ways after a few tokens
    backend = LocalBackend(demo_config.registry, demo_config.settings.model_copy(update={"dtype": "float32", "batching": batching}))
    messages = [{"role": "user", "content": "Count to five."}]
    events = collect(backend, Request("tiny-random", messages, GREEDY))
    tok = AutoTokenizer.from_pretrained(random_model_dir)
    model = AutoModelForCausalLM.from_pretrained(random_model_dir, dtype=torch.float32)
    enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**enc, do_sample=False, max_new_tokens=40)
    expected = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert texts(events, TextDelta) == expected.lstrip("\n") and expected.strip()
    metrics = next(e for e in events if isinstance(e, Metrics))
    assert metrics.answer_tokens + metrics.thinking_tokens <= 40 and metrics.prompt_tokens == enc["input_ids"].shape[1]
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "length"


def test_thinking_is_split_from_the_answer(backend):
    events = collect(backend, Request("demo-qwen3", [{"role": "user", "content": "Hi"}], GREEDY.model_copy(update={"max_new_tokens": 100}), thinking=True))
    assert texts(events, ThinkingDelta) == "Demo mode: tiny random parameters, so this thought is scripted."
    assert texts(events, TextDelta) == "Hello from a little demo network! Install real weights for useful answers."
    metrics = next(e for e in events if isinstance(e, Metrics))
    assert metrics.thinking_tokens > 5 and metrics.answer_tokens > 5 and metrics.thinking_s is not None
    assert events[-1] == Done("stop")


def test_thinking_off_gives_no_thinking(backend):
    events = collect(backend, Request("demo-qwen3", [{"role": "user", "content": "Hi"}], GREEDY.model_copy(update={"max_new_tokens": 100}), thinking=False))
    assert texts(events, ThinkingDelta) == "" and texts(events, TextDelta).startswith("Hello from a little demo")
    assert next(e for e in events if isinstance(e, Metrics)).thinking_tokens == 0


def test_second_turn_prompt_holds_the_answer_without_its_thinking(backend):
    first = [{"role": "user", "content": "Hi"}]
    turn = AssistantTurn()
    for event in backend.stream(Request("demo-qwen3", first, GREEDY.model_copy(update={"max_new_tokens": 100}), thinking=True), threading.Event()):
        turn.apply(event)
    conversation = Conversation.of([Message.user("Hi"), Message.assistant(turn), Message.user("And now?")])
    messages = model_messages(conversation.path(), "", ("<think>", "</think>"))
    tok = backend.cache.get(CacheKey("demo-qwen3"), 0, None).tokenizer
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, enable_thinking=True)
    assert "Hello from a little demo network!" in prompt and "scripted" not in prompt


def test_models_are_reused_across_requests(backend):
    collect(backend, Request("demo-qwen2.5", [{"role": "user", "content": "a"}], GREEDY))
    again = collect(backend, Request("demo-qwen2.5", [{"role": "user", "content": "b"}], GREEDY))
    assert not any(isinstance(e, Progress) for e in again)
    assert CacheKey("demo-qwen2.5") in backend.cache.keys()


@pytest.mark.parametrize("path", ["continuous batch", "generate"])
def test_stop_takes_effect_at_the_next_token(backend, monkeypatch, path):
    """Counted in decode steps after Stop (text reaches the screen a few tokens late, so counting text would not test Stop)."""
    sampling = GREEDY.model_copy(update={"max_new_tokens": 2000, "repetition_penalty": 1.0 if path == "continuous batch" else 1.1})
    collect(backend, Request("tiny-random", [{"role": "user", "content": "warm"}], sampling.model_copy(update={"max_new_tokens": 2})))
    model = backend.cache.get(CacheKey("tiny-random"), 0, None).model
    steps, real_forward = [], model.forward

    def counting_forward(*args, **kwargs):
        steps.append(1)
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting_forward)
    events, at_stop = stop_at_first_text(backend, Request("tiny-random", [{"role": "user", "content": "go"}], sampling), steps)
    assert len(steps) - at_stop <= 2  # the step under way, and at most one more
    assert events[-1] == Done("cancelled") and next(e for e in events if isinstance(e, Metrics)).answer_tokens < 50


def test_closing_the_stream_stops_generation(backend):
    stream = backend.stream(Request("tiny-random", [{"role": "user", "content": "go"}], GREEDY.model_copy(update={"max_new_tokens": 2000})), threading.Event())
    for event in stream:
        if isinstance(event, TextDelta):
            break
    stream.close()  # what Gradio does when the user presses Stop or leaves
    deadline = time.time() + 5
    while backend.active_generations and time.time() < deadline:
        time.sleep(0.05)
    assert backend.active_generations == 0


def test_input_over_the_token_limit_is_refused_with_numbers(backend):
    events = [e for e in collect(backend, Request("demo-qwen2.5", [{"role": "user", "content": "word " * 600}], GREEDY))
              if not isinstance(e, Progress)]  # a first load reports its progress first
    assert len(events) == 1 and isinstance(events[0], Error)
    message = events[0].message  # the engine's exact check: numbers, no tab's advice (Chat gives its own before sending)
    assert "limit is 512" in message and "with its chat template" in message and "Trim" not in message


def test_unknown_model_and_failed_load_are_errors(backend, tmp_path, demo_config):
    events = collect(backend, Request("demo-qwen", [{"role": "user", "content": "x"}], GREEDY))
    assert isinstance(events[-1], Error) and "Did you mean" in events[-1].message
    events = collect(backend, Request("qwen3-0.6b", [{"role": "user", "content": "x"}], GREEDY))
    assert isinstance(events[-1], Error) and "Could not load qwen3-0.6b" in events[-1].message and "--demo" in events[-1].message


def test_a_model_folder_without_weights_fails_clearly(backend):
    events = collect(backend, Request("broken", [{"role": "user", "content": "x"}], GREEDY))
    assert isinstance(events[-1], Error) and events[-1].message.startswith("Could not load broken")


def test_an_error_mid_generation_keeps_what_was_streamed(backend, monkeypatch):
    collect(backend, Request("tiny-random", [{"role": "user", "content": "warm"}], GREEDY))
    break_forward(monkeypatch, backend.cache.get(CacheKey("tiny-random"), 0, None).model, after=5)
    events = collect(backend, Request("tiny-random", [{"role": "user", "content": "go"}], GREEDY))
    assert texts(events, TextDelta)  # the partial answer arrived
    assert isinstance(events[-1], Error) and "device fell over" in events[-1].message


def test_memory_budget_evicts_the_least_recently_used(cache_dir, config_file):
    config = load_config(config_file, demo=True, cache_dir=cache_dir, memory_budget_gb=0.1, dtype="float32", engine="transformers")
    local = LocalBackend(config.registry, config.settings)
    for model_id in ("demo-qwen3", "demo-qwen2.5"):
        collect(local, Request(model_id, [{"role": "user", "content": "x"}], GREEDY))
    assert local.cache.keys() == [CacheKey("demo-qwen2.5")]  # two would not fit in 0.1 GiB at float32
    assert local.cache.used_bytes <= local.cache.budget_bytes


def test_device_and_dtype_are_chosen_for_the_machine(backend):
    from qwen_playground.backends.cpu_dtype import cpu_dtype

    assert backend.device == ("cuda" if torch.cuda.is_available() else "cpu")
    if backend.device == "cpu":  # bfloat16 only where this CPU answers a typical turn sooner in it, prompt included
        choice = cpu_dtype(backend.settings.cache_dir)
        assert choice.cached and backend.dtype == choice.torch_dtype  # measured once when the backend started
    status = backend.status()
    assert status.startswith("Loaded: " if backend.cache.sizes() else "No model loaded yet")
    assert f"{backend.device}, transformers ({str(backend.dtype).removeprefix('torch.')}" in status  # the conftest's engine


def test_thinking_budget_cuts_the_thought_and_still_answers(backend):
    request = Request("demo-qwen3", [{"role": "user", "content": "Hi"}], GREEDY.model_copy(update={"max_new_tokens": 200}), thinking=True, thinking_budget=5)
    events = collect(backend, request)
    thought, answer = texts(events, ThinkingDelta), texts(events, TextDelta)
    own_thought = thought.split("Considering the limited time")[0]
    tok = backend.cache.get(CacheKey("demo-qwen3"), 0, None).tokenizer
    assert "Considering the limited time by the user" in thought
    assert len(tok("<think>" + own_thought, add_special_tokens=False).input_ids) <= 5 + 1  # the cap (plus the opening tag)
    assert answer == "Hello from a little demo network! Install real weights for useful answers."
    metrics = next(e for e in events if isinstance(e, Metrics))
    assert metrics.thinking_tokens == 5 and events[-1] == Done("stop")


def test_a_budget_larger_than_the_thought_changes_nothing(backend):
    base = Request("demo-qwen3", [{"role": "user", "content": "Hi"}], GREEDY.model_copy(update={"max_new_tokens": 200}), thinking=True)
    plain = collect(backend, base)
    budgeted = collect(backend, Request(base.model_id, base.messages, base.sampling, True, thinking_budget=500))
    assert texts(plain, ThinkingDelta) == texts(budgeted, ThinkingDelta) and texts(plain, TextDelta) == texts(budgeted, TextDelta)


def test_models_loaded_at_the_same_time_each_get_the_precision_asked_for(demo_config):
    """transformers builds a model under torch's process-wide default dtype; loads at once must not mix it up
    (before the build lock: float32 embeddings beside bfloat16 layers, and the process left at bfloat16)."""
    local = LocalBackend(demo_config.registry, demo_config.settings.model_copy(update={"dtype": "bfloat16", "batching": False}))
    for _ in range(3):
        models = {}

        def load(model_id):
            models[model_id] = local.engines[-1].load(demo_config.registry.get(model_id), "full", lambda _: None)[0].model  # transformers

        threads = [threading.Thread(target=load, args=(m,)) for m in ("demo-qwen3", "demo-qwen2.5", "demo-qwen3-instruct-2507")]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert {m: {p.dtype for p in model.parameters()} for m, model in models.items()} == {
            m: {torch.bfloat16} for m in ("demo-qwen3", "demo-qwen2.5", "demo-qwen3-instruct-2507")}
        assert torch.get_default_dtype() == torch.float32
