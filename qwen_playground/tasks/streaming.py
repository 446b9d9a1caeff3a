"""The one fan-out: run a task's requests and fold their events into chat turns, paced for a screen.

Several requests stream at once, each in its own thread, their events
interleaved as they arrive: a slow stream never holds up a fast one, and a
failure in one ends only that one (as an `Error` event). When the backend
says the models cannot be resident together, they run one after another
instead, and the state says why. Closing the stream (Stop, a client gone)
cancels every request.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Iterator

from ..backends import Backend
from ..core.generation import Error, Event, Request, TextDelta, ThinkingDelta
from .conversation import AssistantTurn

log = logging.getLogger("qwen_playground")


def stream_all(backend: Backend, requests: list[Request], cancel: threading.Event | None = None) -> Iterator[tuple[int, Event]]:
    """Yield (request index, event) pairs from all requests, in arrival order; setting `cancel` stops them all."""
    events: queue.Queue = queue.Queue()
    cancel = cancel or threading.Event()

    def run(index: int, request: Request) -> None:
        try:
            for event in backend.stream(request, cancel):
                events.put((index, event))
        except Exception as e:  # one pane's crash is that pane's error; the log gets the app's fault in full
            log.exception("Request %d to %s failed", index, request.model_id)
            events.put((index, Error(f"{type(e).__name__}: {e}")))
        finally:
            events.put((index, None))

    for index, request in enumerate(requests):  # each in the caller's context: who asks (e.g. for ZeroGPU's quota) goes along
        threading.Thread(target=contextvars.copy_context().run, args=(run, index, request), name=f"stream-{index}", daemon=True).start()
    remaining = len(requests)
    try:
        while remaining:
            index, event = events.get()
            if event is None:
                remaining -= 1
            else:
                yield index, event
    finally:
        cancel.set()


def stream_in_turn(backend: Backend, requests: list[Request], cancel: threading.Event | None = None) -> Iterator[tuple[int, Event]]:
    """Like `stream_all`, one request after another: for models that do not fit in memory together."""
    cancel = cancel or threading.Event()
    try:
        for index, request in enumerate(requests):
            if cancel.is_set():  # stopped: the panes still waiting do not start
                break
            for event in backend.stream(request, cancel):
                yield index, event
    finally:
        cancel.set()


class Pacer:
    """When a stream should send the screen an update. Each stream's first token and every non-token event go
    at once; further tokens at most every `interval` seconds. A browser shows no more than that, and each
    update costs the server a diff of the whole page, which on a small model costs more than the token itself."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self._last = -float("inf")
        self._streaming: set = set()

    def due(self, event: Event, stream: int = 0) -> bool:
        now = time.perf_counter()
        token = isinstance(event, (TextDelta, ThinkingDelta))
        if not token or stream not in self._streaming or now - self._last >= self.interval:
            if token:
                self._streaming.add(stream)
            self._last = now
            return True
        return False


@dataclass
class Turns:
    """The requests' turns as they stand; `done` on the last state, `notice` when they ran one after another."""

    turns: list[AssistantTurn]
    notice: str = ""
    done: bool = False


def stream_turns(backend: Backend, requests: list[Request], stop: threading.Event | None = None) -> Iterator[Turns]:
    """Yield the turns of `requests` as they grow (paced), starting with an empty state and ending with a done one.
    It is one state object, updated in place between yields: read it, do not keep it. Setting `stop` ends every
    request at its next token, each still closed with its metrics and marked stopped."""
    notice = backend.fit_problem([(r.model_id, r.precision) for r in requests]) if len(requests) > 1 else None
    together = notice is None and len(requests) > 1
    events = (stream_all if together else stream_in_turn)(backend, requests, stop)
    state, pacer = Turns([AssistantTurn() for _ in requests], notice or ""), Pacer()
    try:
        yield state
        for index, event in events:
            state.turns[index].apply(event)
            if pacer.due(event, index):
                yield state
        state.done = True
        yield state
    finally:
        events.close()  # Stop pressed or client gone: cancels every request
