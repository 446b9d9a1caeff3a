"""Continuous batching for many users on one local model.

Each loaded text model gets one transformers `ContinuousBatchingManager`: a
background loop that admits new requests at every decode step, so a student
who asks while another answer is streaming joins the running batch instead of
waiting for it or fighting it for the cores. One dispatcher thread hands each
step's tokens to the request's own streamer, so streams stay separate, and a
request is cancelled on its own.

The manager applies temperature, top-p and top-k per request, and the presence
penalty through our own per-request processor (`presence.py`); a request
that asks "why this token?" has its steps recorded by `alternatives.py`. It cannot apply
a repetition penalty or min-p (transformers marks those processors
unsupported), so requests that use them, vision requests, and models whose
layers it cannot cache (`batchable`: Qwen3.5's linear attention) take the
one-request `generate` path: `supports` says which requests.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import torch
from transformers import ContinuousBatchingConfig, GenerationConfig, TopKLogitsWarper, TopPLogitsWarper
from transformers.generation.continuous_batching import cb_logits_processors
from transformers.generation.continuous_batching.cache import group_layers_by_attn_type

from ..core.generation import SamplingParams
from .alternatives import BatchedAlternatives, TokenRecorder
from .presence import BatchedPresencePenalty

_POLL_S = 0.05  # how often a waiting request looks at its stop flags
_HANDOVER_S = 1.0  # how long a request whose loop died waits for its own error
PAGE = 256  # tokens per KV-cache block


def batchable(config) -> bool:
    """Whether the batch can hold this model's cache: not for linear-attention layers (Qwen3.5's Gated DeltaNet keeps
    a recurrent state, not a paged KV cache), as transformers' own layer grouping says."""
    try:
        group_layers_by_attn_type(config.get_text_config())
    except ValueError:
        return False
    return True


def supports(sampling: SamplingParams) -> bool:
    """Whether the batcher reproduces these settings exactly."""
    return sampling.repetition_penalty == 1.0 and sampling.min_p == 0.0


def per_request_kwargs(sampling: SamplingParams, vocab_size: int) -> dict:
    """Per-request logits settings; temperature 0 (greedy) is top-k 1, top-k 0 (off) is the whole vocabulary."""
    presence = {"presence_penalty": float(sampling.presence_penalty)}
    if sampling.temperature == 0:
        return {"temperature": 1.0, "top_p": 1.0, "top_k": 1} | presence
    return {"temperature": float(sampling.temperature), "top_p": float(sampling.top_p), "top_k": int(sampling.top_k or vocab_size)} | presence


class _TopKBySelection(cb_logits_processors.ContinuousBatchingTopKLogitsWarper):
    """Per-request top-k by `torch.topk` (linear in the vocabulary) instead of a full sort: on a CPU the
    stock version's sort of 152k logits per row costs about as much as a tiny model's forward pass."""

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        top_k = tensor_arg[: scores.size(0)].clamp(min=1, max=scores.size(-1)).to(torch.int64)
        kept = torch.topk(scores, int(top_k.max()), dim=-1).values  # [B, k_max], descending
        thresholds = kept.gather(-1, (top_k - 1).unsqueeze(-1))
        return scores.masked_fill(scores < thresholds, self.filter_value)


class _TopPOverSurvivors(cb_logits_processors.ContinuousBatchingTopPLogitsWarper):
    """Per-request top-p over the tokens top-k left (Qwen's presets keep 20) instead of sorting the whole
    vocabulary; same rule as transformers' (keep the most likely tokens until their mass reaches top-p)."""

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        top_p = tensor_arg[: scores.size(0)].view(dtype=torch.float32).unsqueeze(-1)  # [B, 1]
        if bool((top_p >= 1).all()):
            return scores
        survivors = int(torch.isfinite(scores).sum(-1).max())
        values, indices = torch.topk(scores, max(survivors, 1), dim=-1)  # descending
        probs = values.softmax(-1)
        drop = ((probs.cumsum(-1) - probs) >= top_p) & (top_p < 1)  # the mass before this token already reached top-p
        drop[..., : self.min_tokens_to_keep] = False
        remove = torch.ones_like(scores, dtype=torch.bool).scatter(-1, indices, drop)
        return scores.masked_fill(remove, self.filter_value)


cb_logits_processors.CLASSIC_TO_CB_PROCESSORS_MAP[TopKLogitsWarper] = _TopKBySelection
cb_logits_processors.CLASSIC_TO_CB_PROCESSORS_MAP[TopPLogitsWarper] = _TopPOverSurvivors


def _with_our_processors(manager, alternatives: BatchedAlternatives):
    """Put the per-request presence penalty first among the manager's processors (before temperature, as in
    `generate`), then the alternatives recorder; the manager sizes its argument tensors from this list when its
    loop starts."""
    processors = manager.logit_processor
    processors.logits_processor.insert(0, BatchedPresencePenalty())
    processors.logits_processor.insert(1, alternatives)
    processors.tensors_required += 2
    processors.supported_keys |= BatchedPresencePenalty.supported_kwargs
    processors.do_processing = True
    return manager


