"""Pieces every task tab uses: the model picker, one streamed answer, error handling."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import gradio as gr

from .. import quantization
from ..backends import Backend
from ..chat import ChatTurn
from ..generation import Request, TextDelta, ThinkingDelta
from ..registry import ModelSpec, Registry, RegistryError


def describe(spec: ModelSpec) -> str:
    thinking = "hybrid thinking" if spec.thinking else "no thinking mode"
    return f"`{spec.source}` · {spec.params_b:g}B params · {spec.context_length:,} context · {thinking}" + (f"\n\n{spec.description}" if spec.description else "")


def model_picker(registry: Registry, tab: str) -> tuple[gr.Dropdown, gr.Markdown]:
    """The tab's route as a dropdown (default first) and a line of facts that follows it."""
    specs = registry.choices(tab)
    dropdown = gr.Dropdown([s.id for s in specs], value=specs[0].id, label="Model")
    info = gr.Markdown(describe(specs[0]))
    dropdown.change(lambda model_id: describe(registry.get(model_id)), dropdown, info, api_visibility="private", queue=False)
    return dropdown, info


def precision_picker(backend) -> gr.Radio:
    """Weights precision for local models: the choices this machine can run, with the reason for the others."""
    device = local_device(backend)
    reasons = quantization.available(device)
    missing = "; ".join(f"{choice}: {why}" for choice, why in reasons.items() if why)
    info = f"Local models on {device}." + (f" Not here: {missing}." if missing else "")
    return gr.Radio(runnable_precisions(backend), value="none", label="Weights (quantization)", info=info)


def local_device(backend) -> str:
    return getattr(backend, "local", backend).device


def runnable_precisions(backend) -> tuple[str, ...]:
    return tuple(c for c, why in quantization.available(local_device(backend)).items() if why is None)


def resolve(registry: Registry, model_id: str) -> ModelSpec:
    try:
        return registry.get(model_id)
    except RegistryError as e:
        raise gr.Error(str(e)) from None


def require_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise gr.Error(f"Type {what} first.")
    return value.strip()


class Pacer:
    """When a streaming handler should send the screen an update. Each stream's first token and every
    non-token event go at once; further tokens at most every `interval` seconds. A browser shows no more
    than that, and each update costs the server a diff of the whole conversation, which on a small
    model costs more than the token itself. A paced loop ends with one last update of everything."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self._last = -float("inf")
        self._streaming: set = set()

    def due(self, event, stream=0) -> bool:
        now = time.perf_counter()
        token = isinstance(event, (TextDelta, ThinkingDelta))
        if not token or stream not in self._streaming or now - self._last >= self.interval:
            if token:
                self._streaming.add(stream)
            self._last = now
            return True
        return False


def stream_turn(backend: Backend, request: Request) -> Iterator[ChatTurn]:
    """Yield the turn as events arrive (paced); end with gr.Error (message kept on screen) on failure."""
    turn, cancel, pacer = ChatTurn(), threading.Event(), Pacer()
    try:
        sent = True
        for event in backend.stream(request, cancel):
            turn.apply(event)
            if sent := pacer.due(event):
                yield turn
        if not sent:
            yield turn
    finally:
        cancel.set()  # Stop pressed or client gone
    if turn.error:
        raise gr.Error(turn.error)


def answer_text(turn: ChatTurn) -> str:
    return turn.answer["content"] if turn.answer else ""


def bubbles(turn: ChatTurn) -> list[dict]:
    """The turn's chat bubbles without the metrics footer (shown apart); errors stay."""
    return [m for m in turn.messages if m is not turn.footer or turn.error]


def metrics_text(turn: ChatTurn) -> str:
    return turn.metrics.summary() if turn.metrics else ""
