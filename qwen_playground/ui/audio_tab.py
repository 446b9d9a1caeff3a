"""The Audio tab: record or upload a clip, then transcribe it (Qwen3-ASR) or ask about it (Qwen2-Audio).

Endpoints: `/transcribe` (audio, language, context, model, precision) ->
streamed (transcript, detected language, cost line, notes, metrics);
`/ask_audio` (audio, question, system_prompt, model, precision) -> streamed
(conversation, cost line, notes, metrics); `/inspect_audio` (task and every
input of both) -> the inspector's view of the request the task would send.
"""

from __future__ import annotations

import gradio as gr

from ..core.config import AppConfig
from ..service import Service
from ..tasks import TaskError
from ..tasks import audio as task
from . import uploads
from .chat_view import render
from .common import Stops, model_picker, precision_picker, refuse, start_job, when_valid
from .inspector_tab import inspector_panel

CLIP_LABEL = "Clip: record, or upload a WAV, MP3, FLAC, Ogg or M4A file"


def layout(config: AppConfig, service: Service) -> dict:
    c: dict = {}
    with gr.Row():
        with gr.Column(scale=2):
            clip_and_task(config, service, c)
        with gr.Column(scale=3):
            c["transcript"] = gr.Textbox(label="Transcript", lines=6, max_lines=20, buttons=["copy"], interactive=False)
            c["detected"] = gr.Markdown(label="Language")
            c["conversation"] = gr.Chatbot(label="Answer", height=300, visible=False)
            c["metrics"] = gr.Markdown(label="Metrics")
            c["notes"] = gr.Markdown(label="Notes")
    return c


def clip_and_task(config: AppConfig, service: Service, c: dict) -> None:
    """The clip, what it costs, and each task's own inputs (shown for the task chosen)."""
    # every language a transcription model of the route names (a model refuses one it lacks, naming its own)
    languages = list(dict.fromkeys(lang for spec in config.registry.choices("transcribe") for lang in spec.languages or ()))
    c["audio"] = uploads.Audio(sources=["upload", "microphone"], type="filepath", format=None, label=CLIP_LABEL, elem_classes="audio-clip")
    c["cost"] = gr.Markdown("*Record or upload a clip: its length and what it costs the model show here before you send it.*",
                            label="What the clip costs")
    c["task"] = gr.Radio(list(task.TASKS), value=task.TASKS[0], label="Task")
    with gr.Column(visible=True) as c["transcribe_group"]:
        c["language"] = gr.Dropdown([task.AUTO, *languages], value=task.AUTO, label="Language",
                                    info=f"{task.AUTO}: the model names the language it hears; choosing one makes it write that language")
        c["context"] = gr.Textbox("", label="Context (optional)", lines=1, max_lines=4,
                                  placeholder="Names, terms or the topic, so the transcript spells them right (e.g. Qwen, Alibaba)")
        c["transcribe_model"], _ = model_picker(config.registry, "transcribe")
    with gr.Column(visible=False) as c["ask_group"]:
        c["question"] = gr.Textbox(label="Question", lines=1, max_lines=6,
                                   placeholder="e.g. What is the speaker's mood? What instrument is playing? (Enter asks)")
        c["system_prompt"] = gr.Textbox("", label="System prompt (optional)")
        c["ask_model"], _ = model_picker(config.registry, "audio")
    c["precision"] = precision_picker(service.capabilities())
    with gr.Row():
        c["transcribe"] = gr.Button("Transcribe", variant="primary", visible=True)
        c["ask"] = gr.Button("Ask", variant="primary", visible=False)
        c["stop"] = gr.Button("Stop", variant="stop")


def language_line(view: task.AudioView, forced: str | None) -> str:
    if view.language:
        return f"**Language:** {view.language} ({'chosen' if forced else 'detected by the model'})"
    return "**Language:** none heard" if view.done and not view.error else ""


