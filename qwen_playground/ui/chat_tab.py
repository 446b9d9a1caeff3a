"""The Chat tab: multi-turn streamed chat with thinking, presets, retry/undo/clear, stop, branches and export.

The send event is the `/chat` API endpoint: (message, history, then the
settings in `tasks.chat.SETTINGS` order, images) -> streamed (history, cleared
textbox). What a turn sends is `tasks.chat.prepare`. The page keeps the whole
conversation tree in a State beside the Chatbot (which shows one branch of it):
editing a message or retrying an answer adds a branch, and ‹ › under the
conversation switch between a message's versions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from ..core.config import AppConfig
from ..core.generation import DRAFT_TOKENS, MAX_DRAFT_TOKENS
from ..core.prompts import load_template
from ..documents import SUFFIXES, is_document
from ..mathtext import LATEX_DELIMITERS
from ..service import Service
from ..tasks import TaskError, audio, chat, conversations, drafts, tools
from ..tasks.conversation import Conversation, Message
from . import uploads
from .chat_view import View, conversation_for, export_json, export_markdown, import_json, owner, parse, render
from .common import (Stops, admitted, browser_secret, describe, described, follows_registry, on_page_load, precision_picker, refusals,
                     refuse, start_job, thinking_settings, when_known, when_valid)
from .inspector_tab import inspect_chat, inspector_outputs

THINKING_INFO = {"switch": "Reasons in <think> before answering; switch it off for quick answers",
                 "always": "This model always thinks before it answers", "none": "This model has no thinking mode"}


def export_files(history, tree, model_id: str, system_prompt: str, think: bool) -> list:
    """Both export files (Markdown, and JSON with every branch), written before the click so that one click
    downloads; none while the chat is empty."""
    conversation = conversation_for(history, tree)
    if not conversation.messages:
        return [None, None]
    settings = {"model": model_id, "system prompt": system_prompt or "(model default)", "thinking": bool(think)}
    folder = Path(tempfile.mkdtemp(prefix="qp-chat-"))
    paths = [folder / "conversation.md", folder / "conversation.json"]
    paths[0].write_text(export_markdown(conversation, settings), encoding="utf-8")
    paths[1].write_text(export_json(conversation, settings), encoding="utf-8")
    return [str(p) for p in paths]


def thinking_toggle(spec) -> dict:
    """Chat's thinking checkbox: on where the model can think, and saying what kind of thinking it has."""
    return {**thinking_settings(spec, spec.starts_thinking), "info": THINKING_INFO[spec.family.thinking]}


def reasoning_controls(spec) -> tuple[dict, dict]:
    """The family's reasoning switches beside the thinking box, shown only where it has them: how hard it reasons
    (Qwen3.8) and whether earlier answers keep their reasoning in the prompt (Qwen3.6, 3.8)."""
    efforts = list(spec.family.reasoning_efforts)
    return ({"choices": efforts, "value": efforts[0] if efforts else "", "visible": bool(efforts)},
            {"value": False, "visible": spec.family.keeps_reasoning})


def thinking_controls(c: dict, spec) -> None:
    """The thinking box, and the family's reasoning switches under it (hidden for a family without them)."""
    c["thinking"] = gr.Checkbox(label="Thinking mode", **thinking_toggle(spec))
    effort, keep = reasoning_controls(spec)
    c["reasoning_effort"] = gr.Dropdown(label="Reasoning effort", allow_custom_value=True, **effort,
                                        info="How hard the model reasons when it thinks (its template's reasoning_effort)")
    c["keep_reasoning"] = gr.Checkbox(label="Keep earlier reasoning", **keep,
                                      info="Earlier answers keep their thoughts in the prompt (preserve_thinking): more tokens, less thinking again")


