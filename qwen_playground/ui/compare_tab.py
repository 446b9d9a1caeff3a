"""The Compare tab: one prompt to 2-4 panes at once, each with its own model and settings.

Endpoint `/compare` (prompt, panes, template, then per pane model_i,
thinking_i, temperature_i, max_tokens_i, history_i, thinking_budget, weights_i) -> streamed (4 pane
conversations, 4 metrics lines, answer agreement, notice).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from ..backends import Backend
from ..chat import ChatTurn, normalize_history, to_model_messages
from ..compare import PaneResult, PaneSetup, agreement, comparable_models, presets, to_json, to_markdown
from ..config import AppConfig
from ..generation import Request
from ..mathtext import LATEX_DELIMITERS, protect_math
from ..parallel import stream_all, stream_in_turn
from ..prompts import load_template
from ..registry import RegistryError
from .common import Pacer, answer_text, bubbles, metrics_text, precision_picker, require_text, runnable_precisions
from .inspector_tab import inspector_panel

MAX_PANES = 4
TEMPLATES = {"Chat": ("chat", "message"), "Math (step by step, \\boxed{} answer)": ("math", "problem")}  # label -> (template, its variable)


def build_compare_tab(config: AppConfig, backend: Backend) -> dict:
    registry = config.registry
    models = [m.id for m in comparable_models(registry)]
    ready = presets(registry, runnable_precisions(backend))
    with gr.Row():
        prompt = gr.Textbox(label="Prompt (sent to every pane)", lines=3, scale=4)
        with gr.Column(scale=2):
            preset = gr.Dropdown(["(custom)", *ready], value="(custom)", label="Change one thing")
            with gr.Row():
                count = gr.Radio(["2", "3", "4"], value="2", label="Panes")
                template = gr.Radio(list(TEMPLATES), value="Chat", label="Prompt template")
            budget = gr.Slider(0, 8192, 0, step=16, label="Thinking budget (tokens, 0 = no cap; local Qwen3 panes)")
    with gr.Row():
        send = gr.Button("Send to all panes", variant="primary")
        stop = gr.Button("Stop", variant="stop")
        clear = gr.Button("Clear")
        export_md = gr.DownloadButton("Export Markdown", value=None)
        export_json = gr.DownloadButton("Export JSON", value=None)
    notice = gr.Markdown(label="Notice")
    agree = gr.Markdown(label="Agreement")
    columns, pane_inputs, chats, metric_lines, precisions = [], [], [], [], []
    with gr.Row():
        for i in range(MAX_PANES):
            default = models[i % len(models)]
            with gr.Column(visible=i < 2, min_width=260) as column:
                model = gr.Dropdown(models, value=default, label=f"Pane {i + 1} model")
                thinking = gr.Checkbox(registry.get(default).thinking, label="Thinking", interactive=registry.get(default).thinking)
                temperature = gr.Slider(0, 2, registry.get(default).preset(False).temperature, step=0.05, label="Temperature")
                max_tokens = gr.Slider(16, 8192, 1024, step=16, label="Max new tokens")
                precision = precision_picker(backend)
                chat = gr.Chatbot(label=f"Pane {i + 1}", height=420, latex_delimiters=LATEX_DELIMITERS, buttons=["copy"])
                line = gr.Markdown(label=f"Pane {i + 1} metrics")
            model.change(lambda m: gr.Checkbox(interactive=True) if registry.get(m).thinking else gr.Checkbox(value=False, interactive=False),
                         model, thinking, api_visibility="private", queue=False)
            columns.append(column)
            pane_inputs.append((model, thinking, temperature, max_tokens))
            precisions.append(precision)
            chats.append(chat)
            metric_lines.append(line)
    results = gr.State([])  # [prompts, [PaneResult...]] of the conversation so far, for export

    def pane_messages(history: list[dict], template: str, text: str) -> list[dict]:
        """A pane's next request: its own conversation, then the prompt through the chosen template."""
        template_name, variable = TEMPLATES[template]
        prompt_template = load_template(template_name)
        return to_model_messages(history, prompt_template.render_system()) + [
            {"role": "user", "content": prompt_template.render_user(**{variable: text})}]

    def compare(prompt, panes, template,
                model_1, thinking_1, temperature_1, max_tokens_1, model_2, thinking_2, temperature_2, max_tokens_2,
                model_3, thinking_3, temperature_3, max_tokens_3, model_4, thinking_4, temperature_4, max_tokens_4,
                history_1, history_2, history_3, history_4, thinking_budget=0,
                weights_1="none", weights_2="none", weights_3="none", weights_4="none"):
        text = require_text(prompt, "a prompt")
        panes = int(panes)
        if not 2 <= panes <= MAX_PANES:
            raise gr.Error(f"Choose between 2 and {MAX_PANES} panes.")
        if template not in TEMPLATES:
            raise gr.Error(f"Unknown template '{template}'; choose one of: {', '.join(TEMPLATES)}.")
        settings = [(model_1, thinking_1, temperature_1, max_tokens_1), (model_2, thinking_2, temperature_2, max_tokens_2),
                    (model_3, thinking_3, temperature_3, max_tokens_3), (model_4, thinking_4, temperature_4, max_tokens_4)]
        histories = [history_1, history_2, history_3, history_4]
        weights = [weights_1, weights_2, weights_3, weights_4]
        setups = [PaneSetup(m, bool(t), float(temp), int(mx), str(w)) for (m, t, temp, mx), w in zip(settings[:panes], weights, strict=False)]
        try:
            specs = [registry.get(s.model) for s in setups]
            histories = [normalize_history(h) for h in histories[:panes]]
        except (RegistryError, ValueError) as e:
            raise gr.Error(str(e)) from None
        requests = []
        for spec, setup, history in zip(specs, setups, histories, strict=True):
            sampling = spec.preset(setup.thinking).model_copy(update={"temperature": setup.temperature, "max_new_tokens": setup.max_new_tokens})
            requests.append(Request(spec.id, pane_messages(history, template, text), sampling, setup.thinking and spec.thinking,
                                    int(thinking_budget or 0) or None, setup.quantization))
        problem = backend.fit_problem([s.id for s in specs])
        runner = stream_in_turn if problem else stream_all
        turns = [ChatTurn() for _ in requests]
        shown_user = {"role": "user", "content": protect_math(text)}

        def view(final: bool = False):
            chats_out = [histories[i] + [shown_user] + [dict(m, content=protect_math(m["content"])) for m in bubbles(turns[i])] if i < panes else gr.skip()
                         for i in range(MAX_PANES)]
            lines = [(f"⚠️ {turns[i].error}" if turns[i].error else metrics_text(turns[i])) if i < panes else gr.skip() for i in range(MAX_PANES)]
            agreed = agreement([answer_text(t) for t in turns]) if final else gr.skip()
            return [*chats_out, *lines, agreed, problem or ""]

        yield *view(), gr.skip()
        pacer = Pacer()
        for index, event in runner(backend, requests):
            turns[index].apply(event)
            if pacer.due(event, index):
                yield *view(), gr.skip()
        pane_results = [PaneResult(setup, answer_text(t), t.thinking["content"] if t.thinking else "",
                                   {"metrics": t.metrics.summary()} if t.metrics else {}, t.error) for setup, t in zip(setups, turns, strict=True)]
        yield *view(final=True), [text, pane_results]

    def export(state, kind: str):
        if not state:
            raise gr.Error("Nothing to export yet: send a prompt first.")
        prompt_text, pane_results = state
        body = to_markdown([prompt_text], pane_results) if kind == "md" else to_json([prompt_text], pane_results)
        path = Path(tempfile.mkdtemp(prefix="qp-compare-")) / f"comparison.{kind}"
        path.write_text(body, encoding="utf-8")
        return str(path)

    def apply_preset(name):
        if name not in ready:
            return [gr.skip()] * (1 + 4 * MAX_PANES)
        setups = ready[name]
        updates = [str(len(setups))]
        for i in range(MAX_PANES):
            if i < len(setups):
                spec = registry.get(setups[i].model)
                updates += [gr.Column(visible=True), setups[i].model,
                            gr.Checkbox(value=setups[i].thinking and spec.thinking, interactive=spec.thinking), setups[i].quantization]
            else:
                updates += [gr.Column(visible=False), gr.skip(), gr.skip(), gr.skip()]
        return updates

    flat_inputs = [c for pane in pane_inputs for c in pane]
    event = send.click(compare, [prompt, count, template, *flat_inputs, *chats, budget, *precisions],
                       [*chats, *metric_lines, agree, notice, results], api_name="compare", concurrency_id="generate")
    stop.click(None, cancels=[event])
    clear.click(lambda: [[]] * MAX_PANES + [""] * MAX_PANES + ["", "", []], None, [*chats, *metric_lines, agree, notice, results],
                api_visibility="private", queue=False)
    count.change(lambda n: [gr.Column(visible=i < int(n)) for i in range(MAX_PANES)], count, columns, api_visibility="private", queue=False)
    preset_outputs = [count] + [x for i in range(MAX_PANES) for x in (columns[i], pane_inputs[i][0], pane_inputs[i][1], precisions[i])]
    preset.change(apply_preset, preset, preset_outputs, api_visibility="private", queue=False)
    export_md.click(lambda s: export(s, "md"), results, export_md, api_visibility="private")
    export_json.click(lambda s: export(s, "json"), results, export_json, api_visibility="private")
    inspector_panel(config, [prompt, template, pane_inputs[0][0], pane_inputs[0][1], chats[0]],
                    lambda p, t, m, think, h: (m, pane_messages(normalize_history(h), t, require_text(p, "a prompt")), think))
    fields = {"prompt": prompt, "panes": count, "template": template, "thinking_budget": budget}
    for i, (model, thinking, temperature, max_tokens) in enumerate(pane_inputs, 1):
        fields[f"weights_{i}"] = precisions[i - 1]
        fields |= {f"model_{i}": model, f"thinking_{i}": thinking, f"temperature_{i}": temperature, f"max_tokens_{i}": max_tokens}
    return fields
