"""The OpenAI-compatible backend against a real server (`transformers serve`) and real failing peers."""

import math
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml
from openai.types.chat import ChatCompletionChunk
from PIL import Image

from qwen_playground.backends.openai_compat import to_openai_messages, token_steps
from qwen_playground.backends.router import Router
from qwen_playground.core.config import load_config
from qwen_playground.core.generation import Done, Error, Metrics, Request, SamplingParams, TextDelta, ThinkingDelta, TokenChoices
from qwen_playground.tasks.streaming import stream_all

from .conftest import free_port, start_transformers_serve

SAMPLING = SamplingParams(temperature=0.6, top_p=0.95, top_k=20, max_new_tokens=100)
HI = [{"role": "user", "content": "Hi"}]


def make_config(tmp_path, cache_dir, endpoints, models):
    path = tmp_path / "remote.yaml"
    path.write_text(yaml.safe_dump({"endpoints": endpoints, "models": models}))
    return load_config(path, demo=True, cache_dir=cache_dir, engine="transformers")


def remote_model(model_id, endpoint, remote_name="served", thinking=True):
    entry = {"id": model_id, "endpoint": endpoint, "remote_model": remote_name, "family": "qwen3" if thinking else "qwen2.5",
             "params_b": 0.01, "context_length": 4096, "presets": {"non_thinking": {"temperature": 0.7}}}
    if thinking:
        entry["presets"]["thinking"] = {"temperature": 0.6}
    return entry


def collect(backend, request):
    return list(backend.stream(request, threading.Event()))


def texts(events, kind):
    return "".join(e.text for e in events if isinstance(e, kind))


@pytest.fixture()
def served(tmp_path, cache_dir, served_qwen3):
    base_url, name = served_qwen3
    # transformers serve refuses top_k / min_p / repetition_penalty: the endpoint says not to send them
    config = make_config(tmp_path, cache_dir, [{"id": "serve", "base_url": base_url, "send_sampling_extras": False}],
                         [remote_model("served-qwen3", "serve", name)])
    return config, Router(config)


def test_a_server_that_rejects_extra_sampling_says_what_to_change(tmp_path, cache_dir, served_qwen3):
    base_url, name = served_qwen3
    config = make_config(tmp_path, cache_dir, [{"id": "serve", "base_url": base_url}], [remote_model("served-qwen3", "serve", name)])
    events = collect(Router(config), Request("served-qwen3", HI, SAMPLING))
    assert isinstance(events[-1], Error) and "answered 422" in events[-1].message and "send_sampling_extras: false" in events[-1].message


def test_streams_reasoning_and_answer_from_a_real_server(served):
    _, router = served
    events = collect(router, Request("served-qwen3", HI, SAMPLING, thinking=True))
    assert texts(events, ThinkingDelta).strip() == "Demo mode: tiny random parameters, so this thought is scripted."
    assert texts(events, TextDelta).strip() == "Hello from a little demo network! Install real weights for useful answers."
    metrics = next(e for e in events if isinstance(e, Metrics))
    assert metrics.thinking_tokens > 5 and metrics.answer_tokens > 5 and metrics.time_to_first_token_s is not None
    assert events[-1] == Done("stop")


def test_thinking_off_is_passed_as_chat_template_kwargs(served):
    _, router = served
    events = collect(router, Request("served-qwen3", HI, SAMPLING, thinking=False))
    assert texts(events, ThinkingDelta) == "" and texts(events, TextDelta).strip().startswith("Hello from a little demo")


def test_remote_and_local_side_by_side(served):
    _, router = served
    requests = [Request("served-qwen3", HI, SAMPLING, thinking=False), Request("demo-qwen2.5", HI, SAMPLING)]
    answers = {0: "", 1: ""}
    for index, event in stream_all(router, requests):
        if isinstance(event, TextDelta):
            answers[index] += event.text
    assert answers[0].strip().startswith("Hello from a little demo") and answers[1].startswith("Hi there, I am a demo")


def test_health(served, tmp_path, cache_dir):
    _, router = served
    assert router.endpoint_health()["serve"][0] is True
    down = make_config(tmp_path, cache_dir, [{"id": "down", "base_url": f"http://127.0.0.1:{free_port()}/v1"}], [remote_model("gone", "down")])
    ok, line = Router(down).endpoint_health()["down"]
    assert not ok and "Cannot reach down" in line
    from qwen_playground.service import Service
    from qwen_playground.ui.app import endpoints_markdown

    assert "❌ **down**" in endpoints_markdown(down, Service(Router(down), down.settings))


