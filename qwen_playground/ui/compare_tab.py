"""The Compare tab: one prompt to 2-4 panes at once, each with its own model and settings.

Endpoint `/compare` (prompt, panes, template, thinking_budget): `panes` is a
list of 2-4 {model, thinking, temperature, max_new_tokens, precision,
engine, alternatives, history} -> streamed {"panes": [{"messages", "metrics"}],
"notice", "agreement"}; the last update adds each pane's "tokens" (with
alternatives on: every token's probability and top 5).
The tab's Send builds the same panes from its controls; `/inspect_compare`
(the same inputs) shows pane 1's request.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Iterator

import gradio as gr

from ..backends.engines import LLAMA_CPP, TRANSFORMERS
from ..core.config import AppConfig
from ..mathtext import LATEX_DELIMITERS
from ..service import Service
from ..tasks import compare as task
from ..tasks import drafts
from .chat_view import conversation_for, render
from .common import Stops, admitted, follows_registry, precision_picker, refusals, thinking_settings, when_known, when_valid
from .inspector_tab import inspector_panel, show_inspection

PANE_FIELDS = ("model", "thinking", "temperature", "max_new_tokens", "precision", "engine", "alternatives", "draft")


def export_files(state) -> list:
    """The comparison as Markdown and JSON files, written before the click so that one click downloads."""
    if not state:
        return [None, None]
    prompt_text, pane_results = state
    folder, paths = Path(tempfile.mkdtemp(prefix="qp-compare-")), []
    for kind, body in (("md", task.to_markdown([prompt_text], pane_results)), ("json", task.to_json([prompt_text], pane_results))):
        (folder / f"comparison.{kind}").write_text(body, encoding="utf-8")
        paths.append(str(folder / f"comparison.{kind}"))
    return paths


def pane_column(config: AppConfig, service: Service, index: int, models: list[str]) -> dict:
    """One pane's controls and outputs: {column, model, thinking, temperature, max_new_tokens, precision, chat, line}."""
    default = config.registry.get(models[index % len(models)])
    p: dict = {}
    with gr.Column(visible=index < 2, min_width=260) as p["column"]:
        p["model"] = follows_registry(gr.Dropdown(models, value=default.id, label=f"Pane {index + 1} model"),
                                      lambda: [m.id for m in task.comparable_models(config.registry)])
        with gr.Row():
            p["thinking"] = gr.Checkbox(label="Thinking", **thinking_settings(default, False))
            p["alternatives"] = gr.Checkbox(False, label="🔎 Why this token?")
        with gr.Accordion("Settings", open=False):  # folded, so the answers start on the first screen
            p["temperature"] = gr.Slider(0, 2, default.preset(False).temperature, step=0.05, label="Temperature")
            p["max_new_tokens"] = gr.Slider(16, 8192, 1024, step=16, label="Max new tokens")
            p["precision"] = precision_picker(service.capabilities())
            engines = ["auto", TRANSFORMERS, *([LLAMA_CPP] if service.capabilities().engine == LLAMA_CPP else [])]
            p["engine"] = gr.Dropdown(engines, value="auto", label="Engine", visible=len(engines) > 2,
                                      info="auto: llama.cpp for text here, transformers for images and fine-tuned models")
            p["draft"] = gr.Dropdown(drafts.choices(config.registry, default), value=drafts.OFF, label="⚡ Drafts",
                                     allow_custom_value=True,  # checked when sent, against the pane's model
                                     info="Speculative decoding: the same answer in fewer passes (put one pane with, one without)")
        p["chat"] = gr.Chatbot(label=f"Pane {index + 1}", height=420, latex_delimiters=LATEX_DELIMITERS, buttons=["copy"])
        p["line"] = gr.Markdown(label=f"Pane {index + 1} metrics")
    private = {"api_visibility": "private", "queue": False}
    # the box and the drafts keep what they had where the new model takes it (a lesson sets them with the model)
    p["model"].change(when_known(config.registry, lambda spec, thinking, draft: [
        gr.Checkbox(**thinking_settings(spec, thinking)),
        gr.Dropdown(choices=drafts.choices(config.registry, spec), value=drafts.kept(config.registry, spec, draft))], 2),
        [p["model"], p["thinking"], p["draft"]], [p["thinking"], p["draft"]], **private)
    # Qwen's preset for the mode, as Chat does: thinking 0.6, non-thinking 0.7 for Qwen3
    p["thinking"].change(when_known(config.registry, lambda spec, t: spec.preset(bool(t)).temperature), [p["model"], p["thinking"]],
                         p["temperature"], **private)
    return p


