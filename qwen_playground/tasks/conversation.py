"""A conversation as the tasks own it: a tree of typed messages, and what the model sees of it.

A message has a role (system, user, assistant, tool) and parts (text, image,
audio, file); an assistant message holds an `AssistantTurn`: its thinking,
answer, token choices, metrics, error and tool calls as fields. Editing an
earlier message or regenerating an answer adds a sibling: the old branch
stays, and `selected` says which child of each message the conversation
follows. `model_messages` is the one place that decides what the model sees
(answers without their thinking, as Qwen documents multi-turn use). Nothing
here knows how a page shows any of it: `ui/chat_view.py` does.

>>> c = Conversation()
>>> q = c.add(Message.user("Hi"))
>>> a = c.add(Message.assistant(AssistantTurn(answer="Hello")), q.id)
>>> b = c.add(Message.assistant(AssistantTurn(answer="Hey")), q.id)  # regenerated: a sibling
>>> [m.text for m in c.path()], c.siblings(b.id)
(['Hi', 'Hey'], (2, 2))
>>> c.switch(b.id, -1); [m.text for m in c.path()]
['Hi', 'Hello']
"""

from __future__ import annotations

import copy
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from ..backends.thinking import strip_thinking
from ..core.generation import Done, Error, Event, Metrics, Progress, Request, TextDelta, ThinkingDelta, TokenChoices
from ..documents import as_text, is_document, read_cached
from ..vision import UploadRejected
from . import token_choices

ANY_SIZE = 1 << 40  # a document's size was checked against the limit when it was attached
Role = Literal["system", "user", "assistant", "tool"]
PartKind = Literal["text", "image", "audio", "file"]
ROOT = ""  # the parent key of a conversation's first messages


@dataclass(frozen=True)
class Part:
    """A piece of a message: text, or a file by its path (an image, an audio clip, a document)."""

    kind: PartKind
    text: str = ""
    path: str = ""