def test_refused_connection_is_a_clear_error(tmp_path, cache_dir):
    config = make_config(tmp_path, cache_dir, [{"id": "down", "base_url": f"http://127.0.0.1:{free_port()}/v1"}], [remote_model("gone", "down")])
    events = collect(Router(config), Request("gone", HI, SAMPLING))
    assert len(events) == 1 and isinstance(events[0], Error) and "Cannot reach down" in events[0].message and "running" in events[0].message


def test_a_server_that_never_answers_times_out(tmp_path, cache_dir):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts connections, never replies
    config = make_config(tmp_path, cache_dir, [{"id": "silent", "base_url": f"http://127.0.0.1:{listener.getsockname()[1]}/v1", "timeout_s": 1}],
                         [remote_model("silent-model", "silent")])
    started = time.time()
    events = collect(Router(config), Request("silent-model", HI, SAMPLING))
    listener.close()
    assert isinstance(events[-1], Error) and "timed out" in events[-1].message and time.time() - started < 10


@contextmanager
def refusing_server(status: int, message: bytes, requests: list | None = None):
    """A real HTTP peer that answers every POST with `status` and an OpenAI-style error; yields its base URL and
    keeps each request body in `requests`."""
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            if requests is not None:
                requests.append(self.rfile.read(int(self.headers["Content-Length"])))
            body = b'{"error": {"message": "' + message + b'"}}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()


@pytest.mark.parametrize("status, expected", [(401, "Check the API key in $STRICT_KEY"), (500, "answered 500")])
def test_http_errors_are_reported_with_what_to_do(tmp_path, cache_dir, status, expected, monkeypatch):
    monkeypatch.setenv("STRICT_KEY", "a-wrong-key")  # set, so the server is asked (an unset key is refused before: see the DashScope test)
    with refusing_server(status, b"nope") as base_url:
        config = make_config(tmp_path, cache_dir, [{"id": "strict", "base_url": base_url, "api_key_env": "STRICT_KEY"}],
                             [remote_model("strict-model", "strict")])
        events = collect(Router(config), Request("strict-model", HI, SAMPLING))
    assert isinstance(events[-1], Error) and expected in events[-1].message


def test_killing_the_server_mid_stream_keeps_the_partial_answer(tmp_path, cache_dir, random_model_dir):
    process, base_url = start_transformers_serve(random_model_dir)
    try:
        config = make_config(tmp_path, cache_dir, [{"id": "fragile", "base_url": base_url, "send_sampling_extras": False}],
                             [remote_model("fragile-model", "fragile", str(random_model_dir), thinking=False)])
        events = []
        for event in Router(config).stream(Request("fragile-model", HI, SamplingParams(temperature=0, max_new_tokens=3000)), threading.Event()):
            events.append(event)
            if isinstance(event, TextDelta) and len(events) == 3:
                process.kill()
    finally:
        process.kill()
        process.wait()
    assert texts(events, TextDelta)  # the partial answer arrived and is kept
    assert isinstance(events[-1], Error) and "fragile" in events[-1].message and "the partial answer is kept" in events[-1].message
    assert not any(isinstance(e, Done) for e in events)


def test_sampling_mapping(tmp_path, cache_dir):
    config = make_config(tmp_path, cache_dir, [{"id": "a", "base_url": "http://127.0.0.1:1/v1"},
                                               {"id": "b", "base_url": "http://127.0.0.1:1/v1", "send_sampling_extras": False}],
                         [remote_model("on-a", "a"), remote_model("on-b", "b", thinking=False)])
    router = Router(config)
    params = SamplingParams(temperature=0.6, top_p=0.95, top_k=20, min_p=0.05, repetition_penalty=1.1, max_new_tokens=77)
    a = router.remotes["a"].request_kwargs(config.registry.get("on-a"), Request("on-a", HI, params, thinking=False))
    assert a["temperature"] == 0.6 and a["top_p"] == 0.95 and a["max_tokens"] == 77 and a["model"] == "served"
    assert a["extra_body"] == {"chat_template_kwargs": {"enable_thinking": False}, "top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1}
    b = router.remotes["b"].request_kwargs(config.registry.get("on-b"), Request("on-b", HI, params))
    assert b["extra_body"] == {}


def test_dashscope_style_thinking_switch(tmp_path, cache_dir):
    config = make_config(tmp_path, cache_dir, [{"id": "ds", "base_url": "https://example.invalid/v1", "thinking_switch": "enable_thinking",
                                                "send_sampling_extras": False}], [remote_model("ds-model", "ds")])
    kwargs = Router(config).remotes["ds"].request_kwargs(config.registry.get("ds-model"), Request("ds-model", HI, SAMPLING, thinking=True))
    assert kwargs["extra_body"] == {"enable_thinking": True}


def test_vision_messages_become_image_url_parts(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (4, 4), "red").save(path)
    messages = to_openai_messages([{"role": "user", "content": [{"type": "image", "image": str(path)}, {"type": "text", "text": "What colour?"}]}])
    parts = messages[0]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1] == {"type": "text", "text": "What colour?"}


