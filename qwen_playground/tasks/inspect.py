"""The glass box: what a tab's request puts in front of the model, token by token.

`explain` takes the `Request` a tab would send (built by the same task
function the tab uses) and encodes it exactly as local generation does
(`backends.encoding.encode_request`: the model's chat template, and its
processor when there are images), then takes the ids apart: special tokens,
token counts per turn and the text (`take_apart`), what changes with thinking
on or off (`thinking_difference`), Qwen3's `/think` / `/no_think`
(`soft_switch`) and the teaching notes (`summary_markdown`). Needs a
tokenizer (and a processor for images), never the weights.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core import availability, ml_stack
from ..core.generation import Request
from ..core.registry import Family, ModelSpec
from . import TaskError

if TYPE_CHECKING:  # transformers (and the backends that use it) load after the page is up: imported where used
    from transformers import PreTrainedTokenizerBase


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


def _own_files(spec: ModelSpec, cache_dir: Path) -> tuple[str | Path, str] | None:
    """Where the model's own tokenizer files can be had without downloading weights, and how to say so."""
    if spec.demo:
        ml_stack.load()  # the page is up before transformers is (core/ml_stack.py)
        from ..backends import demo

        template = (f", with the playground's demo chat template {spec.family.chat_template} ({spec.family.template_source}; a "
                    "downloaded checkpoint's own template always wins)") if spec.family.chat_template else ""
        return demo.ensure(spec.family, cache_dir), f"the demo model's own tokenizer{template}"
    if spec.path:
        return Path(spec.path).expanduser(), f"the tokenizer in {spec.path}"
    if spec.hub_id and (availability.cached(spec.hub_id) or availability.hub_reachable()):
        return spec.hub_id, f"{spec.hub_id}'s own tokenizer"
    return None


@functools.lru_cache(maxsize=16)
def tokenizer_for(spec: ModelSpec, cache_dir: Path) -> tuple[PreTrainedTokenizerBase, str]:
    """The model's tokenizer and a note on where it came from (offline falls back to the bundled Qwen one)."""
    ml_stack.load()
    from transformers import AutoTokenizer

    from ..backends import demo

    if own := _own_files(spec, cache_dir):
        return AutoTokenizer.from_pretrained(own[0]), own[1]
    template = spec.family.chat_template or "its own"
    return demo.load_tokenizer(spec.family, cache_dir), (f"the bundled Qwen tokenizer with {spec.family.label}'s chat template ({template}; "
                                                     f"{spec.hub_id or spec.id}'s own files could not be had offline; its template may differ slightly)")


@functools.lru_cache(maxsize=4)
def processor_for(spec: ModelSpec, cache_dir: Path):
    """The model's image processor or feature extractor (which expands each image or clip into its tokens), or None when
    it cannot be had."""
    from ..backends.encoding import media_processor

    if not (spec.family.vision or spec.family.audio):
        return None
    own = _own_files(spec, cache_dir)
    if not own:
        return None
    try:
        return media_processor(own[0])
    except RuntimeError:  # files without an image processor
        return None


def inspect(tokenizer: PreTrainedTokenizerBase, messages: list[dict], family: Family, thinking: bool = False) -> Inspection:
    """Template `messages` exactly as generation does (with the generation prompt) and take it apart."""
    from ..backends.encoding import encode_chat

    return take_apart(tokenizer, encode_chat(tokenizer, messages, **family.template_kwargs(thinking))[1], family.turn_start)


def take_apart(tokenizer: PreTrainedTokenizerBase, ids: list[int], turn_start: str) -> Inspection:
    """Pieces (runs of plain text; each special token or tag on its own, a run of one repeated, like an image's
    pads, as one piece) and per-turn counts of the token ids a model receives."""
    added = dict(tokenizer.added_tokens_decoder)
    pieces: list[tuple[str, str | None]] = []
    run = 1
    for n, token_id in enumerate(ids):
        kind = ("special" if added[token_id].special else "tag") if token_id in added else None
        if kind and n and ids[n - 1] == token_id:  # a repeated control token: one piece with its count
            run += 1
            pieces[-1] = (f"{tokenizer.decode([token_id])} ×{run}", kind)
            continue
        run, piece = 1, tokenizer.decode([token_id])
        if pieces and kind is None and pieces[-1][1] is None:
            pieces[-1] = (pieces[-1][0] + piece, None)
        else:
            pieces.append((piece, kind))
    start_id = tokenizer.convert_tokens_to_ids(turn_start)
    starts = [i for i, t in enumerate(ids) if t == start_id] or [0]
    turns = []
    for n, begin in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(ids)
        role = tokenizer.decode(ids[begin + 1:begin + 4]).split("\n")[0].strip() or "?"
        turns.append(Turn(role, end - begin))
    return Inspection(tokenizer.decode(ids), ids, pieces, turns)


def thinking_difference(tokenizer: PreTrainedTokenizerBase, messages: list[dict], family: Family) -> str:
    """A unified diff of the templated text with thinking on vs off ('' when they are the same)."""
    on = inspect(tokenizer, messages, family, True).text.splitlines(keepends=True)
    off = inspect(tokenizer, messages, family, False).text.splitlines(keepends=True)
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


