"""The Chat tab: multi-turn streamed chat with thinking, presets, retry/undo/clear, stop and export.

The send event is the `/chat` API endpoint: (message, history, model, system
prompt, thinking, sampling..., thinking budget, precision, trim, alternatives,
images) -> streamed (history, cleared textbox). What a turn sends is `tasks.chat.prepare`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from ..core.config import AppConfig
from ..core.prompts import load_template
from ..mathtext import LATEX_DELIMITERS
from ..service import Service
from ..tasks import chat, conversations
from ..tasks.chat_history import export_json, export_markdown, files_of
from . import uploads
from .common import (Stops, browser_secret, describe, follows_registry, on_page_load, precision_picker, refusals, refuse, start_job,
                     thinking_settings, when_valid)
from .inspector_tab import inspect_chat, inspector_outputs

THINKING_INFO = {"switch": "Reasons in <think> before answering; switch it off for quick answers",
                 "always": "This model always thinks before it answers", "none": "This model has no thinking mode"}


def export_conversation(history, model_id: str, system_prompt: str, think: bool, kind: str) -> str:
    """Write the conversation as Markdown ("md") or JSON ("json") to a temporary file; returns its path."""
    if not history:
        raise refuse("Nothing to export yet: chat first.")
    settings = {"model": model_id, "system prompt": system_prompt or "(model default)", "thinking": bool(think)}
    body = export_markdown(history, settings) if kind == "md" else export_json(history, settings)
    path = Path(tempfile.mkdtemp(prefix="qp-chat-")) / f"conversation.{kind}"
    path.write_text(body, encoding="utf-8")
    return str(path)


def export_files(history, model_id: str, system_prompt: str, think: bool) -> list:
    """Both export files, written before the click so that one click downloads; none while the chat is empty."""
    if not history:
        return [None, None]
    return [export_conversation(history, model_id, system_prompt, think, kind) for kind in ("md", "json")]


def thinking_toggle(spec) -> dict:
    """Chat's thinking checkbox: on where the model can think, and saying what kind of thinking it has."""
    return {**thinking_settings(spec, spec.starts_thinking), "info": THINKING_INFO[spec.family.thinking]}


def layout(config: AppConfig, service: Service) -> dict:
    specs = config.registry.choices("chat")
    first = specs[0]
    preset = first.preset(first.starts_thinking)
    c: dict = {}
    with gr.Row():
        with gr.Column(scale=3):
            c["chatbot"] = gr.Chatbot(label="Conversation", height="62vh", min_height=360, buttons=["copy", "copy_all"],
                                      latex_delimiters=LATEX_DELIMITERS, elem_classes="chat-conversation",  # prices stay text
                                      placeholder="Ask Qwen anything.")  # the window's height, with the message box below it
            with gr.Row():
                c["message"] = gr.Textbox(label="Message", show_label=False, placeholder="Message Qwen… (Enter to send, Shift+Enter for a new line)",
                                          scale=8, lines=1, max_lines=8)
                c["send"] = gr.Button("Send", variant="primary", scale=1, min_width=80)
                c["stop"] = gr.Button("Stop", variant="stop", scale=1, min_width=80)
                c["clear"] = gr.Button("Clear", scale=1, min_width=80)
            c["images"] = uploads.File(file_count="multiple", file_types=["image"], label="📎 Images for this message (models that see)",
                                       height=90, elem_classes="chat-images")
        with gr.Column(scale=1, min_width=300, elem_classes="sidebar"):  # scrolls on its own beside the conversation
            conversation_panel(c, browser_secret(config.settings.cache_dir))
            c["model"] = follows_registry(gr.Dropdown([s.id for s in specs], value=first.id, label="Model"),
                                          lambda: [s.id for s in config.registry.choices("chat")])
            c["model_info"] = gr.Markdown(describe(first))
            c["precision"] = precision_picker(service.capabilities())
            c["trim"] = gr.Checkbox(False, label="Trim oldest turns to fit",
                                    info=f"When the conversation passes {config.settings.max_input_tokens:,} tokens, drop its oldest exchanges")
            c["thinking"] = gr.Checkbox(label="Thinking mode", **thinking_toggle(first))
            c["why"] = gr.Checkbox(False, label="🔎 Why this token?",
                                   info="Under each answer: every token's probability and the 5 the model found most likely")
            c["system_prompt"] = gr.Textbox(load_template("chat").render_system(), label="System prompt", lines=3,
                                            placeholder="Empty: the model's own default")
            with gr.Accordion("Sampling (Qwen's recommended settings)", open=False):
                c["sliders"] = [
                    gr.Slider(0, 2, preset.temperature, step=0.05, label="Temperature", info="0 = greedy"),
                    gr.Slider(0.01, 1, preset.top_p, step=0.01, label="Top-p"),
                    gr.Slider(0, 200, preset.top_k, step=1, label="Top-k", info="0 = off"),
                    gr.Slider(0, 1, preset.min_p, step=0.01, label="Min-p"),
                    gr.Slider(1, 2, preset.repetition_penalty, step=0.01, label="Repetition penalty"),
                    gr.Slider(0, 2, preset.presence_penalty, step=0.05, label="Presence penalty",
                              info="Minus this for every token already in the answer (Qwen3.5: 1.5 against endless repetition)"),
                    gr.Slider(16, 32768, preset.max_new_tokens, step=16, label="Max new tokens"),
                ]
                c["budget"] = gr.Slider(0, 8192, 0, step=16, label="Thinking budget (tokens, 0 = no cap)",
                                        info="Caps a thinking model's thought on local models, then asks it to answer (Qwen's recipe)")
            c["status"] = gr.Markdown(service.status())
            with gr.Row():
                c["export_md"] = gr.DownloadButton("Export Markdown", size="sm")
                c["export_json"] = gr.DownloadButton("Export JSON", size="sm")
    with gr.Accordion("🔍 What the model sees (prompt inspector)", open=False):
        c["inspect"] = gr.Button("Inspect this conversation + message", size="sm")
        c["inspected"] = inspector_outputs()
    return c


