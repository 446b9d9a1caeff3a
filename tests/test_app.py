"""The app end to end, launched in-process and driven through gradio_client."""

import sys
import subprocess
import time
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent


def bubbles(history):
    """(title or None, text) per message, as the client returns them."""
    return [((m.get("metadata") or {}).get("title"), "".join(p["text"] for p in m["content"] if p.get("type") == "text") if isinstance(m["content"], list) else m["content"])
            for m in history]


def test_chat_round_trip_streams_thinking_answer_and_metrics(app):
    client, _ = app
    job = client.submit("Hello {{ 7*7 }}", api_name="/chat")  # the default: the Qwen3.5 demo, thinking
    outputs = list(job)
    history, textbox = job.result()
    assert textbox == "" and len(outputs) > 5  # streamed in many steps
    shown = bubbles(history)
    assert shown[0] == (None, "Hello {{ 7*7 }}")  # typed text reaches the model as data
    assert shown[1] == ("💭 Thinking", "Demo mode: tiny random parameters, so this thought is scripted!")  # its template opened it
    assert shown[2] == (None, "Good day from a small demo network; install real weights for useful answers")
    assert "tok/s" in shown[3][0] and "thinking tokens" in shown[3][0] and "first token" in shown[3][0]


def test_multi_turn_with_a_chosen_model_and_settings(app):
    client, _ = app
    history, _ = client.predict("First", api_name="/chat")
    history, _ = client.predict("Second", history, "demo-qwen2.5", "You are terse.", False, 0.7, 0.8, 20, 0.0, 1.05, 0.0, 64, api_name="/chat")
    shown = bubbles(history)
    assert [t for _, t in shown if t in ("First", "Second")] == ["First", "Second"]
    assert shown[-2] == (None, "Hi there, I am a demo model: install real weights for useful answers!")


def test_stop_cancels_the_generation(app):
    client, backend = app
    job = client.submit("go", [], "tiny-random", "", False, 0, 0.8, 20, 0, 1.0, 0.0, 4000, api_name="/chat")
    deadline = time.time() + 60
    while backend.active_generations == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert backend.active_generations == 1
    job.cancel()
    deadline = time.time() + 10
    while backend.active_generations and time.time() < deadline:
        time.sleep(0.05)
    assert backend.active_generations == 0


def test_error_paths_give_clear_messages_and_the_app_serves_on(app):
    client, _ = app
    with pytest.raises(Exception, match="Type a message first"):
        client.predict("   ", api_name="/chat")
    with pytest.raises(Exception, match="limit is 512"):
        client.predict("word " * 600, api_name="/chat")
    with pytest.raises(Exception, match="greater than maximum value 2"):
        client.predict("hi", [], "demo-qwen3", "", True, 5.0, 0.8, 20, 0, 1.0, 0.0, 64, api_name="/chat")
    with pytest.raises(Exception, match="qwen-nope"):
        client.predict("hi", [], "qwen-nope", "", True, 0.6, 0.8, 20, 0, 1.0, 0.0, 64, api_name="/chat")
    history, _ = client.predict("Still there?", api_name="/chat")
    assert bubbles(history)[2][1].startswith("Good day from a small demo network")


def test_a_failed_load_keeps_the_conversation(app):
    client, _ = app
    history, _ = client.predict("Keep me", api_name="/chat")
    job = client.submit("And this", history, "broken", "", False, 0.6, 0.95, 20, 0, 1.0, 0.0, 64, api_name="/chat")
    with pytest.raises(Exception, match="Could not load broken"):
        job.result()
    kept, textbox = job.outputs()[-1]
    assert bubbles(kept) == bubbles(history) and textbox == "And this"  # the message comes back to edit


def test_bad_config_exits_with_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes: {chat: {default: qwen3-17b}}")
    result = subprocess.run([sys.executable, "app.py", "--config", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Did you mean 'qwen3-1.7b'" in result.stderr and "Traceback" not in result.stderr


def test_two_users_at_once_get_their_own_answers(app):
    client, _ = app
    a = client.submit("from A", [], "demo-qwen3", "", True, 0.6, 0.95, 20, 0, 1.0, 0.0, 64, api_name="/chat")
    b = client.submit("from B", [], "demo-qwen2.5", "", False, 0.7, 0.8, 20, 0, 1.05, 0.0, 64, api_name="/chat")
    history_a, _ = a.result()
    history_b, _ = b.result()
    assert bubbles(history_a)[0][1] == "from A" and bubbles(history_a)[2][1].startswith("Hello from a little demo")
    assert bubbles(history_b)[0][1] == "from B" and bubbles(history_b)[1][1].startswith("Hi there, I am a demo")


def test_help_is_instant_and_quiet():
    result = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--demo" in result.stdout and result.stderr == ""  # no torch warnings: nothing heavy imported


def test_start_up_says_once_where_which_mode_and_which_models(tmp_path):
    from tests.conftest import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "app.py", "--demo", "--port", str(port), "--cache-dir", str(tmp_path)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "local models ready" in line:
                break
        log = "".join(lines)
        assert f"Qwen Playground at http://127.0.0.1:{port}" in log and "demo mode (started with --demo)" in log
        assert "chat: demo-qwen3" in log and "start with --share" in log
        assert "local models: Starting the engine" in log  # the summary comes with the page; the engine loads after it
        assert "No model loaded yet · cpu" in lines[-1]
        assert "share=True" not in log and "Enum subclass" not in log
        from gradio_client import Client

        with pytest.raises(Exception, match="Could not read the expected answer"):
            Client(f"http://127.0.0.1:{port}/", verbose=False).predict("What is 1+1?", "((2", "demo-qwen2.5", api_name="/math")
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=30)
    assert "refused: Could not read the expected answer" in rest and "Traceback" not in rest  # a user's mistake is one log line
