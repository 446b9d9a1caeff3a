"""Speculative decoding on the transformers engine: one request's passes, each over its next token and its guesses.

A request with drafts runs here alone rather than in the continuous batch
(whose steps give one row of logits per request): a pass feeds the answer's
pending token and the guesses into the model's cache, the model's choice
after each comes from the same processors and sampling as any answer
(`speculative.verify` keeps guesses while it chose them), and the rejected
guesses are cut off the cache. transformers records a hybrid's recurrent
state per position once asked (`activate_past_recording`), so Qwen3.5's
linear-attention layers are cut back too.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import DynamicCache, LogitsProcessorList

from ...core.generation import SamplingParams
from ..sampling import choose
from ..speculative import Speculation, common_prefix, verify


class TransformersDrafter:
    """A draft model's greedy guesses for one request, its cache kept between passes (cut where the answer left it)."""

    def __init__(self, model):
        self.model, self.held = model, []
        self.cache = DynamicCache(config=model.config)
        self.vocabulary = model.get_output_embeddings().weight.shape[0]

    @torch.no_grad()
    def propose(self, tokens: list[int], k: int) -> list[int]:
        if k <= 0 or max(tokens) >= self.vocabulary:
            return []
        keep = min(common_prefix(self.held, tokens), len(tokens) - 1)
        if self.held:  # its own rejected guesses off (0 still trims a recurrent layer's recorded states)
            self.cache.crop(keep - len(self.held))
            del self.held[keep:]
        feed, guesses = tokens[keep:], []
        while len(guesses) < k:
            logits = self.model(input_ids=torch.tensor([feed], device=self.model.device), cache=self.cache, use_cache=True).logits
            if not self.held:
                self.cache.activate_past_recording()  # after the prompt: a hybrid's recurrent state is cut back too
            self.held += feed
            guesses.append(int(logits[0, -1].argmax()))
            feed = guesses[-1:]
        return guesses


@torch.no_grad()
def generate_with_drafts(model, prompt: list[int], sampling: SamplingParams, processors: LogitsProcessorList, limit: int,
                         stop: set[int], streamer, flags, speculation: Speculation) -> list[int]:
    """`Engine.generate` with guesses checked in each pass: each new token to `streamer`; ends at a `stop` id, after
    `limit` tokens, or at the next token once a flag is set. Returns the new ids."""
    cache, ids, rng = DynamicCache(config=model.config), [], np.random.default_rng()

    def forward(tokens: list[int]) -> torch.Tensor:
        return model(input_ids=torch.tensor([tokens], device=model.device), cache=cache, use_cache=True).logits[0].float().cpu()

    def ends(token: int) -> bool:
        return token in stop or len(ids) >= limit or any(f.is_set() for f in flags)

    rows, drafts = forward(prompt)[-1:], []
    cache.activate_past_recording()  # after the prompt, as transformers' assisted decoding does
    while True:
        def pick(i: int) -> int:
            row = processors(torch.tensor([prompt + ids]), rows[i:i + 1])[0] if processors else rows[i]
            token = speculation.choose(len(ids), lambda: choose(row.numpy(), sampling, rng))
            ids.append(token)
            streamer.put(torch.tensor([token]))
            return token

        tokens, accepted = verify(drafts, pick, ends)
        cache.crop(accepted - len(drafts))  # 0 still trims a recurrent layer's recorded states back to what it needs
        speculation.record(len(drafts), len(tokens), accepted)
        if ends(tokens[-1]):
            return ids
        room = limit - len(ids) - 1
        drafts = speculation.guesses(prompt, ids, room) if speculation.lookup else \
            speculation.drafter.propose(prompt + ids, speculation.wanted(room))
        rows = forward([tokens[-1], *drafts])
