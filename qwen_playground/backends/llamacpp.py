"""The llama.cpp engine: local text models from GGUF files, at a CPU's memory-bandwidth limit.

Decoding one token reads every weight once, so on a CPU the speed is memory
bandwidth over weight bytes; llama.cpp reads BF16 or packed 8-/4-bit blocks
with kernels made for that (bench/run.py measures the share of the limit).

The glass box stays whole because this engine only turns token ids into token
ids: the app applies the chat template and tokenizes (`encoding.py`, the same
ids the inspector shows), and decodes, splits thoughts, applies the thinking
budget and counts (`local.py`). Sampling is llama.cpp's (top-k, top-p, min-p,
then temperature); the repetition and presence penalties and the "why this
token?" record run as the transformers engine's logits processors on
llama.cpp's logits, in the same order, so both engines mean the same by them.
`LlamaCppRunner.run` has the continuous batch's contract, so `local.py` runs
either. One request at a time per model; the others wait their turn.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import torch
from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

from ..core.generation import SamplingParams
from .alternatives import RecordAlternatives, TokenRecorder
from .presence import PresencePenalty


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


_params_lock = threading.Lock()


@contextmanager
def _model_params(**fields):
    """llama-cpp-python's `Llama` sets only some of llama.cpp's model parameters; these `fields` apply to the models
    built inside this block (by the defaults `Llama` starts from)."""
    from llama_cpp import llama_cpp as library

    default = library.llama_model_default_params

    def params():
        built = default()
        for name, value in fields.items():
            setattr(built, name, value)
        return built

    with _params_lock:
        library.llama_model_default_params = params
        try:
            yield
        finally:
            library.llama_model_default_params = default


def sampler_options(sampling: SamplingParams) -> dict:
    """llama.cpp's sampler settings; temperature 0 is greedy. Penalties are ours (`logits_processors`)."""
    options = {"repeat_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}
    if sampling.temperature == 0:
        return options | {"temp": 0.0}
    return options | {"temp": sampling.temperature, "top_k": sampling.top_k, "top_p": sampling.top_p, "min_p": sampling.min_p}


def logits_processors(sampling: SamplingParams, prompt_length: int, recorder: TokenRecorder | None) -> LogitsProcessorList:
    """The transformers engine's penalties and recorder, in its order: repetition (prompt included), presence (the
    answer only), then the record of what the model wanted."""
    processors = LogitsProcessorList()
    if sampling.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(sampling.repetition_penalty))
    if sampling.presence_penalty:
        processors.append(PresencePenalty(sampling.presence_penalty, prompt_length))
    if recorder is not None:
        processors.append(RecordAlternatives(recorder, prompt_length))
    return processors


def _on_numpy(processors: LogitsProcessorList):
    """`processors` as llama-cpp-python calls a logits processor: (every id so far, this step's logits) as arrays."""
    def apply(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        ids = torch.from_numpy(np.asarray(input_ids, dtype=np.int64))[None]
        return processors(ids, torch.from_numpy(np.ascontiguousarray(scores))[None])[0].numpy()

    return apply


class LlamaCppRunner:
    """One GGUF model loaded into llama.cpp with a context of `context_tokens` (prompt and answer together)."""

    def __init__(self, path: Path, context_tokens: int):
        from llama_cpp import Llama

        cores = threads()
        self.path = path
        with _model_params(use_extra_bufts=not repacking_crashes()):
            self.llama = Llama(str(path), n_ctx=context_tokens, n_batch=512, n_threads=cores, n_threads_batch=cores, verbose=False)
        self.context_tokens = self.llama.n_ctx()
        self._lock = threading.Lock()
        # freed before interpreter shutdown tears down the modules its own finalizer needs (else a TypeError at exit)
        weakref.finalize(self, self.llama.close)

    @staticmethod
    def supports(sampling: SamplingParams) -> bool:
        """Every setting is honoured here."""
        return True

    def run(self, prompt_ids: list[int], sampling: SamplingParams, max_new_tokens: int, eos_ids: list[int],
            streamer, flags, recorder: TokenRecorder | None = None) -> list[int]:
        """Generate for one request, putting each token to `streamer` (the caller ends it) and each step's
        alternatives to `recorder` when given; ends at an end-of-turn id, after `max_new_tokens`, or at the next
        token once a flag is set. Returns the new ids. Waits while another request holds the model."""
        room = self.context_tokens - len(prompt_ids)
        if room <= 0:
            raise RuntimeError(f"the prompt ({len(prompt_ids)} tokens) fills the engine's context of {self.context_tokens} tokens")
        processors = logits_processors(sampling, len(prompt_ids), recorder)
        stop, limit, ids = set(eos_ids), min(max_new_tokens, room), []
        with self._lock:
            if any(f.is_set() for f in flags):
                return ids
            tokens = self.llama.generate(prompt_ids, logits_processor=[_on_numpy(processors)] if processors else None,
                                         **sampler_options(sampling))
            for token in tokens:
                ids.append(int(token))
                streamer.put(torch.tensor([token]))
                if token in stop or len(ids) >= limit or any(f.is_set() for f in flags):
                    break
        return ids

    def close(self) -> None:
        with self._lock:
            self.llama.close()
