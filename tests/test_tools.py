"""Tool calls in Qwen's two formats against the official templates, the built-in tools, and a fuzz pass on the parser."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen_playground.backends import demo
from qwen_playground.core.config import builtin_families
from qwen_playground.toolcalls import CLOSE, OPEN, BadCall, ToolCall, read_calls, typed, write_call
from qwen_playground.tools import Tool, ToolFailed, run
from qwen_playground.tools.builtin import builtin_tools, calculate

TOOLS = builtin_tools(allow_code=False)
CALL = ToolCall("convert_units", {"value": 26.2, "from_unit": "mile", "to_unit": "km"})


@pytest.mark.parametrize("family, fmt", [("qwen3", "json"), ("qwen3.5", "xml"), ("qwen2.5", "json")])
def test_a_call_round_trips_through_the_official_template(cache_dir, family, fmt):
    """The family's official template writes the tools block and an earlier call; the call it writes is the one
    `write_call` writes, and reading it back gives the call."""
    traits = builtin_families()[family]
    assert traits.tool_format == fmt
    tokenizer = demo.load_tokenizer(traits, cache_dir)
    schema = TOOLS["convert_units"].schema()
    messages = [{"role": "user", "content": "How far is a marathon in km?"},
                {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": CALL.name, "arguments": CALL.arguments}}]},
                {"role": "tool", "content": "26.2 mile = 42.1648128 km"}]
    text = tokenizer.apply_chat_template(messages, tools=[schema], tokenize=False, add_generation_prompt=True)
    assert "<tools>\n" + __import__("json").dumps(schema, ensure_ascii=False) + "\n</tools>" in text.replace('", "', '", "')
    assert write_call(CALL, fmt) in text  # the template writes the call exactly as the model is asked to
    assert "<tool_response>\n26.2 mile = 42.1648128 km\n</tool_response>" in text
    answer = text.split("<|im_start|>assistant\n")[1].split("<|im_end|>")[0]
    _, calls = read_calls(answer, fmt, {"convert_units": TOOLS["convert_units"].parameters})
    assert calls == [ToolCall(CALL.name, CALL.arguments, calls[0].raw)]


@pytest.mark.parametrize("text, fmt, error", [
    (f'{OPEN}\n{{"name": "calculator", "arguments": {{"expression": "1+"\n{CLOSE}', "json", "not valid JSON"),
    (f'{OPEN}\n{{"arguments": {{}}}}\n{CLOSE}', "json", 'no "name"'),
    (f'{OPEN}\n{{"name": "calculator", "arguments": [1, 2]}}\n{CLOSE}', "json", "must be a JSON object"),
    (f'{OPEN}\n{{"name": "calculator", "arguments": {{"expression": "1+1"}}}}', "json", "was not finished"),
    (f"{OPEN}\n<parameter=x>\n1\n</parameter>\n{CLOSE}", "xml", "no <function=NAME>"),
])
def test_malformed_calls_become_errors_for_the_model(text, fmt, error):
    before, [call] = read_calls("Thinking aloud. " + text, fmt)
    assert before == "Thinking aloud. " and isinstance(call, BadCall) and error in call.error
    assert run(call, TOOLS).content.startswith("Error: ") and not run(call, TOOLS).ok


def test_xml_values_take_their_schema_types():
    assert typed("3", "integer") == 3 and typed("2.5", "number") == 2.5 and typed("true", "boolean") is True
    assert typed('{"a": 1}', "object") == {"a": 1} and typed("[1]", "array") == [1]
    assert typed("3", "string") == "3" and typed("three", "integer") == "three"  # left as text: the schema check says why
    assert typed("true", "integer") == "true"


def test_several_calls_in_one_answer_and_text_without_calls():
    text = write_call(ToolCall("calculator", {"expression": "1+1"}), "json") + "\n" + write_call(CALL, "json")
    assert [c.name for c in read_calls(text, "json")[1]] == ["calculator", "convert_units"]
    assert read_calls("The answer is 42.", "json") == ("The answer is 42.", [])


@pytest.mark.parametrize("expression, result", [("6*7", "42"), ("0.1 + 0.2", "3/10 (≈ 0.3)"), ("2**100", str(2**100)), ("(3+4)*5^2", "175"),
                                                ("1/3 + 1/6", "1/2 (≈ 0.5)"), ("-7 // 2", "-4"), ("max(1, 2.5)", "5/2 (≈ 2.5)")])
def test_the_calculator_is_exact(expression, result):
    assert calculate(expression) == result


@pytest.mark.parametrize("expression, error", [("1/0", "Division by zero"), ("__import__('os').system('ls')", "not arithmetic"),
                                               ("10**100000", "too large"), ("2**0.5", "whole-number powers"), ("1 +", "not an arithmetic"),
                                               ("'a' * 3", "not arithmetic"), ("x + 1", "not arithmetic")])
def test_the_calculator_refuses_what_is_not_arithmetic(expression, error):
    with pytest.raises(ToolFailed, match=error):
        calculate(expression)


def test_units_time_and_search():
    assert run(CALL, TOOLS).content == "26.2 mile = 42.1648128 km"
    assert "37.77777778 degC" in run(ToolCall("convert_units", {"value": 100, "from_unit": "degF", "to_unit": "degC"}), TOOLS).content
    assert "measure different things" in run(ToolCall("convert_units", {"value": 1, "from_unit": "kg", "to_unit": "km"}), TOOLS).content
    assert "(Asia/Shanghai, UTC+0800)" in run(ToolCall("current_time", {"timezone": "Asia/Shanghai"}), TOOLS).content
    assert "Unknown time zone" in run(ToolCall("current_time", {"timezone": "Mars/Olympus"}), TOOLS).content
    found = run(ToolCall("search_docs", {"query": "Qwen3-ASR audio tokens a second"}), TOOLS).content
    assert found.startswith("[1] docs/") and "audio" in found.split("\n")[0].lower()


def test_unknown_tools_bad_arguments_failures_and_timeouts_are_messages():
    assert "no tool named 'weather'" in run(ToolCall("weather", {}), TOOLS).content
    assert "'expression' is a required property" in run(ToolCall("calculator", {"expr": "1"}), TOOLS).content
    assert "at value: 'far' is not of type 'number'" in run(ToolCall("convert_units", {"value": "far", "from_unit": "km", "to_unit": "m"}),
                                                            TOOLS).content

    def broken() -> str:
        raise KeyError("gone")

    def slow() -> str:
        time.sleep(2)
        return "late"

    empty = {"type": "object", "properties": {}}
    extra = {"broken": Tool("broken", "", empty, broken), "slow": Tool("slow", "", empty, slow, timeout_s=0.2)}
    failed = run(ToolCall("broken", {}), extra)
    assert (failed.content, failed.ok) == ("Error: broken failed: KeyError: 'gone'", False)
    late = run(ToolCall("slow", {}), extra)
    assert late.content == "Error: slow did not answer within 0.2 s." and not late.ok and late.seconds < 1.5


def test_python_is_offered_only_where_code_may_run():
    assert "run_python" not in builtin_tools(allow_code=False) and "run_python" in builtin_tools(allow_code=True)


pieces = st.one_of(st.text(max_size=30), st.sampled_from([OPEN, CLOSE, "<function=calculator>", "</function>", "<parameter=expression>",
                                                          "</parameter>", '{"name": "calculator"', ', "arguments": ', '{"expression": "1+1"}',
                                                          "}", "\n", "[", '"', "\\"]))


@settings(max_examples=400, deadline=None)
@given(st.lists(pieces, max_size=25), st.sampled_from(["json", "xml"]))
def test_no_model_output_breaks_the_parser(parts, fmt):
    text = "".join(parts)
    before, calls = read_calls(text, fmt, {"calculator": TOOLS["calculator"].parameters})
    assert isinstance(before, str) and len(calls) == text.count(OPEN)  # every opened call ends in a call or an error
    for call in calls:
        assert isinstance(call, (ToolCall, BadCall))
        outcome = run(call, TOOLS)
        assert isinstance(outcome.content, str) and outcome.content


ASKED = "What is 6 times 7?"
ANSWER = "6 times 7 is 42: the calculator worked it out (a trained demo network)."


def test_the_demo_loop_calls_the_calculator_then_answers_from_its_result(demo_config, backend):
    from qwen_playground.tasks import tools as task

    job = task.prepare(demo_config, ASKED, ["calculator"], "demo-qwen3-tools", 5)
    seen = []  # what each update showed (the steps are updated in place)
    for final in task.run(backend, job):
        seen.append((len(final.steps), len(final.steps[0].calls), len(final.steps[0].outcomes)))
    assert final.done and final.error is None and final.note == "" and len(final.steps) == 2
    first, second = final.steps
    assert first.calls == [ToolCall("calculator", {"expression": "6 * 7"}, first.calls[0].raw)] and first.outcomes[0].content == "42"
    assert second.turn.answer == ANSWER and second.calls == []
    fed = second.request.messages[-2:]  # what the second step saw: the call, then its result
    assert fed[0]["tool_calls"][0]["function"] == {"name": "calculator", "arguments": {"expression": "6 * 7"}}
    assert fed[1] == {"role": "tool", "tool_call_id": "call_0_0", "name": "calculator", "content": "42"}
    assert (1, 1, 0) in seen and (1, 1, 1) in seen  # the call shown once read, then its result once run


def test_the_loop_ends_at_the_step_limit_and_at_stop(demo_config, backend):
    import threading

    from qwen_playground.tasks import tools as task

    limited = list(task.run(backend, task.prepare(demo_config, ASKED, ["calculator"], "demo-qwen3-tools", 1)))[-1]
    assert len(limited.steps) == 1 and limited.note.startswith("Stopped at the step limit (1)") and limited.steps[0].outcomes
    stop = threading.Event()
    views = []
    for view in task.run(backend, task.prepare(demo_config, ASKED, ["calculator"], "demo-qwen3-tools", 5), stop):
        views.append(view)
        if view.steps[0].turn.answer:
            stop.set()
    assert views[-1].done and views[-1].note == "Stopped." and len(views[-1].steps) == 1
    assert views[-1].steps[0].turn.finish_reason == "cancelled" and not views[-1].steps[0].outcomes  # nothing run after Stop


def test_an_unreadable_call_goes_back_as_written_beside_its_error():
    from qwen_playground.core.generation import Request
    from qwen_playground.tasks.conversation import AssistantTurn
    from qwen_playground.tasks.tools import Step, fed_back

    text = f'{OPEN}\n{{"name": "calculator", "arguments": {{"expression": \n{CLOSE}'
    before, calls = read_calls(text, "json")
    step = Step(Request("m", []), AssistantTurn(answer=text), calls, [run(calls[0], TOOLS)])
    answer, result = fed_back(step, 0, before)
    assert answer == {"role": "assistant", "content": text} and "tool_calls" not in answer
    assert result["role"] == "tool" and result["content"].startswith("Error: The call is not valid JSON")


@pytest.mark.parametrize("tools, model, field, message", [([], "demo-qwen3-tools", "tools", "Tick at least one tool"),
                                                          (["weather"], "demo-qwen3-tools", "tools", "No tool named weather"),
                                                          (["calculator"], "demo-qwen3-asr", "model", "does not call tools")])
def test_wrong_choices_are_refused_beside_their_input(demo_config, tools, model, field, message):
    from qwen_playground.tasks import TaskError
    from qwen_playground.tasks import tools as task

    with pytest.raises(TaskError, match=message) as refused:
        task.prepare(demo_config, ASKED, tools, model)
    assert refused.value.field == field


def test_tools_chat_and_its_inspector_through_the_app(app):
    client, _ = app
    conversation, steps, notes = client.predict(ASKED, ["calculator"], "demo-qwen3-tools", 5, False, "", "full", api_name="/tools_chat")
    assert [s["calls"] for s in steps] == [[{"name": "calculator", "arguments": {"expression": "6 * 7"}}], []]
    assert steps[0]["results"][0]["content"] == "42" and steps[1]["text"] == ANSWER
    texts = [b["content"][0]["text"] if isinstance(b["content"], list) else str(b["content"]) for b in conversation]
    assert any(t.startswith("**🛠 Call read from it: calculator**") for t in texts) and any(t.startswith("**📤 Result") for t in texts)
    pieces, notes, counts = client.predict(ASKED, ["calculator", "convert_units"], "demo-qwen3.5", 5, False, "", "full",
                                           api_name="/inspect_tools")
    assert '"name": "convert_units"' in counts["text"] and "<function=example_function_name>" in counts["text"]  # Qwen3.5's XML


def test_a_servers_parsed_calls_come_back_in_the_familys_own_format():
    from qwen_playground.backends.openai_compat import calls_as_text, to_openai_messages

    pieces = {0: {"name": "calculator", "arguments": '{"expression": "6 * 7"}'}, 1: {"name": "calculator", "arguments": '{"expression": '}}
    text = calls_as_text(pieces, "xml")
    _, calls = read_calls(text, "xml", {"calculator": TOOLS["calculator"].parameters})
    assert calls[0] == ToolCall("calculator", {"expression": "6 * 7"}, calls[0].raw) and isinstance(calls[1], BadCall)
    sent = to_openai_messages([{"role": "assistant", "content": "", "tool_calls": [{"id": "call_0_0", "type": "function",
                                                                                   "function": {"name": "calculator", "arguments": {"x": 1}}}]},
                               {"role": "tool", "tool_call_id": "call_0_0", "name": "calculator", "content": "42"}])
    assert sent[0]["tool_calls"][0]["function"]["arguments"] == '{"x": 1}' and sent[1]["tool_call_id"] == "call_0_0"


MCP_SERVER = '''
import os, time
from mcp.server.mcpserver import MCPServer

server = MCPServer("classroom")


@server.tool()
def shout(text: str) -> str:
    """Say a text louder."""
    return text.upper() + "!"


@server.tool()
def crash() -> str:
    """Stop the server in the middle of a call."""
    os._exit(3)


@server.tool()
def hang(seconds: float = 30) -> str:
    """Wait before answering."""
    time.sleep(seconds)
    return "done"


@server.tool()
def calculator(expression: str) -> str:
    """A name the built-in tools already have."""
    return "from MCP: " + expression


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["http"]:  # a streamable HTTP server on 127.0.0.1
        server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
'''


@pytest.fixture(scope="module")
def mcp_config(tmp_path_factory, cache_dir):
    """A config listing a real MCP server (written with the `mcp` SDK, started over stdio) and one that cannot start."""
    import sys

    import yaml

    from qwen_playground.core.config import load_config

    folder = tmp_path_factory.mktemp("mcp")
    (folder / "classroom.py").write_text(MCP_SERVER)
    path = folder / "playground.yaml"
    path.write_text(yaml.safe_dump({"mcp_servers": [{"id": "classroom", "command": [sys.executable, str(folder / "classroom.py")], "timeout_s": 5},
                                                    {"id": "missing", "command": [str(folder / "no-such-server")], "timeout_s": 5}]}))
    return load_config(path, demo=True, cache_dir=cache_dir, engine="transformers")


def test_an_mcp_servers_tools_join_the_built_in_ones_and_answer(mcp_config):
    from qwen_playground.tasks import tools as task

    offered, problems = task.offered_tools(mcp_config)
    assert {"calculator", "shout", "crash", "hang", "mcp_calculator"} <= set(offered)
    assert offered["shout"].source == "MCP: classroom" and offered["shout"].description == "Say a text louder."
    assert offered["mcp_calculator"].schema()["function"]["name"] == "mcp_calculator"  # the model sees one name per tool
    assert problems == [f"MCP server 'missing': its tools could not be listed: it failed (FileNotFoundError: [Errno 2] No such file or "
                        f"directory: '{mcp_config.mcp_servers[1].command[0]}')."]
    assert run(ToolCall("shout", {"text": "hi"}), offered).content == "HI!"
    assert run(ToolCall("mcp_calculator", {"expression": "1+1"}), offered).content == "from MCP: 1+1"
    assert "'text' is a required property" in run(ToolCall("shout", {}), offered).content  # its own schema, checked here
    job = task.prepare(mcp_config, "Shout hello", ["shout", "calculator"], "demo-qwen3")
    assert [t["function"]["name"] for t in job.request.tools] == ["shout", "calculator"]


def test_an_mcp_server_that_dies_or_hangs_mid_call_is_a_message_and_the_next_call_works(mcp_config):
    from qwen_playground.tasks import tools as task

    offered = task.available_tools(mcp_config)
    died = run(ToolCall("crash", {}), offered)
    assert not died.ok and "The MCP server 'classroom' failed" in died.content and "during the call" in died.content
    hung = run(ToolCall("hang", {"seconds": 60}), offered)
    assert not hung.ok and hung.content == "Error: hang did not answer within 5 s."
    assert run(ToolCall("shout", {"text": "still here"}), offered).content == "STILL HERE!"


def test_only_the_hosts_servers_exist_a_visitor_cannot_add_one(tmp_path, cache_dir, mcp_config):
    """The page and the API offer only configured tools: a tool name from elsewhere, or a server given in a request,
    is refused; a config entry must be a command or a URL."""
    import yaml

    from qwen_playground.core.config import load_config
    from qwen_playground.core.registry import RegistryError
    from qwen_playground.tasks import TaskError
    from qwen_playground.tasks import tools as task

    with pytest.raises(TaskError, match="No tool named stdio:/bin/sh"):
        task.prepare(mcp_config, "Hi", ["stdio:/bin/sh"], "demo-qwen3")
    public = load_config(demo=True, cache_dir=cache_dir, public=True)
    assert set(task.available_tools(public)) == set(builtin_tools(allow_code=False))  # nothing but the built-in tools
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"mcp_servers": [{"id": "both", "command": ["x"], "url": "http://127.0.0.1:9/mcp"}]}))
    with pytest.raises(RegistryError, match="either command .* or url"):
        load_config(path, demo=True, cache_dir=cache_dir)


def test_an_mcp_server_over_streamable_http(tmp_path, cache_dir):
    import subprocess
    import sys

    import httpx
    import yaml

    from qwen_playground.core.config import load_config
    from qwen_playground.tasks import tools as task

    from .conftest import free_port

    (tmp_path / "classroom.py").write_text(MCP_SERVER)
    port = free_port()
    server = subprocess.Popen([sys.executable, str(tmp_path / "classroom.py"), "http", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        path = tmp_path / "playground.yaml"
        path.write_text(yaml.safe_dump({"mcp_servers": [{"id": "web", "url": f"http://127.0.0.1:{port}/mcp", "timeout_s": 10}]}))
        offered, problems = task.offered_tools(load_config(path, demo=True, cache_dir=cache_dir))
        assert problems == [] and offered["shout"].source == "MCP: web"
        assert run(ToolCall("shout", {"text": "over http"}), offered).content == "OVER HTTP!"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_chat_answers_with_tools_ticked_and_shows_the_calls_folded(app):
    """Chat's tools picker (none by default): ticked, the answer runs the loop; its calls and results fold above the
    answer, and the inspector shows the tools block."""
    client, _ = app
    settings = ("demo-qwen3-tools", "", False, 0.0, 0.8, 20, 0.0, 1.0, 0.0, 256, 0, "full", False, False)
    history, _ = client.predict(ASKED, [], *settings, None, ["calculator"], api_name="/chat")
    titles = [(m.get("metadata") or {}).get("title") or "" for m in history]
    assert 'calculator({"expression": "6 * 7"}) → 42' in " ".join(titles)
    assert history[-1]["content"][0]["text"] == ANSWER or any(m["content"] and m["content"][0]["text"] == ANSWER for m in history)
    _, notes, counts = client.predict(ASKED, [], "demo-qwen3-tools", "", False, None, ["calculator"], api_name="/inspect")
    assert "<tools>" in counts["text"]
    plain, _ = client.predict(ASKED, [], *settings, None, api_name="/chat")  # no tools: a plain answer, as before
    assert not any("🛠" in ((m.get("metadata") or {}).get("title") or "") for m in plain)
    with pytest.raises(Exception, match="does not call tools"):
        client.predict(ASKED, [], "demo-qwen3-asr", *settings[1:], None, ["calculator"], api_name="/chat")
