"""Tool calls in the text a Qwen model writes, in its family's format (registry data: `tool_format`).

    json (Qwen2.5, Qwen3, Qwen3-2507):  <tool_call>
                                        {"name": "calculator", "arguments": {"expression": "6*7"}}
                                        </tool_call>
    xml (Qwen3.5, Qwen3-Coder):         <tool_call>
                                        <function=calculator>
                                        <parameter=expression>
                                        6*7
                                        </parameter>
                                        </function>
                                        </tool_call>

`read_calls` takes an answer apart: the prose before the first call, then each call parsed, or the reason it could
not be (bad JSON, no name, an unfinished call). It never raises: whatever a model writes ends in calls or in errors
that go back to the model as tool errors. XML parameters arrive as text and are read as the tool's schema types them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

ToolFormat = Literal["json", "xml"]
OPEN, CLOSE = "<tool_call>", "</tool_call>"
_FUNCTION = re.compile(r"<function=([^>\n]*)>(.*?)(?:</function>|\Z)", re.DOTALL)
_PARAMETER = re.compile(r"<parameter=([^>\n]*)>\n?(.*?)\n?(?:</parameter>|(?=<parameter=)|\Z)", re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict = field(default_factory=dict)
    raw: str = ""  # the text between the tags, as the model wrote it


@dataclass(frozen=True)
class BadCall:
    error: str  # what was wrong, said to the model and shown
    raw: str = ""


def read_calls(text: str, fmt: ToolFormat, schemas: dict[str, dict] | None = None) -> tuple[str, list[ToolCall | BadCall]]:
    """(the text before the first call, each call or why it is unusable). `schemas`: each tool's parameters schema, by
    name, for typing XML values."""
    if not isinstance(text, str) or OPEN not in text:
        return (text if isinstance(text, str) else ""), []
    before, _, rest = text.partition(OPEN)
    calls: list[ToolCall | BadCall] = []
    for chunk in rest.split(OPEN):
        body, closed, _ = chunk.partition(CLOSE)
        if not closed:
            calls.append(BadCall(f"The call was not finished with {CLOSE}: the answer stopped inside it.", body.strip()))
            continue
        calls.append(_read_json(body) if fmt == "json" else _read_xml(body, schemas or {}))
    return before, calls


def _read_json(body: str) -> ToolCall | BadCall:
    raw = body.strip()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as e:
        return BadCall(f"The call is not valid JSON ({e}). Write {{\"name\": ..., \"arguments\": {{...}}}}.", raw)
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"].strip():
        return BadCall('The call has no "name" naming a tool.', raw)
    arguments = data.get("arguments", {})
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except (json.JSONDecodeError, RecursionError):
            pass
    if not isinstance(arguments, dict):
        return BadCall('The call\'s "arguments" must be a JSON object of named values.', raw)
    return ToolCall(data["name"].strip(), arguments, raw)


def _read_xml(body: str, schemas: dict[str, dict]) -> ToolCall | BadCall:
    raw = body.strip()
    match = _FUNCTION.search(raw)
    if not match or not match.group(1).strip():
        return BadCall("The call has no <function=NAME> naming a tool.", raw)
    name = match.group(1).strip()
    properties = (schemas.get(name) or {}).get("properties") or {}
    arguments = {}
    for parameter, value in _PARAMETER.findall(match.group(2)):
        parameter = parameter.strip()
        arguments[parameter] = typed(value, (properties.get(parameter) or {}).get("type"))
    return ToolCall(name, arguments, raw)


def typed(value: str, kind: object) -> object:
    """An XML parameter's text as its schema's type: numbers, booleans, objects and arrays parsed, text kept as it is;
    a value that does not parse stays text (the tool's schema check then says what is wrong)."""
    if kind in (None, "string") or not isinstance(value, str):
        return value
    if kind == "boolean" and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    try:
        parsed = json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        return value
    accepted = {"integer": int, "number": (int, float), "object": dict, "array": list, "boolean": bool, "null": type(None)}.get(kind)
    return parsed if accepted and isinstance(parsed, accepted) and not (kind == "integer" and isinstance(parsed, bool)) else value


def write_call(call: ToolCall, fmt: ToolFormat) -> str:
    """A call as its family writes it (for showing and for tests; the chat template renders history itself)."""
    if fmt == "json":
        return f'{OPEN}\n{json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)}\n{CLOSE}'
    parameters = "".join(f"<parameter={k}>\n{v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}\n</parameter>\n"
                         for k, v in call.arguments.items())
    return f"{OPEN}\n<function={call.name}>\n{parameters}</function>\n{CLOSE}"
