"""The engine starts in the background, so the page shows first.

Importing torch and transformers and preparing the local backend takes seconds (many on a small VM) that the first
page does not need. `StartingBackend` builds the real backend (the router) on a thread of its own and stands in for
it meanwhile: a request that arrives early waits with a progress line and is then answered, never refused; what the
page needs at once (which precisions run here) comes from `engines.capabilities`, which needs no torch and gives the
answer the local backend will give.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterator

from ..core.generation import Done, Error, Event, Progress, Request
from . import Backend, Capabilities

log = logging.getLogger(__name__)
STARTING = "Starting the engine (loading torch and transformers)…"


class StartingBackend(Backend):
    def __init__(self, build: Callable[[], Backend], provisional: Capabilities):
        """`build` makes the real backend (it may import torch); `provisional` is what `capabilities` says until then."""
        self._build, self._provisional = build, provisional
        self._backend: Backend | None = None
        self._failure = ""
        self._ready = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin building the backend (once; every method that needs it starts it too)."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="engine-start", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            self._backend = self._build()
        except Exception as e:  # the page stays up and says why on each request
            log.exception("The local engine failed to start")
            self._failure = f"The engine failed to start ({type(e).__name__}: {e}). The server log has the details; restart the app."
        finally:
            self._ready.set()

    def wait_started(self, timeout: float | None = None) -> bool:
        self.start()
        return self._ready.wait(timeout)

    def _backend_or_none(self) -> Backend | None:
        return self._backend if self._ready.is_set() else None

    def stream(self, request: Request, cancel: threading.Event) -> Iterator[Event]:
        if not self.wait_started(0):
            yield Progress(STARTING)
            while not self._ready.wait(0.1):
                if cancel.is_set():
                    yield Done("cancelled")
                    return
        if self._backend is None:
            yield Error(self._failure)
            return
        yield from self._backend.stream(request, cancel)

    def capabilities(self) -> Capabilities:
        return backend.capabilities() if (backend := self._backend_or_none()) else self._provisional

    def fit_problem(self, loads: list[tuple[str, str]]) -> str | None:
        self.wait_started()
        return self._backend.fit_problem(loads) if self._backend else None

    def endpoint_health(self) -> dict[str, tuple[bool, str]]:
        self.wait_started()
        return self._backend.endpoint_health() if self._backend else {}

    def weights_by_model(self) -> dict[str, int]:
        return backend.weights_by_model() if (backend := self._backend_or_none()) else {}

    def engine_state(self) -> dict[str, dict]:
        return backend.engine_state() if (backend := self._backend_or_none()) else {}

    def status(self) -> str:
        if backend := self._backend_or_none():
            return backend.status()
        return self._failure if self._ready.is_set() else STARTING
