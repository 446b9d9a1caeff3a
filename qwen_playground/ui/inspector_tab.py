"""The glass box in the UI: the prompt inspector (a tab, and a panel in every task tab) and the model guide.

Endpoints: `/inspect` (message, history, model, system prompt, thinking, images, tools, reasoning effort, keep
reasoning) -> (highlighted text, notes, counts) for Chat; `/inspect_<tab>` with the tab's
own inputs for Code, Math, Multilingual, Vision and Compare; `/guide` (task,
memory GiB, context tokens, languages, runs on CPU or GPU, bandwidth GB/s) -> ranked table, its choice first.
"""

from __future__ import annotations

import functools
from typing import Callable

import gradio as gr

from ..core.config import AppConfig
from ..core.generation import PRECISIONS
from ..core.registry import TABS
from ..languages import languages
from ..tasks import chat
from ..tasks import guide as guide_task
from ..tasks.inspect import explain
from . import uploads
from .chat_view import conversation_for
from .common import refusals

HIGHLIGHT_COLORS = {"special": "#f59e0b", "tag": "#8b5cf6"}
GUIDE_COLUMNS = ["model", "params (B)", "active (B)", *(f"{q} (GiB)" for q in PRECISIONS), "KV cache (GiB)", "best fit",
                 "tokens/s (limit)", "why"]


def show_inspection(config: AppConfig, job) -> tuple:
    """(highlighted pieces, notes, counts) for the first request a task's job would send."""
    request = job.requests[0]
    with refusals():
        explanation = explain(config.registry.get(request.model_id), request, config.settings.cache_dir, getattr(job, "stripped_thoughts", 0))
    notes = explanation.notes
    if cost := getattr(job, "cost", None):  # a clip: its length, rate and audio tokens, as the tab's cost line says
        notes += f"\n\n**The clip:** {cost.line()}"
    notes += "".join(f"\n\n{line}" for line in getattr(job, "inspector_notes", ()))  # how the task made the request (Documents)
    if len(job.requests) > 1:
        notes += f"\n\nThis tab sends {len(job.requests)} requests at once; this is the first of them."
    return explanation.pieces, notes, explanation.counts


def inspect_chat(config: AppConfig) -> Callable:
    """The Chat inspector: the conversation so far plus the unsent message, as the next request would be."""

    def inspect_conversation(message, history, model, system_prompt, thinking, images=None, tools=None, reasoning_effort="",
                             keep_reasoning=False, draft="", draft_tokens=None):
        with refusals():  # drafts change no prompt, but a choice the model cannot take is refused here as on sending
            settings = chat.ChatSettings(model, system_prompt or "", bool(thinking)).with_tools(tools)
            settings = settings.with_reasoning(reasoning_effort, keep_reasoning).with_drafts(draft, draft_tokens)
            inputs = chat.ChatInputs(message, conversation_for(history), settings,
                                     chat.paths_of(images))
            uploads.require_uploaded([*inputs.images, *(f for m in inputs.conversation.path() for f in m.files)])
            job = chat.prepare(config, inputs, require_message=False)
        return show_inspection(config, job)

    return inspect_conversation


def inspector_panel(config: AppConfig, inputs: list, job_of: Callable, api_name: str | None) -> None:
    """A collapsed '🔍 What the model sees' panel for a tab; `job_of(*inputs)` is the tab's own request builder."""
    with gr.Accordion("🔍 What the model sees (prompt inspector)", open=False):
        button = gr.Button("Inspect the prompt this tab would send", size="sm")
        text, notes = inspector_outputs()
        counts = gr.JSON(label="Token counts and ids", visible=False)

    @functools.wraps(job_of)  # the API names its parameters as the tab's request builder does
    def inspect_tab(*values):
        with refusals():
            job = job_of(*values)
        return show_inspection(config, job)

    if api_name:
        button.click(inspect_tab, inputs, [text, notes, counts], api_name=api_name)
    else:  # the tab gives its API its own inspector (e.g. Compare's, which takes a list of panes)
        button.click(inspect_tab, inputs, [text, notes, counts], api_visibility="private")


def inspector_outputs() -> tuple[gr.HighlightedText, gr.Markdown]:
    text = gr.HighlightedText(label="What the model receives (special tokens highlighted)", color_map=HIGHLIGHT_COLORS,
                              combine_adjacent=False, show_legend=True)
    notes = gr.Markdown(label="Notes")
    return text, notes


