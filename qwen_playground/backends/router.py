"""One backend for the app: each model's requests go to the engine that serves it.

Local models go to the transformers backend; models with an `endpoint` go to
that endpoint's OpenAI-compatible client. Tabs and compare panes only ever
see this router, so local and remote models sit side by side.
"""

from __future__ import annotations

import threading
from typing import Iterator

from ..config import AppConfig
from ..generation import Error, Event, Metrics, Request
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

    def backend_for(self, model_id: str) -> Backend:
        spec = self.registry.get(model_id)
        return self.remotes[spec.endpoint] if spec.endpoint else self.local

    def stream(self, request: Request, cancel: threading.Event) -> Iterator[Event]:
        try:
            backend = self.backend_for(request.model_id)
        except RegistryError as e:
            yield Error(str(e))
            self.monitor.record(request.model_id, error=str(e))
            return
        for event in backend.stream(request, cancel):  # the monitor sees every request's outcome on its way past
            if isinstance(event, Metrics):
                self.monitor.record(request.model_id, metrics=event)
            elif isinstance(event, Error):
                self.monitor.record(request.model_id, error=event.message)
            yield event

    def fit_problem(self, model_ids: list[str]) -> str | None:
        """Why these models' local ones cannot all be resident together (remote ones cost nothing here)."""
        local = [spec for spec in map(self.registry.get, model_ids) if not spec.endpoint]
        return self.local.fit_problem(local)

    def health(self) -> dict[str, tuple[bool, str]]:
        return {eid: remote.health() for eid, remote in self.remotes.items()}

    def weights_by_model(self) -> dict[str, int]:
        """Loaded local models' weight bytes by model id (all precisions of a model added up)."""
        totals: dict[str, int] = {}
        for key, size in self.local.cache.sizes().items():
            totals[key.split("@")[0]] = totals.get(key.split("@")[0], 0) + size
        return totals

    def app_health(self) -> dict:
        """What `/health` returns: healthy or degraded, with the reasons, per-model figures and memory."""
        return self.monitor.health(self.health(), self.weights_by_model())

    def health_markdown(self) -> str:
        if not self.remotes:
            return "No remote endpoints configured (see README, *Backends*)."
        lines = []
        for eid, (ok, line) in self.health().items():
            lines.append(f"- {'✅' if ok else '❌'} **{eid}** `{self.remotes[eid].endpoint.base_url}`: {line}")
        return "\n".join(lines)

    def status(self) -> str:
        return self.local.status()
