"""Tools a model may call: each a name, a description, a JSON Schema for its arguments, and what it does.

`run` is the one way a call is carried out: the tool found by name, the arguments checked against its schema
(jsonschema), the tool run with a deadline on a thread of its own. It never raises: an unknown tool, arguments the
schema refuses, a tool's error or a timeout come back as an error text for the model (and the page) to read.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from dataclasses import dataclass, field
from typing import Callable

from ..toolcalls import BadCall, ToolCall

TIMEOUT_S = 10.0
MAX_RESULT_CHARS = 4000  # a result longer than this is cut (the model's context is the limit that matters)


class ToolFailed(Exception):
    """A tool could not do what was asked; the message is for the model and the person."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict  # JSON Schema of the arguments object
    call: Callable[..., str] = field(repr=False, compare=False)
    source: str = "built-in"  # "built-in", or the MCP server it comes from
    timeout_s: float = TIMEOUT_S

    def schema(self) -> dict:
        """As chat templates and OpenAI's `tools` take it."""
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


@dataclass(frozen=True)
class Outcome:
    """A call's result or error, as the model gets it back (`content`) and as the page shows it."""

    content: str
    ok: bool
    seconds: float = 0.0


_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="tool")


def run(call: ToolCall | BadCall, tools: dict[str, Tool]) -> Outcome:
    """Carry out one call among `tools` (by name). Every failure is an Outcome with ok=False and a message."""
    import jsonschema  # loaded with the first call, not with the page

    if isinstance(call, BadCall):
        return Outcome(f"Error: {call.error}", False)
    tool = tools.get(call.name)
    if tool is None:
        return Outcome(f"Error: there is no tool named '{call.name}'. Tools: {', '.join(tools) or 'none'}.", False)
    try:
        jsonschema.validate(call.arguments, tool.parameters)
    except jsonschema.ValidationError as e:
        where = "/".join(map(str, e.absolute_path)) or "arguments"
        return Outcome(f"Error: the arguments do not fit {tool.name}'s schema at {where}: {e.message}.", False)
    except jsonschema.SchemaError as e:
        return Outcome(f"Error: {tool.name}'s own schema is broken ({e.message}).", False)
    start = time.perf_counter()
    future = _pool.submit(tool.call, **call.arguments)
    try:
        result = future.result(timeout=tool.timeout_s)
    except concurrent.futures.TimeoutError:
        future.cancel()
        return Outcome(f"Error: {tool.name} did not answer within {tool.timeout_s:g} s.", False, time.perf_counter() - start)
    except ToolFailed as e:
        return Outcome(f"Error: {e}", False, time.perf_counter() - start)
    except Exception as e:  # a tool's own fault: the model hears it, the app serves on
        return Outcome(f"Error: {tool.name} failed: {type(e).__name__}: {e}", False, time.perf_counter() - start)
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[… cut: the result had {len(text):,} characters]"
    return Outcome(text, True, time.perf_counter() - start)
