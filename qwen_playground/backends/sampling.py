"""Choosing the next token from one row of logits, the way transformers' `generate` does.

Temperature first, then top-k, top-p and min-p, then a draw; temperature 0 is
greedy. The llama.cpp engine samples here rather than in llama.cpp's own
sampler chain (top-k, top-p, min-p, then temperature), so a setting means the
same on both engines: with temperature before top-p, a hot temperature widens
the set top-p keeps. In numpy, on one thread: torch would start its own
OpenMP pool on the engine's thread beside llama.cpp's, and every decode step
would wait for the other pool's threads (see `llamacpp.apart`).
"""

from __future__ import annotations

import numpy as np

from ..core.generation import SamplingParams


def choose(logits: np.ndarray, sampling: SamplingParams, rng: np.random.Generator) -> int:
    """The next token id from `logits` (one row, penalties already applied)."""
    if sampling.temperature == 0:
        return int(np.argmax(logits))
    scores = logits.astype(np.float32, copy=False) / sampling.temperature
    k = sampling.top_k if 0 < sampling.top_k < scores.size else scores.size
    ids = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)  # selection, not a full sort
    ids = ids[np.argsort(-scores[ids], kind="stable")]  # most likely first
    probs = np.exp(scores[ids] - scores[ids[0]])
    probs /= probs.sum()
    keep = np.ones(len(ids), dtype=bool)
    if sampling.top_p < 1:
        keep &= (np.cumsum(probs) - probs) < sampling.top_p  # drop a token once the mass before it reached top-p
    if sampling.min_p > 0:
        keep &= probs >= sampling.min_p * probs[0]
    keep[0] = True
    kept = probs * keep
    return int(ids[rng.choice(len(ids), p=kept / kept.sum())])
