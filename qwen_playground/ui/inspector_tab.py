"""The glass box in the UI: the prompt inspector (a tab and a panel in Chat) and the model guide.

Endpoints: `/inspect` (message, history, model, system prompt, thinking) ->
(highlighted text, notes, counts); `/guide` (task, memory GiB, context tokens,
languages) -> ranked table.
"""

from __future__ import annotations

import gradio as gr

from ..chat import THINKING_TITLE, is_helper, normalize_history, to_model_messages
from ..config import AppConfig
from ..guide import QUANTS, TASK_FAMILIES, rank
from ..inspector import inspect, soft_switch, summary_markdown, thinking_difference, tokenizer_for
from ..languages import languages
from ..prompts import load_template
from .common import resolve

HIGHLIGHT_COLORS = {"special": "#f59e0b", "tag": "#8b5cf6"}


def render_inspection(config: AppConfig, model_id: str, messages: list[dict], thinking: bool, stripped: int = 0) -> tuple:
    """(highlighted pieces, notes, counts) for messages about to go to a model."""
    spec = resolve(config.registry, model_id)
    if not messages:
        raise gr.Error("Type a message (or chat first): there is nothing to inspect yet.")
    try:
        tokenizer, note = tokenizer_for(spec, config.settings.cache_dir)
    except Exception as e:
        raise gr.Error(f"Could not load {spec.id}'s tokenizer: {e}") from None
    think = bool(thinking) if spec.thinking else None
    result = inspect(tokenizer, messages, think)
    diff = thinking_difference(tokenizer, messages) if spec.thinking else ""
    notes = summary_markdown(result, spec, note, diff, soft_switch(messages) if spec.thinking else None, stripped)
    counts = {"total": result.total, "turns": [{"role": t.role, "tokens": t.tokens} for t in result.turns],
              "text": result.text, "ids": result.ids}
    return result.pieces, notes, counts


def make_inspect(config: AppConfig):
    """The Chat inspector: the conversation so far plus the unsent message, as the next request would be."""
    template = load_template("chat")

    def inspect_conversation(message, history, model, system_prompt, thinking):
        try:
            history = normalize_history(history)
        except ValueError as e:
            raise gr.Error(str(e)) from None
        messages = to_model_messages(history, system_prompt or "")
        if isinstance(message, str) and message.strip():
            messages.append({"role": "user", "content": template.render_user(message=message)})
        stripped = sum(1 for m in history if is_helper(m) and m["metadata"]["title"] == THINKING_TITLE)
        return render_inspection(config, model, messages, thinking, stripped)

    return inspect_conversation


def inspector_panel(config: AppConfig, inputs: list, request_of) -> None:
    """A collapsed '🔍 What the model sees' panel for a tab; `request_of(*inputs)` gives (model id, messages, thinking)."""
    with gr.Accordion("🔍 What the model sees (prompt inspector)", open=False):
        button = gr.Button("Inspect the prompt this tab would send", size="sm")
        text, notes = inspector_outputs()
    button.click(lambda *values: render_inspection(config, *request_of(*values))[:2], inputs, [text, notes], api_visibility="private")


def inspector_outputs() -> tuple[gr.HighlightedText, gr.Markdown]:
    text = gr.HighlightedText(label="What the model receives (special tokens highlighted)", color_map=HIGHLIGHT_COLORS,
                              combine_adjacent=False, show_legend=True)
    notes = gr.Markdown(label="Notes")
    return text, notes


def build_inspector_tab(config: AppConfig, chat: dict) -> None:
    """Inspect the Chat tab's current conversation, settings and unsent message."""
    gr.Markdown("The exact prompt the Chat tab would send next: the conversation so far (answers without their thinking), "
                "your unsent message, the system prompt and thinking mode, after the model's chat template. "
                "Orange: special tokens; purple: tags such as `<think>`.")
    go = gr.Button("Inspect the Chat tab", variant="primary")
    text, notes = inspector_outputs()
    counts = gr.JSON(label="Token counts and ids")
    go.click(make_inspect(config), [chat["message"], chat["chatbot"], chat["model"], chat["system_prompt"], chat["thinking"]],
             [text, notes, counts], api_name="inspect")


def build_guide_tab(config: AppConfig) -> None:
    names = list(languages())
    gr.Markdown("Which Qwen variant fits your machine? Estimates from the registry: weights (bf16 2 bytes, int8 1, int4 ~0.53 "
                "per parameter) + KV cache (2 x layers x KV heads x head size x 2 bytes per token) + 10% overhead.")
    with gr.Row():
        task = gr.Dropdown(list(TASK_FAMILIES), value="chat", label="Task")
        memory = gr.Number(16, label="Memory for the model (GiB: GPU memory, or free RAM on a CPU)", minimum=0.1)
        context = gr.Slider(1024, 131072, 8192, step=1024, label="Context length (tokens)")
    chosen = gr.CheckboxGroup(names, value=["English"], label="Languages you need")
    go = gr.Button("Rank the models", variant="primary")
    table = gr.Dataframe(headers=["model", "params (B)", *(f"{q} (GiB)" for q in QUANTS), "KV cache (GiB)", "best fit", "why"],
                         interactive=False, label="Model guide", wrap=True)

    def guide(task, memory_gib, context_tokens, languages):
        if task not in TASK_FAMILIES:
            raise gr.Error(f"Unknown task '{task}'; choose one of: {', '.join(TASK_FAMILIES)}.")
        if not isinstance(memory_gib, (int, float)) or memory_gib <= 0:
            raise gr.Error("Give the memory you have for the model in GiB, e.g. 8 for an 8 GB GPU.")
        fits = rank(config.registry, task, float(memory_gib), int(context_tokens), list(languages or []))
        return [[f.spec.id, f.spec.params_b, *(round(f.needs_gib[q], 1) for q in QUANTS),
                 None if f.kv_gib is None else round(f.kv_gib, 2), f.best or "—", f.why] for f in fits]

    go.click(guide, [task, memory, context, chosen], table, api_name="guide")