@dataclass
class _Pending:
    streamer: object  # a transformers streamer: put(tensor) / end()
    flags: tuple = ()  # stop flags: once one is set, not one more token goes to the streamer
    done: threading.Event = field(default_factory=threading.Event)
    finished: bool = False
    ids: list[int] = field(default_factory=list)
    error: str | None = None


class ContinuousBatcher:
    def __init__(self, model: torch.nn.Module, eos_ids: frozenset[int], pad_id: int | None, cache_tokens: int = 16384):
        """`cache_tokens`: KV-cache room shared by all requests in flight (prompts plus answers)."""
        # Non-neutral defaults make transformers build the temperature/top-p/top-k processors; requests override them.
        config = GenerationConfig(do_sample=True, temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=2048,
                                  eos_token_id=sorted(eos_ids), pad_token_id=pad_id)
        self.vocab_size = model.config.get_text_config().vocab_size
        self.alternatives = BatchedAlternatives()
        # synchronous batching: the presence penalty reads each request's answer as of the step it processes
        self._start = lambda: _with_our_processors(model.init_continuous_batching(
            generation_config=config, continuous_batching_config=ContinuousBatchingConfig(
                per_request_processors=True, num_blocks=cache_tokens // PAGE, page_size=PAGE, max_batch_tokens=512,
                use_async_batching=False)), self.alternatives)
        self.manager = self._start()
        self.manager.start()
        self.restarts, self.peak_busy, self.last_failure, self.last_failure_at = 0, 0, None, None
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._closed = threading.Event()
        self._dispatcher = threading.Thread(target=self._dispatch, name="batch-dispatch", daemon=True)
        self._dispatcher.start()

    @staticmethod
    def supports(sampling: SamplingParams) -> bool:
        """Whether the batch reproduces these settings exactly (`supports`); the others run `generate` alone."""
        return supports(sampling)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def state(self) -> dict:
        """Requests in the batch (and the most at once), restarts of its loop, the last failure."""
        return {"busy": self.in_flight, "peak_busy": self.peak_busy, "restarts": self.restarts, "last_failure": self.last_failure,
                "last_failure_at": self.last_failure_at}

    def run(self, prompt_ids: list[int], sampling: SamplingParams, max_new_tokens: int, eos_ids: list[int],
            streamer, flags, recorder: TokenRecorder | None = None, speculation=None) -> list[int]:
        """Generate for one request, putting its tokens to `streamer` (the caller ends it) and each step's
        alternatives to `recorder` when given; blocks until it ends or a flag is set. Returns the new ids. A request
        with drafts never comes here (a step gives one row of logits per request): the engine runs it alone."""
        if speculation is not None:
            raise ValueError("the continuous batch checks no drafts: run this request alone (transformers_drafts.py)")
        request_id = f"r{next(self._ids)}"
        pending = _Pending(streamer, tuple(flags))
        with self._lock:
            if not self.manager.is_running():  # a failure killed the loop: the next request gets a fresh one
                self.restarts, self.last_failure, self.last_failure_at = self.restarts + 1, self._loop_error(), time.time()
                self.manager = self._start()
                self.manager.start()
            self._pending[request_id] = pending
            self.peak_busy = max(self.peak_busy, len(self._pending))
        if recorder is not None:
            self.alternatives.watch(request_id, recorder)
        try:
            added = self.manager.add_request(prompt_ids, request_id=request_id, max_new_tokens=max_new_tokens, streaming=True,
                                             eos_token_id=eos_ids, **per_request_kwargs(sampling, self.vocab_size))
            if added is None:
                raise RuntimeError("the batching loop is not accepting requests")
            while not pending.done.wait(_POLL_S):
                if any(f.is_set() for f in flags):
                    break
                if self._closed.is_set() or not self.manager.is_running():
                    if not pending.done.wait(_HANDOVER_S):  # the dispatcher may still be handing over this request's own error
                        raise RuntimeError(self._loop_error())
                    break
            if any(f.is_set() for f in flags) and not pending.finished:
                self.manager.cancel_request(request_id)
            if pending.error:
                raise RuntimeError(pending.error)
            return list(pending.ids)
        finally:
            self.alternatives.forget(request_id)
            with self._lock:
                self._pending.pop(request_id, None)

    def _dispatch(self) -> None:
        while not self._closed.is_set():
            result = self.manager.get_result(timeout=0.1)
            if result is None:
                if not self.manager.is_running():
                    self._closed.wait(0.1)  # returns at once while the loop is down: don't spin
                continue
            with self._lock:
                pending = self._pending.get(result.request_id)
            if pending is None:  # cancelled: nobody listens any more
                continue
            if any(f.is_set() for f in pending.flags):  # Stop takes effect at the next token, not at the next poll
                pending.done.set()
                continue
            new = result.generated_tokens[len(pending.ids):]  # results carry every token so far
            if new:
                pending.ids.extend(new)
                pending.streamer.put(torch.tensor(new))
            if result.error:
                pending.error = result.error
            if result.is_finished():
                pending.finished = True
                pending.done.set()

    def _loop_error(self) -> str:
        fatal = self.manager.background_thread_status.fatal_error
        return f"the batching loop stopped ({type(fatal).__name__}: {fatal})" if fatal else "the batching loop stopped"

    def close(self) -> None:
        self._closed.set()
        self.manager.stop(block=True, timeout=5, hard_stop=True)
