"""The Math tab: Qwen2.5-Math's chain-of-thought prompt, LaTeX shown safely, the boxed answer checked.

Endpoint `/math` (problem, expected answer, model) -> streamed
(conversation, final answer, verdict, metrics).
"""

from __future__ import annotations

import gradio as gr

from ..backends import Backend
from ..config import AppConfig
from ..generation import Request
from ..mathtext import LATEX_DELIMITERS, check_answer, extract_boxed, protect_math
from ..prompts import load_template
from .common import answer_text, bubbles, metrics_text, model_picker, precision_picker, require_text, resolve, stream_turn
from .inspector_tab import inspector_panel


def build_math_tab(config: AppConfig, backend: Backend) -> dict:
    registry, template = config.registry, load_template("math")
    with gr.Row():
        with gr.Column(scale=2):
            problem = gr.Textbox(label="Problem", lines=5, placeholder="e.g. Find the value of $x$ that satisfies $4x+5 = 6x+7$.")
            expected = gr.Textbox("", label="Expected answer (optional)", placeholder="e.g. -1, 1/2, \\frac{\\sqrt{3}}{2}")
            model, _ = model_picker(registry, "math")
            precision = precision_picker(backend)
            with gr.Row():
                solve = gr.Button("Solve", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=3):
            conversation = gr.Chatbot(label="Solution", height=460, latex_delimiters=LATEX_DELIMITERS, buttons=["copy"])
            with gr.Row():
                final = gr.Textbox(label="Final answer (\\boxed{})", interactive=False)
                verdict = gr.Textbox(label="Check", interactive=False)
            metrics = gr.Markdown(label="Metrics")

    def math_messages(problem: str) -> list[dict]:
        return [{"role": "system", "content": template.render_system()}, {"role": "user", "content": template.render_user(problem=problem)}]

    def solve_problem(problem, expected, model, quantization="none"):
        problem_text = require_text(problem, "a problem")
        expected_text = (expected or "").strip()
        if expected_text:
            try:
                check_answer(expected_text, None)  # refuse a malformed expected answer before generating
            except ValueError as e:
                raise gr.Error(str(e)) from None
        spec = resolve(registry, model)
        messages = math_messages(problem_text)
        request = Request(spec.id, messages, spec.preset(spec.thinking), thinking=spec.thinking, quantization=quantization)
        shown = [{"role": "user", "content": protect_math(problem_text)}]
        for turn in stream_turn(backend, request):
            view = [dict(m, content=protect_math(m["content"])) for m in bubbles(turn)]
            boxed = extract_boxed(answer_text(turn))
            yield shown + view, boxed or "", "", metrics_text(turn)
        verdict_text = check_answer(expected_text, boxed).message if expected_text else ""
        yield shown + view, boxed or "(no \\boxed{} answer)", verdict_text, metrics_text(turn)

    event = solve.click(solve_problem, [problem, expected, model, precision], [conversation, final, verdict, metrics], api_name="math", concurrency_id="generate")
    stop.click(None, cancels=[event])
    inspector_panel(config, [problem, model],
                    lambda p, m: (m, math_messages(require_text(p, "a problem")), registry.get(m).thinking))
    return {"problem": problem, "expected": expected, "model": model}
