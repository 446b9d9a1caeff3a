"""Pieces every tab uses: the model and precision pickers, who is asking, and refusals shown as messages."""

from __future__ import annotations

import functools
import inspect
import logging
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import gradio as gr

from ..backends import Capabilities
from ..core.generation import precision_named
from ..core.registry import ModelSpec, Registry, RegistryError
from ..service import Service
from ..service.guard import RateLimited
from ..tasks import TaskError

log = logging.getLogger("qwen_playground")
THINKING_KINDS = {"switch": "hybrid thinking (switchable)", "always": "always thinks", "none": "no thinking mode"}


def describe(spec: ModelSpec) -> str:
    size = f"{spec.params_b:g}B params" + (f" ({spec.active_params_b:g}B active a token)" if spec.active_params_b else "")
    facts = f"`{spec.source}` · {spec.family.label} · {size} · {spec.context_length:,} context · {THINKING_KINDS[spec.family.thinking]}"
    return facts + (f"\n\n{spec.description}" if spec.description else "")


def thinking_settings(spec: ModelSpec, wanted: bool = True) -> dict:
    """A thinking checkbox as the model can use it: switchable (ticked as `wanted`), always on, or off; the last two fixed."""
    kind = spec.family.thinking
    return {"value": kind == "always" or (kind == "switch" and bool(wanted)), "interactive": kind == "switch"}


def follows_registry(dropdown: gr.Dropdown, choices: Callable[[], list]) -> gr.Dropdown:
    """Mark a picker whose choices come from the registry, so it is refreshed when a fine-tuned model joins (see
    `refresh_pickers`); `choices()` gives its choices now. Gradio would check a sent value against the choices it
    had when the page was built, refusing a model fine-tuned since (an API caller's too): the task checks the
    name against the registry instead, with a "did you mean"."""
    dropdown.registry_choices = choices
    dropdown.allow_custom_value = True
    dropdown.constructor_args["allow_custom_value"] = True  # kept when an update rebuilds the page's copy of the picker
    return dropdown


def described(registry: Registry, model_id: str) -> str:
    """A picker's line of facts; for a name that is no model here (typed into the picker), a note saying what to pick."""
    try:
        spec = registry.get(model_id)
    except RegistryError as e:
        return f"⚠️ {e} Pick one from the list."
    missing = registry.missing_key(spec)
    return describe(spec) + (f"\n\n⚠️ Its server ({spec.endpoint}) {missing}." if missing else "")


def when_known(registry: Registry, handler: Callable, outputs: int = 1) -> Callable:
    """`handler(spec, *rest)` for the model a picker names; for a typed name that is no model here, every one of its
    `outputs` keeps what it shows (the picker's note or the send's refusal says why), with no error over the page."""
    def run(model_id, *rest):
        try:
            spec = registry.get(model_id)
        except RegistryError:
            return gr.skip() if outputs == 1 else [gr.skip()] * outputs
        return handler(spec, *rest)

    return run


def refresh_pickers(blocks: gr.Blocks) -> tuple[list, Callable[[], list]]:
    """(every marked picker in `blocks`, a function giving each its current choices, keeping what is chosen)."""
    pickers = [block for block in blocks.blocks.values() if hasattr(block, "registry_choices")]

    def choices() -> list:  # only what changed: a page load sends nothing when no model was fine-tuned
        return [gr.Dropdown(choices=now) if _as_choices(now) != picker.choices else gr.skip()
                for picker in pickers for now in [picker.registry_choices()]]

    return pickers, choices


def _as_choices(choices: list) -> list[tuple]:
    return [tuple(c) if isinstance(c, (tuple, list)) else (c, c) for c in choices]


def upload_or_example(label: str, file_types: list[str], sets: dict[str, str], default: str) -> tuple[gr.File, gr.Dropdown, gr.Column]:
    """In a row: a file upload and, beside it, the shipped example sets (name -> description), used when no file is
    given. The column holding the dropdown is returned for what goes under it (a preview)."""
    with gr.Row():
        upload = gr.File(label=label, file_types=file_types, type="filepath", height=150)
        with gr.Column() as column:
            example = gr.Dropdown([(f"{name}: {about}", name) for name, about in sets.items()], value=default,
                                  label="…or an example set (used when no file is given)")
    return upload, example, column