@dataclass
class AssistantTurn:
    """One answer as its events arrive (`apply`): thinking, answer, token choices, metrics, how it ended.

    >>> turn = AssistantTurn()
    >>> for e in [ThinkingDelta("hmm"), TextDelta("Hi")]: turn.apply(e)
    >>> turn.thinking, turn.answer, turn.thinking_done
    ('hmm', 'Hi', True)
    """

    thinking: str = ""
    answer: str = ""
    thinking_s: float | None = None  # how long it thought, once it stopped
    progress: str = ""  # what the backend is doing before the first token (downloading, loading)
    choices: TokenChoices | None = None  # each token's probability and alternatives, when asked for
    metrics: Metrics | None = None
    error: str | None = None
    finish_reason: str | None = None
    images: int = 0  # images in the message it answers, and what they cost in prompt tokens
    image_tokens: int = 0
    tool_calls: list[dict] = field(default_factory=list)
    request: Request | None = field(default=None, repr=False, compare=False)  # what asked for it ("why this token?" after; not saved)
    _thinking_started: float = field(default=0.0, repr=False, compare=False)

    @property
    def produced_output(self) -> bool:
        return bool(self.thinking or self.answer)

    @property
    def thinking_done(self) -> bool:
        return self.thinking_s is not None

    @property
    def metrics_line(self) -> str:
        return self.metrics.summary() if self.metrics else ""

    def apply(self, event: Event) -> None:
        if isinstance(event, Progress):
            self.progress = event.message
            return
        self.progress = ""
        if isinstance(event, ThinkingDelta):
            if not self.thinking:
                self._thinking_started = time.perf_counter()
            self.thinking += event.text
        elif isinstance(event, TextDelta):
            self._close_thinking()
            self.answer += event.text
        elif isinstance(event, TokenChoices):
            self.choices = event
        elif isinstance(event, Metrics):
            self.metrics = event
            self._close_thinking(event.thinking_s)
        elif isinstance(event, Done):
            self.finish_reason = event.finish_reason
            self._close_thinking()
        elif isinstance(event, Error):
            self.error = event.message
            self._close_thinking()

    def _close_thinking(self, duration: float | None = None) -> None:
        if self.thinking and self.thinking_s is None:
            self.thinking_s = round(duration if duration is not None else time.perf_counter() - self._thinking_started, 2)

    def to_dict(self) -> dict:
        return {"thinking": self.thinking, "answer": self.answer, "thinking_s": self.thinking_s, "error": self.error,
                "finish_reason": self.finish_reason, "images": self.images, "image_tokens": self.image_tokens,
                "tool_calls": self.tool_calls, "metrics": asdict(self.metrics) if self.metrics else None,
                "choices": {"steps": token_choices.to_records(self.choices), "note": self.choices.note} if self.choices else None}

    @classmethod
    def from_dict(cls, data: dict) -> AssistantTurn:
        metrics, choices = data.get("metrics"), data.get("choices")
        return cls(thinking=str(data.get("thinking") or ""), answer=str(data.get("answer") or ""), thinking_s=data.get("thinking_s"),
                   choices=token_choices.from_records(choices["steps"], choices.get("note", "")) if choices else None,
                   metrics=Metrics.from_dict(metrics) if metrics else None, error=data.get("error"), finish_reason=data.get("finish_reason"),
                   images=int(data.get("images") or 0), image_tokens=int(data.get("image_tokens") or 0),
                   tool_calls=list(data.get("tool_calls") or []))


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class Message:
    role: Role
    parts: list[Part] = field(default_factory=list)  # what a person (or a tool) said
    turn: AssistantTurn | None = None  # an assistant's answer
    id: str = field(default_factory=_new_id)
    parent: str = ROOT

    @classmethod
    def user(cls, text: str, files: list[str] | tuple[str, ...] = ()) -> Message:
        """A person's message: the files they attached (images, documents), then the text."""
        return cls("user", [*(Part("file" if is_document(f) else "image", path=str(f)) for f in files), Part("text", text)])

    @classmethod
    def assistant(cls, turn: AssistantTurn | None = None) -> Message:
        return cls("assistant", turn=turn or AssistantTurn())

    @property
    def text(self) -> str:
        """The text parts, or an answer without its thinking."""
        return self.turn.answer if self.turn is not None else "".join(p.text for p in self.parts if p.kind == "text")

    @property
    def files(self) -> list[str]:
        return [p.path for p in self.parts if p.kind != "text"]

    def to_dict(self) -> dict:
        data = {"id": self.id, "parent": self.parent, "role": self.role, "parts": [asdict(p) for p in self.parts]}
        return data | ({"turn": self.turn.to_dict()} if self.turn is not None else {})

    @classmethod
    def from_dict(cls, data: dict) -> Message:
        turn = data.get("turn")
        return cls(data["role"], [Part(**p) for p in data.get("parts") or []], AssistantTurn.from_dict(turn) if turn is not None else None,
                   str(data["id"]), str(data.get("parent") or ROOT))


