"""Mixtures of experts (Qwen3.6-35B-A3B's architecture, qwen3_5_moe) on both local engines, and the llama.cpp engine's
memory for hybrid models: the KV cache of their attention layers only, and every slot's recurrent state."""

import threading

import pytest

from qwen_playground.backends import llamacpp
from qwen_playground.backends.local import LLAMA_CPP, TRANSFORMERS, CacheKey, LocalBackend
from qwen_playground.core.config import load_config
from qwen_playground.core.generation import Done, Metrics, Request, SamplingParams, TextDelta, ThinkingDelta

GREEDY = SamplingParams(temperature=0, max_new_tokens=80)
THOUGHT = "Demo mode: four tiny experts with random parameters, so this thought is scripted!"
ANSWER = "Howdy from a small mixture-of-specialists network; install real weights for useful answers"


@pytest.fixture(scope="module")
def engines(cache_dir, config_file) -> dict[str, LocalBackend]:
    """The demo config on each engine (the session's cache: demo models are built once)."""
    found = {}
    for name in (LLAMA_CPP, TRANSFORMERS):
        config = load_config(config_file, demo=True, cache_dir=cache_dir, max_input_tokens=512, engine=name)
        found[name] = LocalBackend(config.registry, config.settings)
    return found


def answer(backend: LocalBackend, model: str) -> tuple[list, list[int]]:
    """(the events, the answer's ids as the engine's tokenizer reads the streamed text back)."""
    events = list(backend.stream(Request(model, [{"role": "user", "content": "Hi"}], GREEDY, thinking=True), threading.Event()))
    return events, [e.text for e in events if isinstance(e, (ThinkingDelta, TextDelta))]


def test_the_moe_demo_streams_the_same_tokens_on_both_engines(engines):
    """The tiny qwen3_5_moe model (4 experts, 2 routed a token, a shared one) through llama.cpp (converted to its
    qwen35moe architecture) and through transformers: the same thought, answer and token counts, greedy."""
    seen = {}
    for name, backend in engines.items():
        events, pieces = answer(backend, "demo-qwen3.6-moe")
        thought = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
        text = "".join(e.text for e in events if isinstance(e, TextDelta))
        metrics = next(e for e in events if isinstance(e, Metrics))
        assert (thought, text) == (THOUGHT, ANSWER) and events[-1] == Done("stop") and metrics.engine == name
        seen[name] = (pieces, metrics.thinking_tokens, metrics.answer_tokens, metrics.prompt_tokens)
    assert seen[LLAMA_CPP] == seen[TRANSFORMERS]  # token by token: each streamed piece is one token
    loaded = engines[LLAMA_CPP].cache.get(CacheKey("demo-qwen3.6-moe", engine=LLAMA_CPP), 0, None)
    metadata = loaded.runner._model.metadata()
    assert metadata["general.architecture"] == "qwen35moe"
    assert (metadata["qwen35moe.expert_count"], metadata["qwen35moe.expert_used_count"]) == ("4", "2")


def test_the_moe_caches_keys_and_values_in_its_attention_layers_only(engines):
    """2 layers, one attending (full_attention_interval 2): 2 KV heads of 16, keys and values in 16 bits; the
    linear-attention layer's state: a 3-step window of 32 + 2 x 2 x 16 values and 16 x 32 of state, in 32 bits."""
    answer(engines[LLAMA_CPP], "demo-qwen3.6-moe")  # loaded (again, if this test runs alone)
    loaded = engines[LLAMA_CPP].cache.get(CacheKey("demo-qwen3.6-moe", engine=LLAMA_CPP), 0, None)
    metadata = loaded.runner._model.metadata()
    assert llamacpp.kv_bytes_per_token(metadata) == 1 * 2 * 16 * 2 * 2 == 128
    assert llamacpp.recurrent_bytes_per_sequence(metadata) == 4 * 1 * (3 * (32 + 2 * 2 * 16) + 16 * 32) == 3200
    runner = loaded.runner
    assert runner.cache_bytes == runner.cache_tokens * 128 + len(runner._slots) * 3200


def test_qwen36_35b_a3b_memory_by_hand():
    """The real model's shape (its card): 40 layers, every 4th attending with 2 KV heads of 256; 30 Gated DeltaNet
    layers of 32 value heads x 128 (inner 4,096), 16 key heads of 128 (groups 16, state 128), a window of 4."""
    metadata = {"general.architecture": "qwen35moe", "qwen35moe.block_count": "40", "qwen35moe.full_attention_interval": "4",
                "qwen35moe.attention.head_count": "16", "qwen35moe.attention.head_count_kv": "2", "qwen35moe.attention.key_length": "256",
                "qwen35moe.ssm.inner_size": "4096", "qwen35moe.ssm.group_count": "16", "qwen35moe.ssm.state_size": "128",
                "qwen35moe.ssm.conv_kernel": "4"}
    assert llamacpp.kv_bytes_per_token(metadata) == 10 * 2 * 256 * 2 * 2 == 20_480  # 20 KiB a token: 5.4 GB at 262,144
    assert llamacpp.recurrent_bytes_per_sequence(metadata) == 4 * 30 * (3 * (4096 + 2 * 16 * 128) + 128 * 4096) == 65_863_680
    per_layer = metadata | {"qwen35moe.attention.head_count_kv": "arr[i32,40]"}  # listed per layer: read from the file
    assert llamacpp.kv_bytes_per_token(per_layer, [0, 0, 0, 2] * 10) == 20_480
    assert llamacpp.kv_bytes_per_token(per_layer) == 10 * 16 * 256 * 2 * 2  # unread: every head of the attending layers
