"""Adding an engine to the local backend is one class and one table entry: a stub engine serves a request."""

import threading

import torch
from transformers import AutoTokenizer

from qwen_playground.backends import download, local
from qwen_playground.backends.local import CacheKey, LocalBackend
from qwen_playground.backends.local.engine import LoadedModel, eos_ids_of
from qwen_playground.core.generation import Done, Metrics, Request, SamplingParams, TextDelta

SAID = "Hello from a stub engine"


class StubEngine:
    """Says the same words to every prompt to demo-qwen2.5, as an engine would: token ids through the streamer."""

    name = "stub"

    def __init__(self, settings, device, dtype):
        self.settings = settings

    @staticmethod
    def here(settings, device) -> bool:
        return True

    def runs(self, spec, has_media) -> bool:
        return spec.id == "demo-qwen2.5"

    def unavailable(self, spec, precision):
        return None if precision == "full" else f"{precision} weights are unavailable on the stub engine."

    def converts_first(self, spec, precision) -> bool:
        return False

    def estimate_bytes(self, spec, precision) -> int:
        return 1

    def load(self, spec, precision, report):
        tokenizer = AutoTokenizer.from_pretrained(download.fetch(spec, self.settings.cache_dir, report))
        from transformers import GenerationConfig

        return LoadedModel(None, tokenizer, 0.0, eos_ids_of(GenerationConfig(), tokenizer)), 1

    def drafter(self, draft):
        return None  # it checks no guesses

    def generate(self, loaded, inputs, sampling, max_new_tokens, stop_ids, recorder, answer_start, streamer, flags, speculation=None):
        if speculation is not None:
            speculation.note = "the stub engine checks no guesses"
        ids = loaded.tokenizer(SAID, add_special_tokens=False).input_ids + [loaded.tokenizer.convert_tokens_to_ids("<|im_end|>")]
        streamer.put(inputs["input_ids"][0])
        for token in ids:
            streamer.put(torch.tensor([token]))
        return ids


def test_a_stub_engine_in_the_table_serves_a_request_with_no_change_elsewhere(demo_config, monkeypatch):
    monkeypatch.setattr(local, "ENGINES", (StubEngine, *local.ENGINES))
    backend = LocalBackend(demo_config.registry, demo_config.settings)
    assert backend.engine_for(demo_config.registry.get("demo-qwen2.5")).name == "stub"
    assert backend.engine_for(demo_config.registry.get("demo-qwen3")).name != "stub"  # the others keep their engines
    request = Request("demo-qwen2.5", [{"role": "user", "content": "Hi"}], SamplingParams(max_new_tokens=64))
    events = list(backend.stream(request, threading.Event()))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == SAID
    metrics = next(e for e in events if isinstance(e, Metrics))
    assert metrics.engine == "stub" and metrics.answer_tokens == len(SAID.split()) and metrics.prompt_tokens > 5
    assert events[-1] == Done("stop") and CacheKey("demo-qwen2.5", engine="stub") in backend.cache.keys()
    assert "demo-qwen2.5 stub" in backend.status() and "demo-qwen2.5 (full, stub)" not in backend.engine_state()  # no runner
    refused = list(backend.stream(Request("demo-qwen2.5", request.messages, precision="8-bit"), threading.Event()))
    assert refused[-1].message == "8-bit weights are unavailable on the stub engine."


def test_an_unknown_model_is_refused_in_one_place_for_every_backend(demo_config):
    from qwen_playground.backends.router import Router

    for backend in (LocalBackend(demo_config.registry, demo_config.settings), Router(demo_config)):
        (error,) = list(backend.stream(Request("no-such-model", [{"role": "user", "content": "Hi"}]), threading.Event()))
        assert "no-such-model" in error.message
