"""The Math tab: Qwen2.5-Math's chain-of-thought prompt, LaTeX shown safely, the boxed answer checked.

Endpoints: `/math` (problem, expected answer, model, precision) -> streamed
(conversation, final answer, verdict, metrics); `/inspect_math` (the same inputs).
"""

from __future__ import annotations

import gradio as gr

from ..core.config import AppConfig
from ..mathtext import LATEX_DELIMITERS
from ..service import Service
from ..tasks import math as math_task
from .chat_view import render
from .common import Stops, go_and_stop, model_picker, precision_picker, refuse, start_job, when_valid
from .inspector_tab import inspector_panel


def build_math_tab(config: AppConfig, service: Service) -> dict:
    stops = Stops()
    with gr.Row():
        with gr.Column(scale=2):
            problem = gr.Textbox(label="Problem", lines=5, placeholder="e.g. Find the value of $x$ that satisfies $4x+5 = 6x+7$.")
            expected = gr.Textbox("", label="Expected answer (optional)", placeholder="e.g. -1, 1/2, \\frac{\\sqrt{3}}{2}")
            model, _ = model_picker(config.registry, "math")
            precision = precision_picker(service.capabilities())
            solve, stop = go_and_stop("Solve")
        with gr.Column(scale=3):
            conversation = gr.Chatbot(label="Solution", height=460, latex_delimiters=LATEX_DELIMITERS, buttons=["copy"])
            with gr.Row():
                final = gr.Textbox(label="Final answer (\\boxed{})", interactive=False)
                verdict = gr.Textbox(label="Check", interactive=False)
            metrics = gr.Markdown(label="Metrics")

    def prepare(problem, expected, model, precision="full", user=""):
        return math_task.prepare(config, problem, expected, model, precision, user)

    def solve_problem(problem, expected, model, precision="full", request: gr.Request = None):
        job = start_job(service, request, prepare, problem, expected, model, precision)
        with stops.running(request) as stop:
            for view in math_task.run(service, job, stop):
                yield render(view.conversation, footer=False), view.final, view.verdict, view.metrics
        if view.error:
            raise refuse(view.error)

    inputs = [problem, expected, model, precision]
    when_valid(solve.click, solve_problem, prepare, inputs, [conversation, final, verdict, metrics], api_name="math",
               concurrency_id="generate")
    stops.bind(stop, solve_problem)
    inspector_panel(config, inputs, prepare, "inspect_math")
    return {"problem": problem, "expected": expected, "model": model}