@dataclass
class Conversation:
    """Messages by id, each knowing its parent; `selected` maps a parent to the child the conversation follows."""

    messages: dict[str, Message] = field(default_factory=dict)
    selected: dict[str, str] = field(default_factory=dict)

    def children(self, parent: str = ROOT) -> list[Message]:
        return [m for m in self.messages.values() if m.parent == parent]

    def path(self) -> list[Message]:
        """The messages the conversation follows now, from its first."""
        path, parent = [], ROOT
        while (child := self.selected.get(parent)) in self.messages:
            path.append(self.messages[child])
            parent = child
        return path

    def add(self, message: Message, parent: str | None = None) -> Message:
        """`message` under `parent` (default: the last message of the path), followed from now on."""
        message.parent = (path[-1].id if (path := self.path()) else ROOT) if parent is None else parent
        self.messages[message.id] = message
        self.selected[message.parent] = message.id
        return message

    def siblings(self, message_id: str) -> tuple[int, int]:
        """(position from 1, how many) among the messages that answer or edit the same thing."""
        message = self.messages[message_id]
        ids = [m.id for m in self.children(message.parent)]
        return ids.index(message_id) + 1, len(ids)

    def switch(self, message_id: str, step: int) -> None:
        """Follow the sibling `step` places from `message_id` (-1: the previous one), as far as there is one."""
        message = self.messages[message_id]
        ids = [m.id for m in self.children(message.parent)]
        self.selected[message.parent] = ids[max(0, min(len(ids) - 1, ids.index(message_id) + step))]

    def remove(self, message_id: str) -> None:
        """A message and everything under it (an answer that failed before it said anything)."""
        doomed, parent = {message_id}, self.messages[message_id].parent
        while grown := {m.id for m in self.messages.values() if m.parent in doomed} - doomed:
            doomed |= grown
        for key in doomed:
            self.messages.pop(key, None)
            self.selected.pop(key, None)
        if self.selected.get(parent) in doomed:
            rest = self.children(parent)
            if rest:
                self.selected[parent] = rest[-1].id
            else:
                self.selected.pop(parent)

    def last_question(self) -> Message | None:
        """The last person's message the conversation shows."""
        return next((m for m in reversed(self.path()) if m.role == "user"), None)

    def copy(self) -> Conversation:
        return copy.deepcopy(self)

    @classmethod
    def of(cls, messages: list[Message]) -> Conversation:
        """A conversation of one branch: each message under the one before it."""
        conversation = cls()
        for message in messages:
            conversation.add(message)
        return conversation

    def to_dict(self) -> dict:
        return {"messages": [m.to_dict() for m in self.messages.values()], "selected": dict(self.selected)}

    @classmethod
    def from_dict(cls, data: dict) -> Conversation:
        """A stored conversation; ValueError when it is not one."""
        try:
            messages = [Message.from_dict(m) for m in data["messages"]]
            selected = {str(k): str(v) for k, v in dict(data.get("selected") or {}).items()}
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise ValueError(f"not a stored conversation ({type(e).__name__}: {e})") from None
        return cls({m.id: m for m in messages}, selected)


def user_content(text: str, files: list[str], image_bounds: dict | None = None) -> str | list[dict]:
    """A user message's content for the model: its images first (sized within `image_bounds`: min_pixels, max_pixels),
    then its documents' text and its own text; the text alone when it has no images."""
    images = [path for path in files if not is_document(path)]
    text = "\n\n".join([*(_document_text(path) for path in files if is_document(path)), text])
    if not images:
        return text
    return [*({"type": "image", "image": path, **(image_bounds or {})} for path in images), {"type": "text", "text": text}]


def _document_text(path: str) -> str:
    try:
        return as_text(read_cached(path, ANY_SIZE))
    except (UploadRejected, OSError):  # checked when attached; a file gone since (its session ended) is said so
        return f'<document name="{Path(path).name}">(no longer available)</document>'


def model_messages(path: list[Message], system_prompt: str, thinking_tags: tuple[str, str],
                   image_bounds: dict | None = None, keep_reasoning: bool = False) -> list[dict]:
    """What the model sees of a conversation's messages: the system prompt, each person's message (its images first,
    sized within `image_bounds`), each answer without its thinking (with `keep_reasoning`, its thought goes beside it
    as `reasoning_content`, for a template that keeps it: Qwen3.6's preserve_thinking). Answers that failed before
    saying anything are left out."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for m in path:
        if m.role == "assistant":
            text = strip_thinking(m.text, thinking_tags)  # an imported answer may carry its thinking inline
            if not text:
                continue
            if messages and messages[-1]["role"] == "assistant":  # one answer split over messages
                messages[-1]["content"] += "\n\n" + text
                continue
            messages.append({"role": "assistant", "content": text})
            if keep_reasoning and m.turn is not None and m.turn.thinking.strip():
                messages[-1]["reasoning_content"] = m.turn.thinking.strip()
        elif m.role != "system":
            messages.append({"role": m.role, "content": user_content(m.text, m.files, image_bounds)})
    return messages
