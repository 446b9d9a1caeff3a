"""The Compare task: one prompt to several panes at once, each with its own model and settings.

A pane is data (`PaneSetup`: model, thinking, temperature, max new tokens,
precision, whether to record token alternatives, its own conversation so far), so the tab, the `/compare` API (a list
of panes), lessons and presets all speak the same shape. Also here: "change
one thing" presets derived from registry facts (never from model names), the
agreement of the panes' boxed answers, and Markdown/JSON export.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field, replace
from typing import Iterator, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..backends import Backend
from ..backends.engines import TRANSFORMERS
from ..core.config import AppConfig
from ..core.generation import DRAFT_TOKENS, TOP_ALTERNATIVES, Request, precision_named
from ..core.prompts import load_template
from ..core.registry import Family, ModelSpec, Registry
from ..mathcheck import check_answer
from ..mathtext import extract_boxed
from . import TaskError, drafts, one_of, refuse_if_too_long, require_text, resolve, token_choices
from .chat import explained
from .conversation import AssistantTurn, Conversation, Message, model_messages
from .streaming import stream_turns

MAX_PANES = 4
TUNED_ANSWER_TOKENS = 128  # "Base vs fine-tuned": a taught fact fits; a tiny demo network's babble stops soon
TEMPLATES = {"Chat": ("chat", "message"), "Math (step by step, \\boxed{} answer)": ("math", "problem")}  # label -> (template, its variable)


class PaneSetup(BaseModel):
    """One pane: what it runs, and its conversation so far."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    model: str
    thinking: bool = False
    temperature: float | None = Field(None, ge=0, le=2)  # None: the model's preset
    max_new_tokens: int | None = Field(None, ge=1)
    precision: str = Field("full", validation_alias=AliasChoices("precision", "weights"))  # local models; "weights": its name before 0.2
    alternatives: bool = False  # each token's probability and top alternatives ("why this token?")
    engine: Literal["auto", "transformers", "llama.cpp"] = "auto"  # local models: the engine, where it runs the model
    draft: str = ""  # speculative decoding (local models): "" off, prompt lookup, or a draft model's id (tasks/drafts.py)
    draft_tokens: int = DRAFT_TOKENS
    history: Conversation = Field(default_factory=Conversation)

    @field_validator("precision")
    @classmethod
    def _current_name(cls, value: str) -> str:
        return precision_named(value)

    def export(self) -> dict:
        return self.model_dump(exclude={"history"})


@dataclass
class PaneResult:
    setup: PaneSetup
    answer: str = ""
    thinking: str = ""
    metrics: dict = field(default_factory=dict)
    error: str | None = None
    tokens: list[dict] = field(default_factory=list)  # token_choices.to_records, when the pane asked for alternatives
    tokens_note: str = ""  # why they are missing, when they are
    chat: list[Message] = field(default_factory=list, repr=False)  # the pane's conversation as shown (not exported)


def comparable_models(registry: Registry) -> list[ModelSpec]:
    """Every text model a tab routes to, in route order, once."""
    seen: dict[str, ModelSpec] = {}
    for tab in ("chat", "code", "math", "multilingual"):
        for spec in registry.choices(tab):
            seen.setdefault(spec.id, spec)
    return list(seen.values())


