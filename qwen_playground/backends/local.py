"""The local backend: load Qwen models in-process and stream their tokens, on one of two engines.

Lazy: a model is fetched (downloaded, or built in demo mode) and loaded on
its first request, with progress events, then kept in a `ModelCache` under a
memory budget. Each request gets its own streamer and its own stop flag.

`engine_for` picks the engine per request: on a CPU, text requests to a
family llama.cpp runs go to llama.cpp (`llamacpp.py`, GGUF weights from
`gguf_files.py`); GPUs, images and fine-tuned models stay on transformers.
On transformers, text requests join the model's continuous batch
(`batching.py`), so many users share each decode step; vision requests and
settings the batcher cannot honour run `generate` alone. Every engine gets
the same ids and its tokens go through the same parsing, thinking budget,
"why this token?" record and metrics (`_stream_loaded`).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psutil
import torch
import transformers
from transformers import (CONFIG_MAPPING, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer, GenerationConfig,
                          LogitsProcessorList, PreTrainedTokenizerBase, ProcessorMixin, StoppingCriteria, StoppingCriteriaList)

from ..core import availability
from ..core.config import Settings
from ..core.devices import model_build_lock, pick_device, usable_device
from ..core.generation import Done, Error, Event, Metrics, Progress, Request, SamplingParams, TextDelta, TokenChoices
from ..core.registry import ModelSpec, Registry, RegistryError
from . import Backend, Capabilities, download, engines, gguf_files, llamacpp
from .alternatives import RecordAlternatives, TokenRecorder
from .batching import ContinuousBatcher, batchable
from .cpu_dtype import cpu_dtype
from .encoding import encode_request
from .engines import LLAMA_CPP, TRANSFORMERS
from .llamacpp import EngineFailed, LlamaCppRunner
from .model_cache import ModelCache, ModelTooLarge
from .precision import GGUF_TYPES, bytes_per_param, transformers_config, unavailable_reason, weight_bytes
from .presence import PresencePenalty
from .text_stream import LiveTextStreamer
from .thinking import ThinkingParser

log = logging.getLogger("qwen_playground")

ANSWER_ROOM = 4096  # llama.cpp's context holds the longest prompt accepted plus this many answer tokens (Qwen's thinking presets)


@dataclass
class LoadedModel:
    model: torch.nn.Module | None  # None on llama.cpp, whose runner holds the weights
    tokenizer: PreTrainedTokenizerBase
    load_s: float
    eos_ids: frozenset[int]  # the ids that end a turn
    processor: ProcessorMixin | None = None  # vision models: images and videos go through it
    runner: ContinuousBatcher | LlamaCppRunner | None = None  # runs text requests: the continuous batch, or llama.cpp
    context_tokens: int | None = None  # the engine's context when smaller than the model's
    weights_bytes: int = 0  # its weights (the memory it holds may be more: llama.cpp's KV cache)

    @property
    def device(self) -> torch.device:
        return self.model.device


def eos_ids_of(generation_config: GenerationConfig, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    eos = generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    return frozenset(ids | {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None})


def pick_dtype(device: str, setting: str, cache_dir: Path) -> tuple[torch.dtype, str]:
    """The weights' dtype for transformers, and why where it was measured (a CPU's choice, `cpu_dtype.py`)."""
    if setting != "auto":
        return getattr(torch, setting), ""
    if device == "cuda":
        return (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16), ""
    if device == "mps":
        return torch.float16, ""
    choice = cpu_dtype(cache_dir)
    return choice.torch_dtype, choice.why()


def default_budget_bytes(device: str) -> int:
    """Most of the memory that is free now: what a laptop can give to models."""
    if device == "cuda":
        return int(0.85 * torch.cuda.get_device_properties(0).total_memory)
    return int(0.6 * psutil.virtual_memory().available)


def sampling_kwargs(sampling: SamplingParams) -> dict:
    """`generate` keyword arguments; temperature 0 means greedy decoding."""
    kwargs = {"max_new_tokens": sampling.max_new_tokens, "repetition_penalty": sampling.repetition_penalty}
    if sampling.temperature == 0:
        return kwargs | {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    kwargs |= {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k}
    if sampling.min_p > 0:
        kwargs["min_p"] = sampling.min_p
    return kwargs


def transformers_problem(spec: ModelSpec) -> str | None:
    """Why the installed transformers cannot load this model's family, naming the release that can (None: it can)."""
    family = spec.family
    if spec.demo or family.model_type is None or family.model_type in CONFIG_MAPPING:
        return None
    release = family.requires_transformers
    needed, command = (f"transformers {release} or newer", f'pip install -U "transformers>={release}"') if release else \
        ("a newer transformers", "pip install -U transformers")
    return (f"{spec.id} is a {family.label} model (model type '{family.model_type}'), which transformers {transformers.__version__} "
            f"cannot load: it needs {needed}. Run: {command}")


