"""Gradio's own checks of a caller's input, answered as refusals: a message to the caller, one log line, no traceback.

Before a handler runs, Gradio checks each input against its component: a Dropdown value among the choices, a
Chatbot history made of message dicts, an upload inside its upload folder. A value that fails is a person's or
an API client's mistake, yet Gradio prints a full traceback for it, as it does for the app's own faults (a fuzz
run of 962 inputs left 715 tracebacks in the server log). Here such a failure becomes the same refusal a tab
gives (`common.refuse`), so the log keeps full tracebacks for the app's faults only.
"""

from __future__ import annotations

import re

import gradio as gr
from gradio.exceptions import ComponentProcessingError, Error
from pydantic import ValidationError

from .common import refuse

MAX_REASON = 300


def refuse_bad_input(demo: gr.Blocks) -> None:
    """Wrap `demo`'s input checking so a failed check refuses the request with what was wrong."""
    check = demo.preprocess_data

    async def preprocess_data(block_fn, inputs, state, explicit_call=False):
        try:
            return await check(block_fn, inputs, state, explicit_call)
        except Error as e:
            if not e.print_exception:  # already a refusal (one of ours)
                raise
            raise refuse(_explained(block_fn, e)) from None
        except Exception as e:  # noqa: BLE001 - whatever a component's check raised, the input caused it
            raise refuse(_explained(block_fn, e)) from None

    demo.preprocess_data = preprocess_data


def _explained(block_fn, error: Exception) -> str:
    """'Input not accepted (<component>): <reason>', short enough to read, with no internals."""
    if isinstance(error, ComponentProcessingError):  # its second paragraph: "Expected a `list[...]`, but the value ... was: 0"
        paragraphs = str(error).split("\n\n")
        reason = paragraphs[1] if len(paragraphs) > 1 else paragraphs[0]
    elif isinstance(error, ValidationError):  # a payload that is not the component's data (a history that is not messages)
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        reason = first["msg"] + (f" (at {where})" if where else "")
    else:
        reason = error.message if isinstance(error, Error) else f"{type(error).__name__}: {error}"
    component = _component(block_fn, error)
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON:
        reason = reason[:MAX_REASON] + "…"
    return f"Input not accepted{f' ({component})' if component else ''}: {reason}"


def _component(block_fn, error: Exception) -> str:
    """The failing input's label, where the error tells: Gradio's message names its index, pydantic its data model."""
    found = re.search(r"input component at index (\d+)", str(error))
    if found and int(found.group(1)) < len(block_fn.inputs):
        block = block_fn.inputs[int(found.group(1))]
    elif isinstance(error, ValidationError):
        block = next((b for b in block_fn.inputs if getattr(getattr(b, "data_model", None), "__name__", None) == error.title), None)
    else:
        block = None
    return (getattr(block, "label", None) or block.get_block_name()) if block is not None else ""