def draft_controls(c: dict, config: AppConfig, spec) -> None:
    """Speculative decoding: where guesses come from (the model's choices), and how many a pass checks."""
    c["draft"] = gr.Dropdown(drafts.choices(config.registry, spec), value=drafts.OFF, label="⚡ Drafts (speculative decoding)",
                             allow_custom_value=True,  # any model's drafts through the API; checked when sent
                             info="Guess tokens cheaply (copied from the prompt, or by a small model), check them all in one pass: "
                                  "the same answer in fewer passes (Lessons: Speculative decoding)")
    c["draft_tokens"] = gr.Slider(1, MAX_DRAFT_TOKENS, DRAFT_TOKENS, step=1, label="Draft length", info="Guesses checked per pass")


def layout(config: AppConfig, service: Service) -> dict:
    """The tab's widgets, keyed by the names `tasks.chat.SETTINGS` gives the settings."""
    specs = config.registry.choices("chat")
    first = specs[0]
    preset = first.preset(first.starts_thinking)
    c: dict = {}
    with gr.Row():
        with gr.Column(scale=3):
            c["chatbot"] = gr.Chatbot(label="Conversation", height="62vh", min_height=360, buttons=["copy", "copy_all"],
                                      latex_delimiters=LATEX_DELIMITERS, elem_classes="chat-conversation",  # prices stay text
                                      editable="user", placeholder="Ask Qwen anything.")  # the window's height, message box below
            with gr.Row(visible=False, elem_classes="chat-versions") as c["versions"]:  # a message's versions: edits, retries
                c["older"] = gr.Button("‹", size="sm", min_width=40, scale=0)
                c["newer"] = gr.Button("›", size="sm", min_width=40, scale=0)
                c["version"] = gr.Markdown()
            with gr.Row():
                c["message"] = gr.Textbox(label="Message", show_label=False, placeholder="Message Qwen… (Enter to send, Shift+Enter for a new line)",
                                          scale=8, lines=1, max_lines=8)
                c["send"] = gr.Button("Send", variant="primary", scale=1, min_width=80)
                c["stop"] = gr.Button("Stop", variant="stop", scale=1, min_width=80)
                c["clear"] = gr.Button("Clear", scale=1, min_width=80)
            attachments(c)
        with gr.Column(scale=1, min_width=300, elem_classes="sidebar"):  # scrolls on its own beside the conversation
            conversation_panel(c, browser_secret(config.settings.cache_dir))
            c["model"] = follows_registry(gr.Dropdown([s.id for s in specs], value=first.id, label="Model"),
                                          lambda: [s.id for s in config.registry.choices("chat")])
            c["model_info"] = gr.Markdown(describe(first))
            c["precision"] = precision_picker(service.capabilities())
            c["trim_history"] = gr.Checkbox(False, label="Trim oldest turns to fit",
                                            info=f"When the conversation passes {config.settings.max_input_tokens:,} tokens, "
                                                 "leave its oldest exchanges out of the prompt")
            thinking_controls(c, first)
            c["alternatives"] = gr.Checkbox(False, label="🔎 Why this token?",
                                            info="Under each answer: every token's probability and the 5 the model found most likely "
                                                 "(ticked later: the answers shown are scored, one pass each)")
            draft_controls(c, config, first)
            c["tools"] = tools_picker(config)
            c["system_prompt"] = gr.Textbox(load_template("chat").render_system(), label="System prompt", lines=3,
                                            placeholder="Empty: the model's own default")
            with gr.Accordion("Sampling (Qwen's recommended settings)", open=False):
                c["temperature"] = gr.Slider(0, 2, preset.temperature, step=0.05, label="Temperature", info="0 = greedy")
                c["top_p"] = gr.Slider(0.01, 1, preset.top_p, step=0.01, label="Top-p")
                c["top_k"] = gr.Slider(0, 200, preset.top_k, step=1, label="Top-k", info="0 = off")
                c["min_p"] = gr.Slider(0, 1, preset.min_p, step=0.01, label="Min-p")
                c["repetition_penalty"] = gr.Slider(1, 2, preset.repetition_penalty, step=0.01, label="Repetition penalty")
                c["presence_penalty"] = gr.Slider(0, 2, preset.presence_penalty, step=0.05, label="Presence penalty",
                                                  info="Minus this for every token already in the answer (Qwen3.5: 1.5 against endless repetition)")
                c["max_new_tokens"] = gr.Slider(16, 32768, preset.max_new_tokens, step=16, label="Max new tokens")
                c["thinking_budget"] = gr.Slider(0, 8192, 0, step=16, label="Thinking budget (tokens, 0 = no cap)",
                                                 info="Caps a thinking model's thought on local models, then asks it to answer (Qwen's recipe)")
            c["status"] = gr.Markdown(service.status())
            with gr.Row():
                c["export_md"] = gr.DownloadButton("Export Markdown", size="sm")
                c["export_json"] = gr.DownloadButton("Export JSON", size="sm")
                c["import"] = uploads.UploadButton("Import JSON", file_types=[".json"], size="sm")
    with gr.Accordion("🔍 What the model sees (prompt inspector)", open=False):
        c["inspect"] = gr.Button("Inspect this conversation + message", size="sm")
        c["inspected"] = inspector_outputs()
    return c


