"""The weights' precision: what runs where, its one name, and 8-bit weights through a tiny real model."""

import threading

import pytest
import torch

from qwen_playground.backends import precision
from qwen_playground.backends.local import CacheKey, LocalBackend
from qwen_playground.core.generation import Error, Metrics, Request, SamplingParams, TextDelta
from qwen_playground.tasks.compare import presets

GREEDY = SamplingParams(temperature=0, max_new_tokens=60)


def test_cpu_offers_8_bit_and_says_why_not_4_bit():
    reasons = precision.precisions_on("cpu")
    assert reasons["full"] is None and reasons["8-bit"] is None
    assert "CUDA" in reasons["4-bit"]
    assert "Unknown precision" in precision.unavailable_reason("3-bit", "cpu")
    with pytest.raises(ValueError, match="unavailable"):
        precision.transformers_config("4-bit", "cpu", torch.bfloat16)


def test_cuda_uses_bitsandbytes_nf4_with_double_quantization(monkeypatch):
    monkeypatch.setattr(precision.importlib.util, "find_spec", lambda name: object())
    config = precision.transformers_config("4-bit", "cuda", torch.bfloat16)
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert precision.transformers_config("8-bit", "cuda", torch.bfloat16).load_in_8bit
    monkeypatch.setattr(precision.importlib.util, "find_spec", lambda name: None)
    assert "bitsandbytes" in precision.unavailable_reason("8-bit", "cuda")


def run(backend, request):
    return list(backend.stream(request, threading.Event()))


def test_8_bit_weights_load_beside_full_precision_and_use_less_memory(demo_config):
    backend = LocalBackend(demo_config.registry, demo_config.settings)
    messages = [{"role": "user", "content": "Hi"}]
    full = run(backend, Request("demo-qwen2.5", messages, GREEDY))
    int8 = run(backend, Request("demo-qwen2.5", messages, GREEDY, precision="8-bit"))
    assert "".join(e.text for e in int8 if isinstance(e, TextDelta)) == "".join(e.text for e in full if isinstance(e, TextDelta))
    full_m, int8_m = (next(e for e in events if isinstance(e, Metrics)) for events in (full, int8))
    assert int8_m.precision == "8-bit" and int8_m.weights_bytes < full_m.weights_bytes
    assert "weights" in int8_m.summary() and "8-bit" in int8_m.summary()
    assert set(backend.cache.keys()) >= {CacheKey("demo-qwen2.5"), CacheKey("demo-qwen2.5", "8-bit")}


def test_a_choice_this_machine_cannot_run_is_refused_with_the_reason(backend):
    if backend.device != "cpu":
        pytest.skip("4-bit runs on CUDA")
    events = run(backend, Request("demo-qwen3", [{"role": "user", "content": "Hi"}], GREEDY, precision="4-bit"))
    assert len(events) == 1 and isinstance(events[0], Error) and "CUDA" in events[0].message


def test_precision_has_one_name_and_the_old_one_still_reads():
    from qwen_playground.tasks.compare import PaneSetup

    assert Request("m", [], precision="none").precision == "full"
    assert PaneSetup(model="m", weights="8-bit").precision == "8-bit" and PaneSetup(model="m").export()["precision"] == "full"


def test_the_compare_preset_changes_only_the_precision(demo_config):
    found = presets(demo_config.registry, ("full", "8-bit"))
    name = next(n for n in found if n.startswith("Precision"))
    setups = found[name]
    assert [s.precision for s in setups] == ["full", "8-bit"] and len({s.model for s in setups}) == 1
    assert not any(n.startswith("Precision") for n in presets(demo_config.registry, ("full",)))
