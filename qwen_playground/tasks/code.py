"""The Code task: a coding request in Qwen2.5-Coder's style; the answer's code blocks pulled into a panel.

Running the code is the sandbox's job (`sandbox.py`); `run_in_sandbox` checks what it is given and hands it over.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterator

from .. import sandbox
from ..backends import Backend
from ..codeblocks import extract_code_blocks
from ..core.config import AppConfig
from ..core.generation import Request
from ..core.prompts import load_template
from . import TaskError, one_of, refuse_if_too_long, require_text, resolve
from .conversation import Message
from .streaming import stream_turns

# Language shown to the model -> (fence names it may use, gr.Code highlighting)
LANGUAGES = {
    "Python": (("python", "py"), "python"), "JavaScript": (("javascript", "js"), "javascript"),
    "TypeScript": (("typescript", "ts"), "typescript"), "Java": (("java",), None), "C++": (("cpp", "c++"), "cpp"),
    "C": (("c",), "c"), "Go": (("go",), "go"), "Rust": (("rust", "rs"), "rust"), "SQL": (("sql",), "sql"),
    "Bash": (("bash", "sh", "shell"), "shell"), "HTML": (("html",), "html"), "CSS": (("css",), "css"),
}


def code_for(answer: str, language: str) -> str:
    """The answer's code blocks in the requested language (or all blocks when none is tagged so)."""
    blocks = extract_code_blocks(answer)
    fences = LANGUAGES.get(language, ((language.lower(),), None))[0]
    chosen = [b for b in blocks if b.language in fences] or [b for b in blocks if not b.language] or blocks
    return "\n\n".join(b.code for b in chosen)


@dataclass(frozen=True)
class CodeJob:
    request: Request
    language: str

    @property
    def requests(self) -> list[Request]:
        return [self.request]


def prepare(config: AppConfig, task: object, language: str, context: str, constraints: str, model_id: str,
            precision: str = "full", user: str = "") -> CodeJob:
    task = require_text(task, "a task", "task")
    one_of(language, LANGUAGES, "language", "language")
    spec, template = resolve(config.registry, model_id), load_template("code")
    prompt = template.render_user(task=task, language=language, context=context or "", constraints=constraints or "")
    messages = [{"role": "system", "content": template.render_system()}, {"role": "user", "content": prompt}]
    refuse_if_too_long(config, spec, messages, "Shorten the task or its context.", "task")
    return CodeJob(Request(spec.id, messages, spec.preset(False), thinking=False, precision=precision, user=user), language)


@dataclass(frozen=True)
class CodeView:
    conversation: list[Message]  # the composed prompt and the answer
    code: str
    metrics: str
    error: str | None = None


def run(backend: Backend, job: CodeJob, stop: threading.Event | None = None) -> Iterator[CodeView]:
    prompt = Message.user(job.request.messages[-1]["content"])
    for state in stream_turns(backend, job.requests, stop):
        turn = state.turns[0]
        code, metrics = code_for(turn.answer, job.language), turn.metrics_line
        if state.done and not code and not turn.error:
            metrics = f"No {job.language} code block in this answer, so the code panel is empty." + (f" · {metrics}" if metrics else "")
        yield CodeView([prompt, Message.assistant(turn)], code, metrics, turn.error)


def run_in_sandbox(code: object, language: str = "Python") -> sandbox.RunResult:
    """Run the code panel's Python in the sandbox; TaskError for other languages, no code, or no sandbox here."""
    if language != "Python":
        raise TaskError(f"Only Python can be run here; this code is {language}.", "language")
    require_text(code, "or generate some Python code", "code")
    try:
        return sandbox.run_python(code)
    except sandbox.SandboxUnavailable as e:
        raise TaskError(str(e)) from None
