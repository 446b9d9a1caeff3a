"""A fresh machine's first answer: the opening model's files are made by helper processes beside the page's start
(backends/prepare.py), and while llama.cpp converts the weights, transformers answers and says so."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from qwen_playground.backends import download, engines, gguf_files, prepare
from qwen_playground.backends.local import LLAMA_CPP, TRANSFORMERS, CacheKey, LocalBackend
from qwen_playground.core.config import load_config
from qwen_playground.core.generation import Metrics, Progress, Request, SamplingParams, TextDelta

ROOT = Path(__file__).resolve().parent.parent
needs_llama_cpp = pytest.mark.skipif(engines.llama_cpp_problem() is not None, reason="llama-cpp-python is not usable here")


def answer(backend: LocalBackend, request: Request) -> tuple[list, Metrics, str]:
    events = list(backend.stream(request, threading.Event()))
    return events, next(e for e in events if isinstance(e, Metrics)), "".join(e.text for e in events if isinstance(e, TextDelta))


@needs_llama_cpp
def test_while_llamacpp_converts_the_weights_transformers_answers_then_llamacpp_takes_over(tmp_path):
    config = load_config(None, demo=True, cache_dir=tmp_path, dtype="float32")  # the machine's engine: llama.cpp on this CPU
    backend = LocalBackend(config.registry, config.settings)
    request = Request("demo-qwen3", [{"role": "user", "content": "Hi"}], SamplingParams(temperature=0, max_new_tokens=24))

    events, first, said = answer(backend, request)
    assert first.engine == TRANSFORMERS and first.preferred_engine == LLAMA_CPP
    assert "on transformers (llama.cpp was still converting the weights)" in first.summary()
    assert any(isinstance(e, Progress) and "transformers answers meanwhile" in e.message for e in events)

    deadline = time.monotonic() + 300  # the conversion goes on in the background, then llama.cpp loads the file
    while CacheKey("demo-qwen3", "full", LLAMA_CPP) not in backend.cache.sizes():
        assert time.monotonic() < deadline, "llama.cpp never loaded the converted weights"
        time.sleep(0.5)
    _, later, said_later = answer(backend, request)
    assert later.engine == LLAMA_CPP and not later.preferred_engine
    assert said_later == said  # the scripted demo says the same on either engine


@needs_llama_cpp
def test_an_engine_set_by_hand_is_never_stood_in_for(tmp_path):
    config = load_config(None, demo=True, cache_dir=tmp_path, dtype="float32", engine="llama.cpp")
    backend = LocalBackend(config.registry, config.settings)
    _, metrics, _ = answer(backend, Request("demo-qwen3", [{"role": "user", "content": "Hi"}], SamplingParams(max_new_tokens=8)))
    assert metrics.engine == LLAMA_CPP and not metrics.preferred_engine


def test_the_opening_models_files_are_made_by_helpers_once(tmp_path):
    config = load_config(None, demo=True, cache_dir=tmp_path)
    spec = config.registry.choices("chat")[0]
    helper = prepare.start(config)
    assert helper is not None and helper.wait(timeout=600) == 0
    assert download.local_folder(spec, tmp_path) is not None  # the demo model, built
    if engines.llama_cpp_problem() is None:
        assert not gguf_files.converts_first(spec, "full", tmp_path)  # and converted for llama.cpp
    assert prepare.start(config) is None  # all made: a returning user's start starts no helper


CHILD = "from qwen_playground.core.processes import end_with_parent; import time; end_with_parent(0.1); time.sleep(120)"
PARENT = ("import subprocess, sys, time; from qwen_playground.core.processes import child_env; "
          "child = subprocess.Popen([sys.executable, '-c', sys.argv[1]], env=child_env()); print(child.pid, flush=True); time.sleep(120)")


def test_a_helper_ends_when_the_app_is_killed(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD], stdout=subprocess.PIPE, text=True, env=env)
    child = int(parent.stdout.readline())
    parent.kill()  # no clean-up runs: as when the app is stopped with a signal
    parent.wait()
    deadline = time.monotonic() + 30
    while _running(child):
        assert time.monotonic() < deadline, "the helper outlived the app"
        time.sleep(0.1)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False
