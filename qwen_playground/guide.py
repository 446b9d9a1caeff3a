"""The model guide: which Qwen variants fit a machine, from the registry's facts.

Memory for a model = weights + KV cache + runtime overhead, where
- weights = parameters x bytes per weight (`quantization.bytes_per_param`):
  bf16 2, int8 1, int4 0.5 plus about 6% for its per-group scales;
- KV cache = 2 (K and V) x layers that keep one x KV heads x head size x
  2 bytes (bf16) x context tokens (hybrid families keep a cache in every
  n-th layer only: their `kv_layer_interval`);
- overhead = 10% of the weights (activations, buffers, the framework).
Every number is shown, so a teacher can redo it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .quantization import bytes_per_param
from .registry import ModelSpec, Registry

GIB = 2**30
PRECISION = {"bf16": "none", "int8": "8-bit", "int4": "4-bit"}  # each estimate's choice in the weights picker (quantization.py)
QUANTS = {name: bytes_per_param(choice, torch.bfloat16) for name, choice in PRECISION.items()}  # bytes per weight
ALL_PRECISIONS = tuple(PRECISION.values())
OVERHEAD = 0.10


def kv_cache_bytes(spec: ModelSpec, context_tokens: int) -> int | None:
    if not (spec.layers and spec.kv_heads and spec.head_dim):
        return None
    cached_layers = spec.layers // spec.family.kv_layer_interval
    return 2 * cached_layers * spec.kv_heads * spec.head_dim * 2 * context_tokens


def weights_bytes(spec: ModelSpec, quant: str) -> int:
    return round(spec.params_b * 1e9 * QUANTS[quant])


def total_bytes(spec: ModelSpec, quant: str, context_tokens: int) -> int:
    weights = weights_bytes(spec, quant)
    return round(weights * (1 + OVERHEAD)) + (kv_cache_bytes(spec, context_tokens) or 0)


@dataclass(frozen=True)
class Fit:
    spec: ModelSpec
    needs_gib: dict[str, float]  # quant -> total GiB
    kv_gib: float | None
    best: str | None  # the highest-precision choice that fits, or None
    why: str


def assess(spec: ModelSpec, memory_gib: float, context_tokens: int, languages: list[str],
           runnable: tuple[str, ...] = ALL_PRECISIONS) -> Fit:
    """How `spec` fits `memory_gib`; only the weights precisions in `runnable` (the picker's own choices on this
    machine) are recommended, so the guide never advises what the app cannot run here."""
    needs = {q: total_bytes(spec, q, context_tokens) / GIB for q in QUANTS}
    kv = kv_cache_bytes(spec, context_tokens)
    kv_gib = kv / GIB if kv is not None else None
    offered = [q for q in QUANTS if PRECISION[q] in runnable]
    best = next((q for q in offered if needs[q] <= memory_gib), None)
    not_here = next((q for q in QUANTS if q not in offered and needs[q] <= memory_gib), None) if best is None else None
    missing = [lang for lang in languages if spec.languages is not None and lang not in spec.languages]
    context_note = f" (its context is {spec.context_length:,} tokens)" if context_tokens > spec.context_length else ""
    kv_text = f"{kv_gib:.2f} GiB KV cache at {context_tokens:,} tokens" if kv_gib is not None else "KV cache unknown (no layers/kv_heads/head_dim in the registry)"
    if missing:
        why = f"documented for {', '.join(spec.languages)} only, not {', '.join(missing)}"
    elif not_here:
        why = f"would fit in {not_here} ({needs[not_here]:.1f} GiB), which this machine does not offer (see the weights picker)"
    elif best is None:
        why = f"does not fit even in {offered[-1]}: needs {needs[offered[-1]]:.1f} GiB of {memory_gib:g} GiB"
    else:
        why = (f"fits in {best}: {weights_bytes(spec, best) / GIB:.2f} GiB weights + {kv_text} + 10% overhead "
               f"= {needs[best]:.1f} of {memory_gib:g} GiB")
    return Fit(spec, needs, kv_gib, None if missing else best, why + context_note)


def rank(registry: Registry, task: str, memory_gib: float, context_tokens: int, languages: list[str],
         runnable: tuple[str, ...] = ALL_PRECISIONS) -> list[Fit]:
    """Every real variant whose family suits the task (the guide looks past routes), best first: those that fit at
    higher precision, then larger ones."""
    fits = [assess(spec, memory_gib, context_tokens, languages, runnable) for spec in registry.models.values()
            if task in spec.family.suits and not spec.demo]
    order = {q: i for i, q in enumerate(QUANTS)}
    return sorted(fits, key=lambda f: (f.best is None, order.get(f.best, 9), -f.spec.params_b))
