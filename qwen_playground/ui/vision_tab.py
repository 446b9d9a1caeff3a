"""The Vision tab: ask a Qwen vision model about images (or a video), see what each image costs, see its boxes.

Endpoints: `/vision` (files, camera, question, system_prompt, model,
min_tokens, max_tokens, precision) -> streamed (conversation, token cost table,
images with boxes, notes, metrics); `/inspect_vision` (the same inputs).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..core.config import AppConfig
from ..service import Service
from ..tasks import vision as task
from . import uploads
from .chat_view import render
from .common import Stops, go_and_stop, model_picker, precision_picker, refuse, start_job, when_known, when_valid
from .inspector_tab import inspector_panel

GROUNDING_HINT = "Outline the position of each object and output all the coordinates in JSON format."


def token_side_note(config: AppConfig, model_id: str) -> tuple[str, str]:
    """The min/max sliders' info lines in the chosen model's own token side."""
    vision = config.registry.get(model_id).family.vision
    side = vision.token_side if vision else "?"
    return f"min_pixels = n × {side} × {side}", f"max_pixels = n × {side} × {side}"


def layout(config: AppConfig, service: Service) -> dict:
    c: dict = {}
    with gr.Row():
        with gr.Column(scale=2):
            c["files"] = uploads.File(file_count="multiple", label=f"Images (up to {task.MAX_FILES}) or one video", file_types=["image", "video"])
            c["preview"] = gr.Gallery(label="Your images", height=140, columns=4, visible=False, interactive=False,
                                      object_fit="contain")  # the whole picture, not a crop
            c["camera"] = uploads.Image(sources=["webcam", "clipboard"], type="filepath", label="…or paste / take a picture", height=200)
            c["question"] = gr.Textbox(label="Question", lines=1, max_lines=6,
                                       placeholder=f"e.g. What is in this picture? (Enter asks)  For boxes: {GROUNDING_HINT}")
            c["system_prompt"] = gr.Textbox("", label="System prompt (optional)")
            c["model"], _ = model_picker(config.registry, "vision")
            c["precision"] = precision_picker(service.capabilities())
            low, high = token_side_note(config, c["model"].value)
            with gr.Row():
                c["min_tokens"] = gr.Slider(4, 1024, 4, step=4, label="Min tokens per image", info=low)
                c["max_tokens"] = gr.Slider(16, 16384, 1280, step=16, label="Max tokens per image", info=high)
            c["ask"], c["stop"] = go_and_stop("Ask")
        with gr.Column(scale=3):
            c["conversation"] = gr.Chatbot(label="Answer", height=360)
            c["metrics"] = gr.Markdown(label="Metrics")
            c["costs"] = gr.Dataframe(headers=task.COST_COLUMNS, label="What each image costs", interactive=False)
            c["boxes"] = gr.Gallery(label="Boxes from the answer", height=260, visible=False)
            c["notes"] = gr.Markdown(label="Notes")
    return c


def screen(files):
    """On upload: refuse unreadable files at once (a toast each), and show thumbnails of the images kept."""
    kept, thumbnails, refused = task.screen_uploads(upload_paths(files, None))
    for reason in refused:
        gr.Warning(reason)
    return [str(p) for p in kept] or None, gr.Gallery(value=thumbnails or None, visible=bool(thumbnails))


def upload_paths(files, camera) -> list[Path]:
    return [Path(getattr(f, "name", f)) for f in (files or [])] + ([Path(camera)] if camera else [])


def build_vision_tab(config: AppConfig, service: Service) -> dict:
    c, stops = layout(config, service), Stops()

    def prepare(files, camera, question, system_prompt, model, min_tokens, max_tokens, precision="full", user=""):
        return task.prepare(config, upload_paths(files, camera), question, system_prompt, model, min_tokens, max_tokens,
                            precision, user)

    def ask_about(files, camera, question, system_prompt, model, min_tokens, max_tokens, precision="full", request: gr.Request = None):
        job = start_job(service, request, prepare, files, camera, question, system_prompt, model, min_tokens, max_tokens, precision)
        with stops.running(request) as stop:
            for view in task.run(service, job, stop):
                yield render(view.conversation, protect=False, footer=False, files_as_count=True), view.rows, gr.skip() if view.boxes is None else view.boxes, view.notes, view.metrics
        if view.error:
            raise refuse(view.error)

    inputs = [c[k] for k in ("files", "camera", "question", "system_prompt", "model", "min_tokens", "max_tokens", "precision")]
    outputs = [c["conversation"], c["costs"], c["boxes"], c["notes"], c["metrics"]]
    for trigger, api_name in ((c["ask"].click, "vision"), (c["question"].submit, None)):  # the button, or Enter in the question
        event = when_valid(trigger, ask_about, prepare, inputs, outputs, api_name=api_name, concurrency_id="generate")
        event.then(lambda found: gr.Gallery(visible=bool(found)), c["boxes"], c["boxes"], api_visibility="private", queue=False)
    stops.bind(c["stop"], ask_about)
    c["files"].upload(screen, c["files"], [c["files"], c["preview"]], api_visibility="private")
    c["files"].clear(lambda: gr.Gallery(value=None, visible=False), None, c["preview"], api_visibility="private", queue=False)
    c["model"].change(when_known(config.registry, lambda spec: [gr.Slider(info=i) for i in token_side_note(config, spec.id)], 2), c["model"],
                      [c["min_tokens"], c["max_tokens"]],
                      api_visibility="private", queue=False)
    gr.Markdown("In the inspector below, each image's tokens show as one `<|image_pad|>` piece with its count: the processor "
                "repeats the pad once per image token, as many as the cost table above shows.")
    inspector_panel(config, inputs, prepare, "inspect_vision")
    return {k: c[k] for k in ("question", "system_prompt", "model", "min_tokens", "max_tokens")}
