"""The Chat task: one turn of a multi-turn conversation, with thinking, presets, trimming and a budget.

`prepare` turns a turn's `ChatInputs` (the tab's and the `/chat` API's
values) into the request it sends and the history to show; `run` streams the
answer into the conversation. The inspector calls `prepare` too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pydantic import ValidationError

from ..backends import Backend
from ..core.config import AppConfig
from ..core.generation import TOP_ALTERNATIVES, Request, SamplingParams
from ..core.prompts import load_template
from ..core.registry import ModelSpec
from ..mathtext import protect_math, protect_typed
from ..service.lengths import conversation_tokens, trim_history
from ..vision import UploadRejected, check_image, image_cost
from . import TaskError, refuse_if_too_long, resolve
from .chat_history import THINKING_TITLE, files_of, is_helper, normalize_history, split_last_turn, to_model_messages, user_content, with_files
from .streaming import stream_turns

MAX_IMAGES = 8  # per message
IMAGE_TOKENS = 1280  # at most this many tokens per image (the Vision tab's default), in the model's own token side
SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty", "max_new_tokens")


def preset_values(spec: ModelSpec, thinking: bool) -> list:
    """The sampling sliders' values for a model and mode, in SAMPLING_FIELDS order."""
    params = spec.preset(thinking)
    return [getattr(params, f) for f in SAMPLING_FIELDS]


def sampling_of(*values) -> SamplingParams:
    """Sampling settings from slider values in SAMPLING_FIELDS order, or TaskError naming the bad one."""
    try:
        return SamplingParams(**dict(zip(SAMPLING_FIELDS, values, strict=True)))
    except ValidationError as e:
        first = e.errors()[0]
        raise TaskError(f"Invalid {first['loc'][0]}: {first['msg']}.", str(first["loc"][0])) from None


def history_of(history: object) -> list[dict]:
    try:
        return normalize_history(history)
    except ValueError as e:
        raise TaskError(str(e), "history") from None


@dataclass(frozen=True)
class ChatInputs:
    """One turn's inputs, as the Chat tab shows them; `from_api` reads them in the `/chat` API's order."""

    message: object
    history: object
    model: str
    system_prompt: str = ""
    thinking: bool = False
    sampling: SamplingParams | None = None  # None: the model's preset for the thinking mode
    thinking_budget: int = 0
    precision: str = "full"
    trim_history: bool = False
    alternatives: bool = False  # record each token's probability and its top alternatives ("why this token?")
    images: tuple[str, ...] = ()  # image files attached to this message (models that see: Qwen3.5, Qwen3-VL)

    @classmethod
    def from_api(cls, message: object, history: object, model: str, system_prompt: str, thinking: bool, temperature: float, top_p: float,
                 top_k: int, min_p: float, repetition_penalty: float, presence_penalty: float, max_new_tokens: int,
                 thinking_budget: int = 0, precision: str = "full", trim_history: bool = False, alternatives: bool = False,
                 images: object = None) -> ChatInputs:
        """The positional values the tab and `/chat` send (sampling as its seven sliders, in SAMPLING_FIELDS order)."""
        sampling = sampling_of(temperature, top_p, top_k, min_p, repetition_penalty, presence_penalty, max_new_tokens)
        return cls(message, history, model, system_prompt or "", bool(thinking), sampling, thinking_budget, precision, bool(trim_history),
                   bool(alternatives), paths_of(images))


@dataclass(frozen=True)
class ChatJob:
    request: Request
    before: list[dict]  # the conversation before this message (given back to edit when nothing was produced)
    shown: list[dict]  # the conversation with this message, as the answer streams in below it
    dropped: int = 0  # oldest exchanges trimmed to fit
    stripped_thoughts: int = 0  # earlier thoughts shown in the chat but not sent back (Qwen's multi-turn advice)
    image_tokens: int = 0  # what this message's images cost, in the model's own token side

    @property
    def requests(self) -> list[Request]:
        return [self.request]


TOO_LONG_ADVICE = "Shorten the message, undo or clear earlier turns, or tick 'Trim oldest turns to fit'."


def paths_of(files: object) -> tuple[str, ...]:
    """File paths from what Gradio or the API gives for attached files (paths, file dicts or objects with `.name`)."""
    if not files:
        return ()
    paths = []
    for f in files if isinstance(files, (list, tuple)) else [files]:
        path = f.get("path") if isinstance(f, dict) else getattr(f, "name", f)
        if not isinstance(path, (str, Path)):
            raise TaskError("Attach images as files.", "images")
        paths.append(str(path))
    return tuple(paths)


