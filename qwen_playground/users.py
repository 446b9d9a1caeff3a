"""Who the running handler step serves: set by `guard.guarded` around each step, read when a `Request`
is built, so requests carry their user to the router (rate-limit charges, private logs)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

_local = threading.local()


def current_user() -> str:
    """'session@ip' of the user being served, or "" outside a guarded handler (tests, scripts)."""
    return getattr(_local, "user", "")


@contextmanager
def acting_for(user: str) -> Iterator[None]:
    _local.user = user
    try:
        yield
    finally:
        _local.user = ""