def handlers(config: AppConfig, service: Service, stops: Stops):
    """(respond, retry, prepare): the generating handlers, whose signatures are the API's, and the turn they send."""

    def prepare(*values, user=""):
        return chat.prepare(config, chat.ChatInputs.from_api(*values), user)

    def respond(message, history, model, system_prompt, thinking, temperature, top_p, top_k, min_p, repetition_penalty, presence_penalty,
                max_new_tokens, thinking_budget=0, precision="full", trim_history=False, alternatives=False, images=None,
                request: gr.Request = None):
        with refusals():
            attached = chat.paths_of(images)
            uploads.require_uploaded([*attached, *(f for m in chat.history_of(history) for f in files_of(m["content"]))])
        job = start_job(service, request, prepare, message, history, model, system_prompt, thinking, temperature, top_p, top_k, min_p,
                        repetition_penalty, presence_penalty, max_new_tokens, thinking_budget, precision, trim_history, alternatives,
                        attached)
        if job.dropped:
            gr.Info(f"Dropped the {job.dropped} oldest exchange{'s' if job.dropped > 1 else ''} to fit "
                    f"{config.settings.max_input_tokens:,} tokens.")
        yield job.shown, ""
        with stops.running(request) as stop:
            for view in chat.run(service, job, stop):
                yield view.history, ""
        if view.error:
            if not view.produced_output:  # nothing to keep: give the message back to edit
                yield job.before, message
            raise refuse(view.error)

    def retry(request: gr.Request, history, *settings):  # Gradio passes the request first here, with *settings
        with refusals():
            before, text, images = chat.last_message(history)
        yield from respond(text, before, *settings, images, request=request)

    return respond, retry, prepare


def on_model_change(config: AppConfig, model_id: str) -> list:
    spec = config.registry.get(model_id)
    return [describe(spec), gr.Checkbox(**thinking_toggle(spec)), *chat.preset_values(spec, spec.starts_thinking)]


def conversation_panel(c: dict, secret: str) -> None:
    """Saved conversations, kept in this browser's storage (nothing on the server): open, start anew, rename, delete.
    `secret` encrypts them there, the same across restarts of this install."""
    c["saved"] = gr.BrowserState([], storage_key="qwen-playground-conversations", secret=secret)
    c["current"] = gr.State(None)  # the open conversation's id; None: a new one, saved with its first answer
    with gr.Accordion("💬 Conversations (kept in this browser)", open=False):
        c["open"] = gr.Dropdown([], value=None, label="Open a saved conversation", allow_custom_value=False)
        with gr.Row():
            c["new"] = gr.Button("New conversation", size="sm")
            c["delete"] = gr.Button("Delete", size="sm", variant="stop")
        with gr.Row():
            c["title"] = gr.Textbox(label="Title", placeholder="Rename the open conversation", scale=3)
            c["rename"] = gr.Button("Rename", size="sm", scale=1)


