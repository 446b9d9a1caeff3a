"""Length limits counted in tokens, with the real Qwen tokenizer (Qwen2.5 and Qwen3 share it).

Counted before anything is templated or sent, so an over-long message is
refused with its size in tokens, whichever backend would have served it, and
a long conversation can be trimmed from its oldest turns instead.
"""

from __future__ import annotations

import functools

from tokenizers import Tokenizer

from ..core.tokenizer_files import qwen3_tokenizer_dir

PER_MESSAGE_OVERHEAD = 4  # <|im_start|>role\n … <|im_end|>\n


@functools.cache
def _tokenizer() -> Tokenizer:
    """Qwen3's real tokenizer through the `tokenizers` library alone (what transformers' fast tokenizer runs): a
    tab's checks need no transformers, so they answer while the engine still loads. Typed special tokens count as
    the text they are, as generation encodes them."""
    tokenizer = Tokenizer.from_file(str(qwen3_tokenizer_dir() / "tokenizer.json"))
    tokenizer.encode_special_tokens = True
    return tokenizer


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def count_tokens(text: str) -> int:
    return len(_tokenizer().encode(text, add_special_tokens=False).ids)


def message_problem(messages: list[dict], limit: int) -> str | None:
    """Why the newest user message is too long, or None."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    if last is None:
        return None
    n = count_tokens(_text(last.get("content")))
    if n > limit:
        return f"This message is {n:,} tokens long; the limit is {limit:,} tokens per message. Shorten it or split it into parts."
    return None


def conversation_tokens(messages: list[dict]) -> int:
    return sum(count_tokens(_text(m.get("content"))) + PER_MESSAGE_OVERHEAD for m in messages)


def conversation_problem(messages: list[dict], limit: int, advice: str = "Shorten it.") -> str | None:
    """Why a whole prompt is too long for `limit` tokens (counted before templating), or None; `advice` says
    what the asking tab lets a person do about it."""
    n = conversation_tokens(messages)
    if n > limit:
        return f"This prompt is about {n:,} tokens long; the limit is {limit:,}. {advice}"
    return None


def trim_history(history: list[dict], budget: int) -> tuple[list[dict], int]:
    """Drop the oldest exchanges (a user message and the replies after it) until `history` costs at most
    `budget` tokens. Returns (kept history, number of exchanges dropped)."""
    kept, dropped = list(history), 0
    while kept and conversation_tokens(kept) > budget:
        cut = next((i for i in range(1, len(kept)) if kept[i].get("role") == "user"), len(kept))
        kept, dropped = kept[cut:], dropped + 1
    return kept, dropped
