"""The Audio task: speech to text (Qwen3-ASR), and questions about a recording (Qwen2-Audio).

A clip is checked and made mono 16 kHz (`audio.check_audio`), priced in audio
tokens (exactly, by the model's own processor where its files are at hand;
else from the family's tokens per second), and sent as an audio part of the
user turn. A speech-recognition family answers "language English<asr_text>
the words": the transcript and the detected language are read from that, and
choosing a language begins the answer with that prefix, which forces it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..audio import CheckedAudio, check_audio, describe_seconds
from ..backends import Backend
from ..core.config import AppConfig
from ..core.generation import Request
from ..core.prompts import load_template
from ..core.registry import Audio, ModelSpec
from ..vision import UploadRejected
from . import TaskError, refuse_if_too_long, require_text, resolve
from .conversation import Message, Part
from .streaming import stream_turns

AUTO = "Detect"  # the language choice that lets the model identify it
TASKS = ("Transcribe", "Ask about it")


@dataclass(frozen=True)
class AudioCost:
    """What a clip costs a model: its length at the model's rate, and the audio tokens it becomes."""

    seconds: float
    rate: int
    tokens: int
    exact: bool  # counted by the model's processor; else estimated from the family's tokens per second
    model_id: str

    @property
    def per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        how = "counted by its processor" if self.exact else "estimated: its processor's files are not here"
        return (f"**{describe_seconds(self.seconds)}** of sound at {self.rate / 1000:g} kHz → **{'' if self.exact else '~'}{self.tokens} audio "
                f"tokens** for {self.model_id} ({self.per_second:.1f} a second; {how})")


def audio_traits(spec: ModelSpec) -> Audio:
    if spec.family.audio is None:
        raise TaskError(f"{spec.id} does not hear sound; pick an audio model.", "model")
    return spec.family.audio


def clip_limit(config: AppConfig, spec: ModelSpec) -> float:
    """The longest clip a request to `spec` takes here: the app's setting or the model's own limit, whichever is less."""
    return min(config.settings.max_audio_seconds, audio_traits(spec).max_seconds)


def checked_clip(config: AppConfig, spec: ModelSpec, path: object) -> CheckedAudio:
    if not path:
        raise TaskError("Record or upload a clip first.", "audio")
    try:
        return check_audio(Path(str(path)), clip_limit(config, spec), int(config.settings.max_audio_mb * 2**20), audio_traits(spec).sample_rate)
    except UploadRejected as e:
        raise TaskError(str(e), "audio") from None


def clip_cost(config: AppConfig, spec: ModelSpec, clip: CheckedAudio) -> AudioCost:
    """The clip's audio tokens for `spec`: exact with the model's processor (demo models, downloaded or reachable
    ones), else estimated from the family's rate."""
    from .inspect import processor_for

    try:
        processor = processor_for(spec, config.settings.cache_dir)
    except Exception:  # a processor that cannot be had offline: the estimate stands
        processor = None
    if processor is not None:
        from ..backends.encoding import audio_token_count

        return AudioCost(clip.seconds, clip.rate, audio_token_count(spec, processor, clip.samples), True, spec.id)
    return AudioCost(clip.seconds, clip.rate, round(clip.seconds * audio_traits(spec).tokens_per_second), False, spec.id)


@dataclass(frozen=True)
class AudioJob:
    spec: ModelSpec
    request: Request
    clip: CheckedAudio
    cost: AudioCost
    shown: list[Message]  # what the conversation shows of the request
    language: str | None = None  # a language forced by the person (transcription)

    @property
    def requests(self) -> list[Request]:
        return [self.request]

    @property
    def notes(self) -> list[str]:
        return [f"{self.clip.name}: {note}" for note in self.clip.notes]


def audio_part(clip: CheckedAudio) -> dict:
    return {"type": "audio", "audio": clip.samples, "sampling_rate": clip.rate}


def prepare_transcription(config: AppConfig, path: object, language: object, context: object, model_id: str, precision: str = "full",
                          user: str = "") -> AudioJob:
    """A transcription request: the context (names, terms) as the system turn, the clip as the user turn, and the
    answer begun with the chosen language (Detect: the model names it)."""
    spec = resolve(config.registry, model_id)
    traits = audio_traits(spec)
    if not traits.transcribes:
        raise TaskError(f"{spec.id} answers questions about sound; to transcribe, pick a speech-recognition model (Qwen3-ASR).", "model")
    forced = None if language in (None, "", AUTO) else str(language)
    if forced is not None and spec.languages is not None and forced not in spec.languages:
        raise TaskError(f"{spec.id} does not transcribe {forced}; choose {AUTO} or one of: {', '.join(spec.languages)}.", "language")
    clip = checked_clip(config, spec, path)
    template = load_template("transcribe")
    messages = [{"role": "system", "content": template.render_system(context=str(context or "").strip())},
                {"role": "user", "content": [audio_part(clip)]}]
    if forced:
        messages.append({"role": "assistant", "content": f"{traits.language_prefix}{forced}{traits.transcript_marker}"})
    refuse_if_too_long(config, spec, messages[:1], "Shorten the context.", "context")
    request = Request(spec.id, messages, spec.preset(False), precision=precision, user=user)
    shown = [Message("user", [Part("audio", path=str(path)), Part("text", f"Transcribe {clip.name}")])]
    return AudioJob(spec, request, clip, clip_cost(config, spec, clip), shown, forced)