def tools_picker(config: AppConfig) -> gr.CheckboxGroup:
    """Tools the answer may call (none by default): the Tools tab's loop inside Chat's answer, its calls folded above it."""
    return gr.CheckboxGroup(list(tools.available_tools(config)), value=[], label="🛠 Tools the model may call",
                            info="None by default. Ticked, the answer may call them (Qwen3, Qwen3.5, Qwen2.5); the Tools tab shows each step")


def attachments(c: dict) -> None:
    """Under the message box: images or documents for the message (images seen before they are sent), and a microphone
    that writes a spoken message into the box."""
    c["images"] = uploads.File(file_count="multiple", file_types=["image", *SUFFIXES],
                               label="📎 Images (models that see) or documents (PDF, Markdown, text) for this message", height=90,
                               elem_classes="chat-images")
    c["thumbs"] = gr.Gallery(height=96, columns=8, object_fit="contain", visible=False, interactive=False, show_label=False,
                             elem_classes="chat-thumbs")  # what is attached, seen before it is sent
    c["voice"] = uploads.Audio(sources=["microphone"], type="filepath", format=None, elem_classes="chat-voice",
                               label="🎤 Speak a message: it is written into the message box, to edit before sending")
    c["voice_note"] = gr.Markdown(elem_classes="chat-voice-note")


def images_of(files) -> list[str]:
    """The attached images (what the thumbnails show; documents are listed by name in the box itself)."""
    return [path for path in chat.paths_of(files) if not is_document(path)]


def chat_inputs(message, history, *values, tree=None) -> chat.ChatInputs:
    """The `/chat` API's positional values after the history (the settings in `chat.SETTINGS` order, then the images,
    the tools, the reasoning effort and keep-reasoning, the drafts and their length, each optional) as the task's inputs: the
    one place their order is read."""
    settings, extras = values[:len(chat.SETTINGS)], values[len(chat.SETTINGS):]
    images, tools, effort, keep, draft, draft_tokens = (*extras, *(None, None, "", False, "", DRAFT_TOKENS)[len(extras):])
    chosen = chat.ChatSettings.from_values(*settings).with_tools(tools).with_reasoning(effort, keep).with_drafts(draft, draft_tokens)
    return chat.ChatInputs(message, conversation_for(history, tree), chosen, chat.paths_of(images))


