"""Rolling figures and health: the Monitor's arithmetic, and /health through the running app."""

import re

import pytest
from gradio_client.exceptions import AppError

from qwen_playground.core.generation import Metrics
from qwen_playground.service.monitor import Monitor, p95
from qwen_playground.ui.monitor_tab import health_markdown


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def metrics(ttft, speed):
    return Metrics(prompt_tokens=5, answer_tokens=10, thinking_tokens=0, time_to_first_token_s=ttft, tokens_per_s=speed, thinking_s=None, total_s=1)


def test_figures_per_model_over_a_sliding_window():
    clock = Clock()
    monitor = Monitor(window_s=60, clock=clock)
    monitor.record("old", metrics(9.0, 1.0))
    clock.now += 120  # "old" falls out of the window
    for ttft in (0.1, 0.2, 0.3, 0.4):
        monitor.record("a", metrics(ttft, 10.0))
    monitor.record("a", error="boom")
    [row] = monitor.per_model({"a": 2**30})
    assert row["model"] == "a" and row["requests"] == 5 and row["errors"] == 1 and row["error_rate"] == 0.2
    assert row["ttft_p50_s"] == pytest.approx(0.25) and row["ttft_p95_s"] == 0.4 and row["tokens_per_s"] == 10.0
    assert row["weights_gib"] == 1.0 and row["last_error"] == "boom"
    assert p95([1.0]) == 1.0 and p95(list(range(1, 101))) == 95


def test_health_is_degraded_with_readable_reasons():
    clock = Clock()
    monitor = Monitor(clock=clock)
    assert monitor.health_report()["status"] == "healthy"
    for _ in range(3):
        monitor.record("flaky", error="Could not load flaky")
    monitor.record("slow", metrics(30.0, 1.0))
    monitor.record("slow", metrics(31.0, 1.0))
    monitor.record("slow", metrics(32.0, 1.0))
    verdict = monitor.health_report({"vllm": (False, "connection refused")})
    assert verdict["status"] == "degraded"
    text = " | ".join(verdict["reasons"])
    assert "flaky: 3 of 3 requests failed" in text and "Could not load flaky" in text
    assert "slow: slow first tokens" in text and "endpoint vllm: connection refused" in text


def test_an_engine_that_started_over_recently_is_a_reason_and_every_engine_is_described():
    clock = Clock()
    monitor = Monitor(window_s=600, clock=clock)
    llama = {"slots": 8, "busy": 3, "peak_busy": 8, "waiting": 2, "cache_tokens": 16384, "cached_tokens": 1200, "steps": 900,
             "prompt_tokens_reused": 3000, "prompt_tokens_evaluated": 1000, "guessed": 400, "guesses_kept": 250,
             "restarts": 1, "last_failure": "RuntimeError: llama_decode returned -3", "last_failure_at": clock.now - 30}
    batch = {"busy": 0, "peak_busy": 4, "restarts": 0, "last_failure": None, "last_failure_at": None}
    verdict = monitor.health_report(engines={"qwen3-0.6b (full, llama.cpp)": llama, "qwen3-4b (full, transformers)": batch})
    assert verdict["status"] == "degraded" and verdict["engines"]["qwen3-0.6b (full, llama.cpp)"] == llama
    assert verdict["reasons"] == ["qwen3-0.6b (full, llama.cpp): the engine failed and started over (1 time(s) since it loaded; "
                                  "last: RuntimeError: llama_decode returned -3)"]
    text = health_markdown(verdict)
    assert ("qwen3-0.6b (full, llama.cpp): 3 of 8 slots busy (most at once: 8) · 2 waiting · cache 1,200 of 16,384 tokens · "
            "75% of prompt tokens from the cache · drafts: 62% of 400 guesses kept · 1 restart "
            "(last: RuntimeError: llama_decode returned -3)") in text
    assert "qwen3-4b (full, transformers): 0 answering (most at once: 4) · 0 restarts" in text
    clock.now += 600  # the failure has left the window: healthy again, the count stays
    assert monitor.health_report(engines={"m": llama})["status"] == "healthy"


def test_health_endpoint_reports_requests_and_failures(app):
    client, _ = app
    client.predict("hello", [], "demo-qwen3", "", False, 0.7, 0.8, 20, 0.0, 1.0, 0.0, 32, api_name="/chat")
    verdict = client.predict(api_name="/health")
    row = next(r for r in verdict["models"] if r["model"] == "demo-qwen3")
    assert row["requests"] >= 1 and row["tokens_per_s"] and row["weights_gib"] > 0
    assert verdict["engines"]["demo-qwen3 (full, transformers)"]["busy"] == 0  # its continuous batch, idle again
    for _ in range(3):
        with pytest.raises(AppError):
            client.predict("hello", [], "broken", "", False, 0.7, 0.8, 20, 0.0, 1.0, 0.0, 32, api_name="/chat")
    verdict = client.predict(api_name="/health")
    assert verdict["status"] == "degraded"
    assert any(re.match(r"broken: (\d+) of \1 requests failed", reason) for reason in verdict["reasons"]), verdict["reasons"]
