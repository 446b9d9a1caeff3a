"""The llama.cpp engine: local text models from GGUF files, at a CPU's memory-bandwidth limit.

Decoding one token reads every weight once, so on a CPU the speed is memory
bandwidth over weight bytes; llama.cpp reads BF16 or packed 8-/4-bit blocks
with kernels made for that (bench/run.py measures the share of the limit).

The glass box stays whole because this engine only turns token ids into token
ids: the app applies the chat template and tokenizes (`encoding.py`, the same
ids the inspector shows), and decodes, splits thoughts, applies the thinking
budget and counts (`local/turn.py`). The repetition and presence penalties and the
"why this token?" record run as the transformers engine's logits processors on
llama.cpp's logits, and the token is drawn as transformers draws it
(`sampling.py`), so both engines mean the same by every setting.

Several users at once: llama.cpp decodes a batch of sequences in one step, so
`LlamaCppRunner` keeps one loop per model that advances every running answer
by a token per step and feeds new prompts in beside them (continuous
batching, in this process: no second copy of the weights, no server to
build or babysit). `LlamaCppRunner.run` has the transformers continuous
batch's contract: both are a `Runner` (`local/engine.py`).
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import torch
from transformers import LogitsProcessorList

from ..core.generation import MAX_DRAFT_TOKENS, SamplingParams
from .alternatives import TokenRecorder
from .processors import logits_processors
from .sampling import choose
from .speculative import Speculation, common_prefix, verify

log = logging.getLogger(__name__)


def apart(fn, *args):
    """`fn(*args)` on a thread that ends with it, for torch work outside generation (timing, image processing).

    torch and llama.cpp share one OpenMP runtime, which gives each thread that runs parallel work a pool of helper
    threads for as long as that thread lives; with more of them than cores, OpenMP stops spinning between parallel
    regions and every llama.cpp step waits for threads to wake (measured: 19.2 tok/s before a vision request on a
    long-lived server thread, 13.4 after). Raises what `fn` raised."""
    outcome: dict = {}

    def work():
        try:
            outcome["value"] = fn(*args)
        except BaseException as e:  # handed to the caller's thread
            outcome["error"] = e

    worker = threading.Thread(target=work, name="torch-apart")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def threads() -> int:
    """Physical cores: decode is bandwidth-bound, and hyper-threads only fight over the same memory channels."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@functools.cache
def repacking_crashes() -> bool:
    """Whether this CPU has AMX: there llama.cpp's AMX weight repacking (an "extra buffer type") crashes the process at
    the first decode of Q8_0 and Q4_K_M weights (llama-cpp-python 0.3.36, measured on a Sapphire Rapids VM), so it is
    switched off; plain CPU kernels decode the same weights."""
    import llama_cpp

    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


class EngineFailed(RuntimeError):
    """The engine failed under a request (what it wrote stays with the caller) and started over; its message is for
    the person who asked."""


BATCH_TOKENS = 512  # tokens in one decode step (llama.cpp's batch)
PREFILL_SHARED = 256  # prompt tokens per step while others are answering: their streams keep moving (8 short prompts fit)
_POLL_S = 0.05  # how often a waiting request looks at its stop flags


@dataclass(eq=False)
class _Job:
    """One request in the engine: its prompt, settings, and where its tokens go."""
    prompt: list[int]
    sampling: SamplingParams
    limit: int  # new tokens at most
    stop: frozenset[int]
    streamer: object  # put(tensor) per token; the caller ends it
    flags: tuple  # once one is set, not one more token
    processors: LogitsProcessorList
    speculation: Speculation | None = None  # drafts asked for (None: one token per step)
    ids: list[int] = field(default_factory=list)
    fed: int = 0  # prompt tokens already in the slot's cache
    next_token: int | None = None  # chosen, not yet in the cache
    drafts: list[int] = field(default_factory=list)  # guesses in this step's batch after `next_token`
    error: Exception | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def reserve(self) -> int:
        """Cache cells this request may fill: its prompt and its longest answer."""
        return len(self.prompt) + self.limit

    def ends(self, token: int) -> bool:
        """Whether `token` (just added to `ids`) is the answer's last."""
        return token in self.stop or len(self.ids) >= self.limit or self.stopped()

    def stopped(self) -> bool:
        return any(f.is_set() for f in self.flags)


@dataclass(eq=False)
class _Slot:
    """One sequence of llama.cpp's cache; what it holds stays after its request ends, for the next one to reuse."""
    seq: int
    tokens: list[int] = field(default_factory=list)  # what its cache holds, in order
    job: _Job | None = None
    used_at: float = 0.0


