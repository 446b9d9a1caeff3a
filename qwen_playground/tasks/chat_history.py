"""Between Gradio chat history and model messages, and one turn's events as chat bubbles.

Gradio's history holds display messages: the user's text (with the images
they attached, as file parts), the answer, and helper bubbles with a
`metadata` title (thinking, loading, metrics, errors). Only user messages and
answers go back to the model, answers without thinking, as Qwen documents for
multi-turn use.
"""

from __future__ import annotations

import json
import mimetypes
import time
from pathlib import Path

from ..backends.thinking import strip_thinking
from ..core.generation import Done, Error, Event, Metrics, Progress, TextDelta, ThinkingDelta, TokenChoices
from ..mathtext import unprotect
from . import token_choices

THINKING_TITLE = "💭 Thinking"


def text_of(content: object) -> str:
    """Plain text of a Gradio message content: a string, a part dict, or a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, (list, tuple)):
        return "".join(text_of(part) for part in content)
    return str(content)


def files_of(content: object) -> list[str]:
    """The paths of a Gradio message content's file parts (images a person attached), in order; a part's file is a
    FileData dict, or a plain path where gradio_client downloaded it."""
    paths = []
    for part in content if isinstance(content, (list, tuple)) else [content]:
        if isinstance(part, dict):
            file = part.get("file") if part.get("type") == "file" else part
            path = file.get("path") if isinstance(file, dict) else file if part.get("type") == "file" else None
            if isinstance(path, str) and path:
                paths.append(path)
    return paths


def with_files(text: str, files: list[str]) -> str | list[dict]:
    """A message content as Gradio's chatbot shows it: the text alone, or the attached files (their type named, so
    images show as images), then the text."""
    parts = [{"type": "file", "file": {"path": f, "mime_type": mimetypes.guess_type(f)[0]}} for f in files]
    return [*parts, {"type": "text", "text": text}] if files else text


def user_content(text: str, files: list[str], image_bounds: dict | None = None) -> str | list[dict]:
    """A user message's content for the model: its images first (sized within `image_bounds`: min_pixels, max_pixels),
    then its text; the text alone when it has no images."""
    if not files:
        return text
    return [*({"type": "image", "image": path, **(image_bounds or {})} for path in files), {"type": "text", "text": text}]


def is_helper(message: dict) -> bool:
    """Thinking, progress, metrics and error bubbles: shown, never sent to the model."""
    return bool((message.get("metadata") or {}).get("title"))


def normalize_history(history: list | None) -> list[dict]:
    """Gradio's history as plain dicts: string content, or the attached files then the text (it may send parts lists)."""
    normal = []
    for m in history or []:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system"):
            raise ValueError("history must be a list of {'role': 'user'|'assistant', 'content': ...} messages")
        files = files_of(m.get("content")) if m["role"] == "user" else []
        item = {"role": m["role"], "content": with_files(text_of(m.get("content")), files)}
        if m.get("metadata"):
            item["metadata"] = dict(m["metadata"])
        normal.append(item)
    return normal