def presets(registry: Registry, precisions: tuple[str, ...] = ("full",)) -> dict[str, list[PaneSetup]]:
    """'Change one thing' comparisons that this registry can actually run (`precisions`: the precision
    choices this machine offers). A fine-tuned model gets one of its own: its base beside it."""
    models = [m for m in comparable_models(registry) if not m.adapter and not registry.missing_key(m)]  # what can answer here
    # a fine-tuned model runs on transformers (its LoRA merged into the weights): its base on the same engine, and answers
    # short enough to read side by side
    found: dict[str, list[PaneSetup]] = {
        f"Base vs fine-tuned ({m.base} vs {m.id}, both on transformers)": [
            PaneSetup(model=model, engine=TRANSFORMERS, max_new_tokens=TUNED_ANSWER_TOKENS) for model in (m.base, m.id)]
        for m in comparable_models(registry) if m.adapter and m.base in registry.models}
    if len(precisions) > 1 and models:
        smallest = min(models, key=lambda m: m.params_b)
        names = " vs ".join(precisions)
        found[f"Precision: {names} ({smallest.id})"] = [PaneSetup(model=smallest.id, precision=p) for p in precisions]
    thinker = next((m for m in models if m.family.thinking == "switch"), None)
    if thinker:
        found[f"Thinking on vs off ({thinker.id})"] = [PaneSetup(model=thinker.id, thinking=True), PaneSetup(model=thinker.id)]
    by_family: dict[Family, list[ModelSpec]] = {}
    for m in models:
        by_family.setdefault(m.family, []).append(m)
    for family, members in by_family.items():
        sizes = sorted({m.params_b: m for m in members}.values(), key=lambda m: m.params_b)
        if len(sizes) >= 2:
            small, large = sizes[0], sizes[1]
            found[f"Two sizes of {family.label} ({small.params_b:g}B vs {large.params_b:g}B)"] = [PaneSetup(model=small.id), PaneSetup(model=large.id)]
    general = [f for f in by_family if f.specialty == "general" and f.generation]
    for kind in ("switch", "none"):  # one generation against another, thinking the same way, at the closest sizes
        same_kind = sorted((f for f in general if f.thinking == kind), key=lambda f: f.generation)  # names sort by release
        for first, second in zip(same_kind, same_kind[1:]):
            if first.generation != second.generation:
                a, b = closest_pair(by_family[first], by_family[second])
                found[f"{first.label} vs {second.label} ({a.id} vs {b.id})"] = [PaneSetup(model=a.id), PaneSetup(model=b.id)]
    for generation in dict.fromkeys(f.generation for f in general):  # one generation's never-thinking and always-thinking models
        kinds = {f.thinking: f for f in general if f.generation == generation}
        if {"none", "always"} <= set(kinds):
            a, b = closest_pair(by_family[kinds["none"]], by_family[kinds["always"]])
            found[f"Never thinks vs always thinks: {kinds['none'].label} vs {kinds['always'].label}"] = [
                PaneSetup(model=a.id), PaneSetup(model=b.id, thinking=True)]
    for generation in dict.fromkeys(f.generation for f in by_family if f.generation):
        # the same generation's general, code and math families, each at its size closest to 1.5B
        specialty = {f.specialty: members for f, members in by_family.items() if f.generation == generation}
        if {"general", "code", "math"} <= set(specialty):
            picks = [min(specialty[s], key=lambda m: abs(m.params_b - 1.5)) for s in ("general", "code", "math")]
            found[f"Instruct vs Coder vs Math ({generation})"] = [PaneSetup(model=m.id) for m in picks]
    return found


def closest_pair(first: list[ModelSpec], second: list[ModelSpec]) -> tuple[ModelSpec, ModelSpec]:
    """One model of each list, as close in size as the lists allow (a fair match between two families)."""
    return min(((a, b) for a in first for b in second), key=lambda pair: abs(math.log(pair[0].params_b / pair[1].params_b)))


def agreement(answers: list[str | None]) -> str:
    """Which panes' \\boxed{} answers agree, checked as math; '' when fewer than two have one."""
    boxed = [(i + 1, b) for i, a in enumerate(answers) if a and (b := extract_boxed(a))]
    if len(boxed) < 2:
        return ""
    groups: list[list[tuple[int, str]]] = []
    for pane, value in boxed:
        for group in groups:
            try:
                same = check_answer(group[0][1], value).equal
            except ValueError:
                same = group[0][1].strip() == value.strip()
            if same:
                group.append((pane, value))
                break
        else:
            groups.append([(pane, value)])
    if len(groups) == 1:
        return f"✅ All {len(boxed)} final answers agree: {boxed[0][1]}"
    parts = [f"pane{'s' if len(g) > 1 else ''} {', '.join(str(p) for p, _ in g)}: {g[0][1]}" for g in groups]
    return "⚠️ Final answers differ — " + "; ".join(parts)


def to_json(prompts: list[str], results: list[PaneResult]) -> str:
    panes = [{**{k: v for k, v in vars(r).items() if k not in ("setup", "chat")}, "setup": r.setup.export()} for r in results]
    return json.dumps({"prompts": prompts, "panes": panes}, ensure_ascii=False, indent=2)


def to_markdown(prompts: list[str], results: list[PaneResult]) -> str:
    lines = ["# Qwen Playground comparison", ""]
    lines += [f"**Prompt {i + 1}:** {p}" for i, p in enumerate(prompts)] + [""]
    for n, r in enumerate(results, 1):
        s = r.setup
        lines += [f"## Pane {n}: {s.model}", "",
                  f"- thinking: {'on' if s.thinking else 'off'}; temperature: {s.temperature if s.temperature is not None else 'preset'}; "
                  f"max new tokens: {s.max_new_tokens or 'preset'}; precision: {s.precision}"]
        if r.metrics:
            lines.append("- " + "; ".join(f"{k}: {v}" for k, v in r.metrics.items()))
        if r.error:
            lines.append(f"- error: {r.error}")
        if r.thinking:
            lines += ["", "<details><summary>Thinking</summary>", "", r.thinking, "", "</details>"]
        lines += ["", r.answer, ""]
        if r.setup.alternatives or r.tokens:
            lines += [f"<details><summary>{token_choices.TITLE}</summary>", "", token_choices.to_markdown(token_choices.from_records(r.tokens, r.tokens_note)),
                      "", "</details>", ""]
    return "\n".join(lines)



