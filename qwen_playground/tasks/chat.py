"""The Chat task: one turn of a multi-turn conversation, with thinking, presets, trimming and a budget.

`plan_turn` turns the tab's inputs (the same as the `/chat` API's) into the
request the turn sends and the history to show; `run` streams the answer
into the conversation. The inspector calls `plan_turn` too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterator

from pydantic import ValidationError

from ..backends import Backend
from ..chat import THINKING_TITLE, is_helper, normalize_history, split_last_turn, to_model_messages
from ..config import AppConfig
from ..generation import Request, SamplingParams
from ..lengths import conversation_problem, conversation_tokens, message_problem, trim_history
from ..prompts import load_template
from ..registry import ModelSpec
from . import TaskError, resolve
from .streaming import stream_turns

SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty", "max_new_tokens")


def preset_values(spec: ModelSpec, thinking: bool) -> list:
    """The sampling sliders' values for a model and mode, in SAMPLING_FIELDS order."""
    params = spec.preset(thinking)
    return [getattr(params, f) for f in SAMPLING_FIELDS]


def sampling_of(*values) -> SamplingParams:
    """Sampling settings from slider values in SAMPLING_FIELDS order, or TaskError naming the bad one."""
    try:
        return SamplingParams(**dict(zip(SAMPLING_FIELDS, values, strict=True)))
    except ValidationError as e:
        first = e.errors()[0]
        raise TaskError(f"Invalid {first['loc'][0]}: {first['msg']}.", str(first["loc"][0])) from None


def history_of(history: object) -> list[dict]:
    try:
        return normalize_history(history)
    except ValueError as e:
        raise TaskError(str(e), "history") from None


@dataclass(frozen=True)
class ChatPlan:
    request: Request
    before: list[dict]  # the conversation before this message (given back to edit when nothing was produced)
    shown: list[dict]  # the conversation with this message, as the answer streams in below it
    dropped: int = 0  # oldest exchanges trimmed to fit
    stripped_thoughts: int = 0  # earlier thoughts shown in the chat but not sent back (Qwen's multi-turn advice)

    @property
    def requests(self) -> list[Request]:
        return [self.request]


def plan_turn(config: AppConfig, message: object, history: object, model_id: str, system_prompt: str = "", thinking: bool = False,
              sampling: SamplingParams | None = None, thinking_budget: int = 0, quantization: str = "none", trim: bool = False,
              user: str = "", require_message: bool = True) -> ChatPlan:
    """The next turn: the conversation so far (answers without thinking), then the message through the chat template."""
    text = message.strip() if isinstance(message, str) else ""
    if require_message and not text:
        raise TaskError("Type a message first.", "message")
    spec, before, template = resolve(config.registry, model_id), history_of(history), load_template("chat")
    system_prompt = system_prompt or ""
    dropped = 0
    if trim and text:
        budget = config.settings.max_input_tokens - conversation_tokens(
            [{"role": "system", "content": system_prompt}, {"role": "user", "content": template.render_user(message=text)}])
        before, dropped = trim_history(before, max(0, budget))
    messages = to_model_messages(before, system_prompt, spec.family.thinking_tags)
    if text:
        messages.append({"role": "user", "content": template.render_user(message=text)})
        too_long = message_problem(messages, config.settings.max_message_tokens) or conversation_problem(
            messages, min(config.settings.max_input_tokens, spec.context_length - 1))
        if too_long:
            raise TaskError(too_long, "message")
    think = spec.family.thinks(bool(thinking))
    request = Request(spec.id, messages, sampling or spec.preset(think), think, int(thinking_budget or 0) or None, quantization, user)
    stripped = sum(1 for m in before if is_helper(m) and m["metadata"]["title"] == THINKING_TITLE)
    return ChatPlan(request, before, before + ([{"role": "user", "content": text}] if text else []), dropped, stripped)


def last_message(history: object) -> tuple[list[dict], str]:
    """(the conversation before its last user message, that message): for retry and undo."""
    before, text = split_last_turn(history_of(history))
    if text is None:
        raise TaskError("Nothing to retry yet.")
    return before, text


@dataclass(frozen=True)
class ChatView:
    history: list[dict]
    error: str | None = None
    produced_output: bool = False


def run(backend: Backend, plan: ChatPlan, stop: threading.Event | None = None) -> Iterator[ChatView]:
    """The conversation as the answer streams in; the last view carries any error."""
    for state in stream_turns(backend, plan.requests, stop):
        turn = state.turns[0]
        yield ChatView(plan.shown + turn.messages, turn.error, turn.produced_output)