# Qwen's documented thinking-budget recipe: when the budget runs out mid-thought, append this (and the family's
# closing tag) and continue.
EARLY_STOP = "\n\nConsidering the limited time by the user, I have to give the solution based on the thinking directly now.\n"


class _GenerationFailed(Exception):
    def __init__(self, cause: Exception):
        super().__init__(str(cause))
        self.cause = cause


class _StopOn(StoppingCriteria):
    """Stops `generate` at the next token once any of the flags is set."""

    def __init__(self, *flags: threading.Event):
        self.flags = flags

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        stop = any(f.is_set() for f in self.flags)
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class LocalBackend(Backend):
    def __init__(self, registry: Registry, settings: Settings):
        self.registry = registry
        self.settings = settings
        self.device = usable_device(pick_device(settings.device))
        self.dtype, self.dtype_reason = pick_dtype(self.device, settings.dtype, settings.cache_dir)
        budget = int(settings.memory_budget_gb * 2**30) if settings.memory_budget_gb else default_budget_bytes(self.device)
        self.cache: ModelCache[LoadedModel] = ModelCache(budget, on_evict=self._on_evict)
        self._active = 0
        self._active_lock = threading.Lock()

    # ---- engines -----------------------------------------------------------------

    @property
    def llama_cpp_runs(self) -> bool:
        """Whether llama.cpp takes this machine's text requests: asked for (or auto on a CPU), and usable here."""
        return engines.text_engine(self.settings.engine, self.device) == LLAMA_CPP

    def engine_for(self, spec: ModelSpec, has_media: bool = False) -> str:
        """The engine for a request to `spec`: llama.cpp for text to a family it runs, where it runs; transformers for
        images and fine-tuned models (their LoRA is merged into transformers weights)."""
        if self.llama_cpp_runs and spec.family.gguf is not None and not spec.adapter and not has_media:
            return LLAMA_CPP
        return TRANSFORMERS

    # ---- loading -----------------------------------------------------------------

    def estimate_bytes(self, spec: ModelSpec, precision: str = "full", engine: str = TRANSFORMERS) -> int:
        """Memory a model will hold: its weights, and on llama.cpp at most its shared KV cache's budget."""
        weights = int(spec.params_b * 1e9 * bytes_per_param(precision, self.dtype.itemsize, gguf=engine == LLAMA_CPP))
        return weights + (int(self.settings.llama_cpp_cache_gb * 2**30) if engine == LLAMA_CPP else 0)

    @staticmethod
    def cache_key(model_id: str, precision: str = "full", engine: str = TRANSFORMERS) -> str:
        """One cache entry per model, precision and engine, so bf16 and 8-bit can sit side by side in a comparison."""
        return "@".join([model_id, *([precision] if precision != "full" else []), *([engine] if engine != TRANSFORMERS else [])])

    def engine_state(self) -> dict[str, dict]:
        """Each loaded text model's runner: its requests running and waiting, restarts, the last failure."""
        states = {}
        for key, loaded in self.cache.values().items():
            if loaded.runner is not None:
                model_id, *rest = key.split("@")
                engine = LLAMA_CPP if LLAMA_CPP in rest else TRANSFORMERS
                precision = next((part for part in rest if part != LLAMA_CPP), "full")
                states[f"{model_id} ({precision}, {engine})"] = loaded.runner.state()
        return states

    def weights_by_model(self) -> dict[str, int]:
        """Loaded models' weight bytes by model id (all precisions and engines of a model added up)."""
        totals: dict[str, int] = {}
        for key, loaded in self.cache.values().items():
            model_id = key.partition("@")[0]
            totals[model_id] = totals.get(model_id, 0) + loaded.weights_bytes
        return totals

    def capabilities(self) -> Capabilities:
        return engines.capabilities(self.device, self.settings.engine)

    def fit_problem(self, loads: list[tuple[str, str]]) -> str | None:
        """Why these (model id, precision) pairs cannot all be resident at once, or None when they can. Each precision
        of a model is its own cache entry, so full and 8-bit weights of one model count twice."""
        sizes = self.cache.sizes()
        distinct = {}
        for model_id, precision in loads:
            spec = self.registry.get(model_id)
            engine = self.engine_for(spec)
            distinct[self.cache_key(model_id, precision, engine)] = (spec, precision, engine)
        need = sum(sizes.get(key, self.estimate_bytes(*load)) for key, load in distinct.items())
        if len(distinct) < 2 or need <= self.cache.budget_bytes:
            return None
        names = ", ".join(spec.id + ("" if precision == "full" else f" ({precision})") for spec, precision, _ in distinct.values())
        return (f"{names} need about {need / 2**30:.1f} GiB together, more than the "
                f"{self.cache.budget_bytes / 2**30:.1f} GiB memory budget: running them one after another.")

    def _load_now(self, spec: ModelSpec, precision: str, report, engine: str = TRANSFORMERS) -> tuple[LoadedModel, int]:
        if engine == LLAMA_CPP:
            return self._load_gguf(spec, precision, report)
        start = time.perf_counter()
        folder = download.fetch(spec, self.settings.cache_dir, report)
        described = str(self.dtype).removeprefix("torch.") + ("" if precision == "full" else f", weights {precision}")
        report(f"Loading {spec.id} into memory ({described} on {self.device})…")
        options = {"dtype": self.dtype, "device_map": self.device,
                   "quantization_config": transformers_config(precision, self.device, self.dtype)}
        processor = None
        if spec.family.vision is not None and not spec.adapter:  # a fine-tuned model is its text side, as it was trained
            processor = AutoProcessor.from_pretrained(folder)
            if not hasattr(processor, "image_processor"):  # an incomplete folder can yield a bare tokenizer
                raise RuntimeError(f"{folder} has no image processor (preprocessor_config.json or processor_config.json)")
            tokenizer, model_class = processor.tokenizer, AutoModelForImageTextToText
        else:
            tokenizer, model_class = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM
        with model_build_lock:  # transformers sets torch's process-wide default dtype while it builds (devices.py)
            model = model_class.from_pretrained(folder, **options)
        if spec.adapter:  # a fine-tuned model: its LoRA merged into the base weights, so it runs like any other
            from peft import PeftModel

            report(f"Applying the LoRA adapter {Path(spec.adapter).name}…")
            model = PeftModel.from_pretrained(model, spec.adapter).merge_and_unload()
        model.eval()
        loaded = LoadedModel(model, tokenizer, time.perf_counter() - start, eos_ids_of(model.generation_config, tokenizer), processor)
        if processor is None and self.settings.batching and batchable(model.config):
            loaded.runner = ContinuousBatcher(model, loaded.eos_ids, tokenizer.pad_token_id)
        loaded.weights_bytes = weight_bytes(model)
        return loaded, loaded.weights_bytes

    def _load_gguf(self, spec: ModelSpec, precision: str, report) -> tuple[LoadedModel, int]:
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
            runner = LlamaCppRunner(path, min(spec.context_length, self.settings.max_input_tokens + ANSWER_ROOM),
                                    slots=self.settings.concurrency if self.settings.batching else 1,
                                    cache_bytes=int(self.settings.llama_cpp_cache_gb * 2**30))
        except ValueError as e:  # llama.cpp refuses a file it cannot read; its reason went to its log
            raise RuntimeError(f"llama.cpp could not read {path} ({e}). The file is corrupt, truncated or not a GGUF model: "
                               "delete it to have it downloaded or converted again") from None
        loaded = LoadedModel(None, tokenizer, time.perf_counter() - start, eos_ids_of(generation_config, tokenizer), runner=runner,
                             context_tokens=runner.context_tokens, weights_bytes=path.stat().st_size)
        return loaded, loaded.weights_bytes + runner.cache_bytes  # the KV cache is allocated whole at load

    def _load(self, spec: ModelSpec, precision: str = "full", engine: str = TRANSFORMERS) -> Iterator[Progress | LoadedModel | Error]:
        """Load (or reuse) in a worker thread, yielding progress lines while it works."""
        messages: queue.Queue[str | None] = queue.Queue()
        result: dict = {}

        def work():
            try:
                result["model"] = self.cache.get(self.cache_key(spec.id, precision, engine), self.estimate_bytes(spec, precision, engine),
                                                 lambda: self._load_now(spec, precision, messages.put, engine))
            except Exception as e:  # shown to the user; the app serves on
                result["error"] = e
            finally:
                messages.put(None)

        threading.Thread(target=work, name=f"load-{spec.id}", daemon=True).start()
        while (line := messages.get()) is not None:
            yield Progress(line)
        if "error" in result:
            yield Error(self._load_error_message(spec, result["error"]))
        else:
            yield result["model"]

    def _load_error_message(self, spec: ModelSpec, error: Exception) -> str:
        if isinstance(error, ModelTooLarge):
            return str(error)
        hint = ""
        if spec.hub_id and not availability.cached(spec.hub_id) and not availability.hub_reachable():
            hint = " It is not cached and the Hugging Face Hub cannot be reached: connect once to download it, or start with --demo."
        return f"Could not load {spec.id} from {spec.source}: {type(error).__name__}: {error}.{hint}"

    def _on_evict(self, model_id: str, loaded: LoadedModel) -> None:
        if loaded.runner is not None:
            loaded.runner.close()
        if self.device == "cuda":
            torch.cuda.empty_cache()

    # ---- generation --------------------------------------------------------------

    @property
    def active_generations(self) -> int:
        return self._active

    def stream(self, request: Request, cancel: threading.Event) -> Iterator[Event]:
        start = time.perf_counter()
        try:
            spec = self.registry.get(request.model_id)
        except RegistryError as e:
            yield Error(str(e))
            return
        loaded = None
        engine = self.engine_for(spec, request.has_media)
        if engine == TRANSFORMERS and (reason := transformers_problem(spec)):
            yield Error(reason)
            return
        if reason := unavailable_reason(request.precision, self.device, llama_cpp=engine == LLAMA_CPP):
            if self.llama_cpp_runs and request.precision in GGUF_TYPES:  # 4-bit on this CPU is llama.cpp's; this request cannot use it
                reason = "on this CPU 4-bit weights come from llama.cpp, which runs text (not images) and not fine-tuned models"
            yield Error(f"{request.precision} weights are unavailable on {self.device}: {reason}. Choose another precision.")
            return
        for item in self._load(spec, request.precision, engine):
            if isinstance(item, LoadedModel):
                loaded = item
            else:
                yield item
        if loaded is None:
            return
        load_s = time.perf_counter() - start
        yield from self._stream_loaded(spec, loaded, request, cancel, load_s, engine)

    def encode(self, spec: ModelSpec, loaded: LoadedModel, request: Request) -> dict:
        """The model inputs for a request (the same function the inspector uses)."""
        return encode_request(spec, request, loaded.tokenizer, loaded.processor)

    def _stream_loaded(self, spec: ModelSpec, loaded: LoadedModel, request: Request, cancel: threading.Event, load_s: float,
                       engine: str = TRANSFORMERS) -> Iterator[Event]:
        tokenizer, family = loaded.tokenizer, spec.family
        context = min(spec.context_length, loaded.context_tokens or spec.context_length)
        try:  # images and videos are torch work: `apart`, so this long-lived server thread keeps no OpenMP pool
            inputs = llamacpp.apart(self.encode, spec, loaded, request) if request.has_media else self.encode(spec, loaded, request)
        except Exception as e:
            yield Error(f"Could not apply {spec.id}'s chat template to these messages: {e}")
            return
        prompt_tokens = inputs["input_ids"].shape[1]
        limit = min(self.settings.max_input_tokens, context - 1)
        if prompt_tokens > limit:
            # the exact check after templating; every tab refuses before sending, with its own advice (tasks.refuse_if_too_long)
            yield Error(f"This prompt is {prompt_tokens:,} tokens long with its chat template; the limit is {limit:,}. Shorten it.")
            return
        sampling = request.sampling.model_copy(update={"max_new_tokens": min(request.sampling.max_new_tokens, context - prompt_tokens)})

        budget = request.thinking_budget if family.thinks(request.thinking) and request.thinking_budget else None
        eos, close_id = loaded.eos_ids, tokenizer.convert_tokens_to_ids(family.thinking_tags[1])
        flags = (cancel, threading.Event())  # the second is set when the consumer stops listening
        parser = ThinkingParser(family.thinking_tags, starts_inside=family.starts_in_thought(request.thinking))
        clock = {"start": time.perf_counter(), "first": None, "thinking_end": None}
        prompt_ids = inputs["input_ids"]
        recorder = TokenRecorder(request.alternatives) if request.alternatives else None
        own: list[int] = []  # tokens the model generated (the early-stop sentence is ours, not its)
        injected: list[int] = []
        with self._active_lock:
            self._active += 1
        try:
            first = yield from self._phase(loaded, dict(inputs), min(budget or sampling.max_new_tokens, sampling.max_new_tokens),
                                           sampling, [close_id] if budget else [], flags, parser, clock, prompt_tokens, recorder)
            own += first
            ran_out = budget and first and first[-1] not in eos and not cancel.is_set() and len(own) < sampling.max_new_tokens
            if ran_out:  # Qwen's thinking-budget recipe: close the thought ourselves (unless the model did), then answer
                if first[-1] != close_id:
                    early_stop = EARLY_STOP + family.thinking_tags[1] + "\n\n"
                    injected = tokenizer(early_stop, add_special_tokens=False).input_ids
                    yield from self._feed(parser, early_stop, clock)
                resumed = torch.cat([prompt_ids, torch.tensor([first + injected], dtype=prompt_ids.dtype)], dim=1)
                own += yield from self._phase(loaded, {"input_ids": resumed, "attention_mask": torch.ones_like(resumed)},
                                              sampling.max_new_tokens - len(own), sampling, [], flags, parser, clock, prompt_tokens,
                                              recorder)
            yield from parser.flush()
        except _GenerationFailed as e:
            log.error("Generation failed on %s", spec.id, exc_info=e.cause)  # the engine's fault: in full for whoever runs the app
            yield from parser.flush()
            yield Error(str(e.cause) if isinstance(e.cause, EngineFailed) else f"Generation failed: {type(e.cause).__name__}: {e.cause}")
            return
        finally:
            flags[1].set()
            with self._active_lock:
                self._active -= 1
        end, start, first_token = time.perf_counter(), clock["start"], clock["first"]
        if injected:  # the thought is what the model wrote before we closed it
            thinking_tokens = len(first)
            answer_tokens = len([i for i in own[len(first):] if i not in set(tokenizer.all_special_ids)])
        else:
            thinking_tokens, answer_tokens = self._split_counts(tokenizer, own, parser.in_thinking, close_id)
        if recorder is not None:
            yield TokenChoices(recorder.steps(tokenizer, own, thinking_tokens))
        yield Metrics(
            prompt_tokens=prompt_tokens,
            answer_tokens=answer_tokens,
            thinking_tokens=thinking_tokens,
            time_to_first_token_s=(first_token - start) if first_token else None,
            tokens_per_s=(len(own) - 1) / (end - first_token) if first_token and len(own) > 1 and end > first_token else None,
            thinking_s=((clock["thinking_end"] or end) - start) if thinking_tokens else None,
            total_s=end - start + load_s,
            load_s=load_s,
            weights_bytes=loaded.weights_bytes,
            precision=request.precision,
            engine=engine,
        )
        stopped = bool(own) and own[-1] in eos
        if cancel.is_set() and not stopped:
            yield Done("cancelled")
        else:
            yield Done("stop" if stopped or len(own) < sampling.max_new_tokens else "length")

    def _phase(self, loaded: LoadedModel, inputs: dict, max_new_tokens: int, sampling: SamplingParams, stop_ids: list[int],
               flags, parser: ThinkingParser, clock: dict, answer_start: int, recorder: TokenRecorder | None = None) -> Iterator[Event]:
        """One `generate` call streamed through the parser; returns (via StopIteration) the new token ids. The answer
        starts at `answer_start` in the inputs (the prompt's length, also when a budget cut resumes after the thought).
        `recorder` records each step's alternatives, settled with this phase's last token."""
        streamer = LiveTextStreamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = sampling_kwargs(sampling) | {"max_new_tokens": max_new_tokens}
        processors = LogitsProcessorList()
        if sampling.presence_penalty:  # the answer so far counts, the prompt does not
            processors.append(PresencePenalty(sampling.presence_penalty, answer_start))
        if recorder is not None:
            processors.append(RecordAlternatives(recorder, inputs["input_ids"].shape[1]))
        if processors:
            kwargs["logits_processor"] = processors
        if stop_ids:
            kwargs["eos_token_id"] = sorted(loaded.eos_ids | set(stop_ids))
        outcome: dict = {}
        own_runner = loaded.runner is not None and loaded.runner.supports(sampling)
        target = functools.partial(self._generate_on_runner, sampling, stop_ids, recorder) if own_runner else self._generate
        worker = threading.Thread(target=target, args=(loaded, inputs, kwargs, streamer, flags, outcome), daemon=True)
        worker.start()
        for chunk in streamer:
            yield from self._feed(parser, chunk, clock)
        worker.join()
        if "error" in outcome:
            raise _GenerationFailed(outcome["error"])
        if recorder is not None and outcome["ids"]:
            recorder.settle(outcome["ids"][-1])
        return outcome["ids"]

    @staticmethod
    def _feed(parser: ThinkingParser, text: str, clock: dict) -> Iterator[Event]:
        if text and clock["first"] is None:
            clock["first"] = time.perf_counter()
        for event in parser.feed(text):
            if isinstance(event, TextDelta) and clock["thinking_end"] is None:
                clock["thinking_end"] = time.perf_counter()
            yield event

    def _generate_on_runner(self, sampling: SamplingParams, stop_ids: list[int], recorder: TokenRecorder | None, loaded: LoadedModel,
                            inputs: dict, kwargs: dict, streamer, flags, outcome: dict) -> None:
        """Like `_generate`, through the model's runner (the continuous batch, or llama.cpp)."""
        try:
            eos = sorted(loaded.eos_ids | set(stop_ids))
            streamer.put(inputs["input_ids"][0])  # as `generate` does: the prompt first, which the streamer skips
            outcome["ids"] = loaded.runner.run(inputs["input_ids"][0].tolist(), sampling, kwargs["max_new_tokens"], eos, streamer, flags,
                                                recorder)
        except Exception as e:  # reported as an Error event by the consumer
            outcome["error"] = e
        finally:
            streamer.end()

    def _generate(self, loaded: LoadedModel, inputs: dict, kwargs: dict, streamer, flags, outcome: dict) -> None:
        """Run one `generate` call on its own; results and errors go to `outcome`."""
        try:
            inputs = {k: v.to(loaded.device) if hasattr(v, "to") else v for k, v in inputs.items()}
            output = loaded.model.generate(**inputs, streamer=streamer, stopping_criteria=StoppingCriteriaList([_StopOn(*flags)]), **kwargs)
            outcome["ids"] = output[0, inputs["input_ids"].shape[1]:].tolist()
        except Exception as e:  # reported as an Error event by the consumer
            outcome["error"] = e
        finally:
            streamer.end()

    @staticmethod
    def _split_counts(tokenizer: PreTrainedTokenizerBase, ids: list[int], still_thinking: bool, close_id: int) -> tuple[int, int]:
        """(thinking tokens, answer tokens); the closing tag counts as thinking, end-of-turn as neither."""
        special = set(tokenizer.all_special_ids)
        if close_id in ids:
            cut = ids.index(close_id) + 1
        else:
            cut = len(ids) if still_thinking else 0
        answer = [i for i in ids[cut:] if i not in special]
        return cut, len(answer)

    def _engines(self) -> str:
        """Which engine runs what here, and why llama.cpp does not where it was wanted."""
        dtype = self.dtype_reason or str(self.dtype).removeprefix("torch.")
        if self.llama_cpp_runs:
            return f"{self.device}: text on llama.cpp (GGUF), images on transformers ({dtype})"
        why = engines.llama_cpp_problem() if engines.llama_cpp_wanted(self.settings.engine, self.device) else None
        return f"{self.device}, transformers ({dtype})" + (f"; llama.cpp unavailable: {why}" if why else "")

    def status(self) -> str:
        sizes = self.cache.sizes()
        if not sizes:
            return f"No model loaded yet · {self._engines()} · budget {self.cache.budget_bytes / 2**30:.1f} GiB"
        loaded = ", ".join(f"{k.replace('@', ' ')} ({v / 2**30:.2f} GiB)" for k, v in sizes.items())
        return f"Loaded: {loaded} · {self._engines()} · {self.cache.used_bytes / 2**30:.2f} of {self.cache.budget_bytes / 2**30:.1f} GiB"
