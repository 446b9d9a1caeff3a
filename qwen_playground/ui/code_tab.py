"""The Code tab: a coding task to Qwen2.5-Coder, code blocks pulled into a panel, optional sandboxed Run.

Endpoints: `/code` (task, language, context, constraints, model) -> streamed
(conversation, code, metrics); `/run_code` (code) -> (stdout, stderr, summary),
offered only when the operator started the app with --allow-code-execution.
"""

from __future__ import annotations

import gradio as gr

from .. import sandbox
from ..backends import Backend
from ..codeblocks import extract_code_blocks
from ..config import AppConfig
from ..generation import Request
from ..prompts import load_template
from .common import answer_text, bubbles, metrics_text, model_picker, precision_picker, require_text, resolve, stream_turn
from .inspector_tab import inspector_panel

# Language shown to the model -> (fence names it may use, gr.Code highlighting)
LANGUAGES = {
    "Python": (("python", "py"), "python"), "JavaScript": (("javascript", "js"), "javascript"),
    "TypeScript": (("typescript", "ts"), "typescript"), "Java": (("java",), None), "C++": (("cpp", "c++"), "cpp"),
    "C": (("c",), "c"), "Go": (("go",), "go"), "Rust": (("rust", "rs"), "rust"), "SQL": (("sql",), "sql"),
    "Bash": (("bash", "sh", "shell"), "shell"), "HTML": (("html",), "html"), "CSS": (("css",), "css"),
}
RUN_DISABLED = ("Running code is turned off on this server. An operator can enable it by starting the app with "
                "--allow-code-execution (on a machine they trust: never on a public Space).")


def code_for(answer: str, language: str) -> str:
    """The answer's code blocks in the requested language (or all blocks when none is tagged so)."""
    blocks = extract_code_blocks(answer)
    fences = LANGUAGES.get(language, ((language.lower(),), None))[0]
    chosen = [b for b in blocks if b.language in fences] or [b for b in blocks if not b.language] or blocks
    return "\n\n".join(b.code for b in chosen)


def run_code(code: str, language: str = "Python") -> tuple[str, str, str]:
    """Run Python from the code panel in the sandbox."""
    if language != "Python":
        raise gr.Error(f"Only Python can be run here; this code is {language}.")
    require_text(code, "or generate some Python code")
    try:
        result = sandbox.run_python(code)
    except sandbox.SandboxUnavailable as e:
        raise gr.Error(str(e)) from None
    return result.stdout, result.stderr, result.summary()


def build_code_tab(config: AppConfig, backend: Backend) -> dict:
    registry, template = config.registry, load_template("code")
    allow_run = config.settings.allow_code_execution
    with gr.Row():
        with gr.Column(scale=2):
            task = gr.Textbox(label="Task", lines=4, placeholder="e.g. Parse a CSV of orders and report the total per customer")
            language = gr.Dropdown(list(LANGUAGES), value="Python", label="Language")
            model, _ = model_picker(registry, "code")
            precision = precision_picker(backend)
            context = gr.Textbox("", label="Context (optional)", lines=3, placeholder="Existing code, data formats, APIs to use…")
            constraints = gr.Textbox("", label="Constraints (optional)", placeholder="e.g. standard library only; O(n log n)")
            with gr.Row():
                generate = gr.Button("Write code", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=3):
            conversation = gr.Chatbot(label="Answer", height=420, buttons=["copy"])
            metrics = gr.Markdown(label="Metrics")
    with gr.Row():
        with gr.Column(scale=3):
            code = gr.Code(label="Code panel (editable)", language="python", interactive=True, lines=12)
            run = gr.Button("▶ Run in sandbox" if allow_run else "▶ Run (disabled on this server)", variant="secondary")
        with gr.Column(scale=2):
            run_summary = gr.Markdown(label="Run summary", value="Runs Python with no network, a fresh folder and limits on time, memory, processes and output."
                                      if allow_run else RUN_DISABLED)
            stdout = gr.Textbox(label="stdout", lines=6, max_lines=20)
            stderr = gr.Textbox(label="stderr", lines=4, max_lines=20)

    def code_messages(task, language, context, constraints) -> list[dict]:
        prompt = template.render_user(task=task, language=language, context=context or "", constraints=constraints or "")
        return [{"role": "system", "content": template.render_system()}, {"role": "user", "content": prompt}]

    def write_code(task, language, context, constraints, model, quantization="none"):
        task = require_text(task, "a task")
        if language not in LANGUAGES:
            raise gr.Error(f"Unknown language '{language}'. Pick one of: {', '.join(LANGUAGES)}.")
        spec = resolve(registry, model)
        messages = code_messages(task, language, context, constraints)
        request = Request(spec.id, messages, spec.preset(False), thinking=False, quantization=quantization)
        shown = [messages[-1]]
        for turn in stream_turn(backend, request):
            yield shown + bubbles(turn), code_for(answer_text(turn), language), metrics_text(turn)

    event = generate.click(write_code, [task, language, context, constraints, model, precision], [conversation, code, metrics],
                           api_name="code", concurrency_id="generate")
    stop.click(None, cancels=[event])
    language.change(lambda name: gr.Code(language=LANGUAGES.get(name, (None, None))[1]), language, code, api_visibility="private", queue=False)
    if allow_run:
        run.click(run_code, [code, language], [stdout, stderr, run_summary], api_name="run_code", concurrency_limit=2)
    else:
        run.click(lambda: gr.Warning(RUN_DISABLED), None, None, api_visibility="private", queue=False)
    inspector_panel(config, [task, language, context, constraints, model, precision],
                    lambda t, lang, ctx, con, m: (m, code_messages(require_text(t, "a task"), lang, ctx, con), False))
    return {"task": task, "language": language, "context": context, "constraints": constraints, "model": model}
