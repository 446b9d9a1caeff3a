"""What each tab does, in plain Python: no Gradio here.

One module per task. Each turns a tab's inputs into the `Request`(s) it sends
(one function, called by the tab, its prompt inspector, lessons and the API
alike, so what is inspected is what is sent) and runs them through a backend
into the states the tab shows, through the one fan-out in `streaming.py`.
Bad input raises `TaskError` with a message a person can act on; the UI shows
it and keeps everything else on screen.
"""

from __future__ import annotations

from ..registry import ModelSpec, Registry, RegistryError


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


def resolve(registry: Registry, model_id: str) -> ModelSpec:
    try:
        return registry.get(model_id)
    except RegistryError as e:
        raise TaskError(str(e), "model") from None
