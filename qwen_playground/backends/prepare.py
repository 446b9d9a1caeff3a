"""The opening tab's model files, made on another core while the page starts.

On a fresh machine the first answer waits for files: Chat's default demo model
built (its tokenizer converted first), then its weights converted to GGUF for
llama.cpp. `start` makes them in child processes as the app starts (the
tokenizer's conversion, which needs no torch, in one of its own beside the
model's imports), so that work runs beside the page's own start-up instead of
after it. The app's engine,
once up, loads what is made; where the helper is not done yet it waits on the
same file locks (nothing is built twice) or answers on an engine that needs no
conversion (`LocalBackend._stand_in`). Only what needs no download is made:
demo models and weights already on disk.

    python -m qwen_playground.backends.prepare '<ModelSpec as JSON>' CACHE_DIR [--gguf]
"""

from __future__ import annotations

import argparse
import atexit
import subprocess
import sys
from pathlib import Path

from ..core import tokenizer_files
from ..core.availability import cached
from ..core.config import AppConfig
from ..core.devices import pick_device
from ..core.processes import child_env, end_with_parent
from ..core.registry import ModelSpec
from . import download, engines, gguf_files
from .precision import GGUF_TYPES


def start(config: AppConfig) -> subprocess.Popen | None:
    """Begin making the files Chat's default model needs, in a child process ended with the app; None when there is
    nothing to make without a download (or the model is served elsewhere)."""
    spec, cache_dir = config.registry.choices("chat")[0], config.settings.cache_dir
    if spec.endpoint or not (spec.demo or spec.path or (spec.hub_id and cached(spec.hub_id))):
        return None
    llama_cpp = engines.text_engine(config.settings.engine, pick_device(config.settings.device)) == engines.LLAMA_CPP
    gguf = llama_cpp and spec.family.gguf is not None and not spec.gguf and not spec.adapter
    if download.local_folder(spec, cache_dir) and not (gguf and gguf_files.converts_first(spec, "full", cache_dir)):
        return None  # all made: a returning user's start
    if spec.demo and tokenizer_files.needs_conversion(spec.family.tokenizer, cache_dir):  # beside the imports of the other
        _child("qwen_playground.core.tokenizer_files", spec.family.tokenizer, str(cache_dir))
    return _child(__name__, spec.model_dump_json(), str(cache_dir), *(["--gguf"] if gguf else []))


def _child(module: str, *args: str) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env())
    atexit.register(child.terminate)  # and it ends itself when the app is stopped with a signal (`end_with_parent`)
    return child


def make(spec: ModelSpec, cache_dir: Path, gguf: bool) -> None:
    """The model's folder (built for a demo model) and, with `gguf`, its GGUF file at full precision."""
    folder = download.fetch(spec, cache_dir)
    if gguf:  # on the CPU time answers leave (gguf_files._convert)
        gguf_files.converted(spec, folder, GGUF_TYPES["full"], cache_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", help="the model, as ModelSpec JSON")
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("--gguf", action="store_true", help="also convert the weights to GGUF for llama.cpp")
    args = parser.parse_args(argv)
    end_with_parent()
    make(ModelSpec.model_validate_json(args.spec), args.cache_dir, args.gguf)


if __name__ == "__main__":
    main()
