"""The Code tab: a coding task to Qwen2.5-Coder, code blocks pulled into a panel, optional sandboxed Run.

Endpoints: `/code` (task, language, context, constraints, model, precision) ->
streamed (conversation, code, metrics); `/run_code` (code) -> (stdout,
stderr, summary), offered only when the operator started the app with
--allow-code-execution; `/inspect_code` (the inputs of `/code`).
"""

from __future__ import annotations

import gradio as gr

from ..core.config import AppConfig
from ..service import Service
from ..tasks import code as code_task
from .chat_view import render
from .common import Stops, admitted, go_and_stop, model_picker, precision_picker, refusals, refuse, start_job, when_valid
from .inspector_tab import inspector_panel

RUN_DISABLED = ("Running code is turned off on this server. An operator can enable it by starting the app with "
                "--allow-code-execution (on a machine they trust: never on a public Space).")
RUN_ENABLED = "Runs Python with no network, a fresh folder and limits on time, memory, processes and output."


def run_code(service: Service, code: str, language: str = "Python", request: gr.Request = None) -> tuple[str, str, str]:
    """Run Python from the code panel in the sandbox."""
    admitted(service, request)
    with refusals():
        result = code_task.run_in_sandbox(code, language)
    return result.stdout, result.stderr, result.summary()


def layout(config: AppConfig, service: Service) -> dict:
    allow_run, c = config.settings.allow_code_execution, {}
    with gr.Row():
        with gr.Column(scale=2):
            c["task"] = gr.Textbox(label="Task", lines=4, placeholder="e.g. Parse a CSV of orders and report the total per customer")
            c["language"] = gr.Dropdown(list(code_task.LANGUAGES), value="Python", label="Language")
            c["model"], _ = model_picker(config.registry, "code")
            c["precision"] = precision_picker(service.capabilities())
            c["context"] = gr.Textbox("", label="Context (optional)", lines=3, placeholder="Existing code, data formats, APIs to use…")
            c["constraints"] = gr.Textbox("", label="Constraints (optional)", placeholder="e.g. standard library only; O(n log n)")
            c["generate"], c["stop"] = go_and_stop("Write code")
        with gr.Column(scale=3):
            c["conversation"] = gr.Chatbot(label="Answer", height=420, buttons=["copy"])
            c["metrics"] = gr.Markdown(label="Metrics")
    with gr.Row():
        with gr.Column(scale=3):
            c["code"] = gr.Code(label="Code panel (editable)", language="python", interactive=True, lines=12)
            c["run"] = gr.Button("▶ Run in sandbox" if allow_run else "▶ Run (disabled on this server)", variant="secondary",
                                 interactive=allow_run)
        with gr.Column(scale=2):
            c["run_summary"] = gr.Markdown(label="Run summary", value=RUN_ENABLED if allow_run else RUN_DISABLED)
            c["stdout"] = gr.Textbox(label="stdout", lines=6, max_lines=20)
            c["stderr"] = gr.Textbox(label="stderr", lines=4, max_lines=20)
    return c


def build_code_tab(config: AppConfig, service: Service) -> dict:
    c, stops = layout(config, service), Stops()

    def prepare(task, language, context, constraints, model, precision="full", user=""):
        return code_task.prepare(config, task, language, context, constraints, model, precision, user)

    def write_code(task, language, context, constraints, model, precision="full", request: gr.Request = None):
        job = start_job(service, request, prepare, task, language, context, constraints, model, precision)
        with stops.running(request) as stop:
            for view in code_task.run(service, job, stop):
                yield render(view.conversation, protect=False, footer=False), view.code, view.metrics
        if view.error:
            raise refuse(view.error)

    inputs = [c["task"], c["language"], c["context"], c["constraints"], c["model"], c["precision"]]
    when_valid(c["generate"].click, write_code, prepare, inputs, [c["conversation"], c["code"], c["metrics"]], api_name="code",
               concurrency_id="generate")
    stops.bind(c["stop"], write_code)
    c["language"].change(lambda name: gr.Code(language=code_task.LANGUAGES.get(name, (None, None))[1]), c["language"], c["code"],
                         api_visibility="private", queue=False)
    if config.settings.allow_code_execution:
        def run(code, language="Python", request: gr.Request = None):
            return run_code(service, code, language, request)

        c["run"].click(run, [c["code"], c["language"]], [c["stdout"], c["stderr"], c["run_summary"]], api_name="run_code", concurrency_limit=2)
    inspector_panel(config, inputs, prepare, "inspect_code")
    return {key: c[key] for key in ("task", "language", "context", "constraints", "model")}
