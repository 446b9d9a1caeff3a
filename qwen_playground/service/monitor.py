"""Rolling per-model figures and the app's health.

The router records every finished request here (its `Metrics`, or its
`Error`); the Monitor tab plots them and `/health` judges them. Figures cover
a sliding window (default ten minutes), so a morning's errors do not mark the
afternoon degraded.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass

import psutil

from ..core.generation import Metrics

WINDOW_S = 600.0
# Thresholds for "degraded"; each one that trips becomes a reason a person can read.
MIN_REQUESTS = 3
MAX_ERROR_RATE = 0.2
MAX_P95_TTFT_S = 10.0
MIN_FREE_MEMORY = 0.05


@dataclass(frozen=True)
class Sample:
    at: float  # time.time()
    model: str
    ok: bool
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    tokens: int = 0
    error: str | None = None


def p95(values: list[float]) -> float:
    """95th percentile (nearest rank), of at least one value."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


class Monitor:
    def __init__(self, window_s: float = WINDOW_S, clock=time.time):
        self.window_s = window_s
        self._clock = clock
        self._samples: deque[Sample] = deque(maxlen=10_000)
        self._lock = threading.Lock()

    def record(self, model_id: str, metrics: Metrics | None = None, error: str | None = None) -> None:
        sample = Sample(self._clock(), model_id, error is None,
                        metrics.time_to_first_token_s if metrics else None, metrics.tokens_per_s if metrics else None,
                        (metrics.answer_tokens + metrics.thinking_tokens) if metrics else 0, error)
        with self._lock:
            self._samples.append(sample)

    def recent(self) -> list[Sample]:
        cutoff = self._clock() - self.window_s
        with self._lock:
            return [s for s in self._samples if s.at >= cutoff]

    def per_model(self, memory: dict[str, int] | None = None) -> list[dict]:
        """One row per model seen in the window: requests, errors, time to first token, speed, weights memory."""
        rows, memory = [], memory or {}
        by_model: dict[str, list[Sample]] = {}
        for sample in self.recent():
            by_model.setdefault(sample.model, []).append(sample)
        for model, samples in sorted(by_model.items()):
            ttfts = [s.ttft_s for s in samples if s.ttft_s is not None]
            speeds = [s.tokens_per_s for s in samples if s.tokens_per_s is not None]
            errors = [s for s in samples if not s.ok]
            rows.append({
                "model": model, "requests": len(samples), "errors": len(errors),
                "error_rate": len(errors) / len(samples),
                "ttft_p50_s": statistics.median(ttfts) if ttfts else None, "ttft_p95_s": p95(ttfts) if ttfts else None,
                "tokens_per_s": statistics.mean(speeds) if speeds else None,
                "weights_gib": memory[model] / 2**30 if model in memory else None,
                "last_error": errors[-1].error if errors else None,
            })
        return rows

    def health_report(self, endpoints: dict[str, tuple[bool, str]] | None = None, memory: dict[str, int] | None = None,
                      engines: dict[str, dict] | None = None) -> dict:
        """{"status": "healthy" | "degraded", "reasons": [...], "models": per_model rows, "engines": each loaded model's
        engine state, "memory": ...}. An engine that failed and started over within the window is a reason."""
        reasons = []
        rows = self.per_model(memory)
        minutes = f"{self.window_s / 60:g} min"
        for row in rows:
            if row["requests"] >= MIN_REQUESTS and row["error_rate"] > MAX_ERROR_RATE:
                reasons.append(f"{row['model']}: {row['errors']} of {row['requests']} requests failed in the last {minutes} "
                               f"(last: {row['last_error']})")
            if row["ttft_p95_s"] is not None and row["requests"] >= MIN_REQUESTS and row["ttft_p95_s"] > MAX_P95_TTFT_S:
                reasons.append(f"{row['model']}: slow first tokens (p95 {row['ttft_p95_s']:.1f} s over {MAX_P95_TTFT_S:g} s)")
        for name, state in (engines or {}).items():
            if (state.get("last_failure_at") or 0) >= self._clock() - self.window_s:
                reasons.append(f"{name}: the engine failed and started over ({state['restarts']} time(s) since it loaded; "
                               f"last: {state['last_failure']})")
        for name, (ok, line) in (endpoints or {}).items():
            if not ok:
                reasons.append(f"endpoint {name}: {line}")
        system = psutil.virtual_memory()
        if system.available / system.total < MIN_FREE_MEMORY:
            reasons.append(f"memory nearly full: {system.available / 2**30:.1f} GiB free of {system.total / 2**30:.1f} GiB")
        return {"status": "degraded" if reasons else "healthy", "reasons": reasons, "models": rows, "engines": engines or {},
                "memory": {"free_gib": round(system.available / 2**30, 2), "process_rss_gib": round(psutil.Process().memory_info().rss / 2**30, 2)}}
