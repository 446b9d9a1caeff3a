"""The service layer: what the app adds around its backend, for every tab and API call alike.

`Service` wraps a backend (the router) and is itself a backend, so tasks
stream through it unaware. It admits users under the rate limits, charges generated tokens,
records every outcome in the monitor (the Monitor tab, `/health`) and writes
the private request log. The user arrives as `Request.user`.
"""

from __future__ import annotations

import threading
from typing import Iterator

from ..backends import Backend, Capabilities
from ..core.config import Settings
from ..core.generation import Done, Error, Event, Metrics, Request
from .guard import Guard
from .monitor import Monitor


class Service(Backend):
    def __init__(self, backend: Backend, settings: Settings):
        self.backend = backend
        self.guard = Guard(settings)
        self.monitor = Monitor()

    def admit(self, user: str, cost: int = 1) -> None:
        """Count `cost` requests of `user` (a tab's action; a batch's rows x models); raises guard.RateLimited saying
        when to come back."""
        self.guard.admit(user, cost)

    def stream(self, request: Request, cancel: threading.Event) -> Iterator[Event]:
        metrics = None
        for event in self.backend.stream(request, cancel):  # the monitor, limits and log see each outcome on its way past
            if isinstance(event, Metrics):
                metrics = event
                self.guard.charge(request.user, event.answer_tokens + event.thinking_tokens)
            elif isinstance(event, Done):
                self._finished(request, metrics, outcome=event.finish_reason)
            elif isinstance(event, Error):
                self._finished(request, metrics, error=event.message)
            yield event

    def _finished(self, request: Request, metrics: Metrics | None = None, outcome: str = "", error: str | None = None) -> None:
        self.monitor.record(request.model_id, metrics=metrics if error is None else None, error=error)
        figures = {}
        if metrics:
            figures = {"prompt_tokens": metrics.prompt_tokens, "answer_tokens": metrics.answer_tokens, "thinking_tokens": metrics.thinking_tokens,
                       "ttft_s": metrics.time_to_first_token_s, "tokens_per_s": metrics.tokens_per_s, "total_s": metrics.total_s}
        self.guard.log.write(request.user, request.model_id, "error" if error else outcome, request.messages,
                             precision=request.precision if request.precision != "full" else None,
                             error=error[:200] if error else None, **figures)

    def health_report(self) -> dict:
        """What `/health` returns: healthy or degraded, with the reasons, per-model figures and memory."""
        return self.monitor.health_report(self.backend.endpoint_health(), self.backend.weights_by_model(), self.backend.engine_state())

    def wait_started(self, timeout: float | None = None) -> bool:
        return self.backend.wait_started(timeout)

    def capabilities(self) -> Capabilities:
        return self.backend.capabilities()

    def fit_problem(self, loads: list[tuple[str, str]]) -> str | None:
        return self.backend.fit_problem(loads)

    def endpoint_health(self) -> dict[str, tuple[bool, str]]:
        return self.backend.endpoint_health()

    def weights_by_model(self) -> dict[str, int]:
        return self.backend.weights_by_model()

    def engine_state(self) -> dict[str, dict]:
        return self.backend.engine_state()

    def status(self) -> str:
        return self.backend.status()