def to_model_messages(history: list[dict], system_prompt: str, thinking_tags: tuple[str, str], image_bounds: dict | None = None) -> list[dict]:
    """Model messages: optional system prompt, user turns (their images first, sized within `image_bounds`: min_pixels
    and max_pixels), answers without their thinking (in the family's tags)."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for m in history:
        if is_helper(m) or m["role"] == "system":
            continue
        text = unprotect(text_of(m["content"]))  # as typed or answered, not as displayed
        if files := files_of(m["content"]):
            messages.append({"role": m["role"], "content": user_content(text, files, image_bounds)})
            continue
        if m["role"] == "assistant":
            text = strip_thinking(text, thinking_tags)
            if messages and messages[-1]["role"] == "assistant":  # one answer split over bubbles
                messages[-1]["content"] += "\n\n" + text
                continue
        messages.append({"role": m["role"], "content": text})
    return messages


def split_last_turn(history: list[dict]) -> tuple[list[dict], str | None]:
    """(history before the last user message, that message's text), for undo and retry.

    >>> split_last_turn([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    ([], 'a')
    """
    start = max((i for i, m in enumerate(history) if m["role"] == "user"), default=-1)
    if start < 0:
        return history, None
    return history[:start], unprotect(text_of(history[start]["content"]))


class ChatTurn:
    """Turns one request's events into the assistant bubbles of one turn.

    >>> turn = ChatTurn()
    >>> for e in [ThinkingDelta("hmm"), TextDelta("Hi")]: turn.apply(e)
    >>> [m["content"] for m in turn.messages]
    ['hmm', 'Hi']
    """

    def __init__(self) -> None:
        self.progress: dict | None = None
        self.thinking: dict | None = None
        self.answer: dict | None = None
        self.tokens: dict | None = None  # the "why this token?" bubble, when the request asked for alternatives
        self.choices: TokenChoices | None = None
        self.footer: dict | None = None
        self.metrics: Metrics | None = None
        self.error: str | None = None
        self.finish_reason: str | None = None
        self._thinking_started = 0.0

    @property
    def produced_output(self) -> bool:
        return self.thinking is not None or self.answer is not None

    @property
    def messages(self) -> list[dict]:
        return [m for m in (self.progress, self.thinking, self.answer, self.tokens, self.footer) if m is not None]

    @property
    def bubbles(self) -> list[dict]:
        """The turn's chat bubbles without the metrics footer (tabs show metrics apart); errors stay."""
        return [m for m in self.messages if m is not self.footer or self.error]

    @property
    def answer_text(self) -> str:
        return self.answer["content"] if self.answer else ""

    @property
    def thinking_text(self) -> str:
        return self.thinking["content"] if self.thinking else ""

    @property
    def metrics_line(self) -> str:
        return self.metrics.summary() if self.metrics else ""

    def apply(self, event: Event) -> None:
        if isinstance(event, Progress):
            self.progress = {"role": "assistant", "content": "", "metadata": {"title": f"⏳ {event.message}", "status": "pending"}}
            return
        self.progress = None
        if isinstance(event, ThinkingDelta):
            if self.thinking is None:
                self._thinking_started = time.perf_counter()
                self.thinking = {"role": "assistant", "content": "", "metadata": {"title": THINKING_TITLE, "status": "pending"}}
            self.thinking["content"] += event.text
        elif isinstance(event, TextDelta):
            self._close_thinking()
            if self.answer is None:
                self.answer = {"role": "assistant", "content": ""}
            self.answer["content"] += event.text
        elif isinstance(event, TokenChoices):
            self.choices, self.tokens = event, token_choices.bubble(event)
        elif isinstance(event, Metrics):
            self.metrics = event
            self._close_thinking(event.thinking_s)
            self.footer = {"role": "assistant", "content": "", "metadata": {"title": f"📊 {event.summary()}", "status": "done"}}
        elif isinstance(event, Done):
            self.finish_reason = event.finish_reason
            self._close_thinking()
            notes = {"length": "✂️ cut at the max new tokens limit", "cancelled": "⏹ stopped"}
            if event.finish_reason in notes and self.footer is not None:
                self.footer["metadata"]["title"] += f" · {notes[event.finish_reason]}"
        elif isinstance(event, Error):
            self.error = event.message
            self._close_thinking()
            self.footer = {"role": "assistant", "content": event.message, "metadata": {"title": "⚠️ Error", "status": "done"}}

    def _close_thinking(self, duration: float | None = None) -> None:
        if self.thinking is not None and self.thinking["metadata"]["status"] == "pending":
            self.thinking["metadata"]["status"] = "done"
            self.thinking["metadata"]["duration"] = round(duration if duration is not None else time.perf_counter() - self._thinking_started, 2)


def export_markdown(history: list[dict], settings: dict) -> str:
    """A conversation as Markdown: settings, then each message (thinking in a collapsible block)."""
    lines = ["# Qwen Playground conversation", "", *(f"- **{k}:** {v}" for k, v in settings.items()), ""]
    for m in normalize_history(history):
        title, text, files = (m.get("metadata") or {}).get("title"), text_of(m["content"]), files_of(m["content"])
        if title and text:
            lines += [f"<details><summary>{title}</summary>", "", text, "", "</details>", ""]
        elif title:
            lines += [f"*{title}*", ""]
        else:
            attached = [f"*🖼 {Path(f).name}*" for f in files]
            lines += [f"**{m['role']}:**", "", *attached, text, ""]
    return "\n".join(lines)


def export_json(history: list[dict], settings: dict) -> str:
    return json.dumps({"settings": settings, "messages": normalize_history(history)}, ensure_ascii=False, indent=2)
