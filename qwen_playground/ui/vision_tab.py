"""The Vision tab: ask Qwen2.5-VL about images (or a video), see what each image costs, see its boxes.

Endpoint `/vision` (files, camera, question, system_prompt, model,
min_tokens, max_tokens) -> streamed (conversation, token cost table, images
with boxes, notes, metrics).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..backends import Backend
from ..config import AppConfig
from ..generation import Request
from ..prompts import load_template
from ..vision import (TOKEN_SIDE, UploadRejected, check_image, check_video, draw_boxes, image_cost, looks_like_video, parse_boxes,
                      video_support)
from . import uploads
from .common import answer_text, bubbles, metrics_text, model_picker, precision_picker, require_text, resolve, stream_turn
from .inspector_tab import inspector_panel

MAX_FILES = 8
GROUNDING_HINT = "Outline the position of each object and output all the coordinates in JSON format."


def build_vision_tab(config: AppConfig, backend: Backend) -> dict:
    registry, template = config.registry, load_template("vision")
    with gr.Row():
        with gr.Column(scale=2):
            files = uploads.File(file_count="multiple", label=f"Images (up to {MAX_FILES}) or one video", file_types=["image", "video"])
            camera = uploads.Image(sources=["webcam", "clipboard"], type="filepath", label="…or paste / take a picture", height=200)
            question = gr.Textbox(label="Question", lines=2, placeholder=f"e.g. What is in this picture?  For boxes: {GROUNDING_HINT}")
            system = gr.Textbox("", label="System prompt (optional)")
            model, _ = model_picker(registry, "vision")
            precision = precision_picker(backend)
            with gr.Row():
                min_tokens = gr.Slider(4, 1024, 4, step=4, label="Min tokens per image", info="min_pixels = n × 28 × 28")
                max_tokens = gr.Slider(16, 16384, 1280, step=16, label="Max tokens per image", info="max_pixels = n × 28 × 28")
            with gr.Row():
                ask = gr.Button("Ask", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=3):
            conversation = gr.Chatbot(label="Answer", height=360)
            metrics = gr.Markdown(label="Metrics")
            costs = gr.Dataframe(headers=["image", "original", "resized to", "tokens"], label="What each image costs", interactive=False)
            boxes = gr.Gallery(label="Boxes from the answer", height=260)
            notes = gr.Markdown(label="Notes")

    def ask_about(files, camera, question, system_prompt, model, min_tokens, max_tokens, quantization="none"):
        text = require_text(question, "a question")
        spec = resolve(registry, model)
        if "image" not in spec.modalities:
            raise gr.Error(f"{spec.id} does not see images; pick a Qwen2.5-VL model.")
        paths = [Path(getattr(f, "name", f)) for f in (files or [])] + ([Path(camera)] if camera else [])
        if not paths:
            raise gr.Error("Add at least one image: upload, paste or use the webcam.")
        if len(paths) > MAX_FILES:
            raise gr.Error(f"At most {MAX_FILES} files at once (you gave {len(paths)}).")
        min_pixels, max_pixels = int(min_tokens) * TOKEN_SIDE**2, int(max_tokens) * TOKEN_SIDE**2
        if min_pixels > max_pixels:
            raise gr.Error("Min tokens per image must not exceed max tokens per image.")
        parts, images, rows, remarks = [], [], [], []
        try:
            for path in paths:
                if looks_like_video(path):
                    if (why := video_support()) is not None:
                        raise UploadRejected(why)
                    parts.append({"type": "video", "video": str(check_video(path)), "max_pixels": max_pixels, "fps": 1.0})
                    rows.append([path.name, "video", "sampled at 1 frame/s", "see prompt tokens"])
                    continue
                checked = check_image(path)
                cost = image_cost(checked.image, min_pixels, max_pixels)
                parts.append({"type": "image", "image": checked.image, "min_pixels": min_pixels, "max_pixels": max_pixels})
                images.append((checked, cost))
                rows.append([checked.name, f"{cost.width}×{cost.height}", f"{cost.resized_width}×{cost.resized_height}", cost.tokens])
                remarks += [f"{checked.name}: {note}" for note in checked.notes]
        except UploadRejected as e:
            raise gr.Error(str(e)) from None
        messages = ([{"role": "system", "content": system_prompt}] if (system_prompt or "").strip() else [])
        messages.append({"role": "user", "content": [*parts, {"type": "text", "text": template.render_user(question=text)}]})
        request = Request(spec.id, messages, spec.preset(False), thinking=False, quantization=quantization)
        shown = [{"role": "user", "content": f"🖼 {len(paths)} file{'s' if len(paths) > 1 else ''}: {text}"}]
        note_text = "\n".join(f"- {r}" for r in remarks)
        for turn in stream_turn(backend, request):
            yield shown + bubbles(turn), rows, gr.skip(), note_text, metrics_text(turn)
        found = parse_boxes(answer_text(turn))
        drawn = [(draw_boxes(img.image, found, cost), img.name) for img, cost in images[:1]] if found else []
        if found:
            note_text += f"\n- {len(found)} box{'es' if len(found) > 1 else ''} found in the answer, drawn on the first image"
        yield shown + bubbles(turn), rows, drawn, note_text, metrics_text(turn)

    event = ask.click(ask_about, [files, camera, question, system, model, min_tokens, max_tokens, precision],
                      [conversation, costs, boxes, notes, metrics], api_name="vision", concurrency_id="generate")
    stop.click(None, cancels=[event])
    def vision_messages(files, camera, question, system_prompt, model):
        count = len(files or []) + (1 if camera else 0)
        messages = [{"role": "system", "content": system_prompt}] if (system_prompt or "").strip() else []
        parts = [{"type": "image"}] * count + [{"type": "text", "text": template.render_user(question=require_text(question, "a question"))}]
        return model, messages + [{"role": "user", "content": parts}], False

    gr.Markdown("In the inspector below, each `<|image_pad|>` stands for one image: the processor repeats it once per image "
                "token, as many as the cost table above shows.")
    inspector_panel(config, [files, camera, question, system, model], vision_messages)
    return {"question": question, "system_prompt": system, "model": model, "min_tokens": min_tokens, "max_tokens": max_tokens}
