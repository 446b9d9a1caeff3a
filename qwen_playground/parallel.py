"""Several generations at once, their events interleaved as they arrive.

Each request streams in its own thread; a slow stream never holds up a fast
one, and a failure in one ends only that one (as an `Error` event). Closing
the merged stream stops them all.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator

from .backends import Backend
from .generation import Error, Event, Request


def stream_all(backend: Backend, requests: list[Request]) -> Iterator[tuple[int, Event]]:
    """Yield (request index, event) pairs from all requests, in arrival order."""
    events: queue.Queue = queue.Queue()
    cancel = threading.Event()

    def run(index: int, request: Request) -> None:
        try:
            for event in backend.stream(request, cancel):
                events.put((index, event))
        except Exception as e:  # one pane's crash is that pane's error
            events.put((index, Error(f"{type(e).__name__}: {e}")))
        finally:
            events.put((index, None))

    for index, request in enumerate(requests):
        threading.Thread(target=run, args=(index, request), name=f"stream-{index}", daemon=True).start()
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


def stream_in_turn(backend: Backend, requests: list[Request]) -> Iterator[tuple[int, Event]]:
    """Like `stream_all`, one request after another: for models that do not fit in memory together."""
    cancel = threading.Event()
    try:
        for index, request in enumerate(requests):
            for event in backend.stream(request, cancel):
                yield index, event
    finally:
        cancel.set()
