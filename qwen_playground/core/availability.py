"""Whether a model's weights can be had now, asked without downloading anything.

Configuration uses this to choose demo mode and each route's usable models;
`backends/download.py` fetches what this says is available.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from huggingface_hub import HfApi, try_to_load_from_cache

from .registry import ModelSpec


@functools.cache
def hub_reachable(timeout_s: float = 3.0) -> bool:
    """True when the Hub answers; False offline or with HF_HUB_OFFLINE set. Asked once per process."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        HfApi().model_info("Qwen/Qwen3-0.6B", timeout=timeout_s)
        return True
    except Exception:  # any network or HTTP failure means: not reachable now
        return False


def cached(hub_id: str) -> bool:
    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def available(spec: ModelSpec) -> bool:
    """Whether the weights are on disk, buildable offline, or downloadable right now (or served elsewhere)."""
    if spec.demo or spec.endpoint:
        return True
    if spec.path:
        return (Path(spec.path).expanduser() / "config.json").is_file()
    return cached(spec.hub_id) or hub_reachable()
