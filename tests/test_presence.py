"""The presence penalty (Qwen3.5's presets): minus the penalty, once, for every token already in the answer."""

import threading

import pytest

from qwen_playground.backends.local import CacheKey
import torch

from qwen_playground.backends.presence import PresencePenalty
from qwen_playground.core.generation import Request, SamplingParams, TextDelta

from .test_batching import float32_backend


def test_each_answer_token_is_penalised_once_and_the_prompt_not_at_all():
    scores = torch.zeros(2, 10)
    ids = torch.tensor([[7, 7, 1, 3, 3, 3], [7, 7, 9, 9, 2, 2]])  # two prompt tokens, then each row's answer
    out = PresencePenalty(1.5, prompt_length=2)(ids, scores)
    assert out[0].tolist() == [0, -1.5, 0, -1.5, 0, 0, 0, 0, 0, 0]  # 3 three times: once; 7 only in the prompt: never
    assert out[1].tolist() == [0, 0, -1.5, 0, 0, 0, 0, 0, 0, -1.5]
    assert scores.abs().sum() == 0  # the scores given are left as they were
    assert torch.equal(PresencePenalty(0.0, 2)(ids, scores), scores)


def test_the_sampling_settings_take_it_from_zero_to_two():
    assert SamplingParams().presence_penalty == 0.0
    with pytest.raises(ValueError):
        SamplingParams(presence_penalty=2.5)


@torch.no_grad()
def reference(backend, request: Request, steps: int) -> str:
    """Greedy decoding by hand: the whole sequence through the model at every step, the penalty as specified."""
    loaded = backend.cache.get(CacheKey("tiny-random"), 0, None)
    spec = backend.registry.get(request.model_id)
    ids = backend.encode(spec, loaded, request)["input_ids"]
    answer: list[int] = []
    for _ in range(steps):
        logits = loaded.model(ids).logits[0, -1].float()
        logits[sorted(set(answer))] -= request.sampling.presence_penalty
        token = int(logits.argmax())
        answer.append(token)
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return loaded.tokenizer.decode(answer, skip_special_tokens=True)


def answer(backend, request: Request) -> str:
    return "".join(e.text for e in backend.stream(request, threading.Event()) if isinstance(e, TextDelta))


@pytest.mark.parametrize("path", ["continuous batch", "generate"])
def test_penalised_greedy_decoding_matches_the_definition_on_both_paths(demo_config, path):
    backend = float32_backend(demo_config, batching=path == "continuous batch")
    plain = SamplingParams(temperature=0, max_new_tokens=24)  # unpenalised, the random model repeats 7 of 24 tokens here
    request = Request("tiny-random", [{"role": "user", "content": "Hi"}], plain.model_copy(update={"presence_penalty": 2.0}))
    unpenalised = answer(backend, Request(request.model_id, request.messages, plain))
    penalised = answer(backend, request)
    loaded = backend.cache.get(CacheKey("tiny-random"), 0, None)
    assert (loaded.runner is not None) == (path == "continuous batch")
    assert penalised == reference(backend, request, 24)
    assert penalised != unpenalised  # the random model repeats itself without it
