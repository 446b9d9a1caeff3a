"""ZeroGPU Spaces: `spaces.GPU` only there, durations from the request, a GPU refused or taken back keeps the conversation."""

import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from gradio_client.exceptions import AppError
from spaces.zero.gradio import error as zero_gpu_error

from qwen_playground.backends.router import Router
from qwen_playground.backends.zerogpu import gpu_seconds, on_lent_gpu, zero_gpu_refusal
from qwen_playground.core.config import load_config
from qwen_playground.core.generation import Done, Request, SamplingParams

from .conftest import free_port, running_app

ROOT = Path(__file__).resolve().parent.parent
ON_ZERO_GPU = {"SPACES_ZERO_GPU": "true", "SPACES_ZERO_DEVICE_API_URL": "http://127.0.0.1:9"}  # as a ZeroGPU Space sets them


def in_a_fresh_process(code: str, env: dict, tmp_path: Path) -> dict:
    """Run `code` (which prints one JSON line last) in a new interpreter: `spaces` reads its environment once, at import."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SPACES_", "ZEROGPU"))}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env={**clean, **env, "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


SPACE_CHECK = """
    import json
    from qwen_playground.backends.router import Router
    from qwen_playground.core import availability
    from qwen_playground.core.config import load_config
    from qwen_playground.core.devices import accelerator_memory_bytes, pick_device

    router = Router(load_config(None, demo=True, cache_dir=r"{cache}"))
    availability.available = lambda spec: True  # a Space can download: the real models' routes, ordered for this machine
    routes = load_config(None, cache_dir=r"{cache}").registry.routes
    print(json.dumps({{"device": pick_device(), "memory": accelerator_memory_bytes("cuda"), "local": router.local.device,
                      "wrapped": router.local_stream != router.local.stream,
                      "spaces_gpu": hasattr(getattr(router.local_stream, "gpu_function", None), "zerogpu"),
                      "chat": routes["chat"].default, "vision": routes["vision"].default}}))
