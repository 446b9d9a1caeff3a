"""What each tab does, in plain Python: no Gradio here.

One module per task. Each turns a tab's inputs into the `Request`(s) it sends
(one function, called by the tab, its prompt inspector, lessons and the API
alike, so what is inspected is what is sent) and runs them through a backend
into the states the tab shows, through the one fan-out in `streaming.py`.
Bad input raises `TaskError` with a message a person can act on; the UI shows
it and keeps everything else on screen.
"""

from __future__ import annotations

from typing import Iterable

from ..core.config import AppConfig
from ..core.registry import ModelSpec, Registry, RegistryError
from ..service.lengths import conversation_problem, message_problem


class TaskError(ValueError):
    """Input a task cannot use; the message says what to do instead. `field` names the input it concerns
    (as the task's function names its parameter), so a form can show the note beside that input."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def require_text(value: object, what: str, field: str | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TaskError(f"Type {what} first.", field)
    return value.strip()


def one_of(value: object, choices: Iterable[str], what: str, field: str | None = None) -> str:
    """`value` when it names one of `choices` (an API caller may send anything), else a refusal listing them."""
    if not isinstance(value, str) or value not in choices:
        raise TaskError(f"Unknown {what} '{value}'; choose one of: {', '.join(choices)}.", field)
    return value


def resolve(registry: Registry, model_id: str) -> ModelSpec:
    try:
        return registry.get(model_id)
    except RegistryError as e:
        raise TaskError(str(e), "model") from None


def refuse_if_too_long(config: AppConfig, spec: ModelSpec, messages: list[dict], advice: str = "Shorten it.", field: str | None = None) -> None:
    """Every tab's length check before sending: the newest user message against the per-message limit, the whole
    prompt against the input limit (or the model's context, if smaller). Counted before templating; the engine
    checks the exact templated length again."""
    settings = config.settings
    limit = min(settings.max_input_tokens, spec.context_length - 1)
    if problem := message_problem(messages, settings.max_message_tokens) or conversation_problem(messages, limit, advice):
        raise TaskError(problem, field)