def test_config_errors_for_endpoints(tmp_path, cache_dir):
    from qwen_playground.core.registry import RegistryError

    with pytest.raises(RegistryError, match="unknown endpoint 'vllmm'.*Did you mean 'vllm'"):
        make_config(tmp_path, cache_dir, [{"id": "vllm", "base_url": "http://x:8000/v1"}], [remote_model("m", "vllmm")])
    with pytest.raises(RegistryError, match="base_url"):
        make_config(tmp_path, cache_dir, [{"id": "vllm", "base_url": "x:8000"}], [])
    with pytest.raises(RegistryError, match="needs remote_model"):
        make_config(tmp_path, cache_dir, [{"id": "vllm", "base_url": "http://x/v1"}], [{**remote_model("m", "vllm"), "remote_model": None}])


def test_the_presence_penalty_travels_as_openais_parameter(tmp_path, cache_dir):
    config = make_config(tmp_path, cache_dir, [{"id": "a", "base_url": "http://127.0.0.1:1/v1"}], [remote_model("on-a", "a")])
    backend, spec = Router(config).remotes["a"], config.registry.get("on-a")
    penalised = backend.request_kwargs(spec, Request("on-a", HI, SAMPLING.model_copy(update={"presence_penalty": 1.5})))
    assert penalised["presence_penalty"] == 1.5 and "presence_penalty" not in penalised["extra_body"]
    assert "presence_penalty" not in backend.request_kwargs(spec, Request("on-a", HI, SAMPLING))  # off: not sent at all


def test_a_server_that_refuses_the_presence_penalty_says_which_setting_to_turn_off(tmp_path, cache_dir):
    requests: list[bytes] = []
    with refusing_server(400, b"Unrecognized request argument supplied: presence_penalty", requests) as base_url:
        config = make_config(tmp_path, cache_dir, [{"id": "strict", "base_url": base_url, "send_sampling_extras": False}],
                             [remote_model("strict-model", "strict")])
        events = collect(Router(config), Request("strict-model", HI, SAMPLING.model_copy(update={"presence_penalty": 1.5})))
    assert [b'"presence_penalty": 1.5' in r or b'"presence_penalty":1.5' in r for r in requests] == [True]
    assert isinstance(events[-1], Error)
    assert "answered 400" in events[-1].message and "set Presence penalty to 0" in events[-1].message


def test_alternatives_ask_for_logprobs_and_a_server_without_them_gets_a_note(served):
    config, router = served
    request = Request("served-qwen3", HI, SAMPLING, thinking=False, alternatives=5)
    kwargs = router.remotes["serve"].request_kwargs(config.registry.get("served-qwen3"), request)
    assert kwargs["logprobs"] is True and kwargs["top_logprobs"] == 5
    events = collect(router, request)  # transformers serve ignores logprobs
    choices = next(e for e in events if isinstance(e, TokenChoices))
    assert choices.steps == () and "sent no token probabilities" in choices.note
    assert texts(events, TextDelta).strip().startswith("Hello from a little demo") and events[-1] == Done("stop")
    assert "logprobs" not in router.remotes["serve"].request_kwargs(config.registry.get("served-qwen3"), Request("served-qwen3", HI, SAMPLING))


def test_openai_logprobs_become_token_steps():
    chunk = ChatCompletionChunk.model_validate({
        "id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
        "choices": [{"index": 0, "delta": {"content": " blue"}, "logprobs": {"content": [
            {"token": " blue", "logprob": math.log(0.6), "bytes": None,
             "top_logprobs": [{"token": " blue", "logprob": math.log(0.6), "bytes": None}, {"token": " red", "logprob": math.log(0.3), "bytes": None}]}]}}]})
    (step,) = token_steps(chunk.choices[0].logprobs, thinking=True)
    assert step.token == " blue" and step.probability == pytest.approx(0.6) and step.thinking
    assert [(c.token, round(c.probability, 6)) for c in step.alternatives] == [(" blue", 0.6), (" red", 0.3)]
    assert token_steps(None, thinking=False) == []


