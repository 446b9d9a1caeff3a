"""The Chat task: one turn of a multi-turn conversation, with thinking, presets, trimming and a budget.

`prepare` turns a turn's `ChatInputs` (the tab's and the `/chat` API's
values) into the request it sends and the history to show; `run` streams the
answer into the conversation. The inspector calls `prepare` too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterator

from pydantic import ValidationError

from ..backends import Backend
from ..core.config import AppConfig
from ..core.generation import TOP_ALTERNATIVES, Request, SamplingParams
from ..core.prompts import load_template
from ..core.registry import ModelSpec
from ..mathtext import protect_math, protect_typed
from ..service.lengths import conversation_tokens, trim_history
from . import TaskError, refuse_if_too_long, resolve
from .chat_history import THINKING_TITLE, is_helper, normalize_history, split_last_turn, to_model_messages
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
class ChatInputs:
    """One turn's inputs, as the Chat tab shows them; `from_api` reads them in the `/chat` API's order."""

    message: object
    history: object
    model: str
    system_prompt: str = ""
    thinking: bool = False
    sampling: SamplingParams | None = None  # None: the model's preset for the thinking mode
    thinking_budget: int = 0
    precision: str = "full"
    trim_history: bool = False
    alternatives: bool = False  # record each token's probability and its top alternatives ("why this token?")

    @classmethod
    def from_api(cls, message: object, history: object, model: str, system_prompt: str, thinking: bool, temperature: float, top_p: float,
                 top_k: int, min_p: float, repetition_penalty: float, presence_penalty: float, max_new_tokens: int,
                 thinking_budget: int = 0, precision: str = "full", trim_history: bool = False, alternatives: bool = False) -> ChatInputs:
        """The positional values the tab and `/chat` send (sampling as its seven sliders, in SAMPLING_FIELDS order)."""
        sampling = sampling_of(temperature, top_p, top_k, min_p, repetition_penalty, presence_penalty, max_new_tokens)
        return cls(message, history, model, system_prompt or "", bool(thinking), sampling, thinking_budget, precision, bool(trim_history),
                   bool(alternatives))


@dataclass(frozen=True)
class ChatJob:
    request: Request
    before: list[dict]  # the conversation before this message (given back to edit when nothing was produced)
    shown: list[dict]  # the conversation with this message, as the answer streams in below it
    dropped: int = 0  # oldest exchanges trimmed to fit
    stripped_thoughts: int = 0  # earlier thoughts shown in the chat but not sent back (Qwen's multi-turn advice)

    @property
    def requests(self) -> list[Request]:
        return [self.request]


TOO_LONG_ADVICE = "Shorten the message, undo or clear earlier turns, or tick 'Trim oldest turns to fit'."


def prepare(config: AppConfig, inputs: ChatInputs, user: str = "", require_message: bool = True) -> ChatJob:
    """The next turn: the conversation so far (answers without thinking), then the message through the chat template."""
    text = inputs.message.strip() if isinstance(inputs.message, str) else ""
    if require_message and not text:
        raise TaskError("Type a message first.", "message")
    spec, before, template = resolve(config.registry, inputs.model), history_of(inputs.history), load_template("chat")
    dropped = 0
    if inputs.trim_history and text:
        budget = config.settings.max_input_tokens - conversation_tokens(
            [{"role": "system", "content": inputs.system_prompt}, {"role": "user", "content": template.render_user(message=text)}])
        before, dropped = trim_history(before, max(0, budget))
    messages = to_model_messages(before, inputs.system_prompt, spec.family.thinking_tags)
    if text:
        messages.append({"role": "user", "content": template.render_user(message=text)})
        refuse_if_too_long(config, spec, messages, TOO_LONG_ADVICE, "message")
    think = spec.family.thinks(inputs.thinking)
    request = Request(spec.id, messages, inputs.sampling or spec.preset(think), think, int(inputs.thinking_budget or 0) or None,
                      inputs.precision, user, TOP_ALTERNATIVES if inputs.alternatives else 0)
    stripped = sum(1 for m in before if is_helper(m) and m["metadata"]["title"] == THINKING_TITLE)
    return ChatJob(request, before, before + ([{"role": "user", "content": protect_typed(text)}] if text else []), dropped, stripped)


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


def run(backend: Backend, job: ChatJob, stop: threading.Event | None = None) -> Iterator[ChatView]:
    """The conversation as the answer streams in; the last view carries any error."""
    for state in stream_turns(backend, job.requests, stop):
        turn = state.turns[0]
        yield ChatView(job.shown + [dict(m, content=protect_math(m["content"])) for m in turn.messages], turn.error, turn.produced_output)
