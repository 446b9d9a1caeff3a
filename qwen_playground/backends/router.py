"""One backend for the app: each model's requests go to the engine that serves it.

Local models go to the transformers backend; models with an `endpoint` go to
that endpoint's OpenAI-compatible client. Tabs and compare panes only ever
see this router, so local and remote models sit side by side.
"""

from __future__ import annotations

import threading
from typing import Iterator

from ..config import AppConfig
from ..generation import Done, Error, Event, Metrics, Request
from ..guard import Guard
from ..lengths import message_problem
from ..monitor import Monitor
from ..registry import RegistryError
from . import Backend
from .local import LocalBackend
from .openai_compat import OpenAICompatBackend


class Router(Backend):
    def __init__(self, config: AppConfig, local: LocalBackend | None = None):
        self.registry = config.registry
        self.local = local or LocalBackend(config.registry, config.settings)
        self.remotes = {eid: OpenAICompatBackend(endpoint, config.registry) for eid, endpoint in config.registry.endpoints.items()}
        self.monitor = Monitor()
        self.guard = Guard(config.settings)
        self.max_message_tokens = config.settings.max_message_tokens

    def backend_for(self, model_id: str) -> Backend:
        spec = self.registry.get(model_id)
        return self.remotes[spec.endpoint] if spec.endpoint else self.local

    def stream(self, request: Request, cancel: threading.Event) -> Iterator[Event]:
        try:
            backend = self.backend_for(request.model_id)
        except RegistryError as e:
            self._finished(request, error=str(e))
            yield Error(str(e))
            return
        if problem := message_problem(request.messages, self.max_message_tokens):
            self._finished(request, error=problem)
            yield Error(problem)
            return
        metrics = None
        for event in backend.stream(request, cancel):  # the monitor, limits and log see each outcome on its way past
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
                             quantization=request.quantization if request.quantization != "none" else None,
                             error=error[:200] if error else None, **figures)

    def fit_problem(self, model_ids: list[str]) -> str | None:
        """Why these models' local ones cannot all be resident together (remote ones cost nothing here)."""
        local = [spec for spec in map(self.registry.get, model_ids) if not spec.endpoint]
        return self.local.fit_problem(local)

    def health(self) -> dict[str, tuple[bool, str]]:
        return {eid: remote.health() for eid, remote in self.remotes.items()}

    def app_health(self) -> dict:
        """What `/health` returns: healthy or degraded, with the reasons, per-model figures and memory."""
        return self.monitor.health(self.health(), self.local.weights_by_model())

    def health_markdown(self) -> str:
        if not self.remotes:
            return "No remote endpoints configured (see README, *Backends*)."
        lines = []
        for eid, (ok, line) in self.health().items():
            lines.append(f"- {'✅' if ok else '❌'} **{eid}** `{self.remotes[eid].endpoint.base_url}`: {line}")
        return "\n".join(lines)

    def status(self) -> str:
        return self.local.status()
