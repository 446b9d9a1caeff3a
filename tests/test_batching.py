"""Continuous batching: many users on one tiny real model, each with their own stream."""

import threading

from qwen_playground.backends.batching import supports
from qwen_playground.backends.local import CacheKey, LocalBackend
from qwen_playground.core.generation import Done, Error, Request, SamplingParams, TextDelta

from .conftest import break_forward

GREEDY = SamplingParams(temperature=0, max_new_tokens=30)


def run_together(backend, requests, cancel_first_after=None):
    results, flags = [None] * len(requests), [threading.Event() for _ in requests]

    def one(i):
        events = []
        for event in backend.stream(requests[i], flags[i]):
            events.append(event)
            if i == 0 and cancel_first_after and sum(isinstance(e, TextDelta) for e in events) == cancel_first_after:
                flags[0].set()
        results[i] = events

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests))]
    [t.start() for t in threads]
    [t.join(timeout=120) for t in threads]
    return results


def text(events):
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def float32_backend(demo_config, **settings):
    return LocalBackend(demo_config.registry, demo_config.settings.model_copy(update={"dtype": "float32", **settings}))


def test_simultaneous_users_share_a_batch_and_get_their_own_answers(demo_config):
    backend = float32_backend(demo_config)
    prompts = ["one", "two two", "three three three", "four"]
    alone = [text(list(backend.stream(Request("tiny-random", [{"role": "user", "content": p}], GREEDY), threading.Event())))
             for p in prompts]
    together = run_together(backend, [Request("tiny-random", [{"role": "user", "content": p}], GREEDY) for p in prompts])
    assert [text(events) for events in together] == alone  # no stream saw another's tokens
    assert len(set(alone)) > 1
    assert all(isinstance(events[-1], Done) for events in together)
    assert backend.cache.get(CacheKey("tiny-random"), 0, None).runner.in_flight == 0


def test_cancelling_one_user_leaves_the_others_running(demo_config):
    backend = float32_backend(demo_config)
    long = GREEDY.model_copy(update={"max_new_tokens": 60})
    together = run_together(backend, [Request("tiny-random", [{"role": "user", "content": "go"}], long)] * 3, cancel_first_after=3)
    assert together[0][-1] == Done("cancelled")
    assert [e for e in together[1] if isinstance(e, Done)] == [Done("length")] == [e for e in together[2] if isinstance(e, Done)]
    assert text(together[1]) == text(together[2]) and len(text(together[1])) > len(text(together[0]))


def test_settings_the_batch_cannot_honour_run_alone_and_still_work(demo_config):
    assert supports(SamplingParams(temperature=0.6, top_p=0.95, top_k=20))  # Qwen3's presets batch
    penalised = SamplingParams(temperature=0, max_new_tokens=20, repetition_penalty=1.05)  # Qwen2.5's presets do not
    assert not supports(penalised) and not supports(SamplingParams(min_p=0.1))
    backend = float32_backend(demo_config)
    together = run_together(backend, [Request("tiny-random", [{"role": "user", "content": "hi"}], penalised)] * 2)
    assert all(isinstance(events[-1], Done) and text(events) for events in together)


def test_the_batch_recovers_after_a_failure(demo_config, monkeypatch):
    backend = float32_backend(demo_config)
    request = Request("tiny-random", [{"role": "user", "content": "go"}], GREEDY)
    before = text(list(backend.stream(request, threading.Event())))
    model = backend.cache.get(CacheKey("tiny-random"), 0, None).model
    real_forward = break_forward(monkeypatch, model, after=0)
    failed = list(backend.stream(request, threading.Event()))
    assert isinstance(failed[-1], Error) and "device fell over" in failed[-1].message
    monkeypatch.setattr(model, "forward", real_forward)
    assert text(list(backend.stream(request, threading.Event()))) == before


def test_fast_top_k_and_top_p_keep_what_transformers_keeps():
    import torch
    from transformers import TopKLogitsWarper, TopPLogitsWarper

    from qwen_playground.backends.batching import _TopKBySelection, _TopPOverSurvivors

    torch.manual_seed(0)
    scores = torch.randn(3, 1000) * 3
    top_k, top_p = torch.tensor([1, 20, 1000], dtype=torch.int32), torch.tensor([0.5, 0.8, 1.0])
    fast_k = _TopKBySelection(TopKLogitsWarper(20))(scores, top_k)
    fast = _TopPOverSurvivors(TopPLogitsWarper(0.8))(fast_k, top_p.view(torch.int32))
    for row in range(3):
        ref = TopKLogitsWarper(int(top_k[row]))(None, scores[row:row + 1])
        ref = TopPLogitsWarper(float(top_p[row]))(None, ref) if top_p[row] < 1 else ref
        assert torch.equal(torch.isfinite(fast[row]), torch.isfinite(ref[0])), row


def test_compare_panes_on_one_model_decode_together_in_its_batch(demo_config, monkeypatch):
    """Three Compare panes on one model: one prefill each, then decoded in the same batch, not one after another."""
    from qwen_playground.backends.batching import ContinuousBatcher
    from qwen_playground.tasks import compare

    backend, running, most = float32_backend(demo_config), [0], [0]
    shipped = ContinuousBatcher.run

    def counted(self, *args, **kwargs):
        running[0] += 1
        most[0] = max(most[0], running[0], self.in_flight)
        try:
            return shipped(self, *args, **kwargs)
        finally:
            running[0] -= 1

    monkeypatch.setattr(ContinuousBatcher, "run", counted)
    panes = [{"model": "tiny-random", "temperature": 0.0, "max_new_tokens": 40}] * 3
    views = list(compare.run(backend, compare.prepare(demo_config, "Say something", panes)))
    assert views[-1].notice == ""  # not run one after another
    assert most[0] == 3  # all three in flight at once
    assert all("tok/s" in line for line in views[-1].lines) and len(views[-1].results) == 3  # each finished with its metrics
