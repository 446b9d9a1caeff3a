"""Faults: each gives a clear message, keeps what the user had, and the app serves on.

(An OpenAI-compatible server killed mid-stream is covered in test_openai_compat.py:
test_killing_the_server_mid_stream_keeps_the_partial_answer.)
"""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from qwen_playground.backends.local import CacheKey
from gradio_client import Client
from gradio_client.exceptions import AppError

from qwen_playground.arena_store import ArenaStore, ArenaUnavailable
from qwen_playground.backends.router import Router
from qwen_playground.core.config import load_config
from qwen_playground.ui import build_demo

from .conftest import break_forward, free_port

ROOT = Path(__file__).resolve().parent.parent


def chat(client, text="Hello", model="demo-qwen3"):
    return client.predict(text, [], model, "", False, 0.7, 0.8, 20, 0.0, 1.0, 0.0, 32, api_name="/chat")


def test_a_model_that_fails_to_load_is_reported_and_the_app_serves_on(app):
    client, _ = app
    with pytest.raises(AppError, match="Could not load broken"):
        chat(client, model="broken")
    history, _ = chat(client)
    assert history[-1]["role"] == "assistant"


def test_generation_failing_mid_stream_keeps_the_partial_answer_then_recovers(app, monkeypatch):
    client, local = app
    chat(client, model="demo-qwen2.5")  # loaded
    model = local.cache.get(CacheKey("demo-qwen2.5"), 0, None).model
    real_forward = break_forward(monkeypatch, model, after=4)
    job = client.submit("Hello", [], "demo-qwen2.5", "", False, 0.7, 0.8, 20, 0.0, 1.05, 0.0, 64, api_name="/chat")
    with pytest.raises(AppError, match="Generation failed: RuntimeError: device fell over"):
        job.result()
    partial = [out[0] for out in job.outputs() if out[0]]
    assert partial and any(m["role"] == "assistant" and m.get("content") for m in partial[-1])  # what streamed stayed
    monkeypatch.setattr(model, "forward", real_forward)
    assert chat(client, model="demo-qwen2.5")[0][-1]["role"] == "assistant"