"""


def test_spaces_gpu_wraps_local_generation_only_on_zero_gpu_and_picks_the_best_models_that_fit(tmp_path):
    on_zero = in_a_fresh_process(SPACE_CHECK.format(cache=tmp_path), ON_ZERO_GPU, tmp_path)
    assert on_zero["device"] == "cuda" and on_zero["local"] == "cuda"  # models go on `cuda`, as ZeroGPU emulates it here
    assert on_zero["memory"] == 74625056768  # the lent GPU's size, from the package (a 70 GB H200 slice)
    assert on_zero["wrapped"] and on_zero["spaces_gpu"]  # local requests run under spaces.GPU
    assert (on_zero["chat"], on_zero["vision"]) == ("qwen3.5-9b", "qwen3-vl-8b-instruct")  # the best that fits

    elsewhere = in_a_fresh_process(SPACE_CHECK.format(cache=tmp_path), {}, tmp_path)  # this machine: a CPU, as a CPU Space
    assert elsewhere["device"] == "cpu" and elsewhere["memory"] is None
    assert not elsewhere["wrapped"] and not elsewhere["spaces_gpu"]
    assert (elsewhere["chat"], elsewhere["vision"]) == ("qwen3.5-0.8b", "qwen3-vl-2b-instruct")  # small models on 2 vCPU


def test_the_gpu_time_asked_for_grows_with_the_model_and_the_answer_and_is_capped():
    registry = load_config(None, demo=True).registry
    ask = lambda model, tokens, cap=120: gpu_seconds(registry, Request(model, [], SamplingParams(max_new_tokens=tokens)), cap)  # noqa: E731
    assert ask("qwen3.5-0.8b", 256) < ask("qwen3.5-9b", 256) < ask("qwen3.5-9b", 1024) <= 120
    assert ask("qwen3.5-9b", 32768) == 120 and ask("qwen3.5-9b", 32768, cap=300) == 300


def test_only_zero_gpus_own_errors_become_refusals():
    aborted = zero_gpu_refusal(zero_gpu_error("ZeroGPU worker error", "GPU task aborted"), 90)
    assert "taken back" in aborted and "90 s" in aborted and "what was written stays" in aborted
    quota = zero_gpu_refusal(zero_gpu_error("ZeroGPU quota exceeded", "You have exceeded your free ZeroGPU quota "
                                            "(120s requested vs. 30s left). Try again in 0:04:00."), 120)
    assert quota.startswith("No GPU for this answer: You have exceeded your free ZeroGPU quota") and "conversation stays" in quota
    assert zero_gpu_refusal(zero_gpu_error("ZeroGPU quota exceeded", "Space app has reached its GPU limit"), 60) == (
        "No GPU for this answer: Space app has reached its GPU limit. Your conversation stays as it was; send again later.")
    assert zero_gpu_refusal(RuntimeError("a bug"), 60) is None


def test_what_crosses_to_the_gpu_worker_pickles(backend):
    """ZeroGPU pickles each request to its worker and every event back."""
    request = Request("demo-qwen3", [{"role": "user", "content": "Hello"}], SamplingParams(max_new_tokens=8), thinking=True, alternatives=3)
    assert pickle.loads(pickle.dumps(request)) == request
    events = list(backend.stream(request, threading.Event()))
    assert isinstance(events[-1], Done)
    assert [pickle.loads(pickle.dumps(e)) for e in events] == events


class FakeZeroGPU:
    """`spaces.GPU` as it behaves on a Space, without one: it asks for the duration, runs the generator, and can
    refuse the GPU before the first event or take it back after `abort_after` events (with ZeroGPU's own errors)."""

    def __init__(self):
        self.refuse = self.abort_after = None
        self.durations: list[int] = []

    def __call__(self, duration):
        def decorate(task):
            def on_gpu(request):
                self.durations.append(duration(request))
                if self.refuse:
                    raise zero_gpu_error("ZeroGPU quota exceeded", self.refuse)
                for n, event in enumerate(task(request)):
                    if self.abort_after is not None and n == self.abort_after:
                        raise zero_gpu_error("ZeroGPU worker error", "GPU task aborted")
                    yield event
            return on_gpu
        return decorate


@pytest.fixture(scope="module")
def zero_gpu_app(demo_config):
    from qwen_playground.backends.local import LocalBackend

    local = LocalBackend(demo_config.registry, demo_config.settings)
    router, gpu = Router(demo_config, local), FakeZeroGPU()
    router.local_stream = on_lent_gpu(local, demo_config.registry, 120, gpu=gpu)
    with running_app(demo_config, backend=router) as client:
        yield client, gpu


def chat(client, text, history, tokens=48):
    return client.submit(text, history, "demo-qwen2.5", "", False, 0.7, 0.8, 20, 0.0, 1.05, 0.0, tokens, api_name="/chat")


def test_a_gpu_taken_back_mid_answer_keeps_the_conversation_and_the_next_answer_works(zero_gpu_app, caplog):
    client, gpu = zero_gpu_app
    caplog.set_level("INFO", logger="qwen_playground")
    earlier, _ = chat(client, "Hello", []).result()  # a conversation so far
    assert gpu.durations and gpu.durations[-1] == gpu_seconds(load_config(None, demo=True).registry,
                                                             Request("demo-qwen2.5", [], SamplingParams(max_new_tokens=48)), 120)

    gpu.abort_after = 6
    job = chat(client, "Tell me more", earlier)
    with pytest.raises(AppError, match="The GPU lent for this answer was taken back"):
        job.result()
    shown = [out[0] for out in job.outputs() if out[0]][-1]
    assert shown[:len(earlier)] == earlier  # the conversation stays
    assert shown[len(earlier)]["content"][0]["text"] == "Tell me more" and shown[-1]["role"] == "assistant"  # the partial answer too
    assert sum(r.getMessage().startswith("refused: The GPU lent") for r in caplog.records) == 1
    assert not [r for r in caplog.records if r.exc_info]  # a refusal, not a fault

    gpu.abort_after, gpu.refuse = None, "You have exceeded your free ZeroGPU quota (120s requested vs. 30s left). Try again in 0:04:00."
    with pytest.raises(AppError, match=r"No GPU for this answer: You have exceeded your free ZeroGPU quota .* Try again in 0:04:00"):
        chat(client, "And again", earlier).result()

    gpu.refuse = None
    after, _ = chat(client, "Tell me more", earlier).result()
    assert after[:len(earlier)] == earlier and after[-1]["role"] == "assistant"


class FakeDeviceAPI(BaseHTTPRequestHandler):
    """ZeroGPU's device API as the `spaces` package speaks to it, refusing every GPU: the visitor's quota is spent (30 s
    left, 4 minutes to wait)."""

    calls: list[tuple[str, dict]] = []

    def do_POST(self):
        url = urlparse(self.path)
        self.calls.append((url.path, {k: v[0] for k, v in parse_qs(url.query).items()}))
        if url.path == "/schedule":
            body = json.dumps({"left": 30, "wait": 240}).encode()
            self.send_response(429)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:  # /startup-report, /release
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *args):
        pass


