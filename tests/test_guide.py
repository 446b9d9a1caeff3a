import pytest

from qwen_playground.core.config import load_config
from qwen_playground.tasks.guide import GIB, assess, kv_cache_bytes, rank, total_bytes, weights_bytes


@pytest.fixture(scope="module")
def registry():
    return load_config().registry  # offline: demo mode, but the real models stay in the registry


def test_qwen3_8b_by_hand(registry):
    spec = registry.get("qwen3-8b")
    # 8.2e9 params x 2 bytes; 2 x 36 layers x 8 KV heads x 128 x 2 bytes = 147,456 bytes per token
    assert weights_bytes(spec, "full") == 16_400_000_000
    assert kv_cache_bytes(spec, 32768) == 147_456 * 32768 == 4_831_838_208
    assert total_bytes(spec, "full", 32768) == 18_040_000_000 + 4_831_838_208
    assert round(total_bytes(spec, "full", 32768) / GIB, 2) == 21.3


def test_qwen25_7b_by_hand(registry):
    spec = registry.get("qwen2.5-7b-instruct")
    # 7.61e9 x 1 byte at int8; 2 x 28 x 4 x 128 x 2 = 57,344 bytes per token
    assert weights_bytes(spec, "8-bit") == 7_610_000_000
    assert kv_cache_bytes(spec, 8192) == 57_344 * 8192
    assert round(total_bytes(spec, "8-bit", 8192) / GIB, 2) == round((7.61e9 * 1.1 + 57_344 * 8192) / GIB, 2) == 8.23


def test_ranking_and_reasons(registry):
    fits = rank(registry, "chat", memory_gib=8, context_tokens=8192, languages=["English"])
    ids = [f.spec.id for f in fits]
    assert fits[0].best == "full" and "fits at full precision" in fits[0].why
    eight = next(f for f in fits if f.spec.id == "qwen3-8b")
    assert eight.best in ("8-bit", "4-bit") and ids.index("qwen3-8b") > ids.index("qwen3-1.7b")
    tiny = rank(registry, "chat", memory_gib=0.5, context_tokens=4096, languages=[])
    assert all(f.best is None for f in tiny if f.spec.params_b > 1) and "does not fit even at 4-bit precision" in tiny[-1].why


def test_language_support_is_checked(registry):
    math = assess(registry.get("qwen2.5-math-7b-instruct"), 64, 4096, ["Hindi"])
    assert math.best is None and "English, Chinese only, not Hindi" in math.why
    assert assess(registry.get("qwen2.5-7b-instruct"), 64, 4096, ["Hindi"]).best == "full"


def test_the_guide_recommends_only_what_runs_here(registry):
    """On a CPU the weights picker offers full and 8-bit: the guide never says 4-bit there (one source of truth)."""
    cpu = ("full", "8-bit")
    fits = rank(registry, "chat", memory_gib=6, context_tokens=4096, languages=[], runnable=cpu)
    assert all(f.best in ("full", "8-bit", None) for f in fits)
    eight = next(f for f in fits if f.spec.id == "qwen3-8b")
    assert eight.best is None and "would fit at 4-bit precision" in eight.why and "does not offer" in eight.why
    assert next(f for f in rank(registry, "chat", 6, 4096, []) if f.spec.id == "qwen3-8b").best == "4-bit"  # where int4 runs
