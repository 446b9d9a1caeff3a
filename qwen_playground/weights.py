"""Where a model's weights come from: the Hugging Face Hub, a local folder, or a demo build.

`available` answers "could this model load now?" without downloading anything;
`fetch` returns a local folder, downloading (with progress) or building as needed.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable

from huggingface_hub import HfApi, snapshot_download, try_to_load_from_cache
from tqdm.auto import tqdm

from . import demo_models
from .registry import ModelSpec

ProgressFn = Callable[[str], None]
WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model"]  # no remote code


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


def _progress_bar(on_progress: ProgressFn, label: str) -> type:
    """A tqdm class that reports download progress as one line of text."""

    class Reporter(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            result = super().update(n)
            if self.total and self.unit == "B":
                on_progress(f"Downloading {label}: {self.n / 1e9:.2f} / {self.total / 1e9:.2f} GB ({100 * self.n / self.total:.0f}%)")
            return result

    return Reporter


def fetch(spec: ModelSpec, cache_dir: Path, on_progress: ProgressFn = lambda _: None) -> Path:
    """A local folder holding the model's config, tokenizer and weights."""
    if spec.demo:
        return demo_models.ensure(spec.family, cache_dir, on_progress)
    if spec.path:
        folder = Path(spec.path).expanduser()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"No config.json in {folder}: point 'path' at a folder saved with save_pretrained().")
        return folder
    if not cached(spec.hub_id):
        on_progress(f"Downloading {spec.hub_id} from the Hugging Face Hub…")
    return Path(snapshot_download(spec.hub_id, allow_patterns=WEIGHT_PATTERNS, tqdm_class=_progress_bar(on_progress, spec.hub_id)))
