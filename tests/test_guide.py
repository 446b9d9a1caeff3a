import pytest

from qwen_playground.config import load_config
from qwen_playground.guide import GIB, assess, kv_cache_bytes, rank, total_bytes, weights_bytes


@pytest.fixture(scope="module")
def registry():
    return load_config().registry  # offline: demo mode, but the real models stay in the registry


def test_qwen3_8b_by_hand(registry):
    spec = registry.get("qwen3-8b")
    # 8.2e9 params x 2 bytes; 2 x 36 layers x 8 KV heads x 128 x 2 bytes = 147,456 bytes per token
    assert weights_bytes(spec, "bf16") == 16_400_000_000
    assert kv_cache_bytes(spec, 32768) == 147_456 * 32768 == 4_831_838_208
    assert total_bytes(spec, "bf16", 32768) == 18_040_000_000 + 4_831_838_208
    assert round(total_bytes(spec, "bf16", 32768) / GIB, 2) == 21.3


def test_qwen25_7b_by_hand(registry):
    spec = registry.get("qwen2.5-7b-instruct")
    # 7.61e9 x 1 byte at int8; 2 x 28 x 4 x 128 x 2 = 57,344 bytes per token
    assert weights_bytes(spec, "int8") == 7_610_000_000
    assert kv_cache_bytes(spec, 8192) == 57_344 * 8192
    assert round(total_bytes(spec, "int8", 8192) / GIB, 2) == round((7.61e9 * 1.1 + 57_344 * 8192) / GIB, 2) == 8.23


def test_ranking_and_reasons(registry):
    fits = rank(registry, "chat", memory_gib=8, context_tokens=8192, languages=["English"])
    ids = [f.spec.id for f in fits]
    assert fits[0].best == "bf16" and "fits in bf16" in fits[0].why
    eight = next(f for f in fits if f.spec.id == "qwen3-8b")
    assert eight.best in ("int8", "int4") and ids.index("qwen3-8b") > ids.index("qwen3-1.7b")
    tiny = rank(registry, "chat", memory_gib=0.5, context_tokens=4096, languages=[])
    assert all(f.best is None for f in tiny if f.spec.params_b > 1) and "does not fit even in int4" in tiny[-1].why


def test_language_support_is_checked(registry):
    math = assess(registry.get("qwen2.5-math-7b-instruct"), 64, 4096, ["Hindi"])
    assert math.best is None and "English, Chinese only, not Hindi" in math.why
    assert assess(registry.get("qwen2.5-7b-instruct"), 64, 4096, ["Hindi"]).best == "bf16"


def test_the_guide_recommends_only_what_runs_here(registry):
    """On a CPU the weights picker offers none and 8-bit: the guide never says int4 there (one source of truth)."""
    cpu = ("none", "8-bit")
    fits = rank(registry, "chat", memory_gib=6, context_tokens=4096, languages=[], runnable=cpu)
    assert all(f.best in ("bf16", "int8", None) for f in fits)
    eight = next(f for f in fits if f.spec.id == "qwen3-8b")
    assert eight.best is None and "would fit in int4" in eight.why and "does not offer" in eight.why
    assert next(f for f in rank(registry, "chat", 6, 4096, []) if f.spec.id == "qwen3-8b").best == "int4"  # where int4 runs
