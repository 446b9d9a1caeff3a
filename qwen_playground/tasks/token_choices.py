"""Why this token? An answer's tokens as a person reads them: shaded by probability, alternatives beside each.

`to_markdown` is what the "why this token?" fold under an answer shows
(Chat and each Compare pane) and what the Markdown export keeps: a strip of
the answer's tokens, each shaded by how likely the model found it (hover or
tap for its alternatives), then a table with every token's top alternatives.
`to_records` is the same data for JSON (the Compare API and export).
"""

from __future__ import annotations

from dataclasses import asdict

from ..core.generation import Candidate, TokenChoices, TokenStep

TITLE = "🔎 Why this token?"
TABLE_ROWS = 400  # a longer answer's table stops here (the strip above it keeps every token)
# HTML-escaped, and nothing in a token renders as Markdown or math
_MARKDOWN = str.maketrans({c: f"&#{ord(c)};" for c in "\\`*_[]{}()#+-.!|$~<>&\"'"})


def visible(token: str) -> str:
    """A token with its newlines, tabs and edge spaces as signs (a leading space is what tells " cat" from "cat")."""
    text = token.replace("\n", "↵").replace("\t", "⇥")
    core = text.strip(" ")
    if not core:
        return "␣" * len(text) or "∅"
    left, right = len(text) - len(text.lstrip(" ")), len(text) - len(text.rstrip(" "))
    return "␣" * left + core + "␣" * right


def shown(token: str) -> str:
    """A token as the view shows it: `visible`, escaped."""
    return visible(token).translate(_MARKDOWN)


def strip_text(token: str) -> str:
    """A token as a strip of the answer shows it: spaces as spaces, a newline as ↵, escaped."""
    return (token.replace("\n", "↵") or "∅").translate(_MARKDOWN)


def percent(probability: float | None) -> str:
    if probability is None:
        return "?"
    return f"{probability:.1%}" if probability >= 0.001 else f"{probability:.0e}"


def _shade(step: TokenStep) -> str:
    """Green for a token the model was sure of, through yellow to red for a surprising one (unknown: grey)."""
    if step.probability is None:
        return "background:#e5e7eb;color:#111"
    style = f"background:hsl({round(120 * step.probability)},85%,80%);color:#111"
    return style + (";font-style:italic;opacity:.75" if step.thinking else "")


def _tip(step: TokenStep) -> str:
    others = ", ".join(f"{visible(c.token)} {percent(c.probability)}" for c in step.alternatives)
    return (f"{percent(step.probability)} · top: {others}" + (" · thinking" if step.thinking else "")).translate(_MARKDOWN)


def to_markdown(choices: TokenChoices) -> str:
    if not choices.steps:
        return f"*{choices.note or 'No token probabilities for this answer.'}*"
    # the strip reads as the answer does (spaces as spaces); the table below marks them
    strip = "".join(f'<span title="{_tip(s)}" style="{_shade(s)};border-radius:3px;padding:0 1px;white-space:pre-wrap">'
                    f'{strip_text(s.token)}</span>' for s in choices.steps)
    thinking = " *Italic*: the model's thinking." if any(s.thinking for s in choices.steps) else ""
    lines = [strip, "", f"Green: the model was sure of the token; red: it was a surprise. Hover over a token for its alternatives.{thinking}",
             "", "| # | token | probability | most likely at this step |", "|---:|---|---:|---|"]
    for n, s in enumerate(choices.steps[:TABLE_ROWS], 1):
        top = " · ".join(f"{shown(c.token)} {percent(c.probability)}" for c in s.alternatives)
        lines.append(f"| {n}{' 💭' if s.thinking else ''} | {shown(s.token)} | {percent(s.probability)} | {top} |")
    if len(choices.steps) > TABLE_ROWS:
        lines += ["", f"*The table stops at {TABLE_ROWS} of {len(choices.steps)} tokens; the strip above has them all.*"]
    if choices.note:
        lines += ["", f"*{choices.note}*"]
    return "\n".join(lines)


def to_records(choices: TokenChoices | None) -> list[dict]:
    """Each token as {token, probability, alternatives: [{token, probability}], thinking, token_id}."""
    return [asdict(step) for step in choices.steps] if choices else []


def from_records(records: list[dict], note: str = "") -> TokenChoices:
    """`to_records`' output back as TokenChoices."""
    steps = tuple(TokenStep(**{**r, "alternatives": tuple(Candidate(**c) for c in r["alternatives"])}) for r in records)
    return TokenChoices(steps, note)
