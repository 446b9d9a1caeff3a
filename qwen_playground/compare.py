"""Side-by-side comparison, without the UI: "change one thing" presets, answer agreement, export.

Presets are derived from the registry's facts (families, sizes, thinking),
never from hard-coded model names, so they follow the user's config.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .mathtext import check_answer, extract_boxed
from .registry import ModelSpec, Registry


@dataclass(frozen=True)
class PaneSetup:
    model: str
    thinking: bool = False
    temperature: float | None = None  # None: the model's preset
    max_new_tokens: int | None = None
    quantization: str = "none"  # weights precision (local models)


@dataclass
class PaneResult:
    setup: PaneSetup
    answer: str = ""
    thinking: str = ""
    metrics: dict = field(default_factory=dict)
    error: str | None = None


def comparable_models(registry: Registry) -> list[ModelSpec]:
    """Every text model a tab routes to, in route order, once."""
    seen: dict[str, ModelSpec] = {}
    for tab in ("chat", "code", "math", "multilingual"):
        for spec in registry.choices(tab):
            seen.setdefault(spec.id, spec)
    return list(seen.values())


def presets(registry: Registry, precisions: tuple[str, ...] = ("none",)) -> dict[str, list[PaneSetup]]:
    """'Change one thing' comparisons that this registry can actually run (`precisions`: the quantization
    choices this machine offers)."""
    models = comparable_models(registry)
    found: dict[str, list[PaneSetup]] = {}
    if len(precisions) > 1 and models:
        smallest = min(models, key=lambda m: m.params_b)
        names = " vs ".join("full precision" if p == "none" else p for p in precisions)
        found[f"Weights: {names} ({smallest.id})"] = [PaneSetup(smallest.id, quantization=p) for p in precisions]
    thinker = next((m for m in models if m.thinking), None)
    if thinker:
        found[f"Thinking on vs off ({thinker.id})"] = [PaneSetup(thinker.id, True), PaneSetup(thinker.id, False)]
    by_family: dict[str, list[ModelSpec]] = {}
    for m in models:
        by_family.setdefault(m.family, []).append(m)
    for family, members in by_family.items():
        sizes = sorted({m.params_b: m for m in members}.values(), key=lambda m: m.params_b)
        if len(sizes) >= 2:
            small, large = sizes[0], sizes[1]
            found[f"Two sizes of {family} ({small.params_b:g}B vs {large.params_b:g}B)"] = [PaneSetup(small.id), PaneSetup(large.id)]
    specialists = [min(by_family[f], key=lambda m: abs(m.params_b - 1.5)) for f in ("qwen2.5", "qwen2.5-coder", "qwen2.5-math") if f in by_family]
    if len(specialists) == 3:
        found["Instruct vs Coder vs Math"] = [PaneSetup(m.id) for m in specialists]
    return found


def agreement(answers: list[str | None]) -> str:
    """Which panes' \\boxed{} answers agree, checked as math; '' when fewer than two have one."""
    boxed = [(i + 1, b) for i, a in enumerate(answers) if a and (b := extract_boxed(a))]
    if len(boxed) < 2:
        return ""
    groups: list[list[tuple[int, str]]] = []
    for pane, value in boxed:
        for group in groups:
            try:
                same = check_answer(group[0][1], value).equal
            except ValueError:
                same = group[0][1].strip() == value.strip()
            if same:
                group.append((pane, value))
                break
        else:
            groups.append([(pane, value)])
    if len(groups) == 1:
        return f"✅ All {len(boxed)} final answers agree: {boxed[0][1]}"
    parts = [f"pane{'s' if len(g) > 1 else ''} {', '.join(str(p) for p, _ in g)}: {g[0][1]}" for g in groups]
    return "⚠️ Final answers differ — " + "; ".join(parts)


def to_json(prompts: list[str], results: list[PaneResult]) -> str:
    return json.dumps({"prompts": prompts, "panes": [asdict(r) for r in results]}, ensure_ascii=False, indent=2)


def to_markdown(prompts: list[str], results: list[PaneResult]) -> str:
    lines = ["# Qwen Playground comparison", ""]
    lines += [f"**Prompt {i + 1}:** {p}" for i, p in enumerate(prompts)] + [""]
    for n, r in enumerate(results, 1):
        s = r.setup
        lines += [f"## Pane {n}: {s.model}", "",
                  f"- thinking: {'on' if s.thinking else 'off'}; temperature: {s.temperature if s.temperature is not None else 'preset'}; "
                  f"max new tokens: {s.max_new_tokens or 'preset'}; weights: {s.quantization}"]
        if r.metrics:
            lines.append("- " + "; ".join(f"{k}: {v}" for k, v in r.metrics.items()))
        if r.error:
            lines.append(f"- error: {r.error}")
        if r.thinking:
            lines += ["", "<details><summary>Thinking</summary>", "", r.thinking, "", "</details>"]
        lines += ["", r.answer, ""]
    return "\n".join(lines)