@contextmanager
def llama_cpp_python_server(gguf):
    """llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`) on a GGUF file: it streams no usage."""
    import subprocess
    import sys

    import httpx

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
                                "--n_ctx", "1024"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise RuntimeError("llama_cpp.server did not start")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_server_that_reports_no_usage_has_tokens_counted_here_and_says_so(tmp_path, cache_dir, config_file, random_model_dir, served):
    """llama-cpp-python's server ignores `stream_options` and sends no usage: the prompt is counted with the family's
    tokenizer as its chat template lays it out, the answer as streamed, and the metrics line says so. A server that
    reports usage (transformers serve) is taken at its word."""
    from qwen_playground.backends import gguf_files
    from qwen_playground.backends.encoding import encode_chat
    from qwen_playground.backends.openai_compat import family_tokenizer

    local = load_config(config_file, demo=True, cache_dir=cache_dir)
    gguf = gguf_files.converted(local.registry.get("tiny-random"), random_model_dir, "BF16", cache_dir)  # BF16: llama.cpp repacks none
    with llama_cpp_python_server(gguf) as base_url:
        config = make_config(tmp_path, cache_dir, [{"id": "lcp", "base_url": base_url}], [remote_model("lcp-model", "lcp", "any", thinking=False)])
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name three rivers."}]
        events = collect(Router(config), Request("lcp-model", messages, SamplingParams(temperature=0, max_new_tokens=12)))
    metrics = next(e for e in events if isinstance(e, Metrics))
    family = config.registry.get("lcp-model").family
    tokenizer = family_tokenizer(family, cache_dir)
    assert metrics.prompt_tokens == len(encode_chat(tokenizer, messages)[1]) > 10
    assert metrics.answer_tokens == len(tokenizer(texts(events, TextDelta), add_special_tokens=False).input_ids) > 0
    assert metrics.counted_with == f"{family.label} tokenizer" == "Qwen2.5-Instruct tokenizer"
    assert "counted here with the Qwen2.5-Instruct tokenizer (the server reported no counts)" in metrics.summary()
    config, router = served
    metrics = next(e for e in collect(router, Request("served-qwen3", HI, SAMPLING)) if isinstance(e, Metrics))
    assert metrics.counted_with == "" and metrics.prompt_tokens > 0 and "counted here" not in metrics.summary()


@pytest.fixture(scope="module")
def served_qwen2_audio(cache_dir):
    """`transformers serve` with the tiny Qwen2-Audio demo model: a real server that reads OpenAI's input_audio."""
    from qwen_playground.backends import demo
    from qwen_playground.core.config import builtin_families

    folder = demo.ensure(builtin_families()["qwen2-audio"], cache_dir)
    process, base_url = start_transformers_serve(folder)
    yield base_url, str(folder)
    process.terminate()
    process.wait(timeout=30)


def test_a_recording_goes_to_a_server_as_input_audio_and_is_answered(tmp_path, cache_dir, served_qwen2_audio):
    import wave

    import numpy as np

    from qwen_playground.tasks import audio

    base_url, name = served_qwen2_audio
    config = make_config(tmp_path, cache_dir, [{"id": "audio-server", "base_url": base_url, "send_sampling_extras": False}],
                         [{"id": "remote-audio", "endpoint": "audio-server", "remote_model": name, "family": "qwen2-audio", "params_b": 8.4,
                           "context_length": 8192}])
    with wave.open(str(tmp_path / "tone.wav"), "wb") as out:
        out.setnchannels(2), out.setsampwidth(2), out.setframerate(44100)
        out.writeframes((np.sin(np.arange(2 * 44100) / 7) * 9000).astype("<i2").tobytes())
    job = audio.prepare_question(config, tmp_path / "tone.wav", "What is it?", "", "remote-audio")
    kwargs = Router(config).remotes["audio-server"].request_kwargs(job.spec, job.request)
    [clip, question] = kwargs["messages"][-1]["content"]
    assert clip["type"] == "input_audio" and clip["input_audio"]["format"] == "wav" and question == {"type": "text", "text": "What is it?"}
    view = audio.transcribe(Router(config), job)
    assert view.error is None and view.conversation[-1].turn.answer == \
        "Hello from the Qwen2-Audio demo model: install real weights to hear about your recordings!"


