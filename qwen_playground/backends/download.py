"""Getting a model's weights: from the Hugging Face Hub, a local folder, or a demo build.

`fetch` returns a local folder, downloading (with progress) or building as needed;
`core/availability.py` answers "could this model load now?" without downloading.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Callable

from huggingface_hub import snapshot_download, try_to_load_from_cache
from tqdm.auto import tqdm

from ..core import ml_stack
from ..core.availability import cached
from ..core.registry import Family, ModelSpec

ProgressFn = Callable[[str], None]
RECIPE_VERSION = 3  # of the demo builds (`demo.build`): bump when the build code changes, so cached builds are rebuilt
TOKENIZER_PATTERNS = ["*.json", "*.txt", "*.jinja", "*.model"]  # config, tokenizer, chat template: no weights, no remote code
WEIGHT_PATTERNS = [*TOKENIZER_PATTERNS, "*.safetensors"]


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


def fetch(spec: ModelSpec, cache_dir: Path, on_progress: ProgressFn = lambda _: None, weights: bool = True) -> Path:
    """A local folder holding the model's config, tokenizer and (unless `weights` is False) weights."""
    if spec.demo:
        ml_stack.load()  # builds with torch: imported where a demo model is needed, not before the page is up
        from . import demo

        return demo.ensure(spec.family, cache_dir, on_progress)
    if spec.path:
        folder = Path(spec.path).expanduser()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"No config.json in {folder}: point 'path' at a folder saved with save_pretrained().")
        return folder
    if not cached(spec.hub_id):
        on_progress(f"Downloading {spec.hub_id} from the Hugging Face Hub…")
    return Path(snapshot_download(spec.hub_id, allow_patterns=WEIGHT_PATTERNS if weights else TOKENIZER_PATTERNS,
                                  tqdm_class=_progress_bar(on_progress, spec.hub_id)))


def demo_folder(family: Family, cache_dir: Path) -> Path:
    """Where `family`'s demo model is built (`demo.ensure`): named after its recipe, so a changed recipe gets a new
    build (its chat template's text included). Here, without torch, so the app can tell what is made before it starts
    the engine."""
    template = resources.files(__package__).joinpath(f"demo/chat_templates/{family.chat_template}").read_text(encoding="utf-8") \
        if family.chat_template else ""
    recipe = family.demo.model_dump_json() + family.tokenizer + template + str(RECIPE_VERSION)
    return Path(cache_dir).expanduser() / "demo" / f"{family.name}-{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"


def local_folder(spec: ModelSpec, cache_dir: Path) -> Path | None:
    """The model's folder where it is on disk already (nothing downloaded or built), else None."""
    if spec.demo:
        folder = demo_folder(spec.family, cache_dir)
    elif spec.path:
        folder = Path(spec.path).expanduser()
    else:
        hit = try_to_load_from_cache(spec.hub_id, "config.json")
        folder = Path(hit).parent if isinstance(hit, str) else None
    return folder if folder is not None and (folder / "config.json").is_file() else None


def fetch_gguf(repo: str, gguf_type: str, on_progress: ProgressFn = lambda _: None) -> Path | None:
    """The file of type `gguf_type` (e.g. "Q8_0") in a Hub repository of GGUF files, downloaded once; None when the
    repository has none (or cannot be had now). Files are named like "Qwen3-1.7B-Q8_0.gguf" or, split, "…-q8_0-00001-of-00002.gguf"."""
    patterns = [f"*{name}{tail}" for name in (gguf_type, gguf_type.lower()) for tail in (".gguf", "-000??-of-*.gguf")]
    try:
        folder = Path(snapshot_download(repo, allow_patterns=patterns, tqdm_class=_progress_bar(on_progress, f"{repo} ({gguf_type})")))
    except Exception:  # no such repository, or offline and not cached: the caller converts instead
        return None
    files = sorted(p for p in folder.glob("*.gguf") if gguf_type.lower() in p.name.lower())
    return files[0] if files else None
