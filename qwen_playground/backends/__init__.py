"""Inference engines behind one interface.

A backend turns a `Request` into a stream of events (see `generation.py`) and
says what it can do (`capabilities`, `health`); callers never test engine
types, they only call these methods. A `ModelBackend` serves a registry's models (and is the one place that refuses a
model it does not know): `local.LocalBackend` runs models in-process
(transformers, or llama.cpp for text on a CPU), `openai_compat.OpenAICompatBackend` talks to a server, and
`router.Router` sends each model's requests to the engine that serves it.
Nothing here knows about the UI.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterator

from ..core.generation import Error, Event, Request
from ..core.registry import ModelSpec, Registry, RegistryError


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers for local models: where they run, each weights precision with the reason it cannot run
    here (None: it can), the engine that runs text models, and what each precision is on it (one line for people)."""

    device: str = "remote"
    precisions: dict[str, str | None] = field(default_factory=lambda: {"full": None})
    engine: str = "transformers"
    precision_note: str = ""

    @property
    def runnable_precisions(self) -> tuple[str, ...]:
        return tuple(choice for choice, why in self.precisions.items() if why is None)


class Backend(ABC):
    @abstractmethod
    def stream(self, request: Request, cancel: threading.Event) -> Iterator[Event]:
        """Yield events for `request`. Setting `cancel` ends generation within a token or two."""

    def wait_started(self, timeout: float | None = None) -> bool:
        """Whether the backend can serve now, waiting up to `timeout` seconds (None: until it can). A backend serves once
        built, except one that starts in the background (`starting.StartingBackend`)."""
        return True

    def capabilities(self) -> Capabilities:
        return Capabilities()

    def fit_problem(self, loads: list[tuple[str, str]]) -> str | None:
        """Why these (model id, precision) pairs cannot run at the same time here, or None (the default: they can)."""
        return None

    def endpoint_health(self) -> dict[str, tuple[bool, str]]:
        """(reachable, one line) per remote endpoint this backend talks to; empty when it talks to none."""
        return {}

    def weights_by_model(self) -> dict[str, int]:
        """Bytes of weights held in memory, by model id (local models)."""
        return {}

    def engine_state(self) -> dict[str, dict]:
        """What each loaded model's engine is doing (requests running and waiting, restarts), by "model (precision,
        engine)"; empty when nothing is loaded."""
        return {}

    def status(self) -> str:
        """A short human line about what this backend holds (loaded models, memory)."""
        return ""


class ModelBackend(Backend):
    """A backend for the models of a registry: `stream` refuses a model the registry does not know (the one place that
    does), then `serve`s the request with the model's facts."""

    def __init__(self, registry: Registry):
        self.registry = registry

    def stream(self, request: Request, cancel: threading.Event) -> Iterator[Event]:
        try:
            spec = self.registry.get(request.model_id)
        except RegistryError as e:
            yield Error(str(e))
            return
        yield from self.serve(spec, request, cancel)

    @abstractmethod
    def serve(self, spec: ModelSpec, request: Request, cancel: threading.Event) -> Iterator[Event]:
        """Yield events for `request` to the model `spec`. Setting `cancel` ends generation within a token or two."""
