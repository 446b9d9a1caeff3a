import pytest

from qwen_playground.core.config import load_config
from qwen_playground.tasks.guide import (
    GIB,
    Fit,
    Machine,
    assess,
    choice,
    draft_note,
    kv_cache_bytes,
    rank,
    read_bytes_per_token,
    table,
    tokens_per_pass,
    tokens_per_s_limit,
    total_bytes,
    weights_bytes,
)


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
    assert fits[0].spec.id == "qwen3.5-9b" and fits[0].best == "4-bit" and "fits at 4-bit precision" in fits[0].why  # the strongest that fits
    assert rank(registry, "chat", memory_gib=80, context_tokens=8192, languages=[])[0].best == "full"  # room for full precision
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


# The guide's choice for common machines: (runs on, memory GiB, bandwidth GB/s) -> (model, precision). Laptop CPUs read
# ~60 GB/s (dual-channel DDR5), a 24 GB GPU ~1,000 (RTX 4090), an 80 GB one ~3,350 (H100 SXM).
MACHINES = [
    ("CPU", 8, 60, "qwen3.5-9b", "4-bit"),  # 5.8 GiB; 9B x 0.6 bytes = 5.4 GB a token: 11 tokens/s at most
    ("CPU", 16, 60, "qwen3.5-9b", "4-bit"),  # a 27B needs 17.6 GiB in 4-bit; the 9B in 8-bit reads 9.6 GB a token: 6 tokens/s, slow
    ("CPU", 32, 60, "qwen3.6-35b-a3b", "4-bit"),  # 22.3 GiB; reads its 3B active: 1.8 GB a token, 33 tokens/s; a 27B: 3.6
    ("CPU", 64, 60, "qwen3.6-35b-a3b", "8-bit"),  # 39.3 GiB; 3.2 GB a token: 19 tokens/s
    ("GPU", 24, 1000, "qwen3.8-27b", "4-bit"),  # 15.6 GiB (NF4); 14.7 GB a token: 68 tokens/s
    ("GPU", 80, 3350, "qwen3.8-27b", "full"),  # 57.5 GiB in bf16; 55.6 GB a token: 60 tokens/s
]


@pytest.mark.parametrize("runs_on, memory, bandwidth, model, precision", MACHINES)
def test_the_guide_picks_the_strongest_model_that_fits_and_streams_readably(registry, runs_on, memory, bandwidth, model, precision):
    runnable = ("full", "8-bit", "4-bit")  # llama.cpp on a CPU, bitsandbytes on a GPU
    rows = table(registry, runnable, "chat", memory, 8192, ["English"], runs_on, bandwidth)
    first = rows[0]
    assert (first[0], first[-3]) == (model, precision) and first[-1].startswith("★ The guide's choice")
    assert first[-2] >= 10 and sum(row[-1].startswith("★") for row in rows) == 1  # its speed limit, shown; one choice


def test_a_mixture_of_experts_needs_memory_for_every_expert_and_reads_only_the_active_ones(registry):
    """Qwen3.6-35B-A3B on a 32 GB laptop by hand: 36.0B parameters x 0.6 bytes (Q4_K_M) = 21.6 GB held; a token reads
    its 3.0B active ones, 1.8 GB: at 60 GB/s at most 33.3 tokens/s. The dense 27B reads all 27.8B: 16.7 GB, 3.6 tokens/s."""
    laptop = Machine(32, on_gpu=False, bandwidth_gbs=60)
    moe, dense = registry.get("qwen3.6-35b-a3b"), registry.get("qwen3.6-27b")
    assert weights_bytes(moe, "4-bit", laptop) == 21_600_000_000 and read_bytes_per_token(moe, "4-bit", laptop) == 1_800_000_000
    assert tokens_per_s_limit(moe, "4-bit", laptop) == pytest.approx(33.33, abs=0.01)
    assert tokens_per_s_limit(dense, "4-bit", laptop) == pytest.approx(60e9 / (27.8e9 * 0.6), abs=0.01)
    # 40 layers, every 4th attends: 10 x 2 KV heads x 256 x 2 (K, V) x 2 bytes = 20 KiB a token
    assert kv_cache_bytes(moe, 8192) == 10 * 2 * 256 * 2 * 2 * 8192
    fit = assess(moe, 32, 8192, [], machine=laptop)
    assert fit.best == "4-bit" and fit.readable and "its 3B active parameters, 1.80 GB" in fit.why and "33.3 tokens/s" in fit.why
    slow = assess(dense, 32, 8192, [], machine=laptop)
    assert slow.best == "4-bit" and not slow.readable and "slow" in slow.why  # fits, but reads under 10 tokens/s
    assert choice(rank(registry, "chat", 32, 8192, [], machine=laptop)).spec.id == "qwen3.6-35b-a3b"


def test_api_only_models_are_not_ranked_for_a_machine(registry):
    ids = {row[0] for row in table(registry, ("full", "8-bit", "4-bit"), "chat", 1000, 8192, [], "GPU", 0)}
    assert "qwen3.8-27b" in ids and not any(i.startswith("qwen3.7") for i in ids)


def test_a_machine_the_guide_cannot_read_is_refused_with_what_to_give(registry):
    from qwen_playground.tasks import TaskError

    runnable = ("full", "8-bit", "4-bit")
    with pytest.raises(TaskError, match="machine"):
        table(registry, runnable, "chat", 32, 8192, [], "TPU", 0)
    with pytest.raises(TaskError, match="memory bandwidth in GB/s"):
        table(registry, runnable, "chat", 32, 8192, [], "CPU", -5)
    with pytest.raises(TaskError, match="memory you have"):
        table(registry, runnable, "chat", "lots", 8192, [], "CPU", 0)


def test_the_guide_says_when_a_draft_pays(registry):
    """A pass of 4 guesses costs 1 + 4r token reads (r: the draft's bytes over the model's) and gives
    (1 - a^5) / (1 - a) tokens when each guess is kept with probability a: the draft pays above the a where they meet."""
    assert tokens_per_pass(0.0) == 1 and tokens_per_pass(1.0) == 5 and tokens_per_pass(0.5) == pytest.approx(1.9375)
    machine = Machine(16, on_gpu=False)
    fits = {f.spec.id: f for f in rank(registry, "chat", 16, 8192, [], machine=machine)}
    nine = fits["qwen3.5-9b"]
    r = read_bytes_per_token(registry.get("qwen3.5-0.8b"), nine.best, machine) / read_bytes_per_token(nine.spec, nine.best, machine)
    share = int(nine.why.split("pays above ")[1].split("%")[0]) / 100
    assert tokens_per_pass(share) == pytest.approx(1 + 4 * r, abs=0.03)  # the break-even, as printed (rounded)
    assert "drafts: qwen3.5-0.8b" in nine.why and "llama_cpp_hybrid_drafts" in nine.why
    assert "drafts:" not in fits["qwen3.5-0.8b"].why  # nothing smaller of its vocabulary
    tight = Fit(nine.spec, {**nine.needs_gib, nine.best: 15.9}, nine.kv_gib, nine.best, nine.tokens_s, "")
    assert "would not fit beside it" in draft_note(registry, tight, 16, machine)
