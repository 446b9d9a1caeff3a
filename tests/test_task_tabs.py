"""Code, Math and Multilingual tabs through gradio_client, plus their pure helpers."""

import pytest

from qwen_playground import sandbox
from qwen_playground.core.config import load_config
from qwen_playground.tasks.code import code_for
from qwen_playground.ui import build_demo
from qwen_playground.ui.code_tab import RUN_DISABLED

ANSWER = "Here you go:\n```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\nUsage:\n```python\nprint(add(1, 2))\n```\n```bash\npip install nothing\n```"


def texts(history):
    return [("".join(p["text"] for p in m["content"]) if isinstance(m["content"], list) else m["content"]) for m in history]


def public_endpoints(demo) -> set:
    return {d["api_name"] for d in demo.config["dependencies"] if d["api_visibility"] == "public"}


def test_code_blocks_in_the_asked_language_fill_the_panel():
    assert code_for(ANSWER, "Python") == "def add(a: int, b: int) -> int:\n    return a + b\n\nprint(add(1, 2))"
    assert code_for(ANSWER, "Bash") == "pip install nothing"
    assert code_for("no code here", "Python") == ""
    assert code_for("```\nx = 1", "Python") == "x = 1"  # untagged and unterminated, mid-stream


def test_code_tab_round_trip(app):
    client, _ = app
    job = client.submit("Add two numbers {{ 7*7 }}", "Python", "", "no imports", "demo-qwen2.5", api_name="/code")
    history, code, metrics = job.result()
    shown = texts(history)
    assert "Add two numbers {{ 7*7 }}" in shown[0] and "Constraints: no imports" in shown[0]
    assert shown[-1].startswith("Hi there, I am a demo model") and code == "" and "tok/s" in metrics
    assert metrics.startswith("No Python code block in this answer")  # an empty panel says why


def test_code_tab_bad_input(app):
    client, _ = app
    with pytest.raises(Exception, match="Type a task first"):
        client.predict("  ", "Python", "", "", "demo-qwen2.5", api_name="/code")
    with pytest.raises(Exception, match="COBOL"):
        client.predict("x", "COBOL", "", "", "demo-qwen2.5", api_name="/code")


@pytest.mark.skipif(sandbox.unavailable_reason() is not None, reason=str(sandbox.unavailable_reason()))
def test_run_code_endpoint_runs_in_the_sandbox_and_the_app_survives_abuse(app):
    client, _ = app
    stdout, stderr, summary = client.predict("import os\nprint(sum(range(10)), os.getcwd())", "Python", api_name="/run_code")
    assert stdout.split() == ["45", "/work"] and "exit code 0" in summary
    _, _, summary = client.predict("import os\nwhile True:\n    os.fork()", "Python", api_name="/run_code")
    assert "stopped" in summary
    _, stderr, _ = client.predict("print(open('/etc/passwd').read())", "Python", api_name="/run_code")
    assert "FileNotFoundError" in stderr
    with pytest.raises(Exception, match="Only Python can be run"):
        client.predict("console.log(1)", "JavaScript", api_name="/run_code")
    stdout, _, _ = client.predict("print('still serving')", "Python", api_name="/run_code")
    assert stdout == "still serving\n"


def test_run_code_is_not_offered_unless_enabled():
    enabled = build_demo(load_config(demo=True, allow_code_execution=True))
    disabled = build_demo(load_config(demo=True))
    assert "run_code" in public_endpoints(enabled) and "run_code" not in public_endpoints(disabled)
    assert {"chat", "code", "math", "multilingual"} <= public_endpoints(disabled)
    assert "--allow-code-execution" in RUN_DISABLED
    run_buttons = [c["props"] for c in disabled.config["components"] if c["type"] == "button" and "▶ Run" in str(c["props"].get("value"))]
    assert run_buttons and not any(b["interactive"] in (True, None) for b in run_buttons)  # greyed out, not a button that refuses


def test_math_tab_round_trip_and_checks(app):
    client, _ = app
    history, final, verdict, metrics = client.predict("It costs $5 and $10; what is $x$ if $2x=4$?", "2", "demo-qwen2.5", api_name="/math")
    shown = texts(history)
    assert shown[0] == r"It costs \$5 and \$10; what is \(x\) if \(2x=4\)?"  # prices stay text, math becomes math
    assert final == "(no \\boxed{} answer)" and verdict == "No \\boxed{} final answer to check." and "tok/s" in metrics


def test_math_tab_refuses_a_malformed_expected_answer_before_generating(app):
    client, _ = app
    with pytest.raises(Exception, match="Could not read the expected answer"):
        client.predict("What is 1+1?", "((2", "demo-qwen2.5", api_name="/math")
    with pytest.raises(Exception, match="Type a problem first"):
        client.predict("", "", "demo-qwen2.5", api_name="/math")


def test_multilingual_tab_answers_side_by_side_and_flags_the_language(app):
    client, _ = app
    job = client.submit("Why is the sky blue?", ["English", "Spanish", "Hindi"], "demo-qwen2.5", api_name="/multilingual")
    outputs = job.result()
    panes, table, results = outputs[:12], outputs[12], outputs[13]
    english, spanish, hindi = panes[0], panes[4], panes[2]
    assert english.startswith("### English") and "✅ detected English" in english
    assert "⚠️ asked for Spanish, detected English" in spanish  # the demo model only speaks English
    assert hindi.startswith("### Hindi") and panes[1] == ""  # Chinese was not asked for
    rows = {row[0]: row for row in table["data"]}
    assert rows["Hindi (हिन्दी)"][1] > rows["English"][1] and rows["English"][4] == 1.0
    assert results["Spanish"]["matches"] is False and results["English"]["matches"] is True
    assert results["English"]["answer_tokens"] > 0


def test_multilingual_bad_input(app):
    client, _ = app
    with pytest.raises(Exception, match="Pick at least one language"):
        client.predict("hi", [], "demo-qwen2.5", api_name="/multilingual")
    with pytest.raises(Exception, match="Klingon"):
        client.predict("hi", ["Klingon"], "demo-qwen2.5", api_name="/multilingual")
    with pytest.raises(Exception, match="at most 6"):
        client.predict("hi", ["English", "Chinese", "Hindi", "Arabic", "Spanish", "French", "German"], "demo-qwen2.5", api_name="/multilingual")


@pytest.mark.parametrize("odd", [["Chat"], {"a": 1}, 3, None])
def test_a_choice_sent_as_anything_but_its_name_is_refused_with_the_choices(demo_config, odd):
    from qwen_playground.tasks import TaskError, batch, code, compare

    panes = [{"model": "demo-qwen3"}, {"model": "demo-qwen2.5"}]
    with pytest.raises(TaskError, match="Unknown template .*; choose one of: Chat, Math"):
        compare.prepare(demo_config, "Hello", panes, template=odd)
    with pytest.raises(TaskError, match="Unknown template .*; choose one of: chat, code, math"):
        batch.prepare(demo_config, None, "capitals", ["demo-qwen3"], template=odd)
    with pytest.raises(TaskError, match="Unknown language .*; choose one of: Python, JavaScript"):
        code.prepare(demo_config, "Sort a list", odd, "", "", "demo-qwen2.5")
