"""Configuration: the built-in registry, a user's config file on top, and settings.

A user's YAML file may add `families` (a new Qwen generation is one entry),
add `models`, replace `routes` per tab, and set `settings`. Demo mode is decided here: forced by --demo, or chosen when no
model of the chat route has weights that can be had (none cached, no hub).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import availability
from .adapters import adapter_dirs, register_all
from .devices import accelerator_memory_bytes, pick_device
from .registry import (Family, McpServer, Registry, RegistryError, Route, closest, parse_endpoints, parse_families, parse_mcp_servers,
                       parse_strongest,
                       parse_models, parse_routes)

CONFIG_KEYS = ("families", "models", "routes", "strongest", "settings", "endpoints", "mcp_servers")


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "qwen_playground"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    memory_budget_gb: float | None = Field(None, gt=0, description="RAM/VRAM for loaded models; default: most of what is free")
    max_input_tokens: int = Field(8192, gt=0, description="longest prompt (whole conversation) accepted, in tokens")
    cache_dir: Path = Field(default_factory=default_cache_dir, description="where demo models are built")
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    engine: Literal["auto", "transformers", "llama.cpp"] = Field(
        "auto", description="for local text models; auto: llama.cpp on a CPU where it runs the model, transformers elsewhere")
    concurrency: int = Field(8, ge=1, description="generations run at once (they share a model's continuous batch)")
    queue_size: int = Field(64, ge=1, description="requests that may wait for a free slot; more are refused with a message")
    batching: bool = Field(True, description="continuous batching for local text models (off: a generate call per request on transformers, one answer at a time on llama.cpp)")
    llama_cpp_cache_gb: float = Field(2.0, gt=0, description="each llama.cpp model's KV cache, shared by the users it serves at once")
    llama_cpp_hybrid_drafts: bool = Field(False, description="drafts for Qwen3.5/3.6 on llama.cpp: 9 snapshots of each slot's recurrent "
                                          "state to cut rejected guesses off (52 MB each for Qwen3.5-9B); off: they answer without drafts")
    public: bool | None = Field(None, description="a public deployment (rate limits on); default: true on Hugging Face Spaces")
    rate_limits: bool | None = Field(None, description="per-user rate limits; default: on when public")
    requests_per_minute: int = Field(20, ge=1, description="per browser session (8x per IP)")
    tokens_per_hour: int = Field(50_000, ge=1, description="generated tokens per browser session (8x per IP)")
    max_message_tokens: int = Field(4096, gt=0, description="longest single message accepted, in tokens")
    max_audio_seconds: float = Field(300, gt=0, description="longest sound clip accepted, in seconds (a model's own limit may be lower)")
    max_audio_mb: float = Field(25, gt=0, description="largest sound file accepted, in MB")
    max_documents: int = Field(5, ge=1, description="files asked about at once (the Documents tab)")
    max_document_mb: float = Field(20, gt=0, description="largest document accepted, in MB")
    max_document_chunks: int = Field(2000, ge=1, description="chunks retrieval may index for one question (all its files together)")
    max_batch_rows: int = Field(100, ge=1, description="prompts in one Batch run")
    max_batch_tokens: int = Field(200_000, ge=1, description="tokens one Batch run may generate: rows x models x max new tokens")
    log_prompts: bool = Field(False, description="write prompt text into the private request log")
    allow_code_execution: bool = Field(False, description="offer Run for Python in the Code tab (sandboxed)")
    arena_db: Path | None = Field(None, description="SQLite file for arena votes; default: <cache_dir>/arena.sqlite3")
    arena_pool: list[str] | None = Field(None, description="models the arena draws from; default: the chat route's")
    allow_finetune: bool | None = Field(None, description="the Fine-tune tab trains LoRA adapters; default: on unless public")
    max_finetune_rows: int = Field(500, ge=1, description="training examples in one fine-tuning run")
    zero_gpu_max_seconds: int = Field(120, ge=1, description="on a ZeroGPU Space: the most GPU time one answer asks for")
    adapter_dirs: list[Path] = Field(default_factory=list, description="more folders of LoRA adapters (each with its card.json)")

    @property
    def arena_db_path(self) -> Path:
        return Path(self.arena_db or Path(self.cache_dir) / "arena.sqlite3").expanduser()

    @property
    def is_public(self) -> bool:
        return self.public if self.public is not None else bool(os.environ.get("SPACE_ID"))  # set on Hugging Face Spaces

    @property
    def finetune_allowed(self) -> bool:
        return self.allow_finetune if self.allow_finetune is not None else not self.is_public

    @property
    def rate_limits_active(self) -> bool:
        return self.rate_limits if self.rate_limits is not None else self.is_public


@dataclass(frozen=True)
class AppConfig:
    registry: Registry
    settings: Settings
    demo: bool
    demo_reason: str = ""
    mcp_servers: tuple[McpServer, ...] = ()  # the host's MCP servers (the Tools tab offers their tools)


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise RegistryError(f"Config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise RegistryError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: expected a mapping with keys {', '.join(CONFIG_KEYS)}")
    return data


def _builtin() -> dict:
    return yaml.safe_load(resources.files(__package__).joinpath("models.yaml").read_text(encoding="utf-8"))


def builtin_families() -> dict[str, Family]:
    """The families the built-in registry describes (for tools and tests that need one without a config)."""
    return parse_families(_builtin()["families"], "built-in registry")


def load_config(path: str | Path | None = None, *, demo: bool = False, **setting_overrides) -> AppConfig:
    """Built-in registry + the user's file (if any) + keyword overrides of settings."""
    builtin = _builtin()
    user = _read_yaml(Path(path)) if path else {}
    where = str(path) if path else "config"
    for key in user:
        if key not in CONFIG_KEYS:
            raise RegistryError(f"{where}: unknown key '{key}'.{closest(str(key), CONFIG_KEYS)} Allowed: {', '.join(CONFIG_KEYS)}")

    families = parse_families(builtin["families"], "built-in registry")
    families |= parse_families(user.get("families"), where, families)
    models = parse_models(builtin["models"], "built-in registry", families) + parse_models(user.get("models"), where, families)
    routes = {**parse_routes(builtin["routes"], "built-in registry"), **parse_routes(user.get("routes"), where)}
    try:
        settings = Settings.model_validate({**(user.get("settings") or {}), **{k: v for k, v in setting_overrides.items() if v is not None}})
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(map(str, first["loc"]))
        hint = closest(field, Settings.model_fields) if first["type"] == "extra_forbidden" else ""
        raise RegistryError(f"{where}: settings.{field}: {first['msg']}.{hint}") from None
    endpoints = {e.id: e for e in parse_endpoints(builtin.get("endpoints"), "built-in registry")}
    endpoints |= {e.id: e for e in parse_endpoints(user.get("endpoints"), where)}  # a user's own `dashscope` (another region) wins
    strongest = {**parse_strongest(builtin.get("strongest"), "built-in registry"), **parse_strongest(user.get("strongest"), where)}
    registry = Registry.build(models, routes, where, list(endpoints.values()), families, strongest)
    registry = replace(registry, routes=_for_machine(registry, settings.device))  # the same names, reordered
    for model_id in settings.arena_pool or []:
        if model_id not in registry.models:
            raise RegistryError(f"{where}: settings.arena_pool names unknown model '{model_id}'.{closest(model_id, registry.models)}")

    reason = "started with --demo" if demo else ""
    if not demo and not any(availability.available(m) and not registry.missing_key(m) for m in registry.choices("chat")):
        demo, reason = True, "no model of the chat route is cached or downloadable (offline?)"
    if demo:
        registry = _with_demo_models(registry, builtin)
    register_all(registry, adapter_dirs(settings.cache_dir, settings.adapter_dirs))  # fine-tuned models beside their bases
    return AppConfig(registry, settings, demo, reason, parse_mcp_servers(user.get("mcp_servers"), where))


