"""The llama.cpp engine: text to the families it runs, from GGUF files, on a CPU at its memory-bandwidth limit.

The runner (`llamacpp.LlamaCppRunner`) turns token ids into token ids for
many users at once; the tokenizer and chat template stay transformers' (from
the model's own files), so both engines see the same ids.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, GenerationConfig

from ...core.config import Settings
from ...core.generation import SamplingParams
from ...core.registry import ModelSpec
from .. import engines, gguf_files, llamacpp
from ..alternatives import TokenRecorder
from ..engines import LLAMA_CPP
from ..precision import GGUF_TYPES, bytes_per_param, unavailable_reason
from ..speculative import Speculation
from .engine import LoadedModel, Report, eos_ids_of, run_on_runner

ANSWER_ROOM = 4096  # llama.cpp's context holds the longest prompt accepted plus this many answer tokens (Qwen's thinking presets)


class LlamaCppEngine:
    name = LLAMA_CPP

    def __init__(self, settings: Settings, device: str, dtype: torch.dtype):
        self.settings, self.device = settings, device  # its weights' precision is the GGUF file's

    @staticmethod
    def here(settings: Settings, device: str) -> bool:
        """Where asked for (by default on a CPU) and its library loads."""
        return engines.text_engine(settings.engine, device) == LLAMA_CPP

    def runs(self, spec: ModelSpec, has_media: bool) -> bool:
        """Text to a family it has a GGUF recipe for; images need the vision tower, a LoRA is merged into transformers
        weights."""
        return spec.family.gguf is not None and not spec.adapter and not has_media

    def unavailable(self, spec: ModelSpec, precision: str) -> str | None:
        if reason := unavailable_reason(precision, self.device, llama_cpp=True):
            return f"{precision} weights are unavailable on {self.device}: {reason}. Choose another precision."
        return None

    def estimate_bytes(self, spec: ModelSpec, precision: str) -> int:
        """Its weights, and at most its shared KV cache's budget."""
        return int(spec.params_b * 1e9 * bytes_per_param(precision, 2, gguf=True)) + int(self.settings.llama_cpp_cache_gb * 2**30)

    def converts_first(self, spec: ModelSpec, precision: str) -> bool:
        return gguf_files.converts_first(spec, precision, self.settings.cache_dir)

    def load(self, spec: ModelSpec, precision: str, report: Report) -> tuple[LoadedModel, int]:
        """The model's GGUF file in llama.cpp, with its own tokenizer and template from the transformers files."""
        start = time.perf_counter()
        path, folder = gguf_files.fetch(spec, precision, self.settings.cache_dir, report)
        report(f"Loading {spec.id} into llama.cpp ({GGUF_TYPES[precision]}, {llamacpp.threads()} threads)…")
        tokenizer = AutoTokenizer.from_pretrained(folder)
        try:
            generation_config = GenerationConfig.from_pretrained(folder)
        except OSError:  # no generation_config.json: the tokenizer's end-of-turn alone
            generation_config = GenerationConfig()
        try:
            runner = llamacpp.LlamaCppRunner(path, min(spec.context_length, self.settings.max_input_tokens + ANSWER_ROOM),
                                             slots=self.settings.concurrency if self.settings.batching else 1,
                                             cache_bytes=int(self.settings.llama_cpp_cache_gb * 2**30),
                                             hybrid_drafts=self.settings.llama_cpp_hybrid_drafts)
        except ValueError as e:  # llama.cpp refuses a file it cannot read; its reason went to its log
            raise RuntimeError(f"llama.cpp could not read {path} ({e}). The file is corrupt, truncated or not a GGUF model: "
                               "delete it to have it downloaded or converted again") from None
        loaded = LoadedModel(None, tokenizer, time.perf_counter() - start, eos_ids_of(generation_config, tokenizer), runner=runner,
                             context_tokens=runner.context_tokens, weights_bytes=path.stat().st_size)
        return loaded, loaded.weights_bytes + runner.cache_bytes  # the KV cache is allocated whole at load

    def generate(self, loaded: LoadedModel, inputs: dict, sampling: SamplingParams, max_new_tokens: int, stop_ids: list[int],
                 recorder: TokenRecorder | None, answer_start: int, streamer, flags, speculation: Speculation | None = None) -> list[int]:
        return run_on_runner(loaded, inputs, sampling, max_new_tokens, stop_ids, recorder, streamer, flags, speculation)

    def drafter(self, draft: LoadedModel) -> Path:
        """A draft model runs inside the target's runner, from its own file (`llamacpp_draft.py`)."""
        return draft.runner.path
