"""The Chat tab: multi-turn streamed chat with thinking, presets, retry/undo/clear and stop.

The send event is the `/chat` API endpoint: (message, history, model, system
prompt, thinking, sampling...) -> streamed (history, cleared textbox).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
from pydantic import ValidationError

from ..backends import Backend
from ..chat import export_json, export_markdown, normalize_history, split_last_turn, to_model_messages
from ..config import AppConfig
from ..generation import Request, SamplingParams
from ..lengths import conversation_tokens, trim_history
from ..prompts import load_template
from ..registry import ModelSpec, RegistryError
from .common import describe, precision_picker, stream_turn
from .inspector_tab import inspector_outputs, make_inspect

SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens")


def preset_values(spec: ModelSpec, thinking: bool) -> list:
    """The sampling sliders' values for a model and mode, in SAMPLING_FIELDS order."""
    params = spec.preset(thinking)
    return [getattr(params, f) for f in SAMPLING_FIELDS]


def export_conversation(history, model_id: str, system_prompt: str, think: bool, kind: str) -> str:
    """Write the conversation as Markdown ("md") or JSON ("json") to a temporary file; returns its path."""
    if not history:
        raise gr.Error("Nothing to export yet: chat first.")
    settings = {"model": model_id, "system prompt": system_prompt or "(model default)", "thinking": bool(think)}
    body = export_markdown(history, settings) if kind == "md" else export_json(history, settings)
    path = Path(tempfile.mkdtemp(prefix="qp-chat-")) / f"conversation.{kind}"
    path.write_text(body, encoding="utf-8")
    return str(path)


def sampling_error(e: ValidationError) -> str:
    first = e.errors()[0]
    return f"Invalid {first['loc'][0]}: {first['msg']}."