def handlers(config: AppConfig, service: Service, stops: Stops):
    """(respond, retry, edit, prepare): the generating handlers, whose signatures are the API's, and the turn they send."""

    def prepare(*values, user=""):
        *values, tree = values
        return chat.prepare(config, chat_inputs(*values, tree=tree), user)

    def answer(inputs: chat.ChatInputs, request: gr.Request | None, box=gr.skip(), require_message: bool = True, shown=None):
        """Stream the answer to `inputs` into the conversation; `box`: the message box while it streams (cleared for a
        sent message), which gets the message back when nothing came of it; `shown`: how the Chatbot shows it."""
        shown = shown or (lambda conversation: render(conversation.path()))
        try:
            job = start_job(service, request, lambda user: chat.prepare(config, inputs, user, require_message))
        except gr.Error:  # refused: the conversation as it is (an edit shown in the Chatbot is not in it)
            yield shown(inputs.conversation), gr.skip(), inputs.conversation
            raise
        if job.dropped:
            gr.Info(f"Left the {job.dropped} oldest exchange{'s' if job.dropped > 1 else ''} out of the prompt to fit "
                    f"{config.settings.max_input_tokens:,} tokens.")
        yield shown(job.conversation), box, job.conversation
        with stops.running(request) as stop:
            for view in chat.run(service, job, stop):
                yield shown(view.conversation), box, view.conversation
        if view.error:
            if not view.produced_output:  # nothing to keep: the conversation as it was, the message back to edit
                yield shown(job.before), inputs.message or gr.skip(), job.before
            raise refuse(view.error)

    def respond(message, history, model, system_prompt, thinking, temperature, top_p, top_k, min_p, repetition_penalty, presence_penalty,
                max_new_tokens, thinking_budget=0, precision="full", trim_history=False, alternatives=False, images=None, tools=None,
                reasoning_effort="", keep_reasoning=False, draft="", draft_tokens=DRAFT_TOKENS, tree=None, request: gr.Request = None):
        with refusals():
            inputs = chat_inputs(message, history, model, system_prompt, thinking, temperature, top_p, top_k, min_p, repetition_penalty,
                                 presence_penalty, max_new_tokens, thinking_budget, precision, trim_history, alternatives, images, tools,
                                 reasoning_effort, keep_reasoning, draft, draft_tokens, tree=tree)
            uploads.require_uploaded([*inputs.images, *(f for m in inputs.conversation.path() for f in m.files)])
        yield from answer(inputs, request, "", shown=View(history, inputs.conversation))

    def retry(request: gr.Request, history, *values):  # Gradio passes the request first here, with *values (settings, extras, tree)
        *settings, tools, effort, keep, draft, draft_tokens, tree = values
        with refusals():
            chosen = chat.ChatSettings.from_values(*settings).with_tools(tools).with_reasoning(effort, keep).with_drafts(draft, draft_tokens)
            inputs = chat.regenerate(conversation_for(history, tree), chosen)
        yield from answer(inputs, request, require_message=False)

    def edit(request: gr.Request, data: gr.EditData, history, *values):
        *settings, tools, effort, keep, draft, draft_tokens, tree = values
        conversation = tree if isinstance(tree, Conversation) else parse(history)  # the Chatbot already shows the edit
        try:
            message = owner(conversation, bubble_index(data))
            chosen = chat.ChatSettings.from_values(*settings).with_tools(tools).with_reasoning(effort, keep).with_drafts(draft, draft_tokens)
            inputs = chat.edit(conversation, message.id if message else "", data.value, chosen)
        except TaskError as e:  # the conversation as it was, the refusal as a note
            yield render(conversation.path()), gr.skip(), conversation
            raise refuse(str(e)) from None
        yield from answer(inputs, request)

    return respond, retry, edit, prepare


def bubble_index(data: gr.EventData) -> int:
    """The Chatbot bubble an edit or a click concerns (Gradio gives (message, part) for a multi-part message)."""
    return data.index if isinstance(data.index, int) else data.index[0]


def on_model_change(config: AppConfig, model_id: str, draft: str = drafts.OFF) -> list:
    """The model's facts, its thinking box, Qwen's sampling for it and its family's reasoning switches; a typed name that
    is no model: a note, the rest kept."""
    note = described(config.registry, model_id)

    def settings(spec) -> list:
        effort, keep = reasoning_controls(spec)
        return [gr.Checkbox(**thinking_toggle(spec)), *chat.preset_values(spec, spec.starts_thinking), gr.Dropdown(**effort), gr.Checkbox(**keep),
                gr.Dropdown(choices=drafts.choices(config.registry, spec), value=drafts.kept(config.registry, spec, draft))]

    return [note, *when_known(config.registry, settings, 4 + len(chat.SAMPLING_FIELDS))(model_id)]


