"""What an engine is to the local backend: the `Engine` and `Runner` protocols, a loaded model, its cache key.

An engine says which requests it runs, how much memory a model will hold on
it, loads a model, and generates one phase of an answer from prompt ids. A
runner is what some engines keep per loaded model to serve many requests at
once (transformers' continuous batch, llama.cpp's slots). Everything else
about a turn (templates, thinking, the budget, counting, metrics) is the same
on every engine and lives in `turn.py`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

import torch
from transformers import GenerationConfig, PreTrainedTokenizerBase

from ...core.config import Settings
from ...core.generation import SamplingParams
from ...core.registry import ModelSpec
from ..alternatives import TokenRecorder
from ..speculative import Speculation

if TYPE_CHECKING:
    from transformers import ProcessorMixin  # imports the image libraries

_processor_lock = threading.Lock()  # two first image requests at once make one processor

Report = Callable[[str], None]  # a progress line while a model downloads or loads


class Runner(Protocol):
    """Serves one loaded model's requests, many at once."""

    def supports(self, sampling: SamplingParams) -> bool:
        """Whether it reproduces these settings exactly (else the engine generates another way)."""

    def run(self, prompt_ids: list[int], sampling: SamplingParams, max_new_tokens: int, eos_ids: list[int], streamer, flags,
            recorder: TokenRecorder | None = None, speculation: Speculation | None = None) -> list[int]:
        """Generate for one request, each token to `streamer` (the caller ends it), each step's alternatives to `recorder`,
        with drafts where `speculation` asks and the runner has them (else its `note` says why not); blocks until an
        end-of-turn id, `max_new_tokens`, or a set flag. Returns the new ids; raises when it failed."""

    def state(self) -> dict:
        """Requests running and waiting, restarts, the last failure: for the Monitor."""

    def close(self) -> None:
        """Let the model go (it was evicted)."""


@dataclass
class LoadedModel:
    model: object | None  # the torch module; None where the runner holds the weights (llama.cpp)
    tokenizer: PreTrainedTokenizerBase
    load_s: float
    eos_ids: frozenset[int]  # the ids that end a turn
    processor: ProcessorMixin | None = None  # vision models: images and videos go through it (`media_processor`)
    make_processor: Callable[[], ProcessorMixin] | None = None  # makes it on the first request with images or video
    runner: Runner | None = None
    context_tokens: int | None = None  # the engine's context when smaller than the model's
    weights_bytes: int = 0  # its weights (the memory it holds may be more: llama.cpp's KV cache)

    def media_processor(self) -> ProcessorMixin | None:
        """The processor for a request with images or video, made on the first one: its imports (image and video
        libraries) and loading take seconds that a text turn, a fresh machine's first answer above all, need not wait."""
        with _processor_lock:
            if self.processor is None and self.make_processor is not None:
                self.processor = self.make_processor()
        return self.processor


class Engine(Protocol):
    """One way to run local models. Adding one: a module with a class like this, and an entry in `ENGINES`."""

    name: str

    def __init__(self, settings: Settings, device: str, dtype: torch.dtype) -> None:
        """For this app's settings, on `device`; `dtype`: the weights' dtype where the engine chooses none itself."""

    @staticmethod
    def here(settings: Settings, device: str) -> bool:
        """Whether it runs on this machine with these settings."""

    def runs(self, spec: ModelSpec, has_media: bool) -> bool:
        """Whether it runs requests to `spec` (with images or video when `has_media`)."""

    def unavailable(self, spec: ModelSpec, precision: str) -> str | None:
        """Why it cannot run `spec` at `precision` here, as a person should read it (None: it can)."""

    def estimate_bytes(self, spec: ModelSpec, precision: str) -> int:
        """Memory the model will hold once loaded."""

    def converts_first(self, spec: ModelSpec, precision: str) -> bool:
        """Whether loading must first make the engine's own copy of the weights (llama.cpp's GGUF conversion): an
        engine that loads them as they are answers meanwhile."""

    def load(self, spec: ModelSpec, precision: str, report: Report) -> tuple[LoadedModel, int]:
        """The model ready to run, and the bytes it holds."""

    def generate(self, loaded: LoadedModel, inputs: dict, sampling: SamplingParams, max_new_tokens: int, stop_ids: list[int],
                 recorder: TokenRecorder | None, answer_start: int, streamer, flags, speculation: Speculation | None = None) -> list[int]:
        """One phase of an answer from `inputs` (the encoded prompt), the prompt then each token to `streamer` (which
        the caller ends), ending at the model's end-of-turn ids or `stop_ids`, or at the next token once a flag is set;
        the answer starts at `answer_start` in the inputs. With `speculation`, guesses checked in each pass where the
        engine can (else its `note` says why not). Returns the new ids; raises when the engine failed."""

    def drafter(self, draft: LoadedModel) -> object | None:
        """What this engine's `Speculation.drafter` is for a loaded draft model (None: it cannot draft)."""


@dataclass(frozen=True)
class CacheKey:
    """One cache entry per model, precision and engine, so bf16 and 8-bit can sit side by side in a comparison."""

    model_id: str
    precision: str = "full"
    engine: str = "transformers"

    def __str__(self) -> str:
        return " ".join([self.model_id, *([self.precision] if self.precision != "full" else []),
                         *([self.engine] if self.engine != "transformers" else [])])

    @property
    def label(self) -> str:
        return f"{self.model_id} ({self.precision}, {self.engine})"


def eos_ids_of(generation_config: GenerationConfig, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    eos = generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    return frozenset(ids | {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None})


def run_on_runner(loaded: LoadedModel, inputs: dict, sampling: SamplingParams, max_new_tokens: int, stop_ids: list[int],
                  recorder: TokenRecorder | None, streamer, flags, speculation: Speculation | None = None) -> list[int]:
    """`Engine.generate` through the model's runner."""
    streamer.put(inputs["input_ids"][0])  # as `generate` does: the prompt first, which the streamer skips
    return loaded.runner.run(inputs["input_ids"][0].tolist(), sampling, max_new_tokens, sorted(loaded.eos_ids | set(stop_ids)), streamer,
                             flags, recorder, speculation)
