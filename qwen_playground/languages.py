"""The languages the playground offers, offline language identification, and tokenizer cost per script.

Detection uses lingua-language-detector (offline, good on short text),
built once for the offered languages plus a few close neighbours.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import yaml
from lingua import Language, LanguageDetectorBuilder

from .core.registry import closest


@dataclass(frozen=True)
class LanguageInfo:
    code: str
    name: str
    native: str
    lingua: str
    sample: str

    @property
    def label(self) -> str:
        return self.name if self.native == self.name else f"{self.name} ({self.native})"


@functools.cache
def _data() -> dict:
    return yaml.safe_load(resources.files("qwen_playground").joinpath("languages.yaml").read_text(encoding="utf-8"))


@functools.cache
def languages() -> dict[str, LanguageInfo]:
    """Offered languages by English name, in display order."""
    return {entry["name"]: LanguageInfo(**entry) for entry in _data()["languages"]}


def get_language(name: str) -> LanguageInfo:
    try:
        return languages()[name]
    except KeyError:
        raise ValueError(f"Unknown language '{name}'.{closest(name, languages())} Offered: {', '.join(languages())}") from None


@functools.cache
def _detector():
    names = [info.lingua for info in languages().values()] + _data()["also_detect"]
    return LanguageDetectorBuilder.from_languages(*(getattr(Language, n) for n in names)).build()


@dataclass(frozen=True)
class Detection:
    language: str | None  # English name, e.g. "Spanish"; None when unsure
    confidence: float


def detect(text: str) -> Detection:
    """The language `text` is written in, by lingua."""
    if not text.strip():
        return Detection(None, 0.0)
    values = _detector().compute_language_confidence_values(text)
    if not values:
        return Detection(None, 0.0)
    best = values[0]
    return Detection(best.language.name.title(), best.value)


def matches(detection: Detection, wanted: LanguageInfo) -> bool:
    return detection.language is not None and detection.language.upper() == wanted.lingua


def token_costs(tokenizer, names: list[str]) -> list[dict]:
    """Tokens the same sentence costs in each language, relative to English."""
    rows = []
    english = len(tokenizer(languages()["English"].sample, add_special_tokens=False).input_ids)
    for name in names:
        info = get_language(name)
        count = len(tokenizer(info.sample, add_special_tokens=False).input_ids)
        rows.append({"language": info.label, "tokens": count, "characters": len(info.sample),
                     "chars/token": round(len(info.sample) / count, 2), "vs English": round(count / english, 2)})
    return rows
