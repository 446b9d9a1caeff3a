"""The transformers engine: every local model (GPUs, images, fine-tuned models), and text where llama.cpp does not run.

Text requests to a model whose layers the continuous batch can cache join it
(`batching.py`), so many users share each decode step; vision requests and
settings the batch cannot honour run `generate` alone.
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

import psutil
import torch
import transformers
from transformers import CONFIG_MAPPING, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

from ...core.config import Settings
from ...core.devices import model_build_lock
from ...core.generation import SamplingParams
from ...core.registry import ModelSpec
from ..alternatives import TokenRecorder
from ..batching import ContinuousBatcher, batchable
from ..cpu_dtype import cpu_dtype
from ..encoding import media_processor
from ..model_classes import auto_model_class
from .. import download, engines
from ..engines import LLAMA_CPP, TRANSFORMERS
from ..precision import GGUF_TYPES, bytes_per_param, transformers_config, unavailable_reason, weight_bytes
from ..processors import logits_processors
from ..speculative import Speculation
from .engine import LoadedModel, Report, eos_ids_of, run_on_runner
from .transformers_drafts import TransformersDrafter, generate_with_drafts


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


class _StopOn(StoppingCriteria):
    """Stops `generate` at the next token once any of the flags is set."""

    def __init__(self, *flags: threading.Event):
        self.flags = flags

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        stop = any(f.is_set() for f in self.flags)
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class TransformersEngine:
    name = TRANSFORMERS

    def __init__(self, settings: Settings, device: str, dtype: torch.dtype):
        self.settings, self.device, self.dtype = settings, device, dtype
        # llama.cpp runs this machine's text, so the quantized precisions a CPU offers are its, not this engine's
        self.llama_cpp_beside = engines.text_engine(settings.engine, device) == LLAMA_CPP

    @staticmethod
    def here(settings: Settings, device: str) -> bool:
        return True

    def runs(self, spec: ModelSpec, has_media: bool) -> bool:
        return True

    def converts_first(self, spec: ModelSpec, precision: str) -> bool:
        return False  # it reads the weights as they are

    def unavailable(self, spec: ModelSpec, precision: str) -> str | None:
        if not spec.family.local:
            return (f"{spec.id} runs on an OpenAI-compatible server (vLLM serves {spec.family.label}), not inside this app: add an endpoint "
                    "that serves it and a model entry naming it (docs/backends.md, 'Audio models on a server').")
        if problem := transformers_problem(spec):
            return problem
        if reason := unavailable_reason(precision, self.device):
            if self.llama_cpp_beside and precision in GGUF_TYPES:  # 4-bit on this CPU is llama.cpp's; this request cannot use it
                reason = "on this CPU 4-bit weights come from llama.cpp, which runs text (not images or sound) and not fine-tuned models"
            return f"{precision} weights are unavailable on {self.device}: {reason}. Choose another precision."
        return None

    def estimate_bytes(self, spec: ModelSpec, precision: str) -> int:
        return int(spec.params_b * 1e9 * bytes_per_param(precision, self.dtype.itemsize))

    def load(self, spec: ModelSpec, precision: str, report: Report) -> tuple[LoadedModel, int]:
        start = time.perf_counter()
        # images or sound go through a processor; a fine-tuned model is its text side, as it was trained
        media = (spec.family.vision is not None or spec.family.audio is not None) and not spec.adapter
        model_class = auto_model_class(spec.family, text_only=bool(spec.adapter))
        _import_model_code(model_class, spec.family.model_type)  # seconds for some families: before waiting on the weights
        folder = download.fetch(spec, self.settings.cache_dir, report)
        described = str(self.dtype).removeprefix("torch.") + ("" if precision == "full" else f", weights {precision}")
        report(f"Loading {spec.id} into memory ({described} on {self.device})…")
        options = {"dtype": self.dtype, "device_map": self.device, "quantization_config": transformers_config(precision, self.device, self.dtype)}
        tokenizer = AutoTokenizer.from_pretrained(folder)  # a vision or audio model's processor comes with its first image or clip
        with model_build_lock:  # transformers sets torch's process-wide default dtype while it builds (devices.py)
            model = model_class.from_pretrained(folder, **options)
        if spec.adapter:  # a fine-tuned model: its LoRA merged into the base weights, so it runs like any other
            from peft import PeftModel

            report(f"Applying the LoRA adapter {Path(spec.adapter).name}…")
            model = PeftModel.from_pretrained(model, spec.adapter).merge_and_unload()
        model.eval()
        loaded = LoadedModel(model, tokenizer, time.perf_counter() - start, eos_ids_of(model.generation_config, tokenizer),
                             make_processor=functools.partial(media_processor, folder) if media else None)
        if not media and self.settings.batching and batchable(model.config):
            loaded.runner = ContinuousBatcher(model, loaded.eos_ids, tokenizer.pad_token_id)
        loaded.weights_bytes = weight_bytes(model)
        return loaded, loaded.weights_bytes

    def drafter(self, draft: LoadedModel) -> TransformersDrafter:
        """A draft of its own per request: its cache follows that answer."""
        return TransformersDrafter(draft.model)

    def generate(self, loaded: LoadedModel, inputs: dict, sampling: SamplingParams, max_new_tokens: int, stop_ids: list[int],
                 recorder: TokenRecorder | None, answer_start: int, streamer, flags, speculation: Speculation | None = None) -> list[int]:
        if speculation is not None and set(inputs) - {"input_ids", "attention_mask"}:
            speculation = speculation.refuse("drafts guess text: a request with images or sound answers without them")
        if speculation is not None:  # alone, outside the continuous batch (one row of logits per request there)
            streamer.put(inputs["input_ids"][0])
            processors = logits_processors(sampling, answer_start, recorder, inputs["input_ids"].shape[1])
            return generate_with_drafts(loaded.model, inputs["input_ids"][0].tolist(), sampling, processors, max_new_tokens,
                                        loaded.eos_ids | set(stop_ids), streamer, flags, speculation)
        if loaded.runner is not None and loaded.runner.supports(sampling):
            return run_on_runner(loaded, inputs, sampling, max_new_tokens, stop_ids, recorder, streamer, flags)
        kwargs = sampling_kwargs(sampling) | {"max_new_tokens": max_new_tokens}
        # `generate` applies the repetition penalty itself (its keyword), then ours
        if processors := logits_processors(sampling, answer_start, recorder, inputs["input_ids"].shape[1], repetition=False):
            kwargs["logits_processor"] = processors
        if stop_ids:
            kwargs["eos_token_id"] = sorted(loaded.eos_ids | set(stop_ids))
        inputs = {k: _on_model(v, loaded.model) for k, v in inputs.items()}
        output = loaded.model.generate(**inputs, streamer=streamer, stopping_criteria=StoppingCriteriaList([_StopOn(*flags)]), **kwargs)
        return output[0, inputs["input_ids"].shape[1]:].tolist()


def _on_model(value, model):
    """An input on the model's device; features (an audio clip's log-mel, an image's pixels) in the weights' dtype, as
    an audio encoder's first convolution needs them (a vision tower casts its own)."""
    if not isinstance(value, torch.Tensor):
        return value
    return value.to(model.device, dtype=model.dtype) if value.is_floating_point() else value.to(model.device)


def _import_model_code(model_class: type, model_type: str | None) -> None:
    """Import the transformers module of `model_type` for `model_class` (an Auto class) now: it takes seconds for
    some families (Qwen3.5's pulls in torch's compiler), which can pass while the weights download or build."""
    if model_type and model_type in CONFIG_MAPPING:
        try:
            model_class._model_mapping[CONFIG_MAPPING[model_type]]
        except KeyError:  # this Auto class has no model for the type; loading says so
            pass