def kv_bytes_per_token(metadata: dict[str, str], per_layer_kv_heads: list[int] | None = None) -> int:
    """The KV cache's bytes per token (16-bit keys and values), from the GGUF's metadata: only the layers that attend
    keep one. A hybrid (Qwen3.5, Qwen3.6's mixture of experts) attends in every `full_attention_interval`-th layer, or
    lists its KV heads per layer (0 for a linear-attention layer), which llama.cpp's metadata gives as "arr[i32,n]":
    `per_layer_kv_heads` is that array read from the file (`gguf_array`); without it, every head in every layer is
    counted (more, never less)."""
    arch = metadata.get("general.architecture", "")

    def number(key: str, default: int = 0) -> int:
        try:
            return int(metadata.get(f"{arch}.{key}", default))
        except ValueError:  # a per-layer array
            return default

    heads = number("attention.head_count", 1) or 1
    head_dim = number("attention.key_length") or number("embedding_length") // heads
    if per_layer_kv_heads is not None:
        return 2 * 2 * head_dim * sum(per_layer_kv_heads)
    attending = number("block_count") // max(1, number("full_attention_interval", 1))
    return 2 * 2 * attending * number("attention.head_count_kv", heads) * head_dim


def recurrent_bytes_per_sequence(metadata: dict[str, str]) -> int:
    """A hybrid's recurrent state per sequence (32-bit, allocated for every slot whatever its length): in each
    linear-attention layer a convolution window, (conv_kernel - 1) x (inner + 2 x groups x state), and the state,
    state x inner (llama.cpp's n_embd_r and n_embd_s). 0 for a model without one."""
    arch = metadata.get("general.architecture", "")
    number = lambda key: int(metadata.get(f"{arch}.{key}", 0) or 0)  # noqa: E731
    interval, inner = number("full_attention_interval"), number("ssm.inner_size")
    if not inner:
        return 0
    layers = number("block_count")
    recurrent = layers - layers // interval if interval else layers
    conv, groups, state = number("ssm.conv_kernel"), number("ssm.group_count"), number("ssm.state_size")
    return 4 * recurrent * (max(0, conv - 1) * (inner + 2 * groups * state) + state * inner)


def gguf_array(path: Path, key: str) -> list[int] | None:
    """A per-layer array from a GGUF file's header (llama.cpp's metadata names arrays without their values)."""
    import gguf  # comes with llama.cpp's converter

    field = gguf.GGUFReader(str(path)).fields.get(key)
    contents = field.contents() if field is not None else None
    return [int(v) for v in contents] if isinstance(contents, list) else None