def build_inspector_tab(config: AppConfig, chat_fields: dict, shown: gr.Tab) -> None:
    """Inspect the Chat tab's current conversation, settings and unsent message: at once when the tab (`shown`) opens,
    and again on the button."""
    gr.Markdown("The exact prompt the Chat tab would send next: the conversation so far (answers without their thinking), "
                "your unsent message, the system prompt and thinking mode, after the model's chat template. "
                "Orange: special tokens; purple: tags such as `<think>`.")
    go = gr.Button("Inspect the Chat tab", variant="primary")
    text, notes = inspector_outputs()
    counts = gr.JSON(label="Token counts and ids")
    inputs = [chat_fields[k] for k in ("message", "chatbot", "model", "system_prompt", "thinking", "images", "tools", "reasoning_effort",
                                       "keep_reasoning")]
    inspect = inspect_chat(config)
    go.click(inspect, inputs, [text, notes, counts], api_name="inspect")

    def on_show(*values):  # nothing to inspect yet is a line in the notes, not an error over the tab
        try:
            return inspect(*values)
        except gr.Error as e:
            return [], f"*{e.message}*", {}

    shown.select(on_show, inputs, [text, notes, counts], api_visibility="private")


def guide_table(config: AppConfig, runnable: tuple[str, ...], task, memory_gib, context_tokens, chosen_languages, runs_on="GPU",
                bandwidth_gbs=0) -> list[list]:
    """The model guide's rows for a task, the memory at hand, a context length, the languages needed, and the machine
    (CPU or GPU, and its memory bandwidth in GB/s: 0 for the typical figure)."""
    with refusals():
        return guide_task.table(config.registry, runnable, task, memory_gib, context_tokens, chosen_languages, runs_on, bandwidth_gbs)


def this_machine(config: AppConfig) -> tuple[str, float]:
    """(CPU or GPU, its memory in GiB) as the guide starts: the machine the app runs on."""
    import psutil

    from ..core.devices import accelerator_memory_bytes, pick_device

    gpu = accelerator_memory_bytes(pick_device(config.settings.device))
    return ("GPU", round(gpu / 2**30)) if gpu else ("CPU", round(psutil.virtual_memory().total / 2**30))


def build_guide_tab(config: AppConfig, runnable: tuple[str, ...]) -> None:
    """The guide recommends only the precisions this machine runs (`runnable`, as the precision picker offers)."""
    gr.Markdown("Which Qwen variant fits your machine, and which is the strongest that runs well there? Memory: weights (per "
                "parameter, on a GPU: full precision in bf16 2 bytes, 8-bit 1, 4-bit ~0.53; on a CPU, llama.cpp's files: 2, 1.06, 0.6) "
                "+ KV cache (2 x layers that keep one x KV heads x head size x 2 bytes per token) + 10% overhead. Speed: a token reads "
                "the weights it uses once, so decoding is at most bandwidth / bytes read per token; a mixture of experts reads only "
                f"its active ones. The first row is the guide's choice: the strongest that fits at {guide_task.READABLE_TOKENS_S:g}+ tokens/s.")
    kind, gib = this_machine(config)
    with gr.Row():
        task = gr.Dropdown(list(TABS), value="chat", label="Task")
        runs_on = gr.Radio(list(guide_task.MACHINES), value=kind, label="Runs on")
        memory = gr.Number(gib, label="Memory for the model (GiB: GPU memory, or RAM on a CPU)", minimum=0.1)
        bandwidth = gr.Number(0, label="Memory bandwidth (GB/s; 0 = typical: CPU 60, GPU 1,000)", minimum=0)
        context = gr.Slider(1024, 131072, 8192, step=1024, label="Context length (tokens)")
    chosen = gr.CheckboxGroup(list(languages()), value=["English"], label="Languages you need")
    go = gr.Button("Rank the models", variant="primary")
    table = gr.Dataframe(headers=GUIDE_COLUMNS, interactive=False, label="Model guide", wrap=True)
    go.click(functools.partial(guide_table, config, runnable), [task, memory, context, chosen, runs_on, bandwidth], table, api_name="guide")
