"""A draft model inside the llama.cpp engine's continuous batch: its guesses for every answer that asked, in one
decode per guessed position.

The target's runner keeps one `DraftContext` per draft model file: the
draft's weights (opened from the same GGUF file the draft model was loaded
from, so the pages are shared, not copied) and a context with one sequence
per target slot. Before guessing, each sequence is brought to its answer's
tokens so far: what it already holds is kept up to where it differs (its own
rejected guesses are cut off; a hybrid draft's recurrent state goes back through
the snapshots it keeps), and only the rest is evaluated. Guesses are
greedy: the draft's most likely token, which the target's check
(`speculative.verify`) keeps only where the target chose it too.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np

from ..core.generation import MAX_DRAFT_TOKENS
from .llamacpp import BATCH_TOKENS
from .speculative import common_prefix


class DraftContext:
    def __init__(self, path: Path, sequences: int, cells: int, threads: int, use_extra_bufts: bool, snapshots: bool = False):
        from llama_cpp import _internals as internals
        from llama_cpp import llama_cpp as library

        self.path, self._library = path, library
        params = library.llama_model_default_params()
        params.use_extra_bufts = use_extra_bufts
        self._model = internals.LlamaModel(path_model=str(path), params=params, verbose=False)
        hybrid = library.llama_model_is_recurrent(self._model.model) or library.llama_model_is_hybrid(self._model.model)
        context = library.llama_context_default_params()
        context.n_ctx, context.n_batch, context.n_ubatch = cells, BATCH_TOKENS, BATCH_TOKENS
        # a hybrid draft (Qwen3.5-0.8B) keeps snapshots of its recurrent state to cut its rejected guesses off where the
        # host allows them; without, it evaluates its sequence again from the start (`_catch_up`)
        context.n_seq_max, context.kv_unified, context.n_rs_seq = sequences, True, MAX_DRAFT_TOKENS + 1 if hybrid and snapshots else 0
        context.n_threads = context.n_threads_batch = threads
        self._context = internals.LlamaContext(model=self._model, params=context, verbose=False)
        self._batch = internals.LlamaBatch(n_tokens=BATCH_TOKENS, embd=0, n_seq_max=1, verbose=False)
        self.n_vocab = self._model.n_vocab()
        self._held: dict[int, list[int]] = {}  # what each sequence's cache holds
        # freed before interpreter shutdown tears down what their own finalizers need (as the runner's)
        weakref.finalize(self, DraftContext._free, self._batch, self._context, self._model)

    def propose(self, wanted: dict[int, tuple[list[int], int]]) -> dict[int, list[int]]:
        """Greedy guesses: for each sequence, (the answer's tokens so far, how many guesses) -> the guesses."""
        wanted = {seq: (tokens, k) for seq, (tokens, k) in wanted.items() if k > 0 and max(tokens) < self.n_vocab}
        last = self._catch_up({seq: tokens for seq, (tokens, _) in wanted.items()})
        guesses: dict[int, list[int]] = {seq: [] for seq in wanted}
        while last:
            for seq, row in last.items():
                guesses[seq].append(int(np.argmax(row)))
            more = {seq: [guesses[seq][-1]] for seq in last if len(guesses[seq]) < wanted[seq][1]}
            last = self._evaluate(more) if more else {}
        return guesses

    def close(self) -> None:
        DraftContext._free(self._batch, self._context, self._model)

    @staticmethod
    def _free(*parts) -> None:
        for part in parts:
            part.close()

    def _catch_up(self, contexts: dict[int, list[int]]) -> dict[int, np.ndarray]:
        """Bring each sequence to its tokens but the last, then evaluate the last: its logits row per sequence."""
        todo = {}
        for seq, tokens in contexts.items():
            held = self._held.setdefault(seq, [])
            keep = min(common_prefix(held, tokens), len(tokens) - 1)
            if keep < len(held):
                if not self._library.llama_memory_seq_rm(self._context.memory, seq, keep, -1):  # a recurrent state: whole or nothing
                    self._library.llama_memory_seq_rm(self._context.memory, seq, -1, -1)
                    keep = 0
                del held[keep:]
            todo[seq] = tokens[keep:]
        rows: dict[int, np.ndarray] = {}
        while todo:  # in chunks of one batch, every sequence's rest in turn
            chunk, room = {}, BATCH_TOKENS
            for seq, rest in list(todo.items()):
                if room <= 0:
                    break
                chunk[seq], todo[seq] = rest[:room], rest[room:]
                room -= len(chunk[seq])
                if not todo[seq]:
                    del todo[seq]
            rows |= {seq: row for seq, row in self._evaluate(chunk, only_ends={s for s in chunk if s not in todo}).items()}
        return rows

    def _evaluate(self, tokens: dict[int, list[int]], only_ends: set[int] | None = None) -> dict[int, np.ndarray]:
        """One decode of each sequence's `tokens`; the logits after the last of each (of those in `only_ends`)."""
        batch, rows = self._batch.batch, []
        batch.n_tokens = 0
        for seq, chunk in tokens.items():
            held = self._held[seq]
            for i, token in enumerate(chunk):
                n, last = batch.n_tokens, i == len(chunk) - 1 and (only_ends is None or seq in only_ends)
                batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.logits[n] = token, len(held), 1, last
                batch.seq_id[n][0] = seq
                batch.n_tokens = n + 1
                held.append(token)
                if last:
                    rows.append(seq)
        code = self._library.llama_decode(self._context.ctx, batch)
        if code != 0:
            self._library.llama_memory_clear(self._context.memory, True)
            self._held.clear()
            raise RuntimeError(f"the draft model's llama_decode returned {code}")
        logits = np.ctypeslib.as_array(self._library.llama_get_logits(self._context.ctx), shape=(len(rows), self.n_vocab))
        return {seq: logits[i].copy() for i, seq in enumerate(rows)}
