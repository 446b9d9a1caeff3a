"""The Model guide task: which Qwen variants fit a machine, and which is the strongest that runs well there.

Memory for a model = weights + KV cache + runtime overhead, where
- weights = every parameter (a mixture of experts: all its experts) x bytes
  per weight at each precision (`backends.precision.bytes_per_param`): on a
  GPU full (bf16) 2, 8-bit 1, 4-bit 0.5 plus about 6% for its per-group
  scales; on a CPU llama.cpp's files, 2, 1.06 (Q8_0) and 0.6 (Q4_K_M);
- KV cache = 2 (K and V) x layers that keep one x KV heads x head size x
  2 bytes (bf16) x context tokens (hybrid families keep a cache in every
  n-th layer only: their `kv_layer_interval`);
- overhead = 10% of the weights (activations, buffers, the framework).
Speed: decoding a token reads the weights it uses once, so it is bounded by
memory bandwidth / bytes read per token: a dense model reads every weight, a
mixture of experts only its active ones (Qwen3.6-35B-A3B: 3B of 36B). The
llama.cpp engine reaches 61-73% of that limit here (docs/performance.md).
The choice: the strongest model (the registry's `strongest` order for the task) that
fits and whose limit is readable, at the highest precision that does both.
Drafts (speculative decoding): a pass checking k guesses reads the model once
and each guess reads the draft once, so a pass costs 1 + k x r token reads (r:
the draft's bytes a token over the model's) and gives (1 - a^(k+1)) / (1 - a)
tokens when each guess is kept with probability a: a draft pays above the a
where the two are equal (`draft_note`).
Every number is shown, so a teacher can redo it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..backends.precision import bytes_per_param
from ..core.generation import DRAFT_TOKENS, PRECISIONS
from ..core.registry import TABS, ModelSpec, Registry
from . import TaskError, one_of

GIB = 2**30
OVERHEAD = 0.10
READABLE_TOKENS_S = 10.0  # a bandwidth limit this high streams faster than people read (~5 tokens/s) at 60-75% of it
TYPICAL_BANDWIDTH_GBS = {"CPU": 60.0, "GPU": 1000.0}  # dual-channel DDR5 laptop; a 24 GB consumer GPU (RTX 4090: 1,008)
MACHINES = tuple(TYPICAL_BANDWIDTH_GBS)


@dataclass(frozen=True)
class Machine:
    """Where the models would run: a CPU (llama.cpp's file sizes) or a GPU, with this much memory and read bandwidth."""

    memory_gib: float
    on_gpu: bool = True
    bandwidth_gbs: float = 0.0  # 0: the typical figure for its kind

    @property
    def bandwidth(self) -> float:
        return self.bandwidth_gbs or TYPICAL_BANDWIDTH_GBS["GPU" if self.on_gpu else "CPU"]

    def bytes_per_param(self, precision: str) -> float:
        return bytes_per_param(precision, 2, gguf=not self.on_gpu)


def kv_cache_bytes(spec: ModelSpec, context_tokens: int) -> int | None:
    if not (spec.layers and spec.kv_heads and spec.head_dim):
        return None
    cached_layers = spec.layers // spec.family.kv_layer_interval
    return 2 * cached_layers * spec.kv_heads * spec.head_dim * 2 * context_tokens


def weights_bytes(spec: ModelSpec, precision: str, machine: Machine = Machine(0)) -> int:
    return round(spec.params_b * 1e9 * machine.bytes_per_param(precision))


def read_bytes_per_token(spec: ModelSpec, precision: str, machine: Machine = Machine(0)) -> int:
    """The weight bytes one decoded token reads: a mixture of experts' active ones, a dense model's all."""
    return round(spec.read_per_token_b * 1e9 * machine.bytes_per_param(precision))


def tokens_per_s_limit(spec: ModelSpec, precision: str, machine: Machine) -> float:
    """The decode speed memory bandwidth allows: bandwidth / bytes read per token."""
    return machine.bandwidth * 1e9 / read_bytes_per_token(spec, precision, machine)


def total_bytes(spec: ModelSpec, precision: str, context_tokens: int, machine: Machine = Machine(0)) -> int:
    weights = weights_bytes(spec, precision, machine)
    return round(weights * (1 + OVERHEAD)) + (kv_cache_bytes(spec, context_tokens) or 0)


@dataclass(frozen=True)
class Fit:
    spec: ModelSpec
    needs_gib: dict[str, float]  # precision -> total GiB
    kv_gib: float | None
    best: str | None  # the highest precision that fits and reads at a readable speed (else the fastest that fits), or None
    tokens_s: float | None  # the bandwidth limit at `best`
    why: str

    @property
    def readable(self) -> bool:
        return self.best is not None and self.tokens_s is not None and self.tokens_s >= READABLE_TOKENS_S


def assess(spec: ModelSpec, memory_gib: float, context_tokens: int, languages: list[str],
           runnable: tuple[str, ...] = PRECISIONS, machine: Machine | None = None) -> Fit:
    """How `spec` fits `memory_gib` on `machine` (a GPU by default); only the precisions in `runnable` (the precision
    picker's choices on this machine) are recommended, so the guide never advises what the app cannot run here."""
    machine = machine or Machine(memory_gib)
    needs = {q: total_bytes(spec, q, context_tokens, machine) / GIB for q in PRECISIONS}
    speed = {q: tokens_per_s_limit(spec, q, machine) for q in PRECISIONS}
    kv = kv_cache_bytes(spec, context_tokens)
    kv_gib = kv / GIB if kv is not None else None
    offered = [q for q in PRECISIONS if q in runnable]
    fitting = [q for q in offered if needs[q] <= memory_gib]
    best = next((q for q in fitting if speed[q] >= READABLE_TOKENS_S), fitting[-1] if fitting else None)
    not_here = next((q for q in PRECISIONS if q not in offered and needs[q] <= memory_gib), None) if best is None else None
    missing = [lang for lang in languages if spec.languages is not None and lang not in spec.languages]
    context_note = f" (its context is {spec.context_length:,} tokens)" if context_tokens > spec.context_length else ""
    if missing:
        why = f"documented for {', '.join(spec.languages)} only, not {', '.join(missing)}"
    elif not_here:
        why = f"would fit at {not_here} precision ({needs[not_here]:.1f} GiB), which this machine does not offer (see the precision picker)"
    elif best is None:
        why = f"does not fit even at {offered[-1]} precision: needs {needs[offered[-1]]:.1f} GiB of {memory_gib:g} GiB"
    else:
        why = (f"fits at {best} precision: {_memory_line(spec, best, context_tokens, machine, kv_gib)} = {needs[best]:.1f} of "
               f"{memory_gib:g} GiB; {_speed_line(spec, best, machine, speed[best])}")
    served = "" if spec.family.local else " · on the GPU of an OpenAI-compatible server (vLLM): the app does not load it itself"
    return Fit(spec, needs, kv_gib, None if missing else best, speed[best] if best else None, why + context_note + served)


def _memory_line(spec: ModelSpec, precision: str, context_tokens: int, machine: Machine, kv_gib: float | None) -> str:
    kv = (f"{kv_gib:.2f} GiB KV cache at {context_tokens:,} tokens" if kv_gib is not None
          else "KV cache unknown (no layers/kv_heads/head_dim in the registry)")
    return f"{weights_bytes(spec, precision, machine) / GIB:.2f} GiB weights ({spec.params_b:g}B) + {kv} + 10% overhead"


def _speed_line(spec: ModelSpec, precision: str, machine: Machine, limit: float) -> str:
    reads = read_bytes_per_token(spec, precision, machine) / 1e9
    active = f"its {spec.active_params_b:g}B active parameters" if spec.active_params_b else "every weight"
    verdict = "readable" if limit >= READABLE_TOKENS_S else f"slow: under {READABLE_TOKENS_S:g}"
    return f"a token reads {active}, {reads:.2f} GB: at most {machine.bandwidth:g} GB/s / {reads:.2f} GB = {limit:.1f} tokens/s ({verdict})"


def tokens_per_pass(acceptance: float, length: int = DRAFT_TOKENS) -> float:
    """Tokens one pass gives when each of `length` guesses is kept with probability `acceptance` (until one is not)."""
    return length + 1.0 if acceptance >= 1 else (1 - acceptance ** (length + 1)) / (1 - acceptance)


def draft_note(registry: Registry, fit: Fit, memory_gib: float, machine: Machine, length: int = DRAFT_TOKENS) -> str:
    """When the smallest draft of `fit`'s vocabulary pays at `length` guesses a pass, and what it would cost in memory."""
    drafts = [d for d in registry.drafts_for(fit.spec) if not d.demo]
    if not drafts or fit.best is None:
        return ""
    draft, precision = drafts[0], fit.best
    extra = weights_bytes(draft, precision, machine) / GIB
    if fit.needs_gib[precision] + extra > memory_gib:
        return f" · a {draft.id} draft would not fit beside it ({extra:.1f} GiB more)"
    ratio = read_bytes_per_token(draft, precision, machine) / read_bytes_per_token(fit.spec, precision, machine)
    cost = 1 + length * ratio
    if tokens_per_pass(1.0, length) <= cost:
        return f" · a {draft.id} draft never pays: it reads {ratio:.0%} of this model's bytes a token"
    low, high = 0.0, 1.0  # the acceptance where a pass's tokens equal its cost
    for _ in range(40):
        low, high = ((low + high) / 2, high) if tokens_per_pass((low + high) / 2, length) < cost else (low, (low + high) / 2)
    hybrid = " (on llama.cpp with llama_cpp_hybrid_drafts: its recurrent state keeps snapshots)" \
        if not machine.on_gpu and fit.spec.family.kv_layer_interval > 1 else ""
    return (f" · drafts: {draft.id} (+{extra:.1f} GiB, reads {ratio:.0%} as much a token) pays above {high:.0%} of guesses kept "
            f"at {length} a pass; at 70% kept, about {tokens_per_pass(0.7, length) / cost:.1f}x the speed{hybrid}")


def rank(registry: Registry, task: str, memory_gib: float, context_tokens: int, languages: list[str],
         runnable: tuple[str, ...] = PRECISIONS, machine: Machine | None = None) -> list[Fit]:
    """Every real variant whose family suits the task (the guide looks past routes; models on a server are not the
    machine's to run), best first: those that fit at a readable speed, strongest first (the registry's
    `strongest`), then at higher precision, then larger ones; then those that fit but read slowly; then the rest."""
    machine = machine or Machine(memory_gib)
    fits = [assess(spec, memory_gib, context_tokens, languages, runnable, machine) for spec in registry.models.values()
            if task in spec.family.suits and not spec.demo and not spec.endpoint]
    strongest = list(registry.strongest.get(task, ()))
    order = {q: i for i, q in enumerate(PRECISIONS)}
    strength = lambda f: strongest.index(f.spec.id) if f.spec.id in strongest else len(strongest)  # noqa: E731
    fits = [replace(f, why=f.why + draft_note(registry, f, memory_gib, machine)) for f in fits]
    return sorted(fits, key=lambda f: (f.best is None, not f.readable, strength(f), order.get(f.best, 9), -f.spec.params_b))


def choice(fits: list[Fit]) -> Fit | None:
    """The guide's pick from `rank`'s list: the strongest model that fits and streams at a readable speed."""
    return next((f for f in fits if f.readable), None)


def table(registry: Registry, runnable: tuple[str, ...], task: object, memory_gib: object, context_tokens: object,
          languages: object, runs_on: object = "GPU", bandwidth_gbs: object = 0) -> list[list]:
    """The guide's rows, best first (the first is its choice when one reads fast enough): model, parameters (active
    ones), GiB needed per precision, KV cache, best fit, its decode limit in tokens/s, why."""
    one_of(task, TABS, "task", "task")
    one_of(runs_on, MACHINES, "machine", "runs_on")
    if not isinstance(memory_gib, (int, float)) or memory_gib <= 0:
        raise TaskError("Give the memory you have for the model in GiB, e.g. 8 for an 8 GB GPU.", "memory_gib")
    if not isinstance(bandwidth_gbs, (int, float)) or bandwidth_gbs < 0:
        raise TaskError("Give the memory bandwidth in GB/s (0: the typical figure for a CPU or GPU).", "bandwidth_gbs")
    machine = Machine(float(memory_gib), runs_on == "GPU", float(bandwidth_gbs))
    fits = rank(registry, task, float(memory_gib), int(context_tokens), list(languages or []), runnable, machine)
    chosen = choice(fits)
    return [[f.spec.id, f.spec.params_b, f.spec.active_params_b, *(round(f.needs_gib[q], 1) for q in PRECISIONS),
             None if f.kv_gib is None else round(f.kv_gib, 2), f.best or "—", None if f.tokens_s is None else round(f.tokens_s, 1),
             ("★ The guide's choice, the strongest that fits and streams readably: " if f is chosen else "") + f.why] for f in fits]