def build_chat_tab(config: AppConfig, backend: Backend) -> dict:
    registry, template = config.registry, load_template("chat")
    specs = registry.choices("chat")
    first = specs[0]
    preset = first.preset(first.thinking)

    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(label="Conversation", height=560, buttons=["copy", "copy_all"], placeholder="Ask Qwen anything.")
            with gr.Row():
                message = gr.Textbox(label="Message", show_label=False, placeholder="Message Qwen… (Enter to send, Shift+Enter for a new line)", scale=8, lines=1, max_lines=8)
                send = gr.Button("Send", variant="primary", scale=1, min_width=80)
                stop = gr.Button("Stop", variant="stop", scale=1, min_width=80)
                clear = gr.Button("Clear", scale=1, min_width=80)
        with gr.Column(scale=1, min_width=300):
            model = gr.Dropdown([(s.id, s.id) for s in specs], value=first.id, label="Model")
            model_info = gr.Markdown(describe(first))
            precision = precision_picker(backend)
            trim = gr.Checkbox(False, label="Trim oldest turns to fit",
                               info=f"When the conversation passes {config.settings.max_input_tokens:,} tokens, drop its oldest exchanges")
            thinking = gr.Checkbox(first.thinking, label="Thinking mode", interactive=first.thinking,
                                   info="Qwen3 reasons in <think> before answering")
            system = gr.Textbox(template.render_system(), label="System prompt", lines=3,
                                placeholder="Empty: the model's own default")
            with gr.Accordion("Sampling (Qwen's recommended settings)", open=False):
                sliders = [
                    gr.Slider(0, 2, preset.temperature, step=0.05, label="Temperature", info="0 = greedy"),
                    gr.Slider(0.01, 1, preset.top_p, step=0.01, label="Top-p"),
                    gr.Slider(0, 200, preset.top_k, step=1, label="Top-k", info="0 = off"),
                    gr.Slider(0, 1, preset.min_p, step=0.01, label="Min-p"),
                    gr.Slider(1, 2, preset.repetition_penalty, step=0.01, label="Repetition penalty"),
                    gr.Slider(16, 32768, preset.max_new_tokens, step=16, label="Max new tokens"),
                ]
                budget = gr.Slider(0, 8192, 0, step=16, label="Thinking budget (tokens, 0 = no cap)",
                                   info="Caps Qwen3's thinking on local models, then asks it to answer (Qwen's recipe)")
            status = gr.Markdown(backend.status())
            with gr.Row():
                export_md_button = gr.DownloadButton("Export Markdown", size="sm")
                export_json_button = gr.DownloadButton("Export JSON", size="sm")
    with gr.Accordion("🔍 What the model sees (prompt inspector)", open=False):
        inspect_button = gr.Button("Inspect this conversation + message", size="sm")
        inspected_text, inspected_notes = inspector_outputs()

    def on_model_change(model_id: str):
        spec = registry.get(model_id)
        return [describe(spec), gr.Checkbox(value=spec.thinking, interactive=spec.thinking), *preset_values(spec, spec.thinking)]

    def on_thinking_change(model_id: str, think: bool) -> list:
        return preset_values(registry.get(model_id), think)

    def respond(message, history, model, system_prompt, thinking, temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens,
                thinking_budget=0, quantization="none", trim_history=False):
        text, model_id, think = message, model, thinking
        if not isinstance(text, str) or not text.strip():
            raise gr.Error("Type a message first.")
        try:
            spec = registry.get(model_id)
            history = normalize_history(history)
            sampling = SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
                                      repetition_penalty=repetition_penalty, max_new_tokens=max_new_tokens)
        except RegistryError as e:
            raise gr.Error(str(e)) from None
        except ValidationError as e:
            raise gr.Error(sampling_error(e)) from None
        except ValueError as e:
            raise gr.Error(str(e)) from None
        if trim_history:
            history = fit_history(history, text, system_prompt or "")
        yield from run_turn(text, history, spec, system_prompt or "", bool(think), sampling, int(thinking_budget or 0) or None, quantization)

    def fit_history(history: list[dict], text: str, system_prompt: str) -> list[dict]:
        """The newest exchanges that fit the conversation limit with this message (and room to answer)."""
        budget = config.settings.max_input_tokens - conversation_tokens(
            [{"role": "system", "content": system_prompt}, {"role": "user", "content": template.render_user(message=text)}])
        kept, dropped = trim_history(history, max(0, budget))
        if dropped:
            gr.Info(f"Dropped the {dropped} oldest exchange{'s' if dropped > 1 else ''} to fit {config.settings.max_input_tokens:,} tokens.")
        return kept

    def run_turn(text, history, spec, system_prompt, think, sampling, budget, quantization="none"):
        before = list(history)
        history = history + [{"role": "user", "content": text}]
        messages = to_model_messages(before, system_prompt) + [{"role": "user", "content": template.render_user(message=text)}]
        request = Request(spec.id, messages, sampling, think and spec.thinking, budget, quantization)
        yield history, ""
        turn = None
        try:
            for turn in stream_turn(backend, request):
                yield history + turn.messages, ""
        except gr.Error:
            if turn is None or not turn.produced_output:  # nothing to keep: give the message back to edit
                yield before, text
            raise

    def retry(history, model_id, system_prompt, think, temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens,
              thinking_budget=0, quantization="none", trim_history=False):
        before, text = split_last_turn(normalize_history(history))
        if text is None:
            raise gr.Error("Nothing to retry yet.")
        yield from respond(text, before, model_id, system_prompt, think, temperature, top_p, top_k, min_p, repetition_penalty,
                           max_new_tokens, thinking_budget, quantization, trim_history)

    def undo(history):
        before, text = split_last_turn(normalize_history(history))
        return before, text or ""

    inputs = [message, chatbot, model, system, thinking, *sliders, budget, precision, trim]
    send_event = send.click(respond, inputs, [chatbot, message], api_name="chat", concurrency_id="generate")
    submit_event = message.submit(respond, inputs, [chatbot, message], api_visibility="private", concurrency_id="generate")
    retry_event = chatbot.retry(retry, [chatbot, model, system, thinking, *sliders, budget, precision, trim], [chatbot, message],
                                api_visibility="private", concurrency_id="generate")
    chatbot.undo(undo, chatbot, [chatbot, message], api_visibility="private", queue=False)
    clear.click(lambda: ([], ""), None, [chatbot, message], api_visibility="private", queue=False)
    stop.click(None, cancels=[send_event, submit_event, retry_event])
    for event in (send_event, submit_event, retry_event):
        event.then(backend.status, None, status, api_visibility="private", queue=False)
    model.change(on_model_change, model, [model_info, thinking, *sliders], api_visibility="private", queue=False)
    thinking.change(on_thinking_change, [model, thinking], sliders, api_visibility="private", queue=False)

    export_inputs = [chatbot, model, system, thinking]
    export_md_button.click(lambda *a: export_conversation(*a, "md"), export_inputs, export_md_button, api_visibility="private")
    export_json_button.click(lambda *a: export_conversation(*a, "json"), export_inputs, export_json_button, api_visibility="private")
    inspect_button.click(lambda *a: make_inspect(config)(*a)[:2], [message, chatbot, model, system, thinking],
                         [inspected_text, inspected_notes], api_visibility="private")
    return {"message": message, "chatbot": chatbot, "model": model, "system_prompt": system, "thinking": thinking,
            "temperature": sliders[0], "top_p": sliders[1], "top_k": sliders[2], "min_p": sliders[3],
            "repetition_penalty": sliders[4], "max_new_tokens": sliders[5], "thinking_budget": budget}