def test_a_begun_answer_is_continued_by_the_server(tmp_path, cache_dir):
    config = make_config(tmp_path, cache_dir, [{"id": "asr-server", "base_url": "http://127.0.0.1:9/v1"}],
                         [{"id": "remote-asr", "endpoint": "asr-server", "remote_model": "Qwen/Qwen3-ASR-1.7B", "family": "qwen3-asr",
                           "params_b": 2.0, "context_length": 65536}])
    request = Request("remote-asr", [{"role": "user", "content": "…"}, {"role": "assistant", "content": "language French<asr_text>"}])
    kwargs = Router(config).remotes["asr-server"].request_kwargs(config.registry.get("remote-asr"), request)
    assert kwargs["extra_body"]["continue_final_message"] is True and kwargs["extra_body"]["add_generation_prompt"] is False
    plain = Router(config).remotes["asr-server"].request_kwargs(config.registry.get("remote-asr"), Request("remote-asr", HI))
    assert "continue_final_message" not in plain["extra_body"]


def test_the_tool_loop_through_a_real_server(tmp_path, cache_dir):
    """`transformers serve` with the tool-calling demo: the tools go as OpenAI's `tools`, the call comes back (parsed by
    the server into tool_calls, or as text), is run here, and its result goes back for the answer."""
    from qwen_playground.backends import demo
    from qwen_playground.core.config import builtin_families
    from qwen_playground.tasks import tools as task

    folder = demo.ensure(builtin_families()["qwen3-tools-demo"], cache_dir)
    process, base_url = start_transformers_serve(folder)
    try:
        config = make_config(tmp_path, cache_dir, [{"id": "tools-server", "base_url": base_url, "send_sampling_extras": False}],
                             [{"id": "remote-tools", "endpoint": "tools-server", "remote_model": str(folder), "family": "qwen3-tools-demo",
                               "params_b": 0.01, "context_length": 4096,
                               "presets": {"thinking": {"temperature": 0.0}, "non_thinking": {"temperature": 0.0, "max_new_tokens": 64}}}])
        job = task.prepare(config, "What is 6 times 7?", ["calculator"], "remote-tools")
        assert Router(config).remotes["tools-server"].request_kwargs(job.spec, job.request)["tools"][0]["function"]["name"] == "calculator"
        final = list(task.run(Router(config), job))[-1]
        assert final.error is None and [c.name for c in final.steps[0].calls] == ["calculator"] and final.steps[0].outcomes[0].content == "42"
        assert final.steps[-1].turn.answer == "6 times 7 is 42: the calculator worked it out (a trained demo network)."
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_qwen37_through_dashscope_needs_a_key_and_says_so_without_one(tmp_path, cache_dir, monkeypatch):
    """The built-in DashScope rows: without DASHSCOPE_API_KEY the picker's note and the send both say what to set, no
    request leaves the machine, and the server is not asked for its health (nobody can use it yet)."""
    from qwen_playground.service import Service
    from qwen_playground.ui.app import endpoints_markdown
    from qwen_playground.ui.common import described

    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    config = load_config(demo=True, cache_dir=cache_dir, engine="transformers")
    assert "qwen3.7-max" in [m.id for m in config.registry.choices("chat")]  # offered, as an alternative
    assert "set DASHSCOPE_API_KEY" in described(config.registry, "qwen3.7-max")
    router = Router(config)
    events = collect(router, Request("qwen3.7-flash", HI, SAMPLING))
    assert isinstance(events[-1], Error) and "needs an API key: set DASHSCOPE_API_KEY" in events[-1].message and len(events) == 1
    assert "dashscope" not in router.endpoint_health()
    assert "⚪ **dashscope**" in endpoints_markdown(config, Service(router, config.settings))
    assert not load_config(cache_dir=cache_dir).registry.missing_key(config.registry.get("qwen3.5-9b"))  # a local model needs none
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-test")
    assert config.registry.missing_key(config.registry.get("qwen3.7-max")) is None
    request = Request("qwen3.7-max", HI, SAMPLING, thinking=True)
    kwargs = Router(config).remotes["dashscope"].request_kwargs(config.registry.get("qwen3.7-max"), request)
    assert kwargs["model"] == "qwen3.7-max" and kwargs["extra_body"] == {"enable_thinking": True}  # DashScope's own switch
    # a user's own `dashscope` (another region) replaces the built-in one
    mine = make_config(tmp_path, cache_dir, [{"id": "dashscope", "base_url": "https://dashscope.aliyuncs.com/compatible-mode/v1",
                                              "api_key_env": "DASHSCOPE_API_KEY", "thinking_switch": "enable_thinking"}], [])
    assert mine.registry.endpoints["dashscope"].base_url.startswith("https://dashscope.aliyuncs.com")