def _for_machine(registry: Registry, device_setting: str) -> dict[str, Route]:
    """Each tab's route with this machine's default first (see `Route.for_machine`): weights in 16 bits must take at
    most 60% of the GPU's memory, leaving room for the KV cache and activations."""
    device = pick_device(device_setting)
    memory = accelerator_memory_bytes(device)
    fits = lambda model_id: memory is not None and registry.get(model_id).params_b * 2e9 <= 0.6 * memory  # noqa: E731
    return {tab: route.for_machine(device == "cpu", fits, registry.strongest.get(tab, ())) for tab, route in registry.routes.items()}


def _with_demo_models(registry: Registry, builtin: dict) -> Registry:
    """Demo models become every route's default; real models that can load stay as alternatives."""
    demo_models = parse_models(builtin["demo_models"], "built-in demo models", registry.families)
    demo_routes = parse_routes(builtin["demo_routes"], "built-in demo routes")
    routes = dict(registry.routes)
    for tab, route in demo_routes.items():
        usable = [m.id for m in registry.choices(tab) if availability.available(m)]
        routes[tab] = route.model_copy(update={"alternatives": (*route.alternatives, *usable)})
    return Registry.build([*registry.models.values(), *demo_models], routes, "demo registry", list(registry.endpoints.values()),
                          registry.families, registry.strongest)