def check_images(spec: ModelSpec, paths: tuple[str, ...], history_has_images: bool) -> tuple[dict, int]:
    """(min/max pixel bounds for every image in the conversation, what this message's images cost in tokens); refuses
    images for a model that reads text only, and an unreadable or oversized image, naming it."""
    if not paths and not history_has_images:
        return {}, 0
    if spec.family.vision is None or spec.adapter:  # a fine-tuned model runs as its text side (LoRA trained on text)
        where = "This message has" if paths else "This conversation has"
        raise TaskError(f"{where} images, and {spec.id} reads text only: pick a model that sees (Qwen3.5, Qwen3-VL), "
                        f"or {'remove the images' if paths else 'start a new conversation'}.", "images")
    if len(paths) > MAX_IMAGES:
        raise TaskError(f"At most {MAX_IMAGES} images in one message (you attached {len(paths)}).", "images")
    side = spec.family.vision.token_side
    bounds = {"min_pixels": 4 * side**2, "max_pixels": IMAGE_TOKENS * side**2}
    try:
        costs = [image_cost(check_image(path).image, bounds["min_pixels"], bounds["max_pixels"], side).tokens for path in paths]
    except UploadRejected as e:
        raise TaskError(str(e), "images") from None
    return bounds, sum(costs)


def prepare(config: AppConfig, inputs: ChatInputs, user: str = "", require_message: bool = True) -> ChatJob:
    """The next turn: the conversation so far (answers without thinking), then the message (and its images) through the
    chat template."""
    text = inputs.message.strip() if isinstance(inputs.message, str) else ""
    if require_message and not text:
        raise TaskError("Type a message first." if not inputs.images else "Add a question about the images.", "message")
    spec, before, template = resolve(config.registry, inputs.model), history_of(inputs.history), load_template("chat")
    bounds, image_tokens = check_images(spec, inputs.images, any(files_of(m["content"]) for m in before))
    dropped = 0
    if inputs.trim_history and text:
        budget = config.settings.max_input_tokens - conversation_tokens(
            [{"role": "system", "content": inputs.system_prompt}, {"role": "user", "content": template.render_user(message=text)}])
        before, dropped = trim_history(before, max(0, budget))
    messages = to_model_messages(before, inputs.system_prompt, spec.family.thinking_tags, bounds)
    if text:
        messages.append({"role": "user", "content": user_content(template.render_user(message=text), list(inputs.images), bounds)})
        refuse_if_too_long(config, spec, messages, TOO_LONG_ADVICE, "message")
    think = spec.family.thinks(inputs.thinking)
    request = Request(spec.id, messages, inputs.sampling or spec.preset(think), think, int(inputs.thinking_budget or 0) or None,
                      inputs.precision, user, TOP_ALTERNATIVES if inputs.alternatives else 0)
    stripped = sum(1 for m in before if is_helper(m) and m["metadata"]["title"] == THINKING_TITLE)
    shown = [{"role": "user", "content": with_files(protect_typed(text), list(inputs.images))}] if text else []
    return ChatJob(request, before, before + shown, dropped, stripped, image_tokens)


def last_message(history: object) -> tuple[list[dict], str, tuple[str, ...]]:
    """(the conversation before its last user message, that message, the images it had): for retry and undo."""
    everything = history_of(history)
    before, text = split_last_turn(everything)
    if text is None:
        raise TaskError("Nothing to retry yet.")
    return before, text, tuple(files_of(everything[len(before)]["content"]))


@dataclass(frozen=True)
class ChatView:
    history: list[dict]
    error: str | None = None
    produced_output: bool = False


def run(backend: Backend, job: ChatJob, stop: threading.Event | None = None) -> Iterator[ChatView]:
    """The conversation as the answer streams in (the metrics line saying what this message's images cost); the last
    view carries any error."""
    for state in stream_turns(backend, job.requests, stop):
        turn = state.turns[0]
        if job.image_tokens and turn.metrics and turn.footer and "🖼" not in turn.footer["metadata"]["title"]:
            count = len(files_of(job.shown[-1]["content"]))
            turn.footer["metadata"]["title"] += f" · 🖼 {count} image{'s' if count > 1 else ''}: {job.image_tokens} of the prompt tokens"
        yield ChatView(job.shown + [dict(m, content=protect_math(m["content"])) for m in turn.messages], turn.error, turn.produced_output)
