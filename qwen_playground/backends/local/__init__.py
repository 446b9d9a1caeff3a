"""The local backend: Qwen models in-process, each request on the engine that suits it.

Lazy: a model is fetched (downloaded, or built in demo mode) and loaded on
its first request, with progress events, then kept in a `ModelCache` under a
memory budget, one entry per model, precision and engine (`CacheKey`).

The engines are a table (`ENGINES`, in order of preference): a request goes
to the first one here that runs it (`Engine.runs`): on a CPU, llama.cpp for
text to the families it runs; transformers for the rest (GPUs, images,
fine-tuned models). An engine only loads models and turns prompt ids into
new ids; the turn itself (template, thinking, budget, counting, metrics) is
the same on all of them (`turn.py`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator

import torch

from ...core import availability
from ...core.config import Settings
from ...core.devices import pick_device, usable_device
from ...core.generation import Error, Event, Metrics, Progress, Request
from ...core.registry import ModelSpec, Registry
from .. import Capabilities, ModelBackend, download, engines
from ..encoding import encode_request
from ..engines import LLAMA_CPP, TRANSFORMERS
from ..model_cache import ModelCache, ModelTooLarge
from ..speculative import Speculation
from .engine import CacheKey, Engine, LoadedModel
from .llamacpp_engine import LlamaCppEngine
from .transformers_engine import TransformersEngine, default_budget_bytes, pick_dtype
from .turn import stream_turn

log = logging.getLogger(__name__)
__all__ = ["CacheKey", "LLAMA_CPP", "TRANSFORMERS", "LoadedModel", "LocalBackend"]

# The engines, in order of preference: a request goes to the first that runs here (`here`) and runs it (`runs`).
ENGINES = (LlamaCppEngine, TransformersEngine)


class LocalBackend(ModelBackend):
    def __init__(self, registry: Registry, settings: Settings):
        super().__init__(registry)
        self.settings = settings
        self.device = usable_device(pick_device(settings.device))
        self.dtype, self.dtype_reason = pick_dtype(self.device, settings.dtype, settings.cache_dir)
        budget = int(settings.memory_budget_gb * 2**30) if settings.memory_budget_gb else default_budget_bytes(self.device)
        self.cache: ModelCache[CacheKey, LoadedModel] = ModelCache(budget, on_evict=self._on_evict)
        self.llama_cpp_runs = engines.text_engine(settings.engine, self.device) == LLAMA_CPP
        self.engines: list[Engine] = [kind(settings, self.device, self.dtype) for kind in ENGINES if kind.here(settings, self.device)]
        self.active_generations = 0
        self._active_lock = threading.Lock()
        self._warming: set[CacheKey] = set()  # loads running in the background
        self._warming_lock = threading.Lock()
        self._plain_speed: dict[CacheKey, float] = {}  # each model's last tokens/s without drafts

    def engine_for(self, spec: ModelSpec, has_media: bool = False, wanted: str = "") -> Engine:
        """The engine a request to `spec` goes to (with images or video when `has_media`): the one `wanted` where it runs
        the request, else the first in the table that does."""
        able = [engine for engine in self.engines if engine.runs(spec, has_media)]
        return next((engine for engine in able if engine.name == wanted), able[0])

    def capabilities(self) -> Capabilities:
        return engines.capabilities(self.device, self.settings.engine)

    def fit_problem(self, loads: list[tuple[str, str]]) -> str | None:
        """Why these (model id, precision) pairs cannot all be resident at once, or None when they can. Each precision
        of a model is its own cache entry, so full and 8-bit weights of one model count twice."""
        sizes, distinct = self.cache.sizes(), {}
        for model_id, precision in loads:
            spec = self.registry.get(model_id)
            engine = self.engine_for(spec)
            distinct[CacheKey(model_id, precision, engine.name)] = (spec, precision, engine)
        need = sum(sizes.get(key, engine.estimate_bytes(spec, precision)) for key, (spec, precision, engine) in distinct.items())
        if len(distinct) < 2 or need <= self.cache.budget_bytes:
            return None
        names = ", ".join(spec.id + ("" if precision == "full" else f" ({precision})") for spec, precision, _ in distinct.values())
        return (f"{names} need about {need / 2**30:.1f} GiB together, more than the "
                f"{self.cache.budget_bytes / 2**30:.1f} GiB memory budget: running them one after another.")

    def serve(self, spec: ModelSpec, request: Request, cancel: threading.Event) -> Iterator[Event]:
        start = time.perf_counter()
        engine = preferred = self.engine_for(spec, request.has_media, request.engine)
        if reason := engine.unavailable(spec, request.precision):
            yield Error(reason)
            return
        if not request.engine and (stand_in := self._stand_in(engine, spec, request.precision, request.has_media)):
            yield Progress(f"{engine.name} first converts {spec.id}'s weights (once, in the background); {stand_in.name} answers meanwhile…")
            self._load_in_background([engine], spec, request.precision)
            engine = stand_in
        speculation = Speculation.scoring(request.score) if request.score else None
        if request.score:  # exactly the given answer: as long as it, no thinking budget cutting in
            request = replace(request, sampling=request.sampling.model_copy(update={"max_new_tokens": len(request.score)}), thinking_budget=None)
        if request.draft and not request.score:
            speculation = yield from self._speculation(engine, spec, request)
        loaded = yield from self._load(engine, spec, request.precision)
        if loaded is None:
            return
        key = CacheKey(spec.id, request.precision, engine.name)
        if speculation is not None:
            speculation.plain_tokens_per_s = self._plain_speed.get(key)
        with self._generating():
            for event in stream_turn(engine, spec, loaded, request, cancel, self.encode, self.settings.max_input_tokens,
                                     time.perf_counter() - start, speculation):
                if isinstance(event, Metrics) and not request.draft and not request.score and event.tokens_per_s:
                    self._plain_speed[key] = event.tokens_per_s  # what a later answer with drafts is compared with
                yield replace(event, preferred_engine=preferred.name) if engine is not preferred and isinstance(event, Metrics) else event

    def _speculation(self, engine: Engine, spec: ModelSpec, request: Request) -> Iterator[Event]:
        """The drafts `request` asks for on `engine`, its draft model loaded (it counts in the memory budget); returns
        (via StopIteration) a Speculation, whose note says why the answer goes without drafts where it must."""
        speculation = Speculation(request.draft, request.draft_tokens)
        if speculation.lookup:
            return speculation
        drafts = {m.id: m for m in self.registry.drafts_for(spec)}
        draft = drafts.get(request.draft)
        if draft is None:
            choices = ", ".join(drafts) or "none here"
            speculation.refuse(f"{request.draft} cannot draft for {spec.id} (drafts share its vocabulary and are no larger: {choices})")
        elif not engine.runs(draft, False) or engine.unavailable(draft, request.precision):
            speculation.refuse(f"{draft.id} does not run on {engine.name} beside {spec.id}, so it answered without drafts")
        else:
            loading = self._load(engine, draft, request.precision)
            try:
                while not isinstance(event := next(loading), Error):
                    yield event
                speculation.refuse(f"the draft model did not load ({event.message}), so it answered without drafts")
            except StopIteration as loaded:
                speculation.drafter = engine.drafter(loaded.value)
                if speculation.drafter is None:
                    speculation.refuse(f"the {engine.name} engine runs no draft models, so it answered without drafts")
        return speculation

    def warm(self, spec: ModelSpec, precision: str = "full") -> None:
        """Load `spec` in the background as its first text request would (an engine that answers at once first, where
        the best one must convert the weights), so that request finds it loaded. Only weights already on disk or built
        here (demo models): a download waits until someone asks."""
        if spec.demo or download.local_folder(spec, self.settings.cache_dir):
            engine = self.engine_for(spec)
            self._load_in_background([*filter(None, [self._stand_in(engine, spec, precision, False)]), engine], spec, precision)

    def _stand_in(self, engine: Engine, spec: ModelSpec, precision: str, has_media: bool) -> Engine | None:
        """Another engine that answers now while `engine` must first convert this model's weights, where both fit the
        memory budget together; None when `engine` is loaded or needs no conversion, or was set by hand (--engine)."""
        if self.settings.engine != "auto" or CacheKey(spec.id, precision, engine.name) in self.cache.sizes():
            return None
        if not engine.converts_first(spec, precision):
            return None
        both_fit = lambda other: engine.estimate_bytes(spec, precision) + other.estimate_bytes(spec, precision) <= self.cache.budget_bytes  # noqa: E731
        return next((other for other in self.engines if other is not engine and other.runs(spec, has_media) and both_fit(other)
                     and not other.unavailable(spec, precision) and not other.converts_first(spec, precision)), None)

    def _load_in_background(self, engines: list[Engine], spec: ModelSpec, precision: str) -> None:
        """Load `spec` on each engine in turn on a thread of its own; a failure is logged (the next request says it)."""
        with self._warming_lock:  # two requests at once start one load, not two
            todo = [(engine, key) for engine in engines if (key := CacheKey(spec.id, precision, engine.name)) not in self._warming]
            self._warming.update(key for _, key in todo)

        def work():
            for engine, key in todo:
                try:
                    self.cache.get(key, engine.estimate_bytes(spec, precision), lambda: engine.load(spec, precision, lambda _: None))
                except Exception as e:
                    log.warning("Loading %s in the background failed: %s: %s", key, type(e).__name__, e)
                finally:
                    self._warming.discard(key)

        if todo:
            threading.Thread(target=work, name=f"warm-{spec.id}", daemon=True).start()

    def encode(self, spec: ModelSpec, loaded: LoadedModel, request: Request) -> dict:
        """The model inputs for a request (the same function the inspector uses)."""
        return encode_request(spec, request, loaded.tokenizer, loaded.media_processor() if request.has_media else None)

    def _load(self, engine: Engine, spec: ModelSpec, precision: str) -> Iterator[Event]:
        """Load (or reuse) in a worker thread, yielding progress lines while it works; returns (via StopIteration) the
        loaded model, or None after an Error."""
        messages: queue.Queue[str | None] = queue.Queue()
        result: dict = {}

        def work():
            try:
                result["model"] = self.cache.get(CacheKey(spec.id, precision, engine.name), engine.estimate_bytes(spec, precision),
                                                 lambda: engine.load(spec, precision, messages.put))
            except Exception as e:  # shown to the user; the app serves on
                result["error"] = e
            finally:
                messages.put(None)

        threading.Thread(target=work, name=f"load-{spec.id}", daemon=True).start()
        while (line := messages.get()) is not None:
            yield Progress(line)
        if "error" not in result:
            return result["model"]
        error, hint = result["error"], ""
        if isinstance(error, ModelTooLarge):
            yield Error(str(error))
            return None
        if spec.hub_id and not availability.cached(spec.hub_id) and not availability.hub_reachable():
            hint = " It is not cached and the Hugging Face Hub cannot be reached: connect once to download it, or start with --demo."
        yield Error(f"Could not load {spec.id} from {spec.source}: {type(error).__name__}: {error}.{hint}")
        return None

    @contextmanager
    def _generating(self) -> Iterator[None]:
        with self._active_lock:
            self.active_generations += 1
        try:
            yield
        finally:
            with self._active_lock:
                self.active_generations -= 1

    def _on_evict(self, key: CacheKey, loaded: LoadedModel) -> None:
        if loaded.runner is not None:
            loaded.runner.close()
        if self.device == "cuda":
            torch.cuda.empty_cache()

    def engine_state(self) -> dict[str, dict]:
        """Each loaded text model's runner: its requests running and waiting, restarts, the last failure."""
        return {key.label: loaded.runner.state() for key, loaded in self.cache.values().items() if loaded.runner is not None}

    def weights_by_model(self) -> dict[str, int]:
        """Loaded models' weight bytes by model id (all precisions and engines of a model added up)."""
        totals: dict[str, int] = {}
        for key, loaded in self.cache.values().items():
            totals[key.model_id] = totals.get(key.model_id, 0) + loaded.weights_bytes
        return totals

    def status(self) -> str:
        dtype = self.dtype_reason or str(self.dtype).removeprefix("torch.")
        if self.llama_cpp_runs:
            here = f"{self.device}: text on llama.cpp (GGUF), images on transformers ({dtype})"
        else:
            why = engines.llama_cpp_problem() if engines.llama_cpp_wanted(self.settings.engine, self.device) else None
            here = f"{self.device}, transformers ({dtype})" + (f"; llama.cpp unavailable: {why}" if why else "")
        sizes = self.cache.sizes()
        if not sizes:
            return f"No model loaded yet · {here} · budget {self.cache.budget_bytes / 2**30:.1f} GiB"
        loaded = ", ".join(f"{key} ({size / 2**30:.2f} GiB)" for key, size in sizes.items())
        return f"Loaded: {loaded} · {here} · {self.cache.used_bytes / 2**30:.2f} of {self.cache.budget_bytes / 2**30:.1f} GiB"
