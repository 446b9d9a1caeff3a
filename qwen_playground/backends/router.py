"""One backend for the app: each model's requests go to the engine that serves it.

Local models go to the local backend (on a ZeroGPU Space, each request inside
a lent GPU: zerogpu.py); models with an `endpoint` go to that endpoint's
OpenAI-compatible client. Tabs and compare panes only ever
see this router (through the service layer), so local and remote models sit
side by side. Routing only: limits, monitoring and logs live in `service/`.
"""

from __future__ import annotations

import threading
from typing import Iterator

from ..core.config import AppConfig
from ..core.devices import on_zero_gpu
from ..core.generation import Event, Request
from ..core.registry import ModelSpec
from . import Capabilities, ModelBackend
from .local import LocalBackend
from .openai_compat import OpenAICompatBackend
from .zerogpu import on_lent_gpu


class Router(ModelBackend):
    def __init__(self, config: AppConfig, local: LocalBackend | None = None):
        super().__init__(config.registry)
        self.local = local or LocalBackend(config.registry, config.settings)
        self.remotes = {eid: OpenAICompatBackend(endpoint, config.registry, config.settings.cache_dir)
                        for eid, endpoint in config.registry.endpoints.items()}
        self.local_stream, self.lent_note = self.local.stream, ""
        if on_zero_gpu():
            seconds = config.settings.zero_gpu_max_seconds
            self.local_stream = on_lent_gpu(self.local, config.registry, seconds)
            self.lent_note = f"ZeroGPU: each answer runs on a GPU lent for it (at most {seconds} s), where its model loads · "

    def serve(self, spec: ModelSpec, request: Request, cancel: threading.Event) -> Iterator[Event]:
        backend = self.remotes[spec.endpoint] if spec.endpoint else self.local
        yield from (self.local_stream if backend is self.local else backend.stream)(request, cancel)

    def warm(self, spec: ModelSpec) -> None:
        """Load a local model in the background before its first request (not where a GPU is lent per answer)."""
        if not spec.endpoint and not on_zero_gpu():
            self.local.warm(spec)

    def capabilities(self) -> Capabilities:
        return self.local.capabilities()

    def fit_problem(self, loads: list[tuple[str, str]]) -> str | None:
        """Why these (model, precision) pairs' local ones cannot all be resident together (remote ones cost nothing here)."""
        return self.local.fit_problem([(i, precision) for i, precision in loads if not self.registry.get(i).endpoint])

    def endpoint_health(self) -> dict[str, tuple[bool, str]]:
        return {eid: line for remote in self.remotes.values() for eid, line in remote.endpoint_health().items()}

    def weights_by_model(self) -> dict[str, int]:
        return self.local.weights_by_model()

    def engine_state(self) -> dict[str, dict]:
        return self.local.engine_state()

    def status(self) -> str:
        return self.lent_note + self.local.status()
