"""The Model guide task: which Qwen variants fit a machine, from the registry's facts, as table rows.

Memory for a model = weights + KV cache + runtime overhead, where
- weights = parameters x bytes per weight at each precision (`backends.precision.bytes_per_param`):
  full (bf16) 2, 8-bit 1, 4-bit 0.5 plus about 6% for its per-group scales;
- KV cache = 2 (K and V) x layers that keep one x KV heads x head size x
  2 bytes (bf16) x context tokens (hybrid families keep a cache in every
  n-th layer only: their `kv_layer_interval`);
- overhead = 10% of the weights (activations, buffers, the framework).
Every number is shown, so a teacher can redo it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backends.precision import bytes_per_param
from ..core.generation import PRECISIONS
from ..core.registry import TABS, ModelSpec, Registry
from . import TaskError, one_of

GIB = 2**30
BYTES_PER_PARAM = {precision: bytes_per_param(precision) for precision in PRECISIONS}  # full precision: bf16
OVERHEAD = 0.10


def kv_cache_bytes(spec: ModelSpec, context_tokens: int) -> int | None:
    if not (spec.layers and spec.kv_heads and spec.head_dim):
        return None
    cached_layers = spec.layers // spec.family.kv_layer_interval
    return 2 * cached_layers * spec.kv_heads * spec.head_dim * 2 * context_tokens


def weights_bytes(spec: ModelSpec, precision: str) -> int:
    return round(spec.params_b * 1e9 * BYTES_PER_PARAM[precision])


def total_bytes(spec: ModelSpec, precision: str, context_tokens: int) -> int:
    weights = weights_bytes(spec, precision)
    return round(weights * (1 + OVERHEAD)) + (kv_cache_bytes(spec, context_tokens) or 0)


@dataclass(frozen=True)
class Fit:
    spec: ModelSpec
    needs_gib: dict[str, float]  # precision -> total GiB
    kv_gib: float | None
    best: str | None  # the highest-precision choice that fits, or None
    why: str


def assess(spec: ModelSpec, memory_gib: float, context_tokens: int, languages: list[str],
           runnable: tuple[str, ...] = PRECISIONS) -> Fit:
    """How `spec` fits `memory_gib`; only the precisions in `runnable` (the precision picker's choices on this
    machine) are recommended, so the guide never advises what the app cannot run here."""
    needs = {q: total_bytes(spec, q, context_tokens) / GIB for q in PRECISIONS}
    kv = kv_cache_bytes(spec, context_tokens)
    kv_gib = kv / GIB if kv is not None else None
    offered = [q for q in PRECISIONS if q in runnable]
    best = next((q for q in offered if needs[q] <= memory_gib), None)
    not_here = next((q for q in PRECISIONS if q not in offered and needs[q] <= memory_gib), None) if best is None else None
    missing = [lang for lang in languages if spec.languages is not None and lang not in spec.languages]
    context_note = f" (its context is {spec.context_length:,} tokens)" if context_tokens > spec.context_length else ""
    kv_text = f"{kv_gib:.2f} GiB KV cache at {context_tokens:,} tokens" if kv_gib is not None else "KV cache unknown (no layers/kv_heads/head_dim in the registry)"
    if missing:
        why = f"documented for {', '.join(spec.languages)} only, not {', '.join(missing)}"
    elif not_here:
        why = f"would fit at {not_here} precision ({needs[not_here]:.1f} GiB), which this machine does not offer (see the precision picker)"
    elif best is None:
        why = f"does not fit even at {offered[-1]} precision: needs {needs[offered[-1]]:.1f} GiB of {memory_gib:g} GiB"
    else:
        why = (f"fits at {best} precision: {weights_bytes(spec, best) / GIB:.2f} GiB weights + {kv_text} + 10% overhead "
               f"= {needs[best]:.1f} of {memory_gib:g} GiB")
    served = "" if spec.family.local else " · on the GPU of an OpenAI-compatible server (vLLM): the app does not load it itself"
    return Fit(spec, needs, kv_gib, None if missing else best, why + context_note + served)


def rank(registry: Registry, task: str, memory_gib: float, context_tokens: int, languages: list[str],
         runnable: tuple[str, ...] = PRECISIONS) -> list[Fit]:
    """Every real variant whose family suits the task (the guide looks past routes), best first: those that fit at
    higher precision, then larger ones."""
    fits = [assess(spec, memory_gib, context_tokens, languages, runnable) for spec in registry.models.values()
            if task in spec.family.suits and not spec.demo]
    order = {q: i for i, q in enumerate(PRECISIONS)}
    return sorted(fits, key=lambda f: (f.best is None, order.get(f.best, 9), -f.spec.params_b))


def table(registry: Registry, runnable: tuple[str, ...], task: object, memory_gib: object, context_tokens: object,
          languages: object) -> list[list]:
    """The guide's rows, best first: model, parameters, GiB needed per precision, KV cache, best fit, why."""
    one_of(task, TABS, "task", "task")
    if not isinstance(memory_gib, (int, float)) or memory_gib <= 0:
        raise TaskError("Give the memory you have for the model in GiB, e.g. 8 for an 8 GB GPU.", "memory_gib")
    fits = rank(registry, task, float(memory_gib), int(context_tokens), list(languages or []), runnable)
    return [[f.spec.id, f.spec.params_b, *(round(f.needs_gib[q], 1) for q in PRECISIONS),
             None if f.kv_gib is None else round(f.kv_gib, 2), f.best or "—", f.why] for f in fits]
