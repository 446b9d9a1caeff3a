"""torch and transformers, imported by one thread at a time.

The page is served before they load (`backends/starting.py`), so the first request can arrive while the engine's
thread is still importing them. Two threads importing transformers' interdependent modules in different orders trip
Python's import-deadlock detection, which hands one of them a half-initialised module (seen here: "module
'transformers' has no attribute 'Qwen3VLProcessor'" on the first answer after start-up). So whatever may be the
first to import them calls `load()` first, and the second caller waits for the first to finish. The image and
video side (processors: torchvision and more, seconds) is imported the same way, apart, by `load_media()`: only
when a request or an inspection needs it, so that a fresh machine's first text answer does not wait for it.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_loaded = False
_media_loaded = False


def load() -> None:
    """Import torch, transformers and the parts of it the app reaches lazily (once; later calls return at once)."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if not _loaded:
            import torch  # noqa: F401
            from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer  # noqa: F401

            _loaded = True


def load_media() -> None:
    """Import transformers' processors for images and video (once; after `load`)."""
    global _media_loaded
    load()
    if _media_loaded:
        return
    with _lock:
        if not _media_loaded:
            from transformers import AutoProcessor  # noqa: F401

            _media_loaded = True