def test_the_app_on_zero_gpu_registers_its_gpu_function_and_a_spent_quota_keeps_the_conversation(tmp_path):
    """`python app.py` with a ZeroGPU Space's environment and the real `spaces` package, against a stand-in for the
    device API: the app reports its spaces.GPU function at launch, asks for the duration it estimated, and a
    refused GPU is a message the visitor can act on."""
    from gradio_client import Client

    api = ThreadingHTTPServer(("127.0.0.1", 0), FakeDeviceAPI)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SPACES_")}, "SPACES_ZERO_GPU": "true", "HF_HUB_OFFLINE": "1",
           "SPACES_ZERO_DEVICE_API_URL": f"http://127.0.0.1:{api.server_address[1]}", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "server.log"
    app = subprocess.Popen([sys.executable, "app.py", "--demo", "--port", str(port), "--cache-dir", str(tmp_path / "cache")], cwd=ROOT,
                           env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while "Qwen Playground at" not in log.read_text() and app.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "Qwen Playground at" in log.read_text(), log.read_text()[-3000:]
        assert "/startup-report" in [path for path, _ in FakeDeviceAPI.calls]  # ZeroGPU knows the app has a GPU function
        assert "local models: ZeroGPU: each answer runs on a GPU lent for it (at most 120 s)" in log.read_text()
        assert "cuda, transformers" in log.read_text()

        client = Client(f"http://127.0.0.1:{port}/", verbose=False, headers={"x-ip-token": "visitor-token"})  # who asks, as Spaces sends it
        history = [{"role": role, "content": [{"type": "text", "text": text}]}
                   for role, text in (("user", "Hi"), ("assistant", "Hello! How can I help?"))]
        job = client.submit("Tell me more", history, "demo-qwen2.5", "", False, 0.7, 0.8, 20, 0.0, 1.05, 0.0, 300, api_name="/chat")
        with pytest.raises(AppError, match=r"No GPU for this answer: You have exceeded your ZeroGPU quota \(\d+s requested vs. 30s "
                                           r"left\). Try again in 0:04:00.*conversation stays"):
            job.result()
        shown, message_box = job.outputs()[-1]  # nothing was written: the conversation as it was, the message back to resend
        assert [m["content"][0]["text"] for m in shown] == ["Hi", "Hello! How can I help?"] and message_box == "Tell me more"
        schedule = [query for path, query in FakeDeviceAPI.calls if path == "/schedule"]
        registry = load_config(None, demo=True).registry
        assert schedule[-1]["token"] == "visitor-token"  # the visitor's quota, not the Space's: their request reached the GPU call
        assert int(schedule[-1]["durationSeconds"]) == gpu_seconds(registry, Request("demo-qwen2.5", [], SamplingParams(max_new_tokens=300)), 120)
        assert "Traceback" not in log.read_text() and log.read_text().count("refused: No GPU for this answer") == 1
    finally:
        app.terminate()
        app.wait(timeout=30)
        api.shutdown()