def with_versions(conversation: Conversation, focus: str | None) -> tuple[Message | None, int]:
    """(the message whose versions the ‹ › row switches, how many shown messages have versions): the chosen one
    (`focus`) when it has versions, else the last shown message that has."""
    branched = [m for m in conversation.path() if conversation.siblings(m.id)[1] > 1]
    return next((m for m in branched if m.id == focus), branched[-1] if branched else None), len(branched)


def versions(tree, focus: str | None) -> list:
    """The ‹ n/m › row for the message `with_versions` picks; hidden when no shown message has versions."""
    conversation = tree if isinstance(tree, Conversation) else Conversation()
    shown, branched = with_versions(conversation, focus)
    if shown is None:
        return [gr.Row(visible=False), ""]
    n, count = conversation.siblings(shown.id)
    what = "your message" if shown.role == "user" else "the answer"
    words = " ".join(shown.text.split())
    excerpt = words if len(words) <= 40 else words[:40].rsplit(" ", 1)[0] + "…"
    return [gr.Row(visible=True), f"**{n}/{count}**: {what} *{excerpt}*"
            + (" · click another message to switch its versions" if branched > 1 else "")]


def switch_version(tree, focus: str | None, step: int) -> tuple:
    """Follow the previous (-1) or next (1) version of the message the row shows."""
    conversation = tree.copy() if isinstance(tree, Conversation) else Conversation()
    shown, _ = with_versions(conversation, focus)
    if shown is None:
        return gr.skip(), gr.skip(), gr.skip()
    depth = [m.id for m in conversation.path()].index(shown.id)
    conversation.switch(shown.id, step)
    chosen = conversation.path()[depth]  # the version now followed
    return render(conversation.path()), conversation, chosen.id


def conversation_panel(c: dict, secret: str) -> None:
    """Saved conversations, kept in this browser's storage (nothing on the server): open, start anew, rename, delete.
    `secret` encrypts them there, the same across restarts of this install."""
    c["saved"] = gr.BrowserState([], storage_key="qwen-playground-conversations", secret=secret)
    c["current"] = gr.State(None)  # the open conversation's id; None: a new one, saved with its first answer
    c["tree"] = gr.State(None)  # the open conversation with every branch (a tasks.conversation.Conversation)
    c["focus"] = gr.State(None)  # the message whose versions ‹ › switch (the last one clicked)
    with gr.Accordion("💬 Conversations (kept in this browser)", open=False):
        c["open"] = gr.Dropdown([], value=None, label="Open a saved conversation", allow_custom_value=False)
        with gr.Row():
            c["new"] = gr.Button("New conversation", size="sm")
            c["delete"] = gr.Button("Delete", size="sm", variant="stop")
        with gr.Row():
            c["title"] = gr.Textbox(label="Title", placeholder="Rename the open conversation", scale=3)
            c["rename"] = gr.Button("Rename", size="sm", scale=1)


def saved_tree(entry: dict | None) -> Conversation:
    """A saved conversation with its branches (one saved before conversations were trees: its one branch)."""
    if entry is None:
        return Conversation()
    try:
        return conversations.tree_of(entry) or parse(entry.get("messages"))
    except ValueError:
        return Conversation()


