"""The Tools tab: tick tools, ask, and watch the agent loop: each step's answer as the model wrote it, the calls read
from it, each tool's result, until an answer that calls nothing.

Endpoints: `/tools_chat` (message, tools, model, max_steps, thinking, system_prompt, precision) -> streamed
(steps as a conversation, steps as JSON, notes); `/inspect_tools` (the same inputs) -> the first step's prompt, the
tools block included; a step of the last run can be inspected from the page.
"""

from __future__ import annotations

import json
from dataclasses import replace

import gradio as gr

from ..core.config import AppConfig
from ..service import Service
from ..tasks import TaskError
from ..tasks import tools as task
from ..tasks.conversation import Message
from ..toolcalls import ToolCall
from .chat_view import render, turn_bubbles
from .common import Stops, go_and_stop, model_picker, precision_picker, refusals, refuse, start_job, when_valid
from .inspector_tab import inspector_outputs, inspector_panel, show_inspection

EXAMPLE = "What is 6 times 7?"


def layout(config: AppConfig, service: Service) -> dict:
    c: dict = {}
    offered, problems = task.offered_tools(config)
    with gr.Row():
        with gr.Column(scale=2):
            c["message"] = gr.Textbox(EXAMPLE, label="Message", lines=2, max_lines=8, placeholder="Ask something a tool helps with (Enter runs)")
            c["tools"] = gr.CheckboxGroup(list(offered), value=["calculator"], label="Tools the model may call")
            gr.Markdown("\n".join([*(f"- **{name}** ({t.source}): {t.description}" for name, t in offered.items()),
                                   *(f"- ⚠️ {problem}" for problem in problems)]))
            c["model"], _ = model_picker(config.registry, "tools")
            with gr.Row():
                c["thinking"] = gr.Checkbox(False, label="Thinking mode", info="Qwen3 and Qwen3.5 think before each step")
                c["max_steps"] = gr.Slider(1, task.MAX_STEPS, task.DEFAULT_STEPS, step=1, label="Step limit",
                                           info="Model answers in one run, at most")
            c["system_prompt"] = gr.Textbox("", label="System prompt (optional)", info="Goes after the tools block in the system turn")
            c["precision"] = precision_picker(service.capabilities())
            c["run"], c["stop"] = go_and_stop("Run")
        with gr.Column(scale=3):
            c["conversation"] = gr.Chatbot(label="The loop, step by step", height=520)
            c["notes"] = gr.Markdown(label="Notes")
            c["steps"] = gr.JSON(label="Steps", visible=False)
    return c


def step_bubbles(number: int, step: task.Step) -> list[dict]:
    """A step, open to read: the model's answer (as written, tags and all, when it calls tools), each call read from
    it, each result. Thinking folds as in Chat."""
    turn = replace(step.turn, answer=f"```text\n{step.turn.answer.strip()}\n```") if step.calls else step.turn
    say = lambda text: {"role": "assistant", "content": text}  # noqa: E731
    bubbles = [say(f"**Step {number}: the model writes** · {step.turn.metrics_line or 'writing…'}"), *turn_bubbles(turn, protect=False, footer=False)]
    for n, call in enumerate(step.calls):
        if isinstance(call, ToolCall):
            bubbles.append(say(f"**🛠 Call read from it: {call.name}**\n```json\n{json.dumps(call.arguments, ensure_ascii=False, indent=1)}\n```"))
        else:
            bubbles.append(say(f"**⚠️ A call that could not be read:** {call.error}"))
        if n < len(step.outcomes):
            outcome = step.outcomes[n]
            title = f"📤 Result, sent back to the model ({outcome.seconds:.2f} s)" if outcome.ok else "⚠️ The tool's error, sent back to the model"
            bubbles.append(say(f"**{title}**\n```text\n{outcome.content}\n```"))
    return bubbles


def shown(question: list[Message], view: task.ToolsView) -> list[dict]:
    bubbles = render(question, protect=False, footer=False)
    for number, step in enumerate(view.steps, 1):
        bubbles += step_bubbles(number, step)
    return bubbles


def steps_record(view: task.ToolsView) -> list[dict]:
    """Each step for the API: what the model wrote, the calls read from it, the results."""
    return [{"step": n, "thinking": s.turn.thinking, "text": s.turn.answer, "metrics": s.turn.metrics_line,
             "calls": [{"name": c.name, "arguments": c.arguments} if isinstance(c, ToolCall) else {"error": c.error, "raw": c.raw}
                       for c in s.calls],
             "results": [{"ok": o.ok, "content": o.content, "seconds": round(o.seconds, 3)} for o in s.outcomes]}
            for n, s in enumerate(view.steps, 1)]


def build_tools_tab(config: AppConfig, service: Service) -> dict:
    c, stops = layout(config, service), Stops()
    last_run = gr.State([])  # the last run's step requests, for the inspector below

    def prepare(message, tools, model, max_steps=task.DEFAULT_STEPS, thinking=False, system_prompt="", precision="full", user=""):
        return task.prepare(config, message, tools, model, max_steps, thinking, system_prompt, precision, user)

    def run_tools(message, tools, model, max_steps=task.DEFAULT_STEPS, thinking=False, system_prompt="", precision="full",
                  request: gr.Request = None):
        job = start_job(service, request, prepare, message, tools, model, max_steps, thinking, system_prompt, precision)
        with stops.running(request) as stop:
            for view in task.run(service, job, stop):
                yield shown(job.shown, view), steps_record(view), view.note, [s.request for s in view.steps]
        if view.error:
            raise refuse(view.error)

    inputs = [c[k] for k in ("message", "tools", "model", "max_steps", "thinking", "system_prompt", "precision")]
    outputs = [c["conversation"], c["steps"], c["notes"], last_run]
    for trigger, api_name in ((c["run"].click, "tools_chat"), (c["message"].submit, None)):
        when_valid(trigger, run_tools, prepare, inputs, outputs, api_name=api_name, concurrency_id="generate")
    stops.bind(c["stop"], run_tools)
    inspector_panel(config, inputs, prepare, "inspect_tools")
    inspect_a_step(config, last_run)
    return {k: c[k] for k in ("message", "tools", "model", "max_steps", "thinking", "system_prompt")}


def inspect_a_step(config: AppConfig, last_run: gr.State) -> None:
    """Any step of the last run, taken apart: its prompt holds the calls and results of the steps before it."""
    with gr.Accordion("🔍 A step of the last run, as the model saw it", open=False):
        number = gr.Number(1, minimum=1, maximum=task.MAX_STEPS, precision=0, label="Step")
        button = gr.Button("Inspect this step", size="sm")
        text, notes = inspector_outputs()

    def inspect_step(requests, step):
        with refusals():
            if not requests:
                raise TaskError("Run the loop first: then each of its steps can be taken apart here.")
            if not isinstance(step, (int, float)) or not 1 <= int(step) <= len(requests):
                raise TaskError(f"The last run had {len(requests)} step{'s' if len(requests) > 1 else ''}; choose one of them.")
            return show_inspection(config, task.ToolsJob(config.registry.get(requests[0].model_id), requests[int(step) - 1], {}, 1, []))[:2]

    button.click(inspect_step, [last_run, number], [text, notes], api_visibility="private")
