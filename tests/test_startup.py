"""The page comes first: torch and transformers load after it is up, and a request that arrives before the engine is
ready waits with a note and is answered."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from qwen_playground.backends import engines
from qwen_playground.backends.router import Router
from qwen_playground.backends.starting import STARTING, StartingBackend
from qwen_playground.core.generation import Done, Error, Progress, Request, SamplingParams, TextDelta
from qwen_playground.ui import build_demo
from tests.test_app import bubbles

ROOT = Path(__file__).resolve().parent.parent
PAGE_FIRST = """
import sys, urllib.request

from qwen_playground.core.config import load_config
from qwen_playground.ui import build_demo
from tests.test_app import bubbles

if __name__ == "__main__":
    demo = build_demo(load_config(None, demo=True, cache_dir=sys.argv[1], engine="transformers"))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, ssr_mode=False)
    page = urllib.request.urlopen(url, timeout=30).read().decode()
    config = urllib.request.urlopen(url + "config", timeout=30).read().decode()
    print("page" if "Qwen Playground" in page + config else "no page", *(name in sys.modules for name in ("torch", "transformers")))
    print("status:", demo.service.status())
    demo.service.wait_started(0)  # the engine starts loading now, as app.py starts it once the page is up
    from gradio_client import Client

    # at once: this request's checks import transformers while the engine's thread is importing it (core/ml_stack.py)
    history, _ = Client(url, verbose=False).predict("Hi", [], "demo-qwen2.5", "", False, 0.0, 1.0, 0, 0.0, 1.0, 0.0, 16, api_name="/chat")
    print("answer:", history[1]["content"][0]["text"][:27])
    print("started:", "torch" in sys.modules, demo.service.status())
    demo.close()
"""


def test_the_page_answers_before_torch_is_imported(tmp_path):
    script = tmp_path / "page_first.py"
    script.write_text(PAGE_FIRST)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr[-2000:]
    assert lines[0] == "page False False"  # served, with neither torch nor transformers imported
    assert lines[1] == f"status: {STARTING}"
    assert lines[2] == "answer: Hi there, I am a demo model"  # a request sent while the engine loads is answered
    assert lines[3].startswith("started: True Loaded: demo-qwen2.5")  # and the engine says what runs where


def slow_start(config, gate: threading.Event) -> StartingBackend:
    """The app's starting router, held back until `gate` opens (torch on a slow machine)."""
    def build():
        gate.wait(120)
        return Router(config)

    return StartingBackend(build, engines.capabilities("cpu", config.settings.engine))


def test_a_request_before_the_engine_is_ready_waits_and_is_answered(demo_config):
    from gradio_client import Client

    gate = threading.Event()
    demo = build_demo(demo_config, slow_start(demo_config, gate))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        job = Client(url, verbose=False).submit("Hi", [], "demo-qwen2.5", "", False, 0.0, 1.0, 0, 0.0, 1.0, 0.0, 16, api_name="/chat")
        deadline = time.monotonic() + 60
        while not any(STARTING in str(output) for output in job.outputs()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(STARTING in str(output) for output in job.outputs())  # the person sees why nothing comes yet
        assert not job.done()
        gate.set()
        history, _ = job.result(timeout=120)
        assert bubbles(history)[1][1].startswith("Hi there, I am a demo model")  # answered, not refused
        assert demo.service.status().startswith("Loaded: demo-qwen2.5")
    finally:
        gate.set()
        demo.close()


def test_stop_while_the_engine_starts_and_a_failed_start_says_why(demo_config):
    gate = threading.Event()
    waiting = slow_start(demo_config, gate)
    cancel = threading.Event()
    request = Request("demo-qwen2.5", [{"role": "user", "content": "Hi"}], SamplingParams(temperature=0, max_new_tokens=8))
    events = []
    for event in waiting.stream(request, cancel):
        events.append(event)
        cancel.set()  # Stop pressed while the note shows
    assert events == [Progress(STARTING), Done("cancelled")]
    gate.set()
    assert waiting.wait_started(120)
    assert [type(e) for e in waiting.stream(request, threading.Event())][-1] is Done  # started: the next request is answered

    def broken():
        raise OSError("libtorch_cpu.so: cannot open shared object file")

    failed = StartingBackend(broken, engines.capabilities("cpu", "transformers"))
    events = list(failed.stream(request, threading.Event()))
    assert isinstance(events[-1], Error) and "libtorch_cpu.so" in events[-1].message and "restart the app" in events[-1].message
    assert "libtorch_cpu.so" in failed.status() and failed.capabilities().device == "cpu"  # the page stays up and says why
    assert not any(isinstance(e, TextDelta) for e in events)