def prepare_question(config: AppConfig, path: object, question: object, system_prompt: object, model_id: str, precision: str = "full",
                     user: str = "") -> AudioJob:
    """A question about the clip: the clip, then the question, in the user turn (as Qwen2-Audio's card writes it)."""
    spec = resolve(config.registry, model_id)
    if audio_traits(spec).transcribes:
        raise TaskError(f"{spec.id} only transcribes speech; to ask about a recording, pick an audio-language model (Qwen2-Audio).", "model")
    text = require_text(question, "a question about the recording", "question")
    clip = checked_clip(config, spec, path)
    template = load_template("audio")
    system = str(system_prompt or "").strip() or template.render_system()
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": [audio_part(clip), {"type": "text", "text": template.render_user(question=text)}]})
    refuse_if_too_long(config, spec, messages, "Shorten the question or the system prompt.", "question")  # the clip's tokens come on top
    request = Request(spec.id, messages, spec.preset(False), precision=precision, user=user)
    shown = [Message("user", [Part("audio", path=str(path)), Part("text", text)])]
    return AudioJob(spec, request, clip, clip_cost(config, spec, clip), shown)


def prepare(config: AppConfig, task: object, path: object, language: object, context: object, transcribe_model: str, question: object,
            system_prompt: object, ask_model: str, precision: str = "full", user: str = "") -> AudioJob:
    """The Audio tab's request for its chosen task (what its inspector shows)."""
    if task == TASKS[0]:
        return prepare_transcription(config, path, language, context, transcribe_model, precision, user)
    if task == TASKS[1]:
        return prepare_question(config, path, question, system_prompt, ask_model, precision, user)
    raise TaskError(f"Unknown task '{task}'; choose one of: {', '.join(TASKS)}.", "task")


def read_transcript(traits: Audio, answer: str, forced: str | None = None, done: bool = True) -> tuple[str | None, str]:
    """(language, transcript) from a speech-recognition answer, as far as it has streamed: "language English<asr_text>
    the words". While the prefix is still arriving the transcript is empty; "language None" means no speech heard;
    a finished answer without the marker is all transcript."""
    if forced:
        return forced, answer.strip()
    marker, prefix = traits.transcript_marker, traits.language_prefix
    if marker not in answer:
        head = answer.lstrip()
        arriving = not done and (head.startswith(prefix) or prefix.startswith(head)) and "\n" not in head
        return None, "" if arriving else head.strip()
    said, text = answer.split(marker, 1)
    language = said.strip().removeprefix(prefix.strip()).strip()
    return (None if language in ("", "None") else language), text.strip()


@dataclass
class AudioView:
    conversation: list[Message]
    metrics: str
    notes: str
    cost: str
    transcript: str = ""
    language: str | None = None
    error: str | None = None
    done: bool = False


def run(backend: Backend, job: AudioJob, stop: threading.Event | None = None) -> Iterator[AudioView]:
    """The answer as it streams; for a transcription, the transcript and language read from it."""
    traits = audio_traits(job.spec)
    notes = "\n".join(f"- {n}" for n in job.notes)
    for state in stream_turns(backend, job.requests, stop):
        turn = state.turns[0]
        language, transcript = read_transcript(traits, turn.answer, job.language, state.done) if traits.transcribes else (None, "")
        yield AudioView([*job.shown, Message.assistant(turn)], turn.metrics_line, notes, job.cost.line(), transcript, language, turn.error,
                        state.done)


def transcribe(backend: Backend, job: AudioJob, stop: threading.Event | None = None) -> AudioView:
    """The finished transcription (Chat's microphone waits for it whole)."""
    view = None
    for view in run(backend, job, stop):
        pass
    return view


def dictation_model(config: AppConfig) -> ModelSpec:
    """The model that turns Chat's spoken messages into text: the transcription route's default for this machine."""
    choices = config.registry.choices("transcribe")
    if not choices:
        raise TaskError("No speech-recognition model is configured (the 'transcribe' route): type the message instead.", "audio")
    return choices[0]


def dictate(config: AppConfig, backend: Backend, path: object, user: str = "") -> tuple[str, AudioView, ModelSpec]:
    """A spoken message as text for the message box: (the transcript, the finished view, the model that wrote it)."""
    spec = dictation_model(config)
    view = transcribe(backend, prepare_transcription(config, path, AUTO, "", spec.id, user=user))
    if view.error:
        raise TaskError(f"{spec.id} could not transcribe the recording: {view.error}", "audio")
    if not view.transcript:
        raise TaskError(f"{spec.id} heard no speech in the recording; speak a little louder or closer, and record again.", "audio")
    return view.transcript, view, spec