def test_a_locked_vote_database_refuses_the_vote_clearly_and_keeps_the_battle(tmp_path):
    store = ArenaStore(tmp_path / "votes.sqlite3")
    battle = store.new_battle("a", "b")
    locker = sqlite3.connect(tmp_path / "votes.sqlite3", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(ArenaUnavailable, match="is busy .* Try again in a moment"):
            store.vote(battle, "a")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert store.vote(battle, "a") == ("a", "b")  # the battle was kept: the retry counts


def test_a_read_only_vote_database_is_reported(tmp_path):
    """As an unprivileged user (root ignores file modes), on a database file that user cannot write."""
    path = tmp_path / "votes.sqlite3"
    battle = ArenaStore(path).new_battle("a", "b")
    tmp_path.chmod(0o755)
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from qwen_playground.arena_store import ArenaStore, ArenaUnavailable
        store = ArenaStore({str(path)!r})
        try:
            store.vote({battle!r}, "a")
        except ArenaUnavailable as e:
            print("REFUSED", e)
    """)
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", script]
        for parent in [*reversed(tmp_path.parents), tmp_path]:  # let nobody reach (not write) the folder
            if str(parent).startswith(("/tmp", str(tmp_path))):
                parent.chmod(parent.stat().st_mode | 0o755)
    else:
        path.chmod(0o444)
        command = [sys.executable, "-c", script]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert "REFUSED" in out.stdout and ("read-only" in out.stdout or "cannot be used" in out.stdout), out.stdout + out.stderr


def test_an_unwritable_cache_gives_a_clear_message_and_the_app_serves_on(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    config = load_config(None, demo=True, cache_dir=blocker / "cache", engine="transformers")
    demo = build_demo(config, Router(config))  # the arena database cannot be created either: the app still starts
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        client = Client(url, verbose=False)
        with pytest.raises(AppError, match="Could not load demo-qwen3"):
            chat(client)
        with pytest.raises(AppError, match="vote database .* cannot be used"):
            client.predict("Hello", api_name="/arena_battle")
        failed = next(row for row in client.predict(api_name="/health")["models"] if row["model"] == "demo-qwen3")
        assert failed["errors"] == 1 and "Could not load demo-qwen3" in failed["last_error"]  # the monitor saw it
        assert client.predict("chat", api_name="/guide")  # the rest of the app answers
    finally:
        demo.close()


def test_votes_survive_the_app_being_killed(tmp_path):
    port = free_port()
    command = [sys.executable, str(ROOT / "app.py"), "--demo", "--port", str(port), "--cache-dir", str(tmp_path)]

    def start():
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, QWEN_PLAYGROUND_CONFIG=""))
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                return process, Client(f"http://127.0.0.1:{port}/", verbose=False)
            except OSError:
                time.sleep(0.3)
        process.kill()
        raise RuntimeError("app did not start")

    process, client = start()
    try:
        battle = client.predict("Which is better?", api_name="/arena_battle")[2]
        client.predict(battle, "a", api_name="/arena_vote")
    finally:
        process.send_signal(signal.SIGKILL)  # no clean shutdown
        process.wait()
    process, client = start()
    try:
        table = client.predict(api_name="/leaderboard")
        assert sum(row[4] for row in table["data"]) == 2  # one vote, counted for both of its models
    finally:
        process.kill()
        process.wait()


def test_input_gradio_refuses_is_one_log_line_and_no_traceback(app, caplog, capfd):
    """Gradio's own checks (a value not among a Dropdown's choices, a history that is not messages, a wrong type)
    refuse with a readable message and one log line each; a person's bad input prints no traceback."""
    client, _ = app
    capfd.readouterr()
    caplog.set_level("INFO", logger="qwen_playground")
    bad_calls = [
        (("Write a sort",), {"language": "Klingon"}, "/code", "Input not accepted: Value: Klingon is not in the list of choices: ['Python'"),
        (("Hello",), {"history": "not a list of messages"}, "/chat", "Input not accepted"),
        (("Hello",), {"history": [{"role": "user", "content": 5}]}, "/chat", "Input not accepted"),
        (("Hello",), {"images": 7}, "/chat", "Input not accepted (📎 Images (models that see) or documents (PDF, Markdown, text) for this message): Input should be a valid list"),
    ]
    for args, kwargs, endpoint, message in bad_calls:
        with pytest.raises(AppError, match=re.escape(message)) as refused:
            client.predict(*args, **kwargs, api_name=endpoint)
        assert "Traceback" not in str(refused.value)
    refused_lines = [r for r in caplog.records if r.getMessage().startswith("refused: Input not accepted")]
    assert len(refused_lines) == len(bad_calls), [r.getMessage() for r in caplog.records]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in refused_lines)
    assert "Traceback" not in capfd.readouterr().err
    assert chat(client)[0][-1]["role"] == "assistant"  # and the app serves on


def test_an_app_fault_logs_its_full_traceback(app, monkeypatch, caplog):
    client, local = app
    chat(client, model="demo-qwen2.5")
    model = local.cache.get(CacheKey("demo-qwen2.5"), 0, None).model
    break_forward(monkeypatch, model, after=2, message="a bug in the engine")
    caplog.set_level("INFO", logger="qwen_playground")
    with pytest.raises(AppError, match="Generation failed: RuntimeError: a bug in the engine"):
        chat(client, model="demo-qwen2.5")
    faults = [r for r in caplog.records if r.exc_info is not None and r.name == "qwen_playground"]
    assert len(faults) == 1 and "demo-qwen2.5" in faults[0].getMessage()
    assert "RuntimeError: a bug in the engine" in caplog.text and "Traceback (most recent call last)" in caplog.text
