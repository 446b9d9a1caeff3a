"""Chat's saved conversations, as the browser keeps them: a list of {id, title, tree, updated}, newest first.

The list lives in the browser's local storage (Gradio's `BrowserState`), so it
survives a reload and nothing about it is stored on the server; these
functions only turn one list into the next. `tree` is a `Conversation` with
every branch; a conversation saved before conversations were trees has
`messages` (Chatbot messages) instead, which the tab reads as one branch.
"""

from __future__ import annotations

import time
import uuid

from . import TaskError
from .conversation import Conversation

MAX_SAVED = 30  # the browser's storage is small; the oldest conversations go first
TITLE_LENGTH = 48


def title_for(conversation: Conversation) -> str:
    """A new conversation's title: its first message, shortened."""
    first = next((m.text for m in conversation.path() if m.role == "user"), "")
    text = " ".join(first.split()) or "New conversation"
    return text if len(text) <= TITLE_LENGTH else text[:TITLE_LENGTH - 1] + "…"


def _valid(saved: object) -> list[dict]:
    """The stored list as far as it can be read (a browser may hold anything under the key)."""
    return [c for c in saved if isinstance(c, dict) and isinstance(c.get("id"), str)
            and (isinstance(c.get("tree"), dict) or isinstance(c.get("messages"), list))] if isinstance(saved, list) else []


def save(saved: object, current: str | None, conversation: Conversation) -> tuple[list[dict], str | None]:
    """`conversation` (every branch) saved as the current one (a new one when there is none), moved to the top; an
    empty conversation is not saved. Returns (the new list, the current id)."""
    saved = _valid(saved)
    if not conversation.messages:
        return saved, current
    existing = next((c for c in saved if c["id"] == current), None)
    entry = {"id": current if existing else uuid.uuid4().hex[:10], "title": existing["title"] if existing else title_for(conversation),
             "tree": conversation.to_dict(), "updated": time.time()}
    return [entry, *(c for c in saved if c["id"] != entry["id"])][:MAX_SAVED], entry["id"]


def find(saved: object, conversation_id: str | None) -> dict | None:
    return next((c for c in _valid(saved) if c["id"] == conversation_id), None)


def rename(saved: object, current: str | None, title: object) -> list[dict]:
    text = " ".join(str(title or "").split())[:TITLE_LENGTH]
    if not text:
        raise TaskError("Type a title first.", "title")
    if find(saved, current) is None:
        raise TaskError("Nothing to rename yet: chat first, or open a saved conversation.")
    return [dict(c, title=text) if c["id"] == current else c for c in _valid(saved)]


def delete(saved: object, current: str | None) -> list[dict]:
    if find(saved, current) is None:
        raise TaskError("Nothing to delete: open a saved conversation first.")
    return [c for c in _valid(saved) if c["id"] != current]


def choices(saved: object) -> list[tuple[str, str]]:
    """(title, id) for a picker, newest first."""
    return [(c.get("title") or "Untitled", c["id"]) for c in _valid(saved)]


def tree_of(entry: dict) -> Conversation | None:
    """A saved entry's conversation with its branches; None for one saved as Chatbot messages, or unreadable."""
    try:
        return Conversation.from_dict(entry["tree"]) if isinstance(entry.get("tree"), dict) else None
    except ValueError:
        return None
