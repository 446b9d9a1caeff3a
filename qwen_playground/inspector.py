"""The glass box: the exact text and tokens a model receives for a conversation.

Renders messages through the model's own chat template (the tokenizer's
`apply_chat_template`), then shows special tokens, token counts per turn,
what changes with thinking on or off, and Qwen3's `/think` / `/no_think`
soft switches. Only needs a tokenizer, never the weights.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from . import demo_models, weights
from .chat_encoding import encode_chat
from .registry import ModelSpec


@dataclass(frozen=True)
class Turn:
    role: str
    tokens: int


@dataclass(frozen=True)
class Inspection:
    text: str
    ids: list[int]
    pieces: list[tuple[str, str | None]]  # (text, "special" | "tag" | None), in order, covering `text`
    turns: list[Turn]  # the last one is the generation prompt ("assistant")

    @property
    def total(self) -> int:
        return len(self.ids)


@functools.lru_cache(maxsize=16)
def tokenizer_for(spec: ModelSpec, cache_dir: Path) -> tuple[PreTrainedTokenizerBase, str]:
    """The model's tokenizer and a note on where it came from (offline falls back to the bundled Qwen one)."""
    if spec.demo:
        return AutoTokenizer.from_pretrained(demo_models.ensure(spec.demo, cache_dir)), "the demo model's own tokenizer"
    if spec.path:
        return AutoTokenizer.from_pretrained(Path(spec.path).expanduser()), f"the tokenizer in {spec.path}"
    if spec.hub_id and (weights.cached(spec.hub_id) or weights.hub_reachable()):
        return AutoTokenizer.from_pretrained(spec.hub_id), f"{spec.hub_id}'s own tokenizer"
    family = spec.family if spec.family in ("qwen3", "qwen2.5-vl") else "qwen2.5"
    return demo_models.load_tokenizer(family), (f"the bundled Qwen tokenizer with the {family} chat template "
                                                 f"({spec.hub_id or spec.id}'s own files could not be had offline; its template may differ slightly)")


def inspect(tokenizer: PreTrainedTokenizerBase, messages: list[dict], thinking: bool | None = None) -> Inspection:
    """Template `messages` exactly as generation does (with the generation prompt) and take it apart."""
    kwargs = {} if thinking is None else {"enable_thinking": thinking}
    text, ids = encode_chat(tokenizer, messages, **kwargs)  # the same ids generation uses
    added = {i: t for i, t in tokenizer.added_tokens_decoder.items()}
    pieces: list[tuple[str, str | None]] = []
    for token_id in ids:
        piece = tokenizer.decode([token_id])
        kind = ("special" if added[token_id].special else "tag") if token_id in added else None
        if pieces and kind is None and pieces[-1][1] is None:
            pieces[-1] = (pieces[-1][0] + piece, None)
        else:
            pieces.append((piece, kind))
    start_id = tokenizer.convert_tokens_to_ids("<|im_start|>")
    starts = [i for i, t in enumerate(ids) if t == start_id] or [0]
    turns = []
    for n, begin in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(ids)
        role = tokenizer.decode(ids[begin + 1:begin + 4]).split("\n")[0].strip() or "?"
        turns.append(Turn(role, end - begin))
    return Inspection(text, ids, pieces, turns)


def thinking_difference(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> str:
    """A unified diff of the templated text with thinking on vs off ('' when they are the same)."""
    on = inspect(tokenizer, messages, True).text.splitlines(keepends=True)
    off = inspect(tokenizer, messages, False).text.splitlines(keepends=True)
    return "".join(difflib.unified_diff(on, off, "thinking on", "thinking off", n=1))


def soft_switch(messages: list[dict]) -> str | None:
    """Qwen3's per-turn switches: '/think' or '/no_think' in the latest user or system message."""
    for message in reversed(messages):
        if message["role"] in ("user", "system") and isinstance(message["content"], str):
            content = message["content"]
            if "/no_think" in content:
                return "/no_think"
            if "/think" in content:
                return "/think"
            if message["role"] == "user":
                return None
    return None


def summary_markdown(inspection: Inspection, spec: ModelSpec, note: str, diff: str, switch: str | None, stripped: int) -> str:
    """The teaching notes beside the highlighted text."""
    rows = "\n".join(f"| {n} | {t.role}{' (generation prompt)' if n == len(inspection.turns) else ''} | {t.tokens} |"
                     for n, t in enumerate(inspection.turns, 1))
    parts = [f"**{inspection.total} tokens** go into **{spec.id}** (tokenizer: {note}).",
             "| # | turn | tokens |\n|---|---|---|\n" + rows]
    if stripped:
        plural = stripped > 1
        parts.append(f"**History re-sent without thinking:** {stripped} earlier thought{'s' if plural else ''} shown in the chat "
                     f"{'are' if plural else 'is'} left out, as Qwen recommends for multi-turn use.")
    if spec.thinking:
        parts.append("**Thinking on vs off** changes only the generation prompt:\n\n```diff\n" + (diff or "(no difference)\n") + "```")
        if switch:
            parts.append(f"**Soft switch `{switch}`** in the latest message: with thinking mode on, Qwen3 "
                         f"{'skips' if switch == '/no_think' else 'does'} thinking for this turn.")
    return "\n\n".join(parts)
