"""Presence penalty, as OpenAI and vLLM define it: subtract a flat `penalty` from the logit of every token that
already appears in the answer (the prompt does not count), before temperature, top-k and top-p.

Qwen recommends it for Qwen3.5 and Qwen3-VL (1.5 in several modes) against endless repetition; transformers'
`generate` and continuous batch have no such setting (their repetition penalty divides logits and counts the
prompt too), so this module adds it to both.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor
from transformers.generation.continuous_batching.cb_logits_processors import ContinuousBatchingLogitsProcessor


def penalize(scores: torch.Tensor, row: int, seen: list[int] | torch.Tensor, penalty: float) -> None:
    """Subtract `penalty` once from row `row`'s logits of each distinct token in `seen` (in place)."""
    if penalty and len(seen):
        scores[row, torch.as_tensor(seen, dtype=torch.long, device=scores.device).unique()] -= penalty


class PresencePenalty(LogitsProcessor):
    """For `generate`: the answer is everything after the first `prompt_length` ids of each row."""

    def __init__(self, penalty: float, prompt_length: int):
        self.penalty, self.prompt_length = float(penalty), prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.clone()
        for row in range(scores.shape[0]):
            penalize(scores, row, input_ids[row, self.prompt_length:], self.penalty)
        return scores


class BatchedPresencePenalty(ContinuousBatchingLogitsProcessor):
    """For the continuous batch: each request's own `presence_penalty` (0 when not given).

    A request's answer so far is not a tensor the batch hands its processors, so `prepare_tensor_args`, which
    the batch calls with the requests of the step just before it processes that step's logits (rows in the same
    order), keeps each one's generated ids for `__call__`. That holds with synchronous batching only, which
    `batching.py` asks for.
    """

    supported_kwargs: dict[str, type] = {"presence_penalty": float}
    ignored_kwargs: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._answers: list[list[int]] = []

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.fill_(0)  # 0.0 as float32 has the same bits

    def prepare_tensor_args(self, requests_with_new_token: list) -> torch.Tensor:
        self._answers = [list(r.state.generated_tokens) for r in requests_with_new_token]
        penalties = [float(r.state.logit_processor_kwargs.get("presence_penalty", 0.0)) for r in requests_with_new_token]
        return torch.tensor(penalties, dtype=torch.float32).view(dtype=torch.int32)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        penalties = tensor_arg[: scores.size(0)].view(dtype=torch.float32).tolist()
        if not any(penalties):
            return scores
        for row, (penalty, answer) in enumerate(zip(penalties, self._answers)):
            penalize(scores, row, answer, penalty)
        return scores
