"""The Model guide task: which Qwen variants fit a machine, as table rows, from the tab's or the API's inputs."""

from __future__ import annotations

from ..guide import QUANTS, rank
from ..registry import TABS, Registry
from . import TaskError


def table(registry: Registry, runnable: tuple[str, ...], task: object, memory_gib: object, context_tokens: object,
          languages: object) -> list[list]:
    """The guide's rows, best first: model, parameters, GiB needed per precision, KV cache, best fit, why."""
    if task not in TABS:
        raise TaskError(f"Unknown task '{task}'; choose one of: {', '.join(TABS)}.", "task")
    if not isinstance(memory_gib, (int, float)) or memory_gib <= 0:
        raise TaskError("Give the memory you have for the model in GiB, e.g. 8 for an 8 GB GPU.", "memory_gib")
    fits = rank(registry, task, float(memory_gib), int(context_tokens), list(languages or []), runnable)
    return [[f.spec.id, f.spec.params_b, *(round(f.needs_gib[q], 1) for q in QUANTS),
             None if f.kv_gib is None else round(f.kv_gib, 2), f.best or "—", f.why] for f in fits]
