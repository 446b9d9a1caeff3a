"""The Multilingual task: one prompt answered in several languages at once, each answer's language checked.

Also the token-cost table: the same sentence in each chosen language through
the model's tokenizer, with the answers' token counts beside it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..backends import Backend
from ..core.config import AppConfig
from ..core.generation import Request
from ..core.prompts import load_template
from ..core.registry import ModelSpec
from ..languages import Detection, LanguageInfo, detect, get_language, matches, token_costs
from . import TaskError, refuse_if_too_long, require_text, resolve
from .conversation import AssistantTurn
from .inspect import tokenizer_for
from .streaming import stream_turns

MAX_CHOSEN = 6
COST_COLUMNS = ["language", "tokens", "characters", "chars/token", "vs English", "answer tokens"]


def within_limit(picked: list[str], before: list[str]) -> tuple[list[str], list[str]]:
    """(kept, refused): the newly ticked languages beyond MAX_CHOSEN are refused; earlier choices stay."""
    kept = [name for name in picked if name in before][:MAX_CHOSEN]
    for name in picked:
        if name not in kept and len(kept) < MAX_CHOSEN:
            kept.append(name)
    return [n for n in picked if n in kept], [n for n in picked if n not in kept]


@dataclass(frozen=True)
class MultilingualJob:
    spec: ModelSpec
    languages: list[LanguageInfo]
    requests: list[Request]


def prepare(config: AppConfig, prompt: object, languages: object, model_id: str, precision: str = "full",
            user: str = "") -> MultilingualJob:
    prompt_text = require_text(prompt, "a prompt", "prompt")
    chosen = list(languages or []) if isinstance(languages, (list, tuple)) else [languages]
    if not chosen:
        raise TaskError("Pick at least one language.", "languages")
    if len(chosen) > MAX_CHOSEN:
        raise TaskError(f"Pick at most {MAX_CHOSEN} languages at once (you picked {len(chosen)}).", "languages")
    try:
        infos = [get_language(str(name)) for name in chosen]
    except ValueError as e:
        raise TaskError(str(e), "languages") from None
    spec, template = resolve(config.registry, model_id), load_template("multilingual")
    requests = [Request(spec.id, [{"role": "system", "content": template.render_system(language=info.name)},
                                  {"role": "user", "content": template.render_user(prompt=prompt_text, language=info.name)}],
                        spec.preset(False), thinking=False, precision=precision, user=user) for info in infos]
    for request in requests:
        refuse_if_too_long(config, spec, request.messages, field="prompt")
    return MultilingualJob(spec, infos, requests)


def pane_markdown(info: LanguageInfo, turn: AssistantTurn, detection: Detection | None) -> str:
    """One language's pane: answer, then (once finished) the detected language and metrics."""
    lines = [f"### {info.label}", turn.answer or ("*thinking…*" if turn.thinking else "*waiting…*")]
    if turn.error:
        lines.append(f"**⚠️ {turn.error}**")
    elif detection is not None:
        if matches(detection, info):
            lines.append(f"✅ detected {detection.language} ({detection.confidence:.0%})")
        else:
            lines.append(f"⚠️ asked for {info.name}, detected {detection.language or 'nothing certain'} ({detection.confidence:.0%})")
        lines.append(f"<small>{turn.metrics_line}</small>")
    return "\n\n".join(lines)


@dataclass
class MultilingualView:
    panes: dict[str, str]  # language name -> pane markdown
    table: list[list] | None = None  # the token-cost table, once all answers are in
    summary: dict = field(default_factory=dict)  # per language: answer, detection, tokens (once done)


def run(backend: Backend, job: MultilingualJob, cache_dir: Path, stop: threading.Event | None = None) -> Iterator[MultilingualView]:
    detections: dict[str, Detection] = {}
    for state in stream_turns(backend, job.requests, stop):
        for info, turn in zip(job.languages, state.turns, strict=True):
            if turn.finish_reason and info.name not in detections:
                detections[info.name] = detect(turn.answer)
        panes = {info.name: pane_markdown(info, turn, detections.get(info.name)) for info, turn in zip(job.languages, state.turns, strict=True)}
        if not state.done:
            yield MultilingualView(panes)
    yield MultilingualView(panes, cost_table(job, state.turns, cache_dir), summary(job, state.turns, detections))


def cost_table(job: MultilingualJob, turns: list[AssistantTurn], cache_dir: Path) -> list[list]:
    names = [info.name for info in job.languages]
    rows = token_costs(tokenizer_for(job.spec, cache_dir)[0], names)
    return [[row[c] for c in COST_COLUMNS[:-1]] + [turn.metrics.answer_tokens if turn.metrics else None]
            for row, turn in zip(rows, turns, strict=True)]


def summary(job: MultilingualJob, turns: list[AssistantTurn], detections: dict[str, Detection]) -> dict:
    result = {}
    for info, turn in zip(job.languages, turns, strict=True):
        found = detections.get(info.name)
        result[info.name] = {"answer": turn.answer, "error": turn.error, "detected": found.language if found else None,
                             "confidence": round(found.confidence, 3) if found else None,
                             "matches": matches(found, info) if found else False,
                             "answer_tokens": turn.metrics.answer_tokens if turn.metrics else None}
    return result