class LlamaCppRunner:
    """One GGUF model in llama.cpp serving several requests at once: one decode step advances every answer.

    `slots` requests run together, each in its own sequence of one shared cache of `cache_tokens` cells
    (unified: a short chat leaves room for a long one); a request is admitted when a slot is free and its prompt and
    longest answer fit, in order of arrival, so nobody is starved. A new prompt goes in beside the running answers,
    in chunks of `PREFILL_SHARED` tokens while others are answering. A finished request's cache stays in its slot,
    and the next request whose prompt starts the same way (the same conversation, one turn on) reuses it; a prompt
    that starts like one in another slot (a class's shared system prompt) shares those cache cells.

    A failed decode step ends the requests in it with the reason, what they wrote kept, and the engine starts over
    with an empty cache (counted in `state()["restarts"]`); the next request runs as usual.
    """

    def __init__(self, path: Path, context_tokens: int, slots: int = 8, cache_bytes: int = 2 * 2**30, hybrid_drafts: bool = False):
        """`context_tokens`: one request's prompt and answer together; `cache_bytes`: the shared KV cache's budget (it
        holds at least one full context, at most one per slot); `hybrid_drafts`: a hybrid keeps the snapshots drafts need."""
        from llama_cpp import _internals as internals
        from llama_cpp import llama_cpp as library

        self.path, self.context_tokens = path, context_tokens
        params = library.llama_model_default_params()
        params.use_extra_bufts = not repacking_crashes()
        self._model = internals.LlamaModel(path_model=str(path), params=params, verbose=False)
        slots = max(1, min(slots, library.llama_max_parallel_sequences()))
        metadata = self._model.metadata()
        kv_heads_key = f"{metadata.get('general.architecture', '')}.attention.head_count_kv"
        per_layer = gguf_array(path, kv_heads_key) if metadata.get(kv_heads_key, "").startswith("arr[") else None
        per_token = max(1, kv_bytes_per_token(metadata, per_layer))
        hybrid = library.llama_model_is_recurrent(self._model.model) or library.llama_model_is_hybrid(self._model.model)
        # a recurrent state cannot be cut at any position: where asked, it keeps snapshots of its last positions, so that
        # guesses the model rejected can be cut off (speculative decoding), at the cost of that many more states per slot
        snapshots = MAX_DRAFT_TOKENS + 1 if hybrid and hybrid_drafts else 0
        recurrent = slots * recurrent_bytes_per_sequence(metadata) * (1 + snapshots)  # every slot's, whatever the cache holds
        cache_tokens = max(context_tokens, min(slots * context_tokens, max(0, cache_bytes - recurrent) // per_token))
        cores = threads()
        context = library.llama_context_default_params()
        context.n_ctx, context.n_batch, context.n_ubatch = cache_tokens, BATCH_TOKENS, BATCH_TOKENS
        context.n_seq_max, context.kv_unified, context.n_rs_seq = slots, True, snapshots
        context.n_threads = context.n_threads_batch = cores
        self._context = internals.LlamaContext(model=self._model, params=context, verbose=False)
        # where llama.cpp keeps no snapshots for this architecture, a request asking for drafts answers without them
        kept = library.llama_n_rs_seq(self._context.ctx)
        recurrent = recurrent * (1 + kept) // (1 + snapshots)  # what llama.cpp allocated (it keeps none for some architectures)
        self.drafts_refused = "" if not hybrid or kept >= MAX_DRAFT_TOKENS + 1 else (
            "no drafts: this hybrid model's recurrent state cannot be cut back to a rejected guess on llama.cpp here "
            + ("(llama.cpp keeps no snapshots for its architecture)" if hybrid_drafts else
               "without snapshots of it, which the host turns on with llama_cpp_hybrid_drafts (docs/performance.md)"))
        self._draft_contexts: dict[Path, object] = {}  # llamacpp_draft.DraftContext per draft model file
        self._hybrid_drafts = hybrid_drafts
        self._draft_lock = threading.Lock()
        self._batch = internals.LlamaBatch(n_tokens=BATCH_TOKENS, embd=0, n_seq_max=1, verbose=False)
        self._library, self.n_vocab = library, self._model.n_vocab()
        self.cache_tokens = self._context.n_ctx()
        self.cache_bytes = self.cache_tokens * per_token + recurrent  # allocated whole when the context is made
        self._slots = [_Slot(seq) for seq in range(slots)]
        self._queue: deque[_Job] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._rng = np.random.default_rng()
        self.steps = self.restarts = self.peak_busy = self.prompt_reused = self.prompt_evaluated = self.guessed = self.guesses_kept = 0
        # a recurrent state (Qwen3.5's linear attention) cannot be cut at any position and shared: each slot keeps its own
        self._shares_prefixes = not hybrid
        self.last_failure: str | None = None
        self.last_failure_at: float | None = None  # time.time()
        self._loop = threading.Thread(target=self._serve, name=f"llama.cpp-{path.stem}", daemon=True)
        self._loop.start()
        # freed before interpreter shutdown tears down the modules their own finalizers need (else a TypeError at exit)
        weakref.finalize(self, LlamaCppRunner._free, self._batch, self._context, self._model)

    @staticmethod
    def supports(sampling: SamplingParams) -> bool:
        """Every setting is honoured here."""
        return True

    def run(self, prompt_ids: list[int], sampling: SamplingParams, max_new_tokens: int, eos_ids: list[int],
            streamer, flags, recorder: TokenRecorder | None = None, speculation: Speculation | None = None) -> list[int]:
        """Generate for one request, putting each token to `streamer` (the caller ends it) and each step's
        alternatives to `recorder` when given, with guesses checked in each step when `speculation` asks (its
        `drafter`: a draft model's GGUF path, None for prompt lookup); ends at an end-of-turn id, after
        `max_new_tokens`, or at the next token once a flag is set. Returns the new ids; raises with the reason when
        the engine failed mid-answer (the tokens already streamed stay with the caller)."""
        room = self.context_tokens - len(prompt_ids)
        if room <= 0:
            raise RuntimeError(f"the prompt ({len(prompt_ids)} tokens) fills the engine's context of {self.context_tokens} tokens")
        if not prompt_ids or max(prompt_ids) >= self.n_vocab or min(prompt_ids) < 0:
            raise RuntimeError(f"the prompt holds token ids outside this model's vocabulary of {self.n_vocab}")
        if speculation is not None and self.drafts_refused and not speculation.forced:  # a forced answer is never cut back
            speculation = speculation.refuse(self.drafts_refused)
        if speculation is not None and speculation.drafter is not None:
            try:
                self._draft_context(speculation.drafter)  # opened here, not in the loop every answer waits on
            except Exception as e:
                speculation = speculation.refuse(f"the draft model could not run beside this one ({e}), so it answered without drafts")
        job = _Job(list(prompt_ids), sampling, min(max_new_tokens, room), frozenset(eos_ids), streamer, tuple(flags),
                   logits_processors(sampling, len(prompt_ids), recorder), speculation)
        with self._wake:
            if self._closed:
                raise RuntimeError("the model was unloaded")
            self._queue.append(job)
            self._wake.notify()
        while not job.done.wait(_POLL_S):
            if job.stopped():
                with self._wake:
                    if job in self._queue:  # never started: withdrawn at once
                        self._queue.remove(job)
                        job.done.set()
                    self._wake.notify()
            if not self._loop.is_alive() and not job.done.is_set():
                self._revive()
        if job.error:
            raise job.error
        return list(job.ids)

    def state(self) -> dict:
        """What the engine is doing: slots busy (and the most at once), requests waiting, cache use, decode steps, drafts'
        guesses checked and kept, restarts."""
        with self._wake:
            return {"slots": len(self._slots), "busy": sum(s.job is not None for s in self._slots), "waiting": len(self._queue),
                    "peak_busy": self.peak_busy, "cache_tokens": self.cache_tokens, "cached_tokens": sum(len(s.tokens) for s in self._slots),
                    "prompt_tokens_reused": self.prompt_reused, "prompt_tokens_evaluated": self.prompt_evaluated,
                    "steps": self.steps, "guessed": self.guessed, "guesses_kept": self.guesses_kept, "restarts": self.restarts,
                    "last_failure": self.last_failure, "last_failure_at": self.last_failure_at}

    def cached(self) -> list[list[int]]:
        """Each slot's cached token ids (what llama.cpp evaluated for it)."""
        with self._wake:
            return [list(s.tokens) for s in self._slots]

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._loop.join(timeout=30)
        if not self._loop.is_alive():
            LlamaCppRunner._free(*self._draft_contexts.values(), self._batch, self._context, self._model)

    @staticmethod
    def _free(*parts) -> None:
        for part in parts:
            part.close()

    # ---- the engine's own thread -------------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            running: list[_Slot] = []
            try:
                with self._wake:
                    while not self._closed and not self._admit() and not any(s.job for s in self._slots):
                        self._wake.wait(_POLL_S if self._queue else None)
                    if self._closed:
                        self._end_all()
                        return
                    running = [s for s in self._slots if s.job]
                self._step(running)
            except Exception as e:  # a failed step: its requests end with the reason, the engine starts over
                log.exception("The llama.cpp engine failed on %s; starting over", self.path.name)
                self._start_over([s for s in self._slots if s.job], f"{type(e).__name__}: {e}")

    def _end_all(self) -> None:
        """The model is being unloaded: every request ends, what it wrote kept. Holding `_wake`."""
        for job in [*self._queue, *(s.job for s in self._slots if s.job)]:
            job.error = job.error or EngineFailed("The model was unloaded while answering (another model needed its memory): "
                                                  "what was written stays; send again.")
            job.done.set()
        self._queue.clear()

    def _revive(self) -> None:
        """The loop thread is gone (it never should be): its requests end with a message, and a new loop serves on."""
        with self._wake:
            if self._loop.is_alive() or self._closed:
                return
            self._start_over([s for s in self._slots if s.job], "its loop stopped")
            self._loop = threading.Thread(target=self._serve, name=self._loop.name, daemon=True)
            self._loop.start()

    def _admit(self) -> bool:
        """Start waiting requests in order of arrival while a slot is free and their cells fit. Holding `_wake`."""
        admitted = False
        while self._queue:
            job = self._queue[0]
            if job.stopped():
                self._queue.popleft().done.set()
                continue
            free = [s for s in self._slots if s.job is None]
            if not free:
                break
            slot = max(free, key=lambda s: (common_prefix(s.tokens, job.prompt), -s.used_at))
            busy = sum(s.job.reserve for s in self._slots if s.job)
            idle = sorted((s for s in free if s is not slot and s.tokens), key=lambda s: s.used_at)
            while idle and busy + job.reserve + sum(len(s.tokens) for s in [slot, *idle]) > self.cache_tokens:
                self._forget(idle.pop(0), 0)  # the least recently used cached conversation makes room
            if busy + job.reserve > self.cache_tokens:
                break  # waits for running answers to end
            try:
                reuse = min(common_prefix(slot.tokens, job.prompt), len(job.prompt) - 1)  # the last prompt token gives logits
                job.fed = self._forget(slot, reuse)
                if self._shares_prefixes:
                    self._borrow_prefix(slot, job)
            except Exception as e:  # this request cannot start: it alone ends, the line moves on
                log.exception("The llama.cpp engine could not start a request on %s", self.path.name)
                self._forget(slot, 0)
                job.error = EngineFailed(f"The llama.cpp engine could not start this answer ({type(e).__name__}: {e}); send again.")
                self._queue.popleft().done.set()
                continue
            self.prompt_reused += job.fed
            self.prompt_evaluated += len(job.prompt) - job.fed
            slot.job, admitted = self._queue.popleft(), True
        return admitted

    def _borrow_prefix(self, slot: _Slot, job: _Job) -> None:
        """Start `slot` from the longest beginning of `job`'s prompt that any other slot holds (a class shares its system
        prompt and template): the cache cells are shared, not copied, and only the rest is evaluated."""
        donor = max((s for s in self._slots if s is not slot), key=lambda s: common_prefix(s.tokens, job.prompt), default=None)
        shared = min(common_prefix(donor.tokens, job.prompt), len(job.prompt) - 1) if donor else 0
        if shared > job.fed:
            self._forget(slot, 0)
            self._library.llama_memory_seq_cp(self._context.memory, donor.seq, slot.seq, 0, shared)
            slot.tokens[:] = job.prompt[:shared]
            job.fed = shared

    def _forget(self, slot: _Slot, keep: int) -> int:
        """Drop `slot`'s cache after its first `keep` tokens; returns how many stayed (0 where llama.cpp cannot cut a
        sequence short: a recurrent state is whole or nothing)."""
        if keep < len(slot.tokens) and not self._library.llama_memory_seq_rm(self._context.memory, slot.seq, keep, -1):
            self._library.llama_memory_seq_rm(self._context.memory, slot.seq, -1, -1)
            keep = 0
        del slot.tokens[keep:]
        return keep

    def _step(self, running: list[_Slot]) -> None:
        """One llama.cpp decode: the next token of every answer, and prompt chunks of requests starting."""
        batch, rows = self._batch.batch, []  # rows: the slots whose logits this step gives, in batch order
        batch.n_tokens = 0

        def add(slot: _Slot, token: int, logits: bool) -> None:
            n = batch.n_tokens
            batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.logits[n] = token, len(slot.tokens), 1, logits
            batch.seq_id[n][0] = slot.seq
            batch.n_tokens = n + 1
            slot.tokens.append(token)
            if logits:
                rows.append(slot)

        answering = []
        for slot in running:
            if slot.job.stopped():
                self._finish(slot)
            elif slot.job.next_token is not None:
                answering.append(slot)
        self._guess(answering)
        for slot in answering:
            for token in [slot.job.next_token, *slot.job.drafts]:  # logits after each: the model's own choice there
                add(slot, token, True)
        budget = min(PREFILL_SHARED if answering else BATCH_TOKENS, BATCH_TOKENS - batch.n_tokens)
        for slot in running:
            job = slot.job
            if job is None or job.next_token is not None or budget <= 0:
                continue
            chunk = job.prompt[job.fed:job.fed + budget]
            for i, token in enumerate(chunk):
                add(slot, token, job.fed + i == len(job.prompt) - 1)
            job.fed += len(chunk)
            budget -= len(chunk)
        if not batch.n_tokens:
            return
        code = self._library.llama_decode(self._context.ctx, batch)
        self.steps += 1
        self.peak_busy = max(self.peak_busy, len(running))
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        # one call for every row (they are in batch order): each call into llama.cpp gives up the GIL, and taking it back
        # from a busy server thread can cost a switch interval (5 ms)
        logits = np.ctypeslib.as_array(self._library.llama_get_logits(self._context.ctx), shape=(len(rows), self.n_vocab))
        start = 0
        for slot, group in itertools.groupby(rows):  # a slot's rows are together: its next token's, then one per guess
            count = len(list(group))
            self._choose(slot, logits[start:start + count])
            start += count

    def _guess(self, answering: list[_Slot]) -> None:
        """The guesses each answer that asked for drafts puts in this step (at most its tokens left, and a fair share
        of the batch): prompt lookup's here, a draft model's for all its answers in one decode per guessed position."""
        share = (BATCH_TOKENS - len(answering)) // max(1, len(answering))
        by_draft: dict[Path, list[tuple[_Slot, int]]] = {}
        for slot in answering:
            job = slot.job
            speculation, room = job.speculation, min(share, job.limit - len(job.ids) - 1)
            if speculation is None:
                continue
            if speculation.lookup:
                job.drafts = speculation.guesses(job.prompt, job.ids, room)
            elif (wanted := speculation.wanted(room)) > 0:
                by_draft.setdefault(speculation.drafter, []).append((slot, wanted))
        for path, wanted in by_draft.items():
            try:
                guesses = self._draft_context(path).propose({slot.seq: (slot.job.prompt + slot.job.ids, k) for slot, k in wanted})
            except Exception:  # a failed draft costs its guesses, not the answers
                log.exception("The draft model %s failed; answering without its guesses this step", path.name)
                continue
            for slot, _ in wanted:
                drafts = guesses.get(slot.seq, [])
                slot.job.drafts = drafts[:next((i for i, t in enumerate(drafts) if t >= self.n_vocab), len(drafts))]

    def _draft_context(self, path: Path):
        """The draft model at `path` beside this one: its own context, one sequence per slot (opened once)."""
        from .llamacpp_draft import DraftContext

        with self._draft_lock:
            if path not in self._draft_contexts:
                self._draft_contexts[path] = DraftContext(path, len(self._slots), self.cache_tokens, threads(), not repacking_crashes(),
                                                          self._hybrid_drafts)
            return self._draft_contexts[path]

    def _choose(self, slot: _Slot, rows: np.ndarray) -> None:
        """Pick `slot`'s next token from its rows of this step's logits (with guesses: the model's choice after each,
        kept while it chose the guess), stream them, and end the request when it is done. Rejected guesses are cut
        off the cache."""
        job = slot.job
        drafts, job.drafts = job.drafts, []

        def pick(i: int) -> int:
            row = rows[i]
            if job.processors:
                row = job.processors(torch.tensor([job.prompt + job.ids]), torch.tensor(row[None]))[0].numpy()
            token = job.speculation.choose(len(job.ids), lambda: choose(row, job.sampling, self._rng)) if job.speculation else \
                choose(row, job.sampling, self._rng)
            job.ids.append(token)
            job.streamer.put(torch.tensor([token]))
            return token

        try:
            tokens, accepted = verify(drafts, pick, job.ends)
        except Exception as e:  # this request's own fault (a processor, its streamer): it alone ends
            job.error, tokens, accepted = e, [], 0
        ending = bool(job.error) or job.ends(tokens[-1])
        if drafts:  # where a recurrent state cannot be cut (a stopped forced pass), an ending answer lets its slot go
            keep = len(slot.tokens) - len(drafts) + accepted
            if self._forget(slot, keep) != keep and not ending:
                raise RuntimeError("llama.cpp could not cut rejected guesses off the cache")
        if job.speculation is not None and tokens:
            job.speculation.record(len(drafts), len(tokens), accepted)
            if not job.speculation.forced:  # the Monitor's account of guesses (a scored answer's are not guesses)
                self.guessed, self.guesses_kept = self.guessed + len(drafts), self.guesses_kept + accepted
        if ending:
            self._finish(slot)
        else:
            job.next_token = tokens[-1]

    def _finish(self, slot: _Slot) -> None:
        job, slot.job, slot.used_at = slot.job, None, time.monotonic()
        job.done.set()

    def _start_over(self, running: list[_Slot], reason: str) -> None:
        """End the requests of a failed step with `reason` and empty the cache: the engine is as new."""
        self.restarts += 1
        self.last_failure, self.last_failure_at = reason, time.time()
        self._library.llama_memory_clear(self._context.memory, True)
        with self._wake:
            for slot in self._slots:
                slot.tokens.clear()
            for slot in running:
                if slot.job is not None:
                    slot.job.error = EngineFailed(f"The llama.cpp engine failed mid-answer ({reason}) and started over: what "
                                                  "was written stays; send again.")
                    self._finish(slot)
