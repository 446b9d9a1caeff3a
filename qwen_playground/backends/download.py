"""Getting a model's weights: from the Hugging Face Hub, a local folder, or a demo build.

`fetch` returns a local folder, downloading (with progress) or building as needed;
`core/availability.py` answers "could this model load now?" without downloading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from huggingface_hub import snapshot_download
from tqdm.auto import tqdm

from ..core.availability import cached
from ..core.registry import ModelSpec
from . import demo

ProgressFn = Callable[[str], None]
WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model"]  # no remote code


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
        return demo.ensure(spec.family, cache_dir, on_progress)
    if spec.path:
        folder = Path(spec.path).expanduser()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"No config.json in {folder}: point 'path' at a folder saved with save_pretrained().")
        return folder
    if not cached(spec.hub_id):
        on_progress(f"Downloading {spec.hub_id} from the Hugging Face Hub…")
    return Path(snapshot_download(spec.hub_id, allow_patterns=WEIGHT_PATTERNS, tqdm_class=_progress_bar(on_progress, spec.hub_id)))
