"""A Conversation as Gradio Chatbot messages, and Chatbot messages (the API's history, old saved chats) back.

The only module that knows how a turn looks: the thinking bubble's title, the
progress, metrics and error lines, the "why this token?" fold, and the
escaping that keeps prices as text while LaTeX renders. What the model sees
never depends on any of it (`tasks.conversation.model_messages`).
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path

from ..mathtext import protect_math, protect_typed, unprotect
from ..tasks import TaskError, drafts, token_choices
from ..tasks.conversation import AssistantTurn, Conversation, Message, Part

THINKING_TITLE = "💭 Thinking"
ERROR_TITLE = "⚠️ Error"
FINISH_NOTES = {"length": "✂️ cut at the max new tokens limit", "cancelled": "⏹ stopped"}


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


def turn_bubbles(turn: AssistantTurn, protect: bool = True, footer: bool = True) -> list[dict]:
    """One answer's bubbles: what it is doing, its thinking (folded once done), the answer, "why this token?", and a
    footer with its numbers (`footer=False`: tabs that show the numbers apart keep only an error footer)."""
    show = protect_math if protect else str
    bubbles = []
    if turn.progress:
        bubbles.append({"role": "assistant", "content": "", "metadata": {"title": f"⏳ {turn.progress}", "status": "pending"}})
    if turn.thinking:
        status = {"status": "done", "duration": turn.thinking_s} if turn.thinking_done else {"status": "pending"}
        bubbles.append({"role": "assistant", "content": show(turn.thinking), "metadata": {"title": THINKING_TITLE, **status}})
    for call in turn.tool_calls:  # a tool loop inside the answer: each call and its result, folded
        said = f"{call['name']}({json.dumps(call['arguments'], ensure_ascii=False)})" if "name" in call else "a call it could not read"
        title = f"🛠 {said} → {' '.join(str(call.get('result', '')).split())[:60]}"
        bubbles.append({"role": "assistant", "content": f"```text\n{call.get('result', '')}\n```", "metadata": {"title": title, "status": "done"}})
    if turn.answer:
        bubbles.append({"role": "assistant", "content": show(turn.answer)})
    if turn.choices is not None:
        bubbles.append({"role": "assistant", "content": show(token_choices.to_markdown(turn.choices)),
                        "metadata": {"title": f"{token_choices.TITLE} · {len(turn.choices.steps)} tokens", "status": "done"}})
    if turn.metrics is not None and turn.metrics.drafts is not None and turn.metrics.drafts.tokens:
        done = turn.metrics.drafts
        rate = f" · {done.acceptance:.0%} of guesses kept" if done.acceptance is not None else ""
        bubbles.append({"role": "assistant", "content": show(drafts.to_markdown(done)),
                        "metadata": {"title": f"{drafts.TITLE}{rate}", "status": "done"}})
    if turn.error is not None:
        bubbles.append({"role": "assistant", "content": show(turn.error), "metadata": {"title": ERROR_TITLE, "status": "done"}})
    elif footer and turn.metrics is not None:
        notes = [turn.metrics.summary()]
        if turn.image_tokens:
            notes.append(f"🖼 {turn.images} image{'s' if turn.images > 1 else ''}: {turn.image_tokens} of the prompt tokens")
        if turn.finish_reason in FINISH_NOTES:
            notes.append(FINISH_NOTES[turn.finish_reason])
        bubbles.append({"role": "assistant", "content": "", "metadata": {"title": "📊 " + " · ".join(notes), "status": "done"}})
    return bubbles


def user_bubble(message: Message, protect: bool = True, files_as_count: bool = False) -> dict:
    """A person's message: their text (Markdown and math render, tags show as typed) after the files they attached, or
    (`files_as_count`) after how many there were."""
    text = protect_typed(message.text) if protect else message.text
    if files_as_count and message.files:
        n, kinds = len(message.files), {p.kind for p in message.parts if p.kind != "text"}
        icon, noun = {"audio": ("🎧", "clip"), "file": ("📄", "document")}.get(kinds.pop() if len(kinds) == 1 else "", ("🖼", "file"))
        return {"role": message.role, "content": f"{icon} {n} {noun}{'s' if n > 1 else ''}: {text}"}
    return {"role": message.role, "content": with_files(text, message.files)}


def render(messages: list[Message], protect: bool = True, footer: bool = True, files_as_count: bool = False) -> list[dict]:
    """Messages (a conversation's path, or a task's prompt and answer) as Chatbot messages."""
    return [bubble for m, bubble in _bubbles(messages, protect, footer, files_as_count)]


def _bubbles(messages: list[Message], protect: bool, footer: bool, files_as_count: bool = False):
    for m in messages:
        if m.turn is not None:
            yield from ((m, b) for b in turn_bubbles(m.turn, protect, footer))
        else:
            yield m, user_bubble(m, protect, files_as_count)


def owner(conversation: Conversation, index: int) -> Message | None:
    """The message that the Chatbot's bubble number `index` shows (Chat's rendering)."""
    shown = list(_bubbles(conversation.path(), True, True))
    return shown[index][0] if 0 <= index < len(shown) else None


def parse(history: object) -> Conversation:
    """Chatbot messages (the API's history, a chat saved before conversations were trees) as a one-branch
    Conversation: each person's text as typed, each run of assistant bubbles one answer with its thinking and error;
    progress, metrics and token bubbles are display only. ValueError when it is not a list of messages."""
    messages: list[Message] = []
    for m in history or []:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system"):
            raise ValueError("history must be a list of {'role': 'user'|'assistant', 'content': ...} messages")
        text = unprotect(text_of(m.get("content")))
        if m["role"] != "assistant":
            files = files_of(m.get("content")) if m["role"] == "user" else []
            messages.append(Message.user(text, files) if m["role"] == "user" else Message("system", [Part("text", text)]))
            continue
        if not messages or messages[-1].turn is None:
            messages.append(Message.assistant())
        turn, metadata = messages[-1].turn, m.get("metadata") or {}
        title = metadata.get("title") if isinstance(metadata, dict) else None
        if title == THINKING_TITLE:
            turn.thinking += text
            turn.thinking_s = metadata.get("duration") or 0.0
        elif title == ERROR_TITLE:
            turn.error = text
        elif not title:
            turn.answer += ("\n\n" if turn.answer else "") + text
    return Conversation.of(messages)


def normalized(history: object) -> list[dict]:
    """Chatbot messages as given, in one shape: role, content (the text, or its files then the text), metadata."""
    shown = []
    for m in history or []:
        files = files_of(m.get("content")) if m.get("role") == "user" else []
        shown.append({"role": m["role"], "content": with_files(text_of(m.get("content")), files)} | (
            {"metadata": dict(m["metadata"])} if m.get("metadata") else {}))
    return shown


class View:
    """What a Chatbot shows of a conversation after a message is added: the messages it showed, as they were (an API
    caller gets its history back with every bubble it sent), then the messages added since, rendered; the whole
    conversation rendered once an earlier message changed."""

    def __init__(self, history: object, conversation: Conversation):
        """`conversation`: the one behind `history` (`conversation_for`)."""
        self.before, self.ids = normalized(history), [m.id for m in conversation.path()]

    def __call__(self, conversation: Conversation) -> list[dict]:
        path = conversation.path()
        if [m.id for m in path[:len(self.ids)]] == self.ids:
            return self.before + render(path[len(self.ids):])
        return render(path)


def signature(conversation: Conversation) -> list[tuple]:
    """What a Chatbot's value says of a conversation's path: who said what, with which files."""
    return [(m.role, m.text.strip(), tuple(Path(f).name for f in m.files)) for m in conversation.path()]


def conversation_for(history: object, tree: Conversation | dict | None = None) -> Conversation:
    """The conversation behind a Chatbot's value: the page's own tree while it still shows that tree (so its
    branches stay), else the history as given (an API call, or a value changed outside the tab). A refusal that says
    what a history is when it is not one."""
    try:
        given = parse(history)
    except ValueError as e:
        raise TaskError(str(e), "history") from None
    try:
        kept = tree if isinstance(tree, Conversation) else Conversation.from_dict(tree) if tree else None
    except ValueError:
        return given
    return kept if kept is not None and signature(kept) == signature(given) else given


def export_markdown(conversation: Conversation, settings: dict) -> str:
    """The conversation's path as Markdown: settings, then each message (thinking and token choices folded)."""
    lines = ["# Qwen Playground conversation", "", *(f"- **{k}:** {v}" for k, v in settings.items()), ""]
    for m in render(conversation.path(), protect=False):
        title, text, files = (m.get("metadata") or {}).get("title"), text_of(m["content"]), files_of(m["content"])
        if title and text:
            lines += [f"<details><summary>{title}</summary>", "", text, "", "</details>", ""]
        elif title:
            lines += [f"*{title}*", ""]
        else:
            attached = [f"*🖼 {Path(f).name}*" for f in files]
            lines += [f"**{m['role']}:**", "", *attached, text, ""]
    return "\n".join(lines)


def export_json(conversation: Conversation, settings: dict) -> str:
    """The settings, the path as Chatbot messages (what `/chat` takes as its history), and the whole tree (what Import
    opens again, every branch)."""
    return json.dumps({"settings": settings, "messages": render(conversation.path(), protect=False), "tree": conversation.to_dict()},
                      ensure_ascii=False, indent=2)


def import_json(text: str) -> Conversation:
    """An exported conversation: its tree, or (an export from before trees, or a hand-written file) its messages.
    TaskError saying what the file should hold when it holds neither."""
    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("tree"), dict):
            return Conversation.from_dict(data["tree"])
        return parse(data["messages"] if isinstance(data, dict) else data)
    except (ValueError, KeyError, TypeError) as e:
        raise TaskError(f"This file is not a conversation exported from the Chat tab ({e}). Pick a JSON file from 'Export JSON'.") from None
