"""Lessons: a tab's state (prompt, settings, models, panes) as a file or a link.

A lesson is {title, description, tab, values}: `values` maps the tab's field
names (the same names as its API parameters) to their values. Lessons ship
as YAML in `prompts/lessons/`; users save theirs as JSON or as a link whose
`?lesson=` parameter carries the same JSON, base64url-encoded.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .core.prompts import PROMPTS_DIR
from .core.registry import Registry

LESSONS_DIR = PROMPTS_DIR / "lessons"


class Lesson(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    description: str = ""
    tab: str
    values: dict[str, Any] = {}


def parse_lesson(data: object, where: str = "lesson") -> Lesson:
    try:
        return Lesson.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise ValueError(f"{where} is not a lesson: {'.'.join(map(str, first['loc'])) or 'it'}: {first['msg']}") from None


def load_lessons(directory: Path = LESSONS_DIR) -> dict[str, Lesson]:
    """The shipped lessons by file name."""
    return {p.stem: parse_lesson(yaml.safe_load(p.read_text(encoding="utf-8")), f"prompts/lessons/{p.name}")
            for p in sorted(directory.glob("*.yaml"))}


def to_json(lesson: Lesson) -> str:
    return lesson.model_dump_json(indent=2)


def from_json(text: str) -> Lesson:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"The lesson file is not JSON: {e}") from None
    return parse_lesson(data, "The file")


def to_link(lesson: Lesson, page_url: str) -> str:
    packed = base64.urlsafe_b64encode(lesson.model_dump_json().encode("utf-8")).decode("ascii").rstrip("=")
    return f"{page_url.split('?')[0]}?{urlencode({'lesson': packed})}"


def from_link(packed: str) -> Lesson:
    try:
        text = base64.b64decode(packed + "=" * (-len(packed) % 4), altchars=b"-_", validate=True).decode("utf-8")
        data = json.loads(text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("The lesson link is damaged (its ?lesson= part could not be decoded); ask for a fresh link.") from None
    return parse_lesson(data, "The link")


@dataclass(frozen=True)
class FieldSpec:
    """What a tab's field accepts: its default, its choices when it has a fixed list, and how to find the
    offered choice closest to one this server lacks (None: use the default)."""

    default: Any
    choices: list | None = None
    substitute: Callable[[Any, list], Any] | None = None


def closest_model(registry: Registry, missing: str, choices: list) -> str | None:
    """The offered model most like a missing one: the same family, else the same way of thinking."""
    if missing not in registry.models:
        return None
    wanted = registry.get(missing).family
    for alike in (lambda f: f == wanted, lambda f: f.thinking == wanted.thinking):
        found = next((c for c in choices if c in registry.models and alike(registry.get(c).family)), None)
        if found is not None:
            return found
    return None


def resolve(lesson: Lesson, fields: dict[str, dict[str, FieldSpec]]) -> tuple[str | None, dict[str, Any], list[str]]:
    """(tab to open or None, field values to set, notes for the user) for this server's tabs and choices."""
    if lesson.tab not in fields:
        asks = "; ".join(f"{k}: {v}" for k, v in lesson.values.items())
        return None, {}, [f"**{lesson.title}** is a lesson for the *{lesson.tab}* tab, which this playground does not have yet, "
                          f"so nothing was changed. It asks for: {asks}"]
    notes, values = [], {}
    for key, value in lesson.values.items():
        spec = fields[lesson.tab].get(key)
        if spec is None:
            notes.append(f"ignored unknown field '{key}'")
        elif spec.choices is not None and isinstance(value, list):
            values[key] = [v for v in value if v in spec.choices]
            if len(values[key]) < len(value):
                notes.append(f"{key}: {', '.join(str(v) for v in value if v not in spec.choices)} not offered here, left out")
        elif spec.choices is not None and value not in spec.choices:
            instead = (spec.substitute(value, spec.choices) if spec.substitute else None) or spec.default
            notes.append(f"The lesson asks for **{value}** ({key.replace('_', ' ')}), which this server does not have, so **{instead}** "
                         "stands in. (Whoever runs the server can add it to its config file to follow the lesson exactly.)")
            values[key] = instead
        else:
            values[key] = value
    return lesson.tab, values, notes