def pane_setups(panes: object) -> list[PaneSetup]:
    """Panes from the API's list of dicts (or PaneSetups), validated with a message that names the pane."""
    if not isinstance(panes, (list, tuple)) or not 2 <= len(panes) <= MAX_PANES:
        raise TaskError(f"Give between 2 and {MAX_PANES} panes, each {{model, thinking, temperature, max_new_tokens, precision, engine, alternatives, "
                        "draft, draft_tokens, history}.")
    setups = []
    for n, pane in enumerate(panes, 1):
        try:
            setups.append(pane if isinstance(pane, PaneSetup) else PaneSetup.model_validate(pane))
        except ValidationError as e:
            first = e.errors()[0]
            raise TaskError(f"Pane {n}: {'.'.join(map(str, first['loc'])) or 'it'}: {first['msg']}.") from None
    return setups


@dataclass(frozen=True)
class CompareJob:
    text: str
    setups: list[PaneSetup]
    histories: list[list[Message]]  # each pane's conversation before this prompt
    requests: list[Request]


def pane_messages(spec: ModelSpec, history: list[Message], template: str, text: str) -> list[dict]:
    """A pane's next request: its own conversation, then the prompt through the chosen template."""
    template_name, variable = TEMPLATES[template]
    prompt_template = load_template(template_name)
    return model_messages(history, prompt_template.render_system(), spec.family.thinking_tags) + [
        {"role": "user", "content": prompt_template.render_user(**{variable: text})}]


def prepare(config: AppConfig, prompt: object, panes: object, template: str = "Chat", thinking_budget: int = 0, user: str = "") -> CompareJob:
    text = require_text(prompt, "a prompt", "prompt")
    one_of(template, TEMPLATES, "template", "template")
    setups = pane_setups(panes)
    specs = [resolve(config.registry, s.model) for s in setups]
    histories = [s.history.path() for s in setups]
    requests = []
    for spec, setup, history in zip(specs, setups, histories, strict=True):
        think = spec.family.thinks(setup.thinking)
        overrides = {k: v for k, v in (("temperature", setup.temperature), ("max_new_tokens", setup.max_new_tokens)) if v is not None}
        messages = pane_messages(spec, history, template, text)
        refuse_if_too_long(config, spec, messages, f"Shorten the prompt or clear the panes (pane {len(requests) + 1} is over).", "prompt")
        try:
            draft, draft_tokens = drafts.checked(config.registry, spec, setup.draft, setup.draft_tokens)
        except TaskError as e:
            raise TaskError(f"Pane {len(requests) + 1}: {e}", e.field) from None
        requests.append(Request(spec.id, messages, spec.preset(think).model_copy(update=overrides), think, int(thinking_budget or 0) or None,
                                setup.precision, user, TOP_ALTERNATIVES if setup.alternatives else 0,
                                "" if setup.engine == "auto" else setup.engine, draft=draft, draft_tokens=draft_tokens))
    return CompareJob(text, setups, histories, requests)


@dataclass
class CompareView:
    chats: list[list[Message]]  # each pane's conversation
    lines: list[str]  # each pane's metrics line (or its error)
    notice: str = ""  # why the panes run one after another, when they do
    agreement: str | None = None  # set once all are done
    results: list[PaneResult] | None = None  # set once all are done, for export


def run(backend: Backend, job: CompareJob, stop: threading.Event | None = None) -> Iterator[CompareView]:
    prompt = Message.user(job.text)
    for state in stream_turns(backend, job.requests, stop):
        for turn, request in zip(state.turns, job.requests, strict=True):
            turn.request = request  # what "why this token?" after the fact asks again
        chats = [[*history, prompt, Message.assistant(turn)]
                 for history, turn in zip(job.histories, state.turns, strict=True)]
        lines = [f"⚠️ {turn.error}" if turn.error else turn.metrics_line for turn in state.turns]
        if not state.done:
            yield CompareView(chats, lines, state.notice)
    results = [pane_result(setup, turn, chat) for setup, turn, chat in zip(job.setups, state.turns, chats, strict=True)]
    yield CompareView(chats, lines, state.notice, agreement([t.answer for t in state.turns]), results)


def pane_result(setup: PaneSetup, turn: AssistantTurn, chat: list[Message] | None = None) -> PaneResult:
    return PaneResult(setup, turn.answer, turn.thinking, {"metrics": turn.metrics_line} if turn.metrics else {}, turn.error,
                      token_choices.to_records(turn.choices), turn.choices.note if turn.choices else "", list(chat or []))


def explain_pane(backend: Backend, result: PaneResult, stop: threading.Event | None = None) -> PaneResult:
    """Why this token? for a pane's last answer after it was given: one pass of its model over the answer (as Chat's
    `explained`); the result with its tokens, or as it was when it has them or no answer."""
    turn = result.chat[-1].turn if result.chat else None
    if turn is None or turn.choices is not None or not turn.produced_output:
        return result
    turn.choices = explained(backend, turn, stop or threading.Event())
    return replace(result, tokens=token_choices.to_records(turn.choices), tokens_note=turn.choices.note)
