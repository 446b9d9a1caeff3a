"""Shared fixtures: offline Hub, tiny models built once per session, an app launched in-process."""

from __future__ import annotations

import os
from contextlib import contextmanager

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach for the network
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from pathlib import Path

import pytest
import yaml

from qwen_playground.backends import demo
from qwen_playground.backends.local import LocalBackend
from qwen_playground.core.config import builtin_families, load_config


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("qp-cache")


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory) -> Path:
    """A fully random tiny Qwen2.5: greedy output is noise that runs to max_new_tokens."""
    return demo.build(builtin_families()["qwen2.5"], tmp_path_factory.mktemp("tiny-random"), scripted=False)


@pytest.fixture(scope="session")
def config_file(tmp_path_factory, random_model_dir) -> Path:
    """A user's config that adds a local-folder model and routes chat to it."""
    folder = tmp_path_factory.mktemp("config")
    (folder / "broken").mkdir()
    (folder / "broken" / "config.json").write_text("{}")  # looks like a model folder, fails to load
    path = folder / "playground.yaml"
    path.write_text(yaml.safe_dump({
        "models": [
            {"id": "tiny-random", "path": str(random_model_dir), "family": "qwen2.5", "params_b": 0.02,
             "context_length": 4096, "presets": {"non_thinking": {"temperature": 0, "max_new_tokens": 64}}},
            {"id": "broken", "path": str(folder / "broken"), "family": "qwen2.5", "params_b": 0.01,
             "context_length": 512, "presets": {"non_thinking": {}}},
        ],
        "routes": {"chat": {"default": "tiny-random", "alternatives": ["broken"]}},
    }))
    return path


@pytest.fixture(scope="session")
def demo_config(cache_dir, config_file):
    """Demo mode plus the user's tiny-random model, as `python app.py --demo --config ... --engine transformers` gives
    (the llama.cpp engine has its own tests: test_llamacpp.py)."""
    return load_config(config_file, demo=True, cache_dir=cache_dir, max_input_tokens=512, allow_code_execution=True, engine="transformers")


@pytest.fixture(scope="session")
def backend(demo_config) -> LocalBackend:
    return LocalBackend(demo_config.registry, demo_config.settings)


@contextmanager
def running_app(config, local: LocalBackend | None = None, backend=None):
    """The whole app for `config` launched in-process (over `backend`, or a router over `local`, when given); yields a
    gradio_client.Client."""
    from gradio_client import Client

    from qwen_playground.backends.router import Router
    from qwen_playground.ui import build_demo, launch_options

    demo = build_demo(config, backend or Router(config, local))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, ssr_mode=False, **launch_options())  # as users get it
    try:
        yield Client(url, verbose=False)
    finally:
        demo.close()


@pytest.fixture(scope="session")
def app(demo_config):
    """The whole app launched in-process: (gradio_client.Client, its LocalBackend)."""
    local = LocalBackend(demo_config.registry, demo_config.settings)
    with running_app(demo_config, local) as client:
        yield client, local


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_transformers_serve(model_dir: Path):
    """`transformers serve` on 127.0.0.1, serving one local model folder; returns (process, base_url)."""
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    cli = Path(sys.executable).parent / "transformers"
    process = subprocess.Popen([str(cli), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process, f"http://127.0.0.1:{port}/v1"
        except httpx.HTTPError:
            time.sleep(0.5)
        if process.poll() is not None:
            raise RuntimeError("transformers serve exited early")
    process.kill()
    raise RuntimeError("transformers serve did not become healthy in 120 s")


@pytest.fixture(scope="session")
def served_qwen3(cache_dir):
    """A real OpenAI-compatible server: `transformers serve` with the tiny Qwen3 demo model."""
    folder = demo.ensure(builtin_families()["qwen3"], cache_dir)
    process, base_url = start_transformers_serve(folder)
    yield base_url, str(folder)  # the server only answers to its model's path
    process.terminate()
    process.wait(timeout=30)


def break_forward(monkeypatch, model, after: int, message: str = "device fell over"):
    """Make `model.forward` raise RuntimeError(message) after `after` calls (generation failing mid-stream);
    returns the real forward, to put back."""
    real_forward, calls = model.forward, []

    def failing_forward(*args, **kwargs):
        calls.append(1)
        if len(calls) > after:
            raise RuntimeError(message)
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", failing_forward)
    return real_forward


def stop_at_first_text(backend, request, steps: list) -> tuple[list, int]:
    """Stream `request` and press Stop at the first answer text: (every event, how many decode `steps` had run by then)."""
    import threading

    from qwen_playground.core.generation import TextDelta

    cancel, at_stop, events = threading.Event(), None, []
    for event in backend.stream(request, cancel):
        events.append(event)
        if isinstance(event, TextDelta) and at_stop is None:
            at_stop = len(steps)
            cancel.set()
    return events, at_stop
