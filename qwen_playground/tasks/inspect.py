"""The inspector task: what a tab's request puts in front of the model, as the glass box shows it.

`explain` takes the `Request` a tab would send (built by the same task
function the tab uses) and encodes it exactly as local generation does
(`chat_encoding.encode_request`: the model's chat template, and its
processor when there are images), then takes the ids apart (`inspector`).
Needs a tokenizer (and a processor for images), never the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..chat_encoding import encode_request
from ..generation import Request
from ..inspector import processor_for, soft_switch, summary_markdown, take_apart, thinking_difference, tokenizer_for
from ..registry import ModelSpec
from . import TaskError


def has_media(request: Request) -> bool:
    return any(isinstance(m["content"], list) and any(p.get("type") in ("image", "video") for p in m["content"]) for m in request.messages)


@dataclass(frozen=True)
class Explanation:
    pieces: list[tuple[str, str | None]]
    notes: str
    counts: dict


def explain(spec: ModelSpec, request: Request, cache_dir: Path, stripped: int = 0) -> Explanation:
    """What `request` puts in front of the model: the same ids local generation computes from it."""
    if not request.messages:
        raise TaskError("Type a message (or chat first): there is nothing to inspect yet.")
    media_in = has_media(request)
    try:
        tokenizer, note = tokenizer_for(spec, cache_dir)
        processor = processor_for(spec, cache_dir) if media_in else None
    except Exception as e:
        raise TaskError(f"Could not load {spec.id}'s tokenizer: {e}") from None
    ids = encode_request(spec, request, tokenizer, processor)["input_ids"][0].tolist()
    result = take_apart(tokenizer, ids, spec.family.turn_start)
    switchable = spec.family.thinking == "switch"
    diff = thinking_difference(tokenizer, request.messages, spec.family) if switchable and not media_in else ""
    media = ""
    if media_in:
        media = ("**Images:** the processor expands each image into its tokens (shown as one piece with its count)." if processor else
                 "**Images:** without the model's processor files each image shows as a single placeholder here; the model sees "
                 "as many tokens as the cost table says.")
    switch = soft_switch(request.messages) if spec.family.soft_switches else None
    notes = summary_markdown(result, spec, note, diff, switch, stripped, media)
    counts = {"total": result.total, "turns": [{"role": t.role, "tokens": t.tokens} for t in result.turns], "text": result.text, "ids": result.ids}
    return Explanation(result.pieces, notes, counts)
