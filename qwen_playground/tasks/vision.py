"""The Vision task: questions about images (or one video), what each image costs, the boxes in the answer.

Everything follows the model's family: its token side prices the images and
sets the pixel bounds, its grounding convention places the boxes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from PIL import Image

from ..backends import Backend
from ..core.config import AppConfig
from ..core.generation import Request
from ..core.prompts import load_template
from ..core.registry import ModelSpec
from ..vision import (CheckedImage, Cost, UploadRejected, check_image, check_video, draw_boxes, image_cost, looks_like_video, parse_boxes, read_video,
                      video_support)
from . import TaskError, refuse_if_too_long, require_text, resolve
from .conversation import Message
from .streaming import stream_turns

MAX_FILES = 8
VIDEO_FPS = 1.0  # frames sampled per second of video
MAX_VIDEO_FRAMES = 64
COST_COLUMNS = ["image", "original", "resized to", "tokens"]


def screen_uploads(paths: list[Path]) -> tuple[list[Path], list[tuple[Image.Image, str]], list[str]]:
    """Check uploads as they arrive: (usable files, image thumbnails, one reason per refused file)."""
    kept, thumbnails, refused = [], [], []
    for path in paths:
        try:
            if looks_like_video(path):
                kept.append(check_video(path))
                continue
            checked = check_image(path)
        except UploadRejected as e:
            refused.append(str(e))
            continue
        kept.append(path)
        thumbnail = checked.image.copy()
        thumbnail.thumbnail((256, 256))
        thumbnails.append((thumbnail, checked.name))
    return kept, thumbnails, refused


@dataclass(frozen=True)
class VisionJob:
    spec: ModelSpec
    request: Request
    images: list[tuple[CheckedImage, Cost]]
    rows: list[list]  # the token-cost table
    notes: list[str]  # what was done to the uploads
    shown: list[Message]  # the question, with its files

    @property
    def requests(self) -> list[Request]:
        return [self.request]


def pixel_bounds(spec: ModelSpec, min_tokens: int, max_tokens: int) -> tuple[int, int]:
    """min_pixels and max_pixels for per-image token bounds, in the family's token side."""
    if spec.family.vision is None:
        raise TaskError(f"{spec.id} does not see images; pick a vision model.", "model")
    side = spec.family.vision.token_side
    if int(min_tokens) > int(max_tokens):
        raise TaskError("Min tokens per image must not exceed max tokens per image.", "min_tokens")
    return int(min_tokens) * side**2, int(max_tokens) * side**2


def prepare(config: AppConfig, paths: list[Path], question: object, system_prompt: str, model_id: str, min_tokens: int,
            max_tokens: int, precision: str = "full", user: str = "") -> VisionJob:
    text, spec = require_text(question, "a question", "question"), resolve(config.registry, model_id)
    min_pixels, max_pixels = pixel_bounds(spec, min_tokens, max_tokens)
    if not paths:
        raise TaskError("Add at least one image: upload, paste or use the webcam.", "files")
    if len(paths) > MAX_FILES:
        raise TaskError(f"At most {MAX_FILES} files at once (you gave {len(paths)}).", "files")
    parts, images, rows, notes = [], [], [], []
    try:
        for path in paths:
            if looks_like_video(path):
                if (why := video_support()) is not None:
                    raise UploadRejected(why)
                frames = read_video(check_video(path), VIDEO_FPS, MAX_VIDEO_FRAMES)
                # sample_fps: the frames' rate, from which Qwen3-VL's processor writes each frame's time into the prompt
                parts.append({"type": "video", "video": frames, "sample_fps": VIDEO_FPS, "max_pixels": max_pixels})
                rows.append([path.name, f"video, {frames[0].width}×{frames[0].height}",
                             f"{len(frames)} frames at {VIDEO_FPS:g} per second", "see prompt tokens"])
                continue
            checked = check_image(path)
            cost = image_cost(checked.image, min_pixels, max_pixels, spec.family.vision.token_side)
            parts.append({"type": "image", "image": checked.image, "min_pixels": min_pixels, "max_pixels": max_pixels})
            images.append((checked, cost))
            rows.append([checked.name, f"{cost.width}×{cost.height}", f"{cost.resized_width}×{cost.resized_height}", cost.tokens])
            notes += [f"{checked.name}: {note}" for note in checked.notes]
    except UploadRejected as e:
        raise TaskError(str(e), "files") from None
    messages = [{"role": "system", "content": system_prompt}] if (system_prompt or "").strip() else []
    messages.append({"role": "user", "content": [*parts, {"type": "text", "text": load_template("vision").render_user(question=text)}]})
    refuse_if_too_long(config, spec, messages, "Shorten the question or the system prompt.", "question")  # the images' tokens come on top
    think = spec.family.thinks(False)  # a Thinking model (Qwen3-VL-Thinking) always thinks; the others answer at once here
    request = Request(spec.id, messages, spec.preset(think), thinking=think, precision=precision, user=user)
    shown = [Message.user(text, [str(p) for p in paths])]
    return VisionJob(spec, request, images, rows, notes, shown)


@dataclass
class VisionView:
    conversation: list[Message]  # the question (with its files) and the answer
    metrics: str
    notes: str
    boxes: list[tuple[Image.Image, str]] | None = None  # set once the answer is complete
    error: str | None = None
    rows: list[list] = field(default_factory=list)


def run(backend: Backend, job: VisionJob, stop: threading.Event | None = None) -> Iterator[VisionView]:
    notes = "\n".join(f"- {n}" for n in job.notes)
    for state in stream_turns(backend, job.requests, stop):
        turn = state.turns[0]
        if not state.done:
            yield VisionView([*job.shown, Message.assistant(turn)], turn.metrics_line, notes, None, turn.error, job.rows)
    found = parse_boxes(turn.answer)
    grounding = job.spec.family.vision.grounding
    drawn = [(draw_boxes(image.image, found, cost, grounding), image.name) for image, cost in job.images[:1]] if found else []
    if found:
        notes += f"\n- {len(found)} box{'es' if len(found) > 1 else ''} found in the answer, drawn on the first image"
    yield VisionView([*job.shown, Message.assistant(turn)], turn.metrics_line, notes, drawn, turn.error, job.rows)
