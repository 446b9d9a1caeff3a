"""Helper processes the app starts (file preparation, conversion): polite to the answers, gone with the app."""

from __future__ import annotations

import os
import threading
import time

PARENT_VARIABLE = "QWEN_PLAYGROUND_PARENT_PID"  # read by the helper: it may start after its parent is gone


def run_only_when_idle() -> None:
    """Give this process only the CPU time nothing else wants (Linux's idle scheduling class; the lowest priority
    elsewhere): a low priority alone still took a whole core from a generation's threads on a two-core machine."""
    if hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        except OSError:
            pass
    if hasattr(os, "nice"):
        os.nice(19)


def child_env() -> dict[str, str]:
    """The environment for a helper this process starts: it names this process, for `end_with_parent`."""
    return dict(os.environ, **{PARENT_VARIABLE: str(os.getpid())})


def end_with_parent(poll_s: float = 0.5) -> None:
    """End this helper once the process that started it (`child_env`) has gone: stopped with a signal, the app ran no
    clean-up. Files are written beside their final names and renamed, so nothing half-made is left in place."""
    parent = int(os.environ.get(PARENT_VARIABLE) or os.getppid())

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()
