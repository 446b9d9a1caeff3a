"""The Math task: Qwen2.5-Math's chain-of-thought prompt, LaTeX made safe to show, the boxed answer checked.

A malformed expected answer is refused before anything is generated.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterator

from ..backends import Backend
from ..core.config import AppConfig
from ..core.generation import Request
from ..core.prompts import load_template
from ..mathcheck import check_answer
from ..mathtext import extract_boxed
from . import TaskError, refuse_if_too_long, require_text, resolve
from .conversation import Message
from .streaming import stream_turns


@dataclass(frozen=True)
class MathJob:
    request: Request
    problem: str
    expected: str

    @property
    def requests(self) -> list[Request]:
        return [self.request]


def prepare(config: AppConfig, problem: object, expected: object, model_id: str, precision: str = "full", user: str = "") -> MathJob:
    problem_text = require_text(problem, "a problem", "problem")
    expected_text = (expected or "").strip() if isinstance(expected, str) else ""
    if expected_text:
        try:
            check_answer(expected_text, None)  # refuse a malformed expected answer before generating
        except ValueError as e:
            raise TaskError(str(e), "expected") from None
    spec, template = resolve(config.registry, model_id), load_template("math")
    messages = [{"role": "system", "content": template.render_system()}, {"role": "user", "content": template.render_user(problem=problem_text)}]
    refuse_if_too_long(config, spec, messages, field="problem")
    think = spec.family.thinks(True)  # a thinking model reasons in its thought here
    request = Request(spec.id, messages, spec.preset(think), thinking=think, precision=precision, user=user)
    return MathJob(request, problem_text, expected_text)


@dataclass(frozen=True)
class MathView:
    conversation: list[Message]  # the problem and the solution
    final: str
    verdict: str
    metrics: str
    error: str | None = None


def run(backend: Backend, job: MathJob, stop: threading.Event | None = None) -> Iterator[MathView]:
    """The solution as it streams, then the boxed answer and its check."""
    problem = Message.user(job.problem)
    for state in stream_turns(backend, job.requests, stop):
        turn = state.turns[0]
        view = [problem, Message.assistant(turn)]
        boxed = extract_boxed(turn.answer)
        if not state.done:
            yield MathView(view, boxed or "", "", turn.metrics_line, turn.error)
    verdict = check_answer(job.expected, boxed).message if job.expected else ""
    yield MathView(view, boxed or "(no \\boxed{} answer)", verdict, turn.metrics_line, turn.error)
