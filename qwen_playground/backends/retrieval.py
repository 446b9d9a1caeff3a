"""Qwen's retrieval models on this machine: Qwen3-Embedding turns texts into vectors, Qwen3-Reranker scores pairs.

Both are Qwen3 decoders run with transformers, as their model cards run them:
the embedding is the last token's hidden state (left padding, so the last
position is every text's own end), L2-normalised; the reranker's score is the
probability of "yes" against "no" as the next token after its judging prompt.
What differs between the families (instructions, prompts, end token) is
registry data (`Family.retrieval`). A loaded model is kept for the next call
(the two most recent), and one forward pass runs at a time on each.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..core.devices import model_build_lock, on_zero_gpu, pick_device, usable_device
from ..core.registry import ModelSpec, Retrieval
from . import download
from .model_classes import auto_model_class

BATCH_SIZE = 8  # texts per forward pass: enough to fill two CPU cores, little padding between chunks of one size
MAX_TOKENS = 8192  # longest text read (the cards' examples truncate there; the models take 32K)
Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class RetrievalModel:
    spec: ModelSpec
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    device: str
    lock: threading.Lock

    @property
    def traits(self) -> Retrieval:
        return self.spec.family.retrieval


def traits_of(spec: ModelSpec, kind: str) -> Retrieval:
    traits = spec.family.retrieval
    if traits is None or traits.kind != kind:
        raise ValueError(f"{spec.id} is not {'an embedding model' if kind == 'embedding' else 'a reranker'}.")
    return traits


@functools.lru_cache(maxsize=2)
def load(spec: ModelSpec, cache_dir: Path, device_setting: str = "auto", dtype_setting: str = "auto") -> RetrievalModel:
    """`spec`'s weights loaded for retrieval (downloaded or built on first use)."""
    from .local.transformers_engine import pick_dtype

    if spec.endpoint:
        raise ValueError(f"{spec.id} is served by an endpoint; the Documents tab runs embedding and reranker models here. Pick a local one.")
    traits = spec.family.retrieval
    if traits is None:
        raise ValueError(f"{spec.id} is not an embedding or reranker model.")
    device = "cpu" if on_zero_gpu() else usable_device(pick_device(device_setting))  # ZeroGPU lends its GPU to generation calls only
    dtype, _ = pick_dtype(device, dtype_setting, cache_dir)
    folder = download.fetch(spec, cache_dir)
    with model_build_lock:
        model = auto_model_class(spec.family).from_pretrained(folder, dtype=dtype, device_map=device)
    return RetrievalModel(spec, model.eval(), AutoTokenizer.from_pretrained(folder, padding_side="left"), device, threading.Lock())


def query_text(traits: Retrieval, query: str, instruction: str | None = None) -> str:
    """A question as an embedding model reads it: after its task instruction (passages are read as they are)."""
    return traits.query_format.format(instruction=instruction or traits.instruction, query=query)


def pair_text(traits: Retrieval, query: str, document: str, instruction: str | None = None) -> str:
    """A (question, passage) pair as the reranker reads it, its judging prompt around it."""
    return traits.prefix + traits.query_format.format(instruction=instruction or traits.instruction, query=query, document=document) \
        + traits.suffix


def _ids(loaded: RetrievalModel, text: str) -> list[int]:
    """`text`'s ids, truncated to MAX_TOKENS; an embedding model's end with its end token (its own tokenizer may append
    it already; the bundled one does not)."""
    tokenizer, end = loaded.tokenizer, loaded.traits.end_token
    ids = tokenizer(text, add_special_tokens=False).input_ids[: MAX_TOKENS - 1]
    if end:
        end_id = tokenizer.convert_tokens_to_ids(end)
        if not ids or ids[-1] != end_id:
            ids.append(end_id)
    return ids


def _batches(loaded: RetrievalModel, texts: list[str], on_progress: Progress | None):
    """(positions, padded inputs) for each batch, texts of like length together (less padding), in input order back."""
    ids = [_ids(loaded, text) for text in texts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), BATCH_SIZE):
        positions = order[start:start + BATCH_SIZE]
        padded = loaded.tokenizer.pad({"input_ids": [ids[i] for i in positions]}, padding=True, return_tensors="pt")
        yield positions, {k: v.to(loaded.device) for k, v in padded.items()}
        if on_progress:
            on_progress(min(start + BATCH_SIZE, len(order)), len(order))


@torch.inference_mode()
def embed(loaded: RetrievalModel, texts: list[str], on_progress: Progress | None = None) -> np.ndarray:
    """One unit vector per text (rows, float32), as Qwen3-Embedding's card computes them."""
    traits_of(loaded.spec, "embedding")
    out = np.zeros((len(texts), loaded.model.config.hidden_size), dtype=np.float32)
    with loaded.lock:
        for positions, inputs in _batches(loaded, texts, on_progress):
            last = loaded.model(**inputs).last_hidden_state[:, -1]  # left padding: the last position is each text's end token
            out[positions] = torch.nn.functional.normalize(last.float(), p=2, dim=-1).cpu().numpy()
    return out


@torch.inference_mode()
def rerank(loaded: RetrievalModel, query: str, passages: list[str], instruction: str | None = None) -> list[float]:
    """Each passage's relevance to `query` in [0, 1]: P(yes) from the yes and no logits after the judging prompt."""
    traits = traits_of(loaded.spec, "reranker")
    yes, no = (loaded.tokenizer.convert_tokens_to_ids(t) for t in (traits.yes, traits.no))
    scores = [0.0] * len(passages)
    with loaded.lock:
        for positions, inputs in _batches(loaded, [pair_text(traits, query, p, instruction) for p in passages], None):
            logits = loaded.model(**inputs).logits[:, -1, :].float()
            judged = torch.log_softmax(torch.stack([logits[:, no], logits[:, yes]], dim=1), dim=1)[:, 1].exp()
            for position, score in zip(positions, judged.tolist()):
                scores[position] = score
    return scores
