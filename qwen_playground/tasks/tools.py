"""The Tools task: a model calls tools, step by step, each step in the open.

A step is one answer from the model with the tools on offer in its prompt (the chat template writes them into the
system turn). The calls in the answer are read in the family's format (`toolcalls.read_calls`), each is run
(`tools.run`: schema checked, deadline kept; every failure becomes an error the model reads), and the calls and
their results go back into the conversation for the next step, as the official templates write them. The loop
ends with an answer that calls nothing, at the step limit, at Stop, or at an error.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Iterator

from ..backends import Backend
from ..core.config import AppConfig
from ..core.generation import Request
from ..core.registry import ModelSpec
from ..toolcalls import BadCall, ToolCall, read_calls
from ..tools import Outcome, Tool
from ..tools import run as run_tool
from ..tools.builtin import builtin_tools
from ..tools.mcp import mcp_tools
from . import TaskError, refuse_if_too_long, require_text, resolve
from .conversation import AssistantTurn, Message
from .streaming import stream_turns

MAX_STEPS = 10
DEFAULT_STEPS = 5


def available_tools(config: AppConfig) -> dict[str, Tool]:
    """Every tool this server offers, by name: the built-in ones, then the configured MCP servers' (a name taken
    already gets its server's id in front)."""
    return offered_tools(config)[0]


def offered_tools(config: AppConfig) -> tuple[dict[str, Tool], list[str]]:
    """(every tool by name, a line for each MCP server whose tools could not be had)."""
    builtin = builtin_tools(allow_code=config.settings.allow_code_execution)
    if not config.mcp_servers:
        return builtin, []
    found, problems = mcp_tools(config.mcp_servers)
    renamed = {name if name not in builtin else f"mcp_{name}": tool for name, tool in found.items()}
    return builtin | {name: replace(tool, name=name) for name, tool in renamed.items()}, problems


@dataclass
class Step:
    request: Request  # what this step sent (the inspector can take it apart)
    turn: AssistantTurn = field(default_factory=AssistantTurn)
    calls: list[ToolCall | BadCall] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


@dataclass(frozen=True)
class ToolsJob:
    spec: ModelSpec
    request: Request  # the first step's
    tools: dict[str, Tool]
    max_steps: int
    shown: list[Message]

    @property
    def requests(self) -> list[Request]:
        return [self.request]


def prepare(config: AppConfig, message: object, tool_names: object, model_id: str, max_steps: object = DEFAULT_STEPS, thinking: bool = False,
            system_prompt: object = "", precision: str = "full", user: str = "") -> ToolsJob:
    """The first step's request: the message, with the chosen tools in the prompt."""
    text, spec = require_text(message, "a message", "message"), resolve(config.registry, model_id)
    if spec.family.tool_format is None:
        raise TaskError(f"{spec.id} does not call tools; pick a Qwen3, Qwen3.5 or Qwen2.5 model.", "model")
    offered = available_tools(config)
    names = [tool_names] if isinstance(tool_names, str) else list(tool_names or [])
    if unknown := [str(n) for n in names if n not in offered]:
        raise TaskError(f"No tool named {', '.join(unknown)} here; tools: {', '.join(offered)}.", "tools")
    if not names:
        raise TaskError("Tick at least one tool for the model to call.", "tools")
    if not isinstance(max_steps, (int, float)) or not 1 <= int(max_steps) <= MAX_STEPS:
        raise TaskError(f"The step limit is a whole number from 1 to {MAX_STEPS}.", "max_steps")
    messages = [{"role": "system", "content": str(system_prompt).strip()}] if str(system_prompt or "").strip() else []
    messages.append({"role": "user", "content": text})
    refuse_if_too_long(config, spec, messages, "Shorten the message.", "message")
    think = spec.family.thinks(bool(thinking))
    chosen = {n: offered[n] for n in dict.fromkeys(names)}
    request = Request(spec.id, messages, spec.preset(think), thinking=think, precision=precision, user=user,
                      tools=tuple(tool.schema() for tool in chosen.values()))
    return ToolsJob(spec, request, chosen, int(max_steps), [Message.user(text)])


@dataclass
class ToolsView:
    steps: list[Step]
    done: bool = False
    note: str = ""  # how the loop ended, when not with an answer
    error: str | None = None


def run(backend: Backend, job: ToolsJob, stop: threading.Event | None = None) -> Iterator[ToolsView]:
    """The steps as they happen: each answer as it streams, its calls once read, each result once run."""
    stop = stop or threading.Event()
    messages, steps = list(job.request.messages), []
    fmt = job.spec.family.tool_format
    schemas = {name: tool.parameters for name, tool in job.tools.items()}
    for number in range(job.max_steps):
        step = Step(replace(job.request, messages=list(messages)))
        steps.append(step)
        cancel = threading.Event()  # this step's: a stream sets its own when it ends, and the next step must not start stopped
        for state in stream_turns(backend, [step.request], cancel):
            if stop.is_set():  # Stop: the answer ends at its next token, kept with its metrics
                cancel.set()
            step.turn = state.turns[0]
            yield ToolsView(steps)
        if step.turn.error:
            yield ToolsView(steps, True, error=step.turn.error)
            return
        before, step.calls = read_calls(step.turn.answer, fmt, schemas)
        if not step.calls or stop.is_set():
            yield ToolsView(steps, True, "Stopped." if stop.is_set() else "")
            return
        yield ToolsView(steps)
        for call in step.calls:
            if stop.is_set():
                yield ToolsView(steps, True, "Stopped before every call had run.")
                return
            step.outcomes.append(run_tool(call, job.tools))
            yield ToolsView(steps)
        messages += fed_back(step, number, before)
    yield ToolsView(steps, True, f"Stopped at the step limit ({job.max_steps}): the model was still calling tools. Raise the limit "
                                 "to let it go on.")


def fed_back(step: Step, number: int, before: str) -> list[dict]:
    """The step as the next prompt carries it: the model's answer with its calls, then a tool message per result. A
    call that could not be read goes back as the model wrote it, so it sees its own mistake beside the error."""
    readable = all(isinstance(call, ToolCall) for call in step.calls)
    answer = {"role": "assistant", "content": (before if readable else step.turn.answer).strip()}
    if step.turn.thinking:
        answer["reasoning_content"] = step.turn.thinking  # kept within the task, as Qwen's templates do after the last question
    ids = [f"call_{number}_{n}" for n in range(len(step.calls))]
    if readable:
        answer["tool_calls"] = [{"id": i, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                                for i, c in zip(ids, step.calls)]
    return [answer, *({"role": "tool", "tool_call_id": i, "name": getattr(c, "name", ""), "content": o.content}
                      for i, c, o in zip(ids, step.calls, step.outcomes))]


def call_record(call: ToolCall | BadCall, outcome: Outcome) -> dict:
    """A call and its result as a conversation keeps them (an answer's `tool_calls`)."""
    said = {"name": call.name, "arguments": call.arguments} if isinstance(call, ToolCall) else {"error": call.error, "raw": call.raw}
    return said | {"result": outcome.content, "ok": outcome.ok}
