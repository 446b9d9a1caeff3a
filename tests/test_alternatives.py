"""Why this token? The alternatives a local model reports are its real top-k at each step."""

import threading

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from qwen_playground.backends.local import LocalBackend
from qwen_playground.core.generation import Metrics, Request, SamplingParams, TextDelta, TokenChoices
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
