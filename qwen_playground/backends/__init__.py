"""Inference engines behind one interface.

A backend turns a `Request` into a stream of events (see `generation.py`);
tabs never test engine names, they only call `stream`. `local.LocalBackend` runs transformers in-process; other
engines (an OpenAI-compatible server) implement the same `stream`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Iterator

from ..generation import Event, Request


class Backend(ABC):
    @abstractmethod
    def stream(self, request: Request, cancel: threading.Event) -> Iterator[Event]:
        """Yield events for `request`. Setting `cancel` ends generation within a token or two."""

    def fit_problem(self, model_ids: list[str]) -> str | None:
        """Why these models cannot run at the same time here, or None (the default: they can)."""
        return None

    def status(self) -> str:
        """A short human line about what this backend holds (loaded models, memory)."""
        return ""