def layout(config: AppConfig, service: Service, ready: dict) -> dict:
    models = [m.id for m in task.comparable_models(config.registry)]
    c: dict = {}
    with gr.Row():
        c["prompt"] = gr.Textbox(label="Prompt (sent to every pane)", lines=2, scale=4)
        c["preset"] = follows_registry(gr.Dropdown(["(custom)", *ready], value="(custom)", label="Change one thing", scale=2),
                                       lambda: ["(custom)", *task.presets(config.registry, service.capabilities().runnable_precisions)])
    with gr.Accordion("Panes, template and thinking budget", open=False):  # folded: the answers start on the first screen
        with gr.Row():
            c["count"] = gr.Radio(["2", "3", "4"], value="2", label="Panes")
            c["template"] = gr.Radio(list(task.TEMPLATES), value="Chat", label="Prompt template")
            c["budget"] = gr.Slider(0, 8192, 0, step=16, label="Thinking budget (tokens, 0 = no cap; local thinking panes)")
    with gr.Row():
        c["send"] = gr.Button("Send to all panes", variant="primary")
        c["stop"] = gr.Button("Stop", variant="stop")
        c["clear"] = gr.Button("Clear")
        c["export_md"] = gr.DownloadButton("Export Markdown", value=None)
        c["export_json"] = gr.DownloadButton("Export JSON", value=None)
    c["notice"] = gr.Markdown(label="Notice")
    c["agree"] = gr.Markdown(label="Agreement")
    with gr.Row():
        c["panes"] = [pane_column(config, service, i, models) for i in range(task.MAX_PANES)]
    c["results"] = gr.State([])  # [prompt, [PaneResult...]] of the last exchange, for export
    return c


def panes_of(count, values: tuple) -> list[dict]:
    """The first `count` panes as the API's pane dicts, from the controls' values (PANE_FIELDS per pane, then the histories)."""
    n, size = int(count), len(PANE_FIELDS)
    settings, histories = values[:size * task.MAX_PANES], values[size * task.MAX_PANES:]
    return [dict(zip(PANE_FIELDS, settings[i * size:(i + 1) * size], strict=True), history=histories[i] or []) for i in range(n)]


def with_conversations(panes: object) -> object:
    """The API's panes with each pane's history (Chatbot messages) read as a Conversation; anything else as given,
    for the task to refuse."""
    if not isinstance(panes, (list, tuple)):
        return panes
    return [dict(p, history=conversation_for(p.get("history"))) if isinstance(p, dict) else p for p in panes]


def stream_compare(config: AppConfig, service: Service, prompt, panes, template, thinking_budget, user: str,
                   stop=None) -> Iterator[task.CompareView]:
    with refusals():
        job = task.prepare(config, prompt, with_conversations(panes), template, thinking_budget, user)
    yield from task.run(service, job, stop)