def bind_conversations(c: dict, changed: list) -> list:
    """Save after every answer and edit (`changed` events); reopen the newest on page load. Returns the events that
    put another conversation on the page."""
    private = {"api_visibility": "private", "queue": False}
    saved, current, picker, chatbot, tree = c["saved"], c["current"], c["open"], c["chatbot"], c["tree"]

    def stored(saved_list, current_id, history, tree_value):
        with refusals():
            conversation = conversation_for(history, tree_value)
        saved_list, current_id = conversations.save(saved_list, current_id, conversation)
        return saved_list, current_id, gr.Dropdown(choices=conversations.choices(saved_list), value=current_id), conversation

    def opened(saved_list, conversation_id):
        found = conversations.find(saved_list, conversation_id)
        if not found:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        conversation = saved_tree(found)
        return render(conversation.path()), conversation_id, found["title"], conversation

    def on_load(saved_list):
        newest = conversations.choices(saved_list)[:1]
        found = conversations.find(saved_list, newest[0][1]) if newest else None
        conversation = saved_tree(found)
        return (gr.Dropdown(choices=conversations.choices(saved_list), value=found and found["id"]), render(conversation.path()),
                found and found["id"], found["title"] if found else "", conversation, *versions(conversation, None))

    def imported(file):
        with refusals():
            conversation = import_json(Path(file).read_text(encoding="utf-8"))
        return render(conversation.path()), conversation, None, None, ""

    def changed_list(action):
        def run(saved_list, current_id, *args):
            with refusals():
                saved_list = action(saved_list, current_id, *args)
            return saved_list, gr.Dropdown(choices=conversations.choices(saved_list))
        return run

    for event in changed:
        event.then(stored, [saved, current, chatbot, tree], [saved, current, picker, tree], **private)
    c["rename"].click(changed_list(conversations.rename), [saved, current, c["title"]], [saved, picker], **private)
    on_page_load(on_load, [saved], [picker, chatbot, current, c["title"], tree, c["versions"], c["version"]])
    return [picker.input(opened, [saved, picker], [chatbot, current, c["title"], tree], **private),
            c["new"].click(lambda: ([], None, None, "", None), None, [chatbot, current, picker, c["title"], tree], **private),
            c["clear"].click(lambda: (None, None, "", None), None, [current, picker, c["title"], tree], **private),  # starts anew
            c["delete"].click(changed_list(conversations.delete), [saved, current], [saved, picker], **private).then(
                lambda: ([], None, "", None), None, [chatbot, current, c["title"], tree], **private),
            c["import"].upload(imported, c["import"], [chatbot, tree, current, picker, c["title"]], **private).success(
                stored, [saved, current, chatbot, tree], [saved, current, picker, tree], **private)]


ENGINE_WAIT_S = 300  # how long a page that opened during start-up waits to replace "Starting the engine" with the status


def undo(history, tree):
    """The conversation without its last exchange; that message (and its images) back in the box to edit."""
    with refusals():
        kept, text, images = chat.undo(conversation_for(history, tree))
    return render(kept.path()), text, list(images) or None, kept


def build_chat_tab(config: AppConfig, service: Service) -> dict:
    c = layout(config, service)
    stops = Stops()
    respond, retry, edit, prepare = handlers(config, service, stops)

    chatbot, message, tree = c["chatbot"], c["message"], c["tree"]
    sliders = [c[name] for name in chat.SAMPLING_FIELDS]
    settings = [c[name] for name in chat.SETTINGS]
    private = {"api_visibility": "private", "queue": False}
    extras = [c["tools"], c["reasoning_effort"], c["keep_reasoning"], c["draft"], c["draft_tokens"]]  # after the images: `chat_inputs` order
    inputs, outputs = [message, chatbot, *settings, c["images"], *extras, tree], [chatbot, message, tree]
    events = [when_valid(c["send"].click, respond, prepare, inputs, outputs, api_name="chat", concurrency_id="generate"),
              when_valid(message.submit, respond, prepare, inputs, outputs, concurrency_id="generate"),
              chatbot.retry(retry, [chatbot, *settings, *extras, tree], outputs, api_visibility="private", concurrency_id="generate"),
              chatbot.edit(edit, [chatbot, *settings, *extras, tree], outputs, api_visibility="private", concurrency_id="generate")]
    export_inputs, exports = [chatbot, tree, c["model"], c["system_prompt"], c["thinking"]], [c["export_md"], c["export_json"]]
    edits = [chatbot.undo(undo, [chatbot, tree], [chatbot, message, c["images"], tree], **private),
             c["clear"].click(lambda: ([], "", None), None, [chatbot, message, c["images"]], **private)]
    stops.bind(c["stop"], respond, retry, edit)
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
    bind_versions(c, events + edits + bind_conversations(c, events + edits[:1]))
    c["images"].change(lambda files: gr.Gallery(value=images_of(files) or None, visible=bool(images_of(files))), c["images"], c["thumbs"],
                       **private)
    c["model"].change(lambda m, d: on_model_change(config, m, d), [c["model"], c["draft"]],
                      [c["model_info"], c["thinking"], *sliders, c["reasoning_effort"], c["keep_reasoning"], c["draft"]], **private)
    c["thinking"].change(when_known(config.registry, chat.preset_values, len(sliders)), [c["model"], c["thinking"]], sliders, **private)
    bind_voice(config, service, c)
    bind_explain(service, c)
    inspect = inspect_chat(config)
    c["inspect"].click(lambda *a: inspect(*a)[:2], [message, chatbot, c["model"], c["system_prompt"], c["thinking"], c["images"], *extras],
                       list(c["inspected"]), api_visibility="private")
    return {"message": message, "chatbot": chatbot, **{name: c[name] for name in chat.SETTINGS if name not in ("precision", "trim_history")},
            "tools": c["tools"], "images": c["images"], "reasoning_effort": c["reasoning_effort"], "keep_reasoning": c["keep_reasoning"],
            "draft": c["draft"], "draft_tokens": c["draft_tokens"]}