def browser_secret(cache_dir: Path) -> str:
    """The key `BrowserState` encrypts a browser's saved data with: random, made once per install and kept in the cache
    folder, so saved conversations survive a restart of the app (Gradio's default key is new at every start)."""
    path = Path(cache_dir).expanduser() / "browser-state.key"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        key = secrets.token_hex(16)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(key, encoding="utf-8")
        except OSError:  # a read-only cache: this run's key only
            pass
        return key


def on_page_load(fn: Callable, inputs: list | None, outputs: list | gr.components.Component, *, queue: bool = False) -> None:
    """Run `fn` when a page opens (Gradio's `Blocks.load` on the app being built), from app.py or a tab's builder.

    No spinner on its outputs: Gradio's page keeps the loading status of every component an event ever showed one
    on and re-sends it to each of them at every later event, walking the layout each time; with a page load's
    dozens of outputs that cost a third of a second before the first keystroke. The progress goes to one state
    that is not on the page instead."""
    root = gr.context.Context.root_block
    if not hasattr(root, "quiet_progress"):
        root.quiet_progress = gr.State()  # made wherever the first call is: a state never shows
    root.load(fn, inputs, outputs, api_visibility="private", queue=queue, show_progress="hidden", show_progress_on=root.quiet_progress)


def model_picker(registry: Registry, tab: str, label: str = "Model") -> tuple[gr.Dropdown, gr.Markdown]:
    """The tab's route as a dropdown (default first) and a line of facts that follows it."""
    specs = registry.choices(tab)
    dropdown = follows_registry(gr.Dropdown([s.id for s in specs], value=specs[0].id, label=label),
                                lambda: [s.id for s in registry.choices(tab)])
    info = gr.Markdown(describe(specs[0]))
    dropdown.change(lambda model_id: described(registry, model_id), dropdown, info, api_visibility="private", queue=False)
    return dropdown, info


class PrecisionRadio(gr.Radio):
    """A radio (`is_template`: Gradio shows it as its base) that also reads "none", the API's name for "full" before 0.2."""

    is_template = True

    def preprocess(self, payload):
        return super().preprocess(precision_named(payload) if isinstance(payload, str) else payload)


def go_and_stop(label: str) -> tuple[gr.Button, gr.Button]:
    """A tab's main action and its Stop, side by side (Escape presses the visible Stop)."""
    with gr.Row():
        return gr.Button(label, variant="primary"), gr.Button("Stop", variant="stop")


def precision_picker(capabilities: Capabilities) -> gr.Radio:
    """The weights' precision for local models: the choices this machine can run, with the reason for the others."""
    missing = "; ".join(f"{choice}: {why}" for choice, why in capabilities.precisions.items() if why)
    info = f"Local models on {capabilities.device}. {capabilities.precision_note}".rstrip() + (f" Not here: {missing}." if missing else "")
    return PrecisionRadio(capabilities.runnable_precisions, value="full", label="Precision", info=info)


def user_of(request: gr.Request | None) -> str:
    """'session@ip' for a browser or API client; "" when Gradio gives no request (direct calls)."""
    if request is None:
        return ""
    client = getattr(request, "client", None)  # absent on requests built outside a server
    return f"{request.session_hash or 'anonymous'}@{getattr(client, 'host', '') or ''}"


