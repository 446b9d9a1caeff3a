"""The Monitor tab: rolling per-model figures with plots, and the `/health` endpoint.

Endpoint `/health` () -> {"status": "healthy" | "degraded", "reasons": [...],
"models": [per-model figures], "engines": {loaded model: its engine's state}, "memory": {...}}.
"""

from __future__ import annotations

import datetime

import gradio as gr
import pandas as pd

from ..service import Service

COLUMNS = ["model", "requests", "errors", "error rate", "first token p50 (s)", "first token p95 (s)", "tokens/s", "weights (GiB)"]


def _round(value, digits=2):
    return None if value is None else round(value, digits)


def health_markdown(health: dict) -> str:
    if health["status"] == "healthy":
        head = "### ✅ Healthy"
    else:
        head = "### ⚠️ Degraded\n" + "\n".join(f"- {reason}" for reason in health["reasons"])
    memory = health["memory"]
    engines = "".join(f"\n- {engine_line(name, state)}" for name, state in health.get("engines", {}).items())
    return (f"{head}\n\nMemory: {memory['free_gib']} GiB free · this process {memory['process_rss_gib']} GiB"
            + (f"\n\n**Engines**{engines}" if engines else ""))


def engine_line(name: str, state: dict) -> str:
    """One loaded model's engine for people: who it serves now, who waits, its cache, its restarts."""
    busy = f"{state['busy']} of {state['slots']} slots busy" if "slots" in state else f"{state['busy']} answering"
    parts = [f"{busy} (most at once: {state['peak_busy']})"]
    if "waiting" in state:
        parts.append(f"{state['waiting']} waiting")
    if "cache_tokens" in state:
        parts.append(f"cache {state['cached_tokens']:,} of {state['cache_tokens']:,} tokens")
        prompts = state["prompt_tokens_reused"] + state["prompt_tokens_evaluated"]
        if prompts:
            parts.append(f"{state['prompt_tokens_reused'] / prompts:.0%} of prompt tokens from the cache")
    if state.get("guessed"):
        parts.append(f"drafts: {state['guesses_kept'] / state['guessed']:.0%} of {state['guessed']:,} guesses kept")
    restarts = state["restarts"]
    parts.append(f"{restarts} restart{'s' if restarts != 1 else ''}" + (f" (last: {state['last_failure']})" if restarts else ""))
    return f"{name}: " + " · ".join(parts)


def build_monitor_tab(service: Service) -> None:
    gr.Markdown(f"Figures over the last {service.monitor.window_s / 60:g} minutes, from every tab and API call. "
                "Refreshes every 5 seconds. The same verdict is served as JSON at the `/health` API endpoint.")
    status = gr.Markdown()
    table = gr.Dataframe(headers=COLUMNS, interactive=False, label="Per model")
    with gr.Row():
        ttft_plot = gr.LinePlot(x="time", y="first token (s)", color="model", title="Time to first token", height=260)
        speed_plot = gr.LinePlot(x="time", y="tokens/s", color="model", title="Decode speed", height=260)

    def health() -> dict:
        return service.health_report()

    def refresh():
        verdict = health()
        rows = [[r["model"], r["requests"], r["errors"], _round(r["error_rate"]), _round(r["ttft_p50_s"]), _round(r["ttft_p95_s"]),
                 _round(r["tokens_per_s"], 1), _round(r["weights_gib"])] for r in verdict["models"]]
        samples = [s for s in service.monitor.recent() if s.ok]
        frame = pd.DataFrame({"time": [datetime.datetime.fromtimestamp(s.at).strftime("%H:%M:%S") for s in samples],  # 24-hour clock
                              "model": [s.model for s in samples],
                              "first token (s)": [s.ttft_s for s in samples], "tokens/s": [s.tokens_per_s for s in samples]})
        return health_markdown(verdict), pd.DataFrame(rows, columns=COLUMNS), frame, frame

    outputs = [status, table, ttft_plot, speed_plot]
    gr.Timer(5).tick(refresh, None, outputs, api_visibility="private", queue=False)
    gr.Button("Refresh", size="sm").click(refresh, None, outputs, api_visibility="private", queue=False)
    gr.api(health, api_name="health")