def bind_voice(config: AppConfig, service: Service, c: dict) -> None:
    """A recording becomes text in the message box (after what is typed there), with the model that heard it named;
    a recording it cannot use is a note beside the microphone, the box as it was."""

    def dictated(path, message, request: gr.Request = None):
        if not path:  # cleared, or emptied by the last transcription
            return gr.skip(), gr.skip(), gr.skip()
        try:
            user = admitted(service, request)
            text, view, spec = audio.dictate(config, service, path, user)
        except (gr.Error, TaskError) as e:
            return gr.skip(), f"⚠️ {getattr(e, 'message', e)}", None
        heard = f", heard as {view.language}" if view.language else ""
        return (f"{message.rstrip()} {text}" if (message or "").strip() else text), \
            f"🎤 Written by **{spec.id}**{heard} ({view.metrics or 'done'}). Edit it, then send.", None

    c["voice"].change(dictated, [c["voice"], c["message"]], [c["message"], c["voice_note"], c["voice"]], api_visibility="private",
                      concurrency_id="generate", trigger_mode="always_last")
    uploads.deleted_with_session(c["voice"])


def bind_explain(service: Service, c: dict) -> None:
    """Ticking "why this token?" with answers on screen scores them (one pass each), as if it had been ticked before."""

    def explain_shown(ticked, history, tree):
        if not ticked:
            yield gr.skip(), gr.skip()
            return
        conversation = conversation_for(history, tree)
        for view in chat.explain(service, conversation):
            yield render(view.conversation.path()), view.conversation

    c["alternatives"].input(explain_shown, [c["alternatives"], c["chatbot"], c["tree"]], [c["chatbot"], c["tree"]],
                            api_visibility="private", concurrency_id="generate")


def bind_versions(c: dict, changed: list) -> None:
    """‹ › switch the versions of the message last clicked (or of the last message that has versions); the row follows
    every change of the conversation."""
    private = {"api_visibility": "private", "queue": False}
    tree, focus, chatbot, row = c["tree"], c["focus"], c["chatbot"], [c["versions"], c["version"]]

    def clicked(tree_value, data: gr.SelectData):
        if not isinstance(tree_value, Conversation):
            return gr.skip()
        message = owner(tree_value, bubble_index(data))
        return message.id if message else gr.skip()

    chatbot.select(clicked, tree, focus, **private).then(versions, [tree, focus], row, **private)
    for button, step in ((c["older"], -1), (c["newer"], 1)):
        button.click(lambda t, f, s=step: switch_version(t, f, s), [tree, focus], [chatbot, tree, focus], **private).then(
            versions, [tree, focus], row, **private)
    for event in changed:
        event.then(versions, [tree, focus], row, **private)