def refuse(message: str) -> gr.Error:
    """The error Gradio shows for a user's mistake or a failed generation: one log line, not a traceback."""
    first_line = (message.splitlines() or [""])[0]
    log.info("refused: %s", "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in first_line[:200]))
    return gr.Error(message, print_exception=False)


@contextmanager
def refusals() -> Iterator[None]:
    """Turn a task's refusal (bad input, a rate limit) into the message Gradio shows."""
    try:
        yield
    except (TaskError, RateLimited) as e:
        raise refuse(str(e)) from None


def admitted(service: Service, request: gr.Request | None) -> str:
    """The user behind a tab's action, once the rate limits let them in."""
    user = user_of(request)
    with refusals():
        service.admit(user)
    return user


def validator(handler: Callable, prepare: Callable) -> Callable:
    """A Gradio validator for `handler`'s event: it runs the tab's request builder on the same inputs, so a
    refusal shows as a note on the input it concerns (by the handler's parameter name) while every output keeps
    what it shows; API callers get it as a validation error with the same message."""
    names = [p for p in inspect.signature(handler).parameters if p != "request"]

    def validate(*values):
        try:
            prepare(*values)
        except TaskError as e:
            bad = names.index(e.field) if e.field in names[:len(values)] else 0
            return [gr.validate(i != bad, str(e) if i == bad else "") for i in range(len(values))]
        return [gr.validate(True, "")] * len(values)

    return validate


def toasting(handler: Callable) -> Callable:
    """`handler` for the page: a refusal it raises once it has begun (a model that will not load, a GPU refused)
    shows as a toast, every output keeping its last update; raised, Gradio would cover the outputs (the conversation
    too) with an "Error" badge. API callers get the handler itself, and the refusal as an error."""
    if not inspect.isgeneratorfunction(handler):
        return handler

    @functools.wraps(handler)
    def shown_as_toast(*args, **kwargs):
        try:
            yield from handler(*args, **kwargs)
        except gr.Error as e:
            if e.print_exception:  # not a refusal: Gradio reports it as it does
                raise
            gr.Warning(e.message)

    return shown_as_toast


def when_valid(trigger: Callable, handler: Callable, prepare: Callable, inputs: list, outputs: list, api_name: str | None = None,
               **options):
    """Bind `handler` to `trigger` (e.g. `button.click`) behind the tab's own validation: a refusal shows as a note
    on its input, or as a toast once the handler has begun (`toasting`), and every output keeps its content. The API
    endpoint `api_name` runs the same handler from a hidden trigger without that step, so API callers get refusals as
    errors with the same messages (and Gradio's own range checks, which a validated event would answer with a bare
    400)."""
    event = trigger(toasting(handler), inputs, outputs, validator=validator(handler, prepare), api_visibility="private", **options)
    if api_name:
        gr.Button(f"/{api_name}", visible=False).click(handler, inputs, outputs, api_name=api_name, **options)
    return event


class Stops:
    """A tab's Stop button, per browser session: it sets the flag of that session's running generation, so the answer
    ends at the next token, closed with its metrics and marked stopped. (Cancelling the handler instead, Gradio's
    way, would drop both and leave the answer as it was at the last screen update.)"""

    def __init__(self) -> None:
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._handlers: tuple[Callable, ...] = ()

    @contextmanager
    def running(self, request: gr.Request | None) -> Iterator[threading.Event]:
        key, flag = user_of(request), threading.Event()
        with self._lock:
            self._flags[key] = flag
        try:
            yield flag
        finally:
            with self._lock:
                if self._flags.get(key) is flag:
                    del self._flags[key]

    async def stop(self, request: gr.Request) -> None:
        with self._lock:
            flag = self._flags.get(user_of(request))
        if flag is not None:
            flag.set()
        elif await unqueue(request, self._handlers):
            gr.Info("Stopped while it waited in the queue: nothing was sent.")

    def bind(self, button: gr.Button, *handlers: Callable) -> None:
        """Stop on `button`; a request of one of `handlers` (the tab's generating functions) that still waits in the queue
        is taken out of it."""
        self._handlers = handlers
        # queued (for its note to reach the page) on a line of its own with no limit, so it never waits behind generation
        button.click(self.stop, None, None, api_visibility="private", concurrency_id="stop", concurrency_limit=None)


async def unqueue(request: gr.Request, handlers: tuple[Callable, ...]) -> bool:
    """Take this session's requests for `handlers` out of Gradio's queue before they start, and tell the page they are
    done (as Gradio's own cancel does; its queue internals, at the pinned Gradio version). True when one waited."""
    from gradio.server_messages import ProcessCompletedMessage

    queue, session = request.request.app.get_blocks()._queue, request.session_hash
    waiting = [event for line in queue.event_queue_per_concurrency_id.values() for event in list(line.queue)  # the page's are
               if event.session_hash == session and getattr(event.fn.fn, "__wrapped__", event.fn.fn) in handlers]  # `toasting`
    for event in waiting:
        await queue.remove_from_queue(event._id)
        queue.pending_event_ids_session.get(session, set()).discard(event._id)
        if session in queue.pending_messages_per_session:
            queue.pending_messages_per_session[session].put_nowait(ProcessCompletedMessage(output={}, success=True, event_id=event._id))
    return bool(waiting)


def start_job(service: Service, request: gr.Request | None, prepare: Callable, *inputs):
    """Admit the user, then build the tab's job (its requests) from its inputs, for that user."""
    user = admitted(service, request)
    with refusals():
        return prepare(*inputs, user=user)