def bind_conversations(c: dict, changed: list) -> None:
    """Save after every answer and edit (`changed` events); reopen the newest on page load."""
    private = {"api_visibility": "private", "queue": False}
    saved, current, picker, chatbot = c["saved"], c["current"], c["open"], c["chatbot"]

    def stored(saved_list, current_id, history):
        saved_list, current_id = conversations.save(saved_list, current_id, chat.history_of(history))
        return saved_list, current_id, gr.Dropdown(choices=conversations.choices(saved_list), value=current_id)

    def opened(saved_list, conversation_id):
        found = conversations.find(saved_list, conversation_id)
        return (found["messages"], conversation_id, found["title"]) if found else (gr.skip(), gr.skip(), gr.skip())

    def on_load(saved_list):
        newest = conversations.choices(saved_list)[:1]
        found = conversations.find(saved_list, newest[0][1]) if newest else None
        return (gr.Dropdown(choices=conversations.choices(saved_list), value=found and found["id"]), found["messages"] if found else [],
                found and found["id"], found["title"] if found else "")

    def changed_list(action):
        def run(saved_list, current_id, *args):
            with refusals():
                saved_list = action(saved_list, current_id, *args)
            return saved_list, gr.Dropdown(choices=conversations.choices(saved_list))
        return run

    for event in changed:
        event.then(stored, [saved, current, chatbot], [saved, current, picker], **private)
    picker.input(opened, [saved, picker], [chatbot, current, c["title"]], **private)
    c["new"].click(lambda: ([], None, None, ""), None, [chatbot, current, picker, c["title"]], **private)
    c["clear"].click(lambda: (None, None, ""), None, [current, picker, c["title"]], **private)  # Clear starts a new one too
    c["rename"].click(changed_list(conversations.rename), [saved, current, c["title"]], [saved, picker], **private)
    c["delete"].click(changed_list(conversations.delete), [saved, current], [saved, picker], **private).then(
        lambda: ([], None, ""), None, [chatbot, current, c["title"]], **private)
    on_page_load(on_load, [saved], [picker, chatbot, current, c["title"]])


ENGINE_WAIT_S = 300  # how long a page that opened during start-up waits to replace "Starting the engine" with the status


def undo(history):
    """The conversation without its last exchange; that message (and its images) back in the box to edit."""
    with refusals():
        before, text, images = chat.last_message(history)
    return before, text, list(images) or None


def build_chat_tab(config: AppConfig, service: Service) -> dict:
    c = layout(config, service)
    stops = Stops()
    respond, retry, prepare = handlers(config, service, stops)

    chatbot, message, sliders = c["chatbot"], c["message"], c["sliders"]
    settings = [c["model"], c["system_prompt"], c["thinking"], *sliders, c["budget"], c["precision"], c["trim"], c["why"]]
    private = {"api_visibility": "private", "queue": False}
    inputs = [message, chatbot, *settings, c["images"]]
    events = [when_valid(c["send"].click, respond, prepare, inputs, [chatbot, message], api_name="chat", concurrency_id="generate"),
              when_valid(message.submit, respond, prepare, inputs, [chatbot, message], concurrency_id="generate"),
              chatbot.retry(retry, [chatbot, *settings], [chatbot, message], api_visibility="private", concurrency_id="generate")]
    export_inputs, exports = [chatbot, c["model"], c["system_prompt"], c["thinking"]], [c["export_md"], c["export_json"]]
    edits = [chatbot.undo(undo, chatbot, [chatbot, message, c["images"]], **private),
             c["clear"].click(lambda: ([], "", None), None, [chatbot, message, c["images"]], **private)]
    stops.bind(c["stop"], respond, retry)
    for event in events:
        event.then(service.status, None, c["status"], **private)
    def status_once_started() -> str:  # a page opened during start-up shows "Starting the engine" until it has
        service.wait_started(ENGINE_WAIT_S)
        return service.status()

    on_page_load(status_once_started, [], [c["status"]])
    for event in events[:2]:  # sent: the images went with the message
        event.success(lambda: None, None, c["images"], **private)
    for event in events + edits:
        event.then(export_files, export_inputs, exports, api_visibility="private")
    bind_conversations(c, events + edits[:1])
    c["model"].change(lambda m: on_model_change(config, m), c["model"], [c["model_info"], c["thinking"], *sliders], **private)
    c["thinking"].change(lambda m, t: chat.preset_values(config.registry.get(m), t), [c["model"], c["thinking"]], sliders, **private)
    inspect = inspect_chat(config)
    c["inspect"].click(lambda *a: inspect(*a)[:2], [message, chatbot, c["model"], c["system_prompt"], c["thinking"], c["images"]],
                       list(c["inspected"]), api_visibility="private")
    return {"message": message, "chatbot": chatbot, "model": c["model"], "system_prompt": c["system_prompt"], "thinking": c["thinking"],
            **dict(zip(chat.SAMPLING_FIELDS, sliders, strict=True)), "thinking_budget": c["budget"], "alternatives": c["why"],
            "images": c["images"]}