def build_compare_tab(config: AppConfig, service: Service) -> dict:
    ready = task.presets(config.registry, service.capabilities().runnable_precisions)
    c = layout(config, service, ready)
    panes, skip, stops = c["panes"], [gr.skip()], Stops()

    def job_of(prompt, count, template, budget, *values):
        return task.prepare(config, prompt, with_conversations(panes_of(count, values)), template, budget)

    def send(request: gr.Request, prompt, count, template, budget, *values):  # Gradio passes the request first here, with *values
        user = admitted(service, request)
        with refusals():
            chosen = panes_of(count, values)
        with stops.running(request) as stop:
            for view in stream_compare(config, service, prompt, chosen, template, budget, user, stop):
                fill = skip * (task.MAX_PANES - len(view.chats))
                yield (*(render(chat, footer=False) for chat in view.chats), *fill, *view.lines, *fill, skip[0] if view.agreement is None else view.agreement, view.notice,
                       skip[0] if view.results is None else [str(prompt).strip(), view.results])

    def compare(prompt: str, panes: list[dict], template: str = "Chat", thinking_budget: int = 0,
                request: gr.Request = None) -> Iterator[dict]:
        """Send one prompt to 2-4 panes; each pane is {model, thinking, temperature, max_new_tokens, precision, engine, alternatives,
        draft, draft_tokens, history}."""
        user = admitted(service, request)
        for view in stream_compare(config, service, prompt, panes, template, thinking_budget, user):
            shown = [{"messages": render(chat, footer=False), "metrics": line} for chat, line in zip(view.chats, view.lines, strict=True)]
            for pane, result in zip(shown, view.results or []):
                pane |= {"tokens": result.tokens, "tokens_note": result.tokens_note} if result.setup.alternatives else {}
            yield {"panes": shown, "notice": view.notice, "agreement": view.agreement}

    controls = [p[f] for p in panes for f in PANE_FIELDS] + [p["chat"] for p in panes]
    outputs = [*(p["chat"] for p in panes), *(p["line"] for p in panes), c["agree"], c["notice"], c["results"]]
    event = when_valid(c["send"].click, send, job_of, [c["prompt"], c["count"], c["template"], c["budget"], *controls], outputs,
                       concurrency_id="generate")
    gr.api(compare, api_name="compare", concurrency_id="generate")
    stops.bind(c["stop"], send, compare)
    bind_explain(service, c)
    event.then(export_files, c["results"], [c["export_md"], c["export_json"]], api_visibility="private")  # one click downloads
    bind_controls(config, c, lambda: task.presets(config.registry, service.capabilities().runnable_precisions))
    inspector_panel(config, [c["prompt"], c["count"], c["template"], c["budget"], *controls], job_of, None)

    def inspect_compare(prompt: str, panes: list[dict], template: str = "Chat", thinking_budget: int = 0) -> tuple[list, str, dict]:
        """What pane 1 would receive for these panes (as `/compare` takes them): highlighted pieces, notes, token counts."""
        with refusals():
            job = task.prepare(config, prompt, with_conversations(panes), template, thinking_budget)
        return show_inspection(config, job)

    gr.api(inspect_compare, api_name="inspect_compare")
    fields = {"prompt": c["prompt"], "panes": c["count"], "template": c["template"], "thinking_budget": c["budget"]}
    for i, p in enumerate(panes, 1):
        fields |= {f"model_{i}": p["model"], f"thinking_{i}": p["thinking"], f"temperature_{i}": p["temperature"],
                   f"max_tokens_{i}": p["max_new_tokens"], f"precision_{i}": p["precision"], f"alternatives_{i}": p["alternatives"],
                   f"draft_{i}": p["draft"]}
    return fields


def bind_explain(service: Service, c: dict) -> None:
    """A pane's "why this token?" ticked after its answer: the answer is scored (one pass of its model) and shown."""

    def explainer(index: int):
        def explain(ticked, results):
            if not ticked or not results or index >= len(results[1]):
                return gr.skip(), gr.skip()
            prompt, shown = results
            done = task.explain_pane(service, shown[index])
            return render(done.chat, footer=False), [prompt, [*shown[:index], done, *shown[index + 1:]]]
        return explain

    for i, p in enumerate(c["panes"]):
        p["alternatives"].input(explainer(i), [p["alternatives"], c["results"]], [p["chat"], c["results"]],
                                api_visibility="private", concurrency_id="generate").then(
            export_files, c["results"], [c["export_md"], c["export_json"]], api_visibility="private")


def bind_controls(config: AppConfig, c: dict, presets: Callable[[], dict]) -> None:
    """Clear, pane count, presets (as the registry stands when one is picked: fine-tuned models join) and export."""
    panes, private = c["panes"], {"api_visibility": "private", "queue": False}

    def apply_preset(name):
        ready = presets()
        if name not in ready:
            return [gr.skip()] * (1 + 6 * task.MAX_PANES)
        setups, updates = ready[name], [str(len(ready[name]))]
        for i in range(task.MAX_PANES):
            if i < len(setups):
                spec = config.registry.get(setups[i].model)
                updates += [gr.Column(visible=True), setups[i].model, gr.Checkbox(**thinking_settings(spec, setups[i].thinking)),
                            setups[i].precision, setups[i].engine, setups[i].max_new_tokens or gr.skip()]
            else:
                updates += [gr.Column(visible=False), *[gr.skip()] * 5]
        return updates

    outputs = [*(p["chat"] for p in panes), *(p["line"] for p in panes), c["agree"], c["notice"], c["results"]]
    c["clear"].click(lambda: [[]] * task.MAX_PANES + [""] * task.MAX_PANES + ["", "", [], None, None], None,
                     [*outputs, c["export_md"], c["export_json"]], **private)
    c["count"].change(lambda n: [gr.Column(visible=i < int(n)) for i in range(task.MAX_PANES)], c["count"], [p["column"] for p in panes], **private)
    preset_outputs = [c["count"]] + [p[k] for p in panes for k in ("column", "model", "thinking", "precision", "engine", "max_new_tokens")]
    c["preset"].change(apply_preset, c["preset"], preset_outputs, **private)

