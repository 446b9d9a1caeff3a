"""Tools from MCP servers (the official `mcp` SDK): a server's tools join the built-in ones, with its descriptions and
schemas, and a call is carried out by the server.

Each listing and each call opens its own session (stdio: the server's process is started and stopped again;
streamable HTTP: one connection), on one background event loop, with the server's deadline: so a server that will not
start, hangs or dies during a call costs that call an error message, never the app. A server's tools are listed once
and kept; one that could not be listed is tried again after a pause.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from typing import Any

from ..core.registry import McpServer
from . import Tool, ToolFailed

RETRY_AFTER_S = 30.0

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()
_listed: dict[str, tuple[float, list[Tool] | str]] = {}  # server (as configured) -> (when, its tools or why they could not be had)


def _run(coroutine, timeout: float):
    """Run `coroutine` on the background loop, waiting at most `timeout` seconds (then it is cancelled)."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="mcp", daemon=True).start()
    future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coroutine, timeout), _loop)
    return future.result(timeout + 5)


def _client(server: McpServer):
    import os

    from mcp.client.client import Client
    from mcp.client.stdio import StdioServerParameters

    if server.url:
        return Client(server.url)
    return Client(StdioServerParameters(command=server.command[0], args=list(server.command[1:]), env={**os.environ, **server.env}))


def _leaves(error: BaseException) -> list[BaseException]:
    """The errors inside an exception group (the SDK's task groups wrap them), or the error itself."""
    inner = getattr(error, "exceptions", None)
    return [leaf for e in inner for leaf in _leaves(e)] if inner else [error]


def _problem(server: McpServer, error: BaseException) -> str:
    """What went wrong with `server`, in a clause: "did not answer within 20 s", "failed (FileNotFoundError: ...)"."""
    leaves = _leaves(error)
    if any(isinstance(e, (TimeoutError, asyncio.TimeoutError)) for e in leaves):
        return f"did not answer within {server.timeout_s:g} s"
    return "failed (" + "; ".join(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__ for e in leaves) + ")"


def server_tools(server: McpServer) -> list[Tool] | str:
    """`server`'s tools, or why they could not be had (kept; a failure is tried again after a pause)."""
    key = server.model_dump_json()
    when, found = _listed.get(key, (0.0, ""))
    if isinstance(found, list) or (found and time.monotonic() - when < RETRY_AFTER_S):
        return found

    async def listing():
        async with _client(server) as client:
            return (await client.list_tools()).tools

    try:
        listed = _run(listing(), server.timeout_s)
        found = [Tool(t.name, t.description or "", dict(getattr(t, "input_schema", None) or getattr(t, "inputSchema", None) or {"type": "object"}),
                      _caller(server, t.name), source=f"MCP: {server.id}", timeout_s=server.timeout_s) for t in listed]
    except Exception as e:  # a server that will not start or answer: said under the picker
        found = f"MCP server '{server.id}': its tools could not be listed: it {_problem(server, e)}."
    _listed[key] = (time.monotonic(), found)
    return found


def _caller(server: McpServer, name: str):
    def call(**arguments: Any) -> str:
        async def calling():
            async with _client(server) as client:
                return await client.call_tool(name, arguments)

        try:
            result = _run(calling(), server.timeout_s)
        except Exception as e:
            raise ToolFailed(f"The MCP server '{server.id}' {_problem(server, e)} during the call (it may have stopped).") from None
        text = "\n".join(getattr(part, "text", None) or f"[{getattr(part, 'type', 'content')}]" for part in result.content or [])
        if result.is_error:
            raise ToolFailed(text or f"{name} on '{server.id}' reported an error")
        return text or str(getattr(result, "structured_content", "") or "")

    return call


def mcp_tools(servers: tuple[McpServer, ...]) -> tuple[dict[str, Tool], list[str]]:
    """Every configured server's tools by name (a name already taken gets its server's id in front), and a line for
    each server whose tools could not be had."""
    tools: dict[str, Tool] = {}
    problems = []
    for server in servers:
        found = server_tools(server)
        if isinstance(found, str):
            problems.append(found)
            continue
        for tool in found:
            name = tool.name if tool.name not in tools else f"{server.id}_{tool.name}"
            tools[name] = replace(tool, name=name)
    return tools, problems