def summary_markdown(inspection: Inspection, spec: ModelSpec, note: str, diff: str, switch: str | None, stripped: int,
                     media_note: str = "") -> str:
    """The teaching notes beside the highlighted text."""
    rows = "\n".join(f"| {n} | {t.role}{' (generation prompt)' if n == len(inspection.turns) else ''} | {t.tokens} |"
                     for n, t in enumerate(inspection.turns, 1))
    parts = [f"**{inspection.total} tokens** go into **{spec.id}** (tokenizer: {note}).",
             "| # | turn | tokens |\n|---|---|---|\n" + rows]
    if media_note:
        parts.append(media_note)
    if stripped:
        plural = stripped > 1
        parts.append(f"**History re-sent without thinking:** {stripped} earlier thought{'s' if plural else ''} shown in the chat "
                     f"{'are' if plural else 'is'} left out, as Qwen recommends for multi-turn use.")
    if spec.family.thinking == "switch":
        where = "the prompt" if spec.family.reasoning_efforts else "only the generation prompt"  # Qwen3.8: its effort line too
        parts.append(f"**Thinking on vs off** changes {where}:\n\n```diff\n" + (diff or "(no difference)\n") + "```")
        if switch:
            parts.append(f"**Soft switch `{switch}`** in the latest message: with thinking mode on, {spec.family.label} "
                         f"{'skips' if switch == '/no_think' else 'does'} thinking for this turn.")
    elif spec.family.thinking == "always":
        parts.append(f"**{spec.family.label} always thinks:** its template opens the thought, so the answer starts inside it.")
    return "\n\n".join(parts)


def switches_note(spec: ModelSpec, request: Request) -> str:
    """What the family's reasoning switches beyond thinking on/off put into the template for this request ('' for a
    family without them), and where that rendering comes from."""
    from ..backends.encoding import template_switches

    family, sent = spec.family, template_switches(spec, request)
    if not (family.reasoning_efforts or family.keeps_reasoning):
        return ""
    given = ", ".join(f"`{k}={str(v).lower() if isinstance(v, bool) else v}`" for k, v in sent.items() if k != "enable_thinking")
    lines = [f"**Reasoning switches** given to {family.label}'s chat template: {given}." if given else
             "**Reasoning switches:** none sent (no thinking to pace, and earlier reasoning is not kept)."]
    if sent.get("preserve_thinking"):
        kept = sum(1 for m in request.messages if m.get("reasoning_content"))
        lines.append(f"{kept} earlier thought{'' if kept == 1 else 's'} go{'es' if kept == 1 else ''} back into the prompt with "
                     "the answers (without the switch, only answers after the last user message keep theirs).")
    if family.reasoning_efforts:
        lines.append(f"Efforts: {', '.join(family.reasoning_efforts)} (the first is the default).")
    return " ".join(lines) + (f" The bundled {family.label} template: {family.template_source}; a downloaded checkpoint's own template "
                              "takes the same arguments.")


@dataclass(frozen=True)
class Explanation:
    pieces: list[tuple[str, str | None]]
    notes: str
    counts: dict


def explain(spec: ModelSpec, request: Request, cache_dir: Path, stripped: int = 0) -> Explanation:
    """What `request` puts in front of the model: the same ids local generation computes from it."""
    if not request.messages:
        raise TaskError("Type a message (or chat first): there is nothing to inspect yet.")
    media_in = request.has_media
    try:
        tokenizer, note = tokenizer_for(spec, cache_dir)
        processor = processor_for(spec, cache_dir) if media_in else None
    except Exception as e:
        raise TaskError(f"Could not load {spec.id}'s tokenizer: {e}") from None
    from ..backends.encoding import encode_request

    ids = encode_request(spec, request, tokenizer, processor)["input_ids"][0].tolist()
    result = take_apart(tokenizer, ids, spec.family.turn_start)
    switchable = spec.family.thinking == "switch"
    diff = thinking_difference(tokenizer, request.messages, spec.family) if switchable and not media_in else ""
    media = ""
    if media_in:
        what = "the clip" if spec.family.audio else "each image"
        media = (f"**{'Audio' if spec.family.audio else 'Images'}:** the processor expands {what} into its tokens (shown as one piece with "
                 "its count)." if processor else
                 f"**{'Audio' if spec.family.audio else 'Images'}:** without the model's processor files {what} shows as a single placeholder "
                 "here; the model sees as many tokens as the cost line says.")
    switch = soft_switch(request.messages) if spec.family.soft_switches else None
    notes = summary_markdown(result, spec, note, diff, switch, stripped, media)
    if switches := switches_note(spec, request):
        notes += "\n\n" + switches
    counts = {"total": result.total, "turns": [{"role": t.role, "tokens": t.tokens} for t in result.turns], "text": result.text, "ids": result.ids}
    return Explanation(result.pieces, notes, counts)
