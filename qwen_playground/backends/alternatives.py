"""Why this token? The model's most likely tokens at each step, recorded while it generates.

A `TokenRecorder` keeps, for one request, the top-k tokens of each step's
distribution (log-softmax of the logits after the repetition and presence
penalties, before temperature, top-k and top-p) and the probability of the
token actually chosen. It is fed by `RecordAlternatives` on the `generate`
path and by `BatchedAlternatives` in the continuous batch; requests that do
not ask cost nothing on `generate` and one check of an empty dict per
batch step.

The chosen token is only known at the next step (or when generation ends), so
the recorder holds the last step's distribution until `settle` names it.
"""

from __future__ import annotations

import math
import threading

import torch
from transformers import LogitsProcessor, PreTrainedTokenizerBase
from transformers.generation.continuous_batching.cb_logits_processors import ContinuousBatchingLogitsProcessor

from ..core.generation import Candidate, TokenStep


class TokenRecorder:
    def __init__(self, k: int):
        self.k = k
        self.top: list[tuple[list[int], list[float]]] = []  # per step: (ids, log-probabilities), most likely first
        self.chosen: list[float] = []  # per settled step: the chosen token's log-probability
        self._last: torch.Tensor | None = None  # the unsettled step's log-probabilities

    def observe(self, logits: torch.Tensor, previous: int | None) -> None:
        """A step's logits (one row); `previous`: the token chosen at the step before, when this step follows one."""
        if previous is not None:
            self.settle(previous)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        values, ids = torch.topk(logprobs, min(self.k, logprobs.numel()))
        self.top.append((ids.tolist(), values.tolist()))
        self._last = logprobs

    def settle(self, chosen: int) -> None:
        """Name the token chosen at the last observed step (once; later calls do nothing)."""
        if self._last is not None:
            self.chosen.append(float(self._last[chosen]))
            self._last = None

    def steps(self, tokenizer: PreTrainedTokenizerBase, ids: list[int], thinking_count: int = 0) -> tuple[TokenStep, ...]:
        """The generated `ids` as steps with their text; the first `thinking_count` are the thought."""
        ids = ids[:len(self.top)]
        if len(self.chosen) < len(ids):
            self.settle(ids[len(self.chosen)])
        texts = tokenizer.batch_decode([[i] for i in ids] + [[i] for top, _ in self.top[:len(ids)] for i in top])
        chosen_texts, alternative_texts = texts[:len(ids)], iter(texts[len(ids):])
        steps = []
        for index, (token_id, token) in enumerate(zip(ids, chosen_texts)):
            _, top_logprobs = self.top[index]
            alternatives = tuple(Candidate(next(alternative_texts), math.exp(lp)) for lp in top_logprobs)
            probability = math.exp(self.chosen[index]) if index < len(self.chosen) else None
            steps.append(TokenStep(token, probability, alternatives, index < thinking_count, token_id))
        return tuple(steps)


class RecordAlternatives(LogitsProcessor):
    """For `generate`: records each step into a recorder, scores unchanged. Put it after the penalties (transformers
    runs a caller's processors after its own penalties and before temperature, top-k and top-p)."""

    def __init__(self, recorder: TokenRecorder, prompt_length: int):
        self.recorder, self.prompt_length = recorder, prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        previous = int(input_ids[0, -1]) if input_ids.shape[1] > self.prompt_length else None
        self.recorder.observe(scores[0], previous)
        return scores


class BatchedAlternatives(ContinuousBatchingLogitsProcessor):
    """For the continuous batch: records the rows of requests that registered a recorder (`watch`), as
    `presence.BatchedPresencePenalty` reads its rows: `prepare_tensor_args` sees each step's requests in row order
    just before `__call__` sees their logits (synchronous batching)."""

    supported_kwargs: dict[str, type] = {}
    ignored_kwargs: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._recorders: dict[str, TokenRecorder] = {}
        self._lock = threading.Lock()
        self._rows: list[tuple[TokenRecorder, int | None] | None] = []

    def watch(self, request_id: str, recorder: TokenRecorder) -> None:
        with self._lock:
            self._recorders[request_id] = recorder

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._recorders.pop(request_id, None)

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.fill_(0)

    def prepare_tensor_args(self, requests_with_new_token: list) -> torch.Tensor:
        self._rows = []
        if self._recorders:
            with self._lock:
                for r in requests_with_new_token:
                    recorder, generated = self._recorders.get(r.state.request_id), r.state.generated_tokens
                    self._rows.append(recorder and (recorder, generated[-1] if generated else None))
        return torch.zeros(len(requests_with_new_token), dtype=torch.int32)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        for row, watched in enumerate(self._rows):
            if watched is not None:
                recorder, previous = watched
                recorder.observe(scores[row], previous)
        return scores