def build_audio_tab(config: AppConfig, service: Service) -> dict:
    c, stops = layout(config, service), Stops()

    def prepare_transcription(audio, language, context, model, precision="full", user=""):
        return task.prepare_transcription(config, audio, language, context, model, precision, user)

    def prepare_question(audio, question, system_prompt, model, precision="full", user=""):
        return task.prepare_question(config, audio, question, system_prompt, model, precision, user)

    def transcribe_clip(audio, language, context, model, precision="full", request: gr.Request = None):
        job = start_job(service, request, prepare_transcription, audio, language, context, model, precision)
        with stops.running(request) as stop:
            for view in task.run(service, job, stop):
                yield view.transcript, language_line(view, job.language), view.cost, view.notes, view.metrics
        if view.error:
            raise refuse(view.error)

    def ask_about_clip(audio, question, system_prompt, model, precision="full", request: gr.Request = None):
        job = start_job(service, request, prepare_question, audio, question, system_prompt, model, precision)
        with stops.running(request) as stop:
            for view in task.run(service, job, stop):
                yield render(view.conversation, protect=False, footer=False, files_as_count=True), view.cost, view.notes, view.metrics
        if view.error:
            raise refuse(view.error)

    transcribing = [c[k] for k in ("audio", "language", "context", "transcribe_model", "precision")]
    asking = [c[k] for k in ("audio", "question", "system_prompt", "ask_model", "precision")]
    when_valid(c["transcribe"].click, transcribe_clip, prepare_transcription, transcribing,
               [c["transcript"], c["detected"], c["cost"], c["notes"], c["metrics"]], api_name="transcribe", concurrency_id="generate")
    for trigger, api_name in ((c["ask"].click, "ask_audio"), (c["question"].submit, None)):  # the button, or Enter in the question
        when_valid(trigger, ask_about_clip, prepare_question, asking, [c["conversation"], c["cost"], c["notes"], c["metrics"]], api_name=api_name,
                   concurrency_id="generate")
    stops.bind(c["stop"], transcribe_clip, ask_about_clip)

    bind_task_and_cost(config, c)
    uploads.deleted_with_session(c["audio"])

    def inspect_job(task_name, audio, language, context, transcribe_model, question, system_prompt, ask_model, precision="full"):
        return task.prepare(config, task_name, audio, language, context, transcribe_model, question, system_prompt, ask_model, precision)

    gr.Markdown("In the inspector below, the clip shows as its placeholder token with a count: the processor repeats it once per "
                "audio token, as many as the cost line says.")
    inspector_panel(config, [c[k] for k in ("task", "audio", "language", "context", "transcribe_model", "question", "system_prompt",
                                            "ask_model", "precision")], inspect_job, "inspect_audio")
    return {k: c[k] for k in ("task", "language", "context", "transcribe_model", "question", "system_prompt", "ask_model")}


def bind_task_and_cost(config: AppConfig, c: dict) -> None:
    """The chosen task shows its own inputs and outputs; the clip's cost for the chosen model shows as soon as there is
    a clip, or why it cannot be used, as a note beside it."""

    def chosen_task(name):
        transcribing = name == task.TASKS[0]
        return [gr.Column(visible=transcribing), gr.Column(visible=not transcribing), gr.Button(visible=transcribing),
                gr.Button(visible=not transcribing), gr.Textbox(visible=transcribing), gr.Markdown(visible=transcribing),
                gr.Chatbot(visible=not transcribing)]

    def cost_before_sending(name, audio, transcribe_model, ask_model):
        if not audio:
            return gr.skip(), ""
        try:
            spec = task.resolve(config.registry, transcribe_model if name == task.TASKS[0] else ask_model)
            clip = task.checked_clip(config, spec, audio)
            cost = task.clip_cost(config, spec, clip)
        except TaskError as e:
            return f"⚠️ {e}", ""
        return cost.line(), "\n".join(f"- {clip.name}: {note}" for note in clip.notes)

    c["task"].change(chosen_task, c["task"], [c[k] for k in ("transcribe_group", "ask_group", "transcribe", "ask", "transcript", "detected",
                                                             "conversation")], api_visibility="private", queue=False)
    for source in (c["audio"], c["task"], c["transcribe_model"], c["ask_model"]):
        source.change(cost_before_sending, [c["task"], c["audio"], c["transcribe_model"], c["ask_model"]], [c["cost"], c["notes"]],
                      api_visibility="private", trigger_mode="always_last")
