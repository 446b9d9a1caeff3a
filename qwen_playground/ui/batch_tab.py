"""The Batch tab: a prompt file (or an example set) put to up to four models, with accuracy, speed and downloads.

Endpoint `/batch` (file, example, models, template, precision, max_new_tokens)
-> streamed (progress, summary, chart, results table, report): the report is
JSON, {"progress", "summary", "results"}, for scripts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from ..core.config import AppConfig
from ..service import Service
from ..tasks import TaskError
from ..tasks import batch as task
from ..tasks.compare import comparable_models
from .common import Stops, follows_registry, go_and_stop, on_page_load, precision_picker, refusals, upload_or_example, user_of, when_valid
PREVIEW_COLUMNS = ["id", "prompt", "expected", "system", "tokens"]
SUMMARY_COLUMNS = ["model", "answered", "right / scored", "accuracy", "tokens/s", "s per answer", "load s", "total s", "answer tokens",
                   "errors"]
# the results' columns as shares of the width: the verdict and the expected answer in view beside the answer at 1400 px
RESULT_WIDTHS = ["5%", "17%", "11%", "24%", "11%", "6%", "7%", "7%", "6%", "6%"]


def progress_html(progress: dict, view: task.BatchView) -> str:
    done, total = progress["done"], progress["total"]
    when = (" · stopped: finished rows kept" if view.stopped else " · finished" if view.finished
            else f" · about {progress['eta_s']:.0f} s left" if progress["eta_s"] is not None else "")
    notice = f"<div>{view.notice}</div>" if view.notice else ""
    return (f'<progress value="{done}" max="{total}" style="width:100%"></progress>'
            f"<div>{done} / {total} answers · {progress['elapsed_s']:.0f} s{when}</div>{notice}")


def summary_table(summary: list[dict]) -> pd.DataFrame:
    rows = [[s["model"], s["answered"], f"{s['right']} / {s['scored']}" if s["scored"] else "—",
             "—" if s["accuracy"] is None else f"{100 * s['accuracy']:.0f}%", s["mean_tokens_per_s"], s["mean_s"], s["load_s"], s["total_s"],
             s["answer_tokens"], s["errors"]] for s in summary]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def chart(summary: list[dict]) -> gr.BarPlot:
    """Accuracy per model where answers were scored, else mean tokens per second."""
    scored = any(s["scored"] for s in summary)
    measure = "accuracy %" if scored else "tokens/s"
    values = [100 * (s["accuracy"] or 0) if scored else s["mean_tokens_per_s"] or 0 for s in summary]
    frame = pd.DataFrame({"model": [s["model"] for s in summary], measure: values})
    title = ("Accuracy per model (%)" + (": no answer right yet" if not any(values) else "")) if scored else "Tokens per second per model"
    return gr.BarPlot(frame, x="model", y=measure, y_lim=[0, 100] if scored else None, title=title)


def export_files(report: dict | None) -> list:
    """The results as CSV and JSONL files, written when the batch ends so that one click downloads."""
    if not report or not report.get("results"):
        return [None, None]
    folder, paths = Path(tempfile.mkdtemp(prefix="qp-batch-")), []
    for kind, body in (("csv", task.to_csv(report["results"])), ("jsonl", task.to_jsonl(report["results"]))):
        (folder / f"batch-results.{kind}").write_text(body, encoding="utf-8")
        paths.append(str(folder / f"batch-results.{kind}"))
    return paths


def layout(config: AppConfig, service: Service) -> dict:
    models = [m.id for m in comparable_models(config.registry)]
    sets = task.examples()
    c: dict = {}
    gr.Markdown("Put a prompt set to up to four models at once and see who gets what right, how fast, at what cost. A file is "
                "CSV (a header row with `prompt`, optional `expected`, `system`, `id`) or JSONL (one object per line with the "
                "same fields). Where a row has an expected answer it is scored: math-verify with the Math template, "
                "normalised exact match otherwise.")
    c["file"], c["example"], beside = upload_or_example("Prompt file (CSV or JSONL)", [".csv", ".jsonl", ".json"],
                                                        {e.name: e.description for e in sets.values()}, "general")
    with beside:  # filled when the page opens: counting tokens needs the tokenizer, which loads after the page is up
        c["preview"] = gr.Markdown("Counting the example set's tokens…")
    c["rows"] = gr.Dataframe(headers=PREVIEW_COLUMNS, interactive=False, label="Prompts", max_height=260, wrap=True, elem_classes="wide-table")
    with gr.Row():
        c["models"] = follows_registry(
            gr.Dropdown(models, value=models[:2], multiselect=True, max_choices=task.MAX_MODELS, allow_custom_value=True,
                        label="Models (up to 4)", info="Type id@8-bit for one model at a precision of its own"),
            lambda: [m.id for m in comparable_models(config.registry)])
        c["template"] = gr.Radio(list(task.TEMPLATES), value=sets["general"].template, label="Template")
    with gr.Row():
        c["precision"] = precision_picker(service.capabilities())
        c["max_new_tokens"] = gr.Slider(16, 2048, 256, step=16, label="Max new tokens per answer")
    c["run"], c["stop"] = go_and_stop("Run the batch")
    c["progress"] = gr.Markdown()  # a <progress> bar and a line (gr.HTML's code is 35 KiB more)
    c["summary"] = gr.Dataframe(headers=SUMMARY_COLUMNS, interactive=False, label="Per model", wrap=True, elem_classes="wide-table")  # the page's width: every column
    c["chart"] = gr.BarPlot(x="model", y="accuracy %", label="Per model", height=220)
    c["results"] = gr.Dataframe(headers=task.COLUMNS, interactive=False, label="Results", max_height=420, wrap=True,
                                column_widths=RESULT_WIDTHS, elem_classes="wide-table")
    with gr.Row():
        c["csv"] = gr.DownloadButton("Download CSV", value=None)
        c["jsonl"] = gr.DownloadButton("Download JSONL", value=None)
    c["report"] = gr.JSON(visible=False, label="Report")
    return c


def build_batch_tab(config: AppConfig, service: Service) -> None:
    c, stops = layout(config, service), Stops()
    sets = task.examples()

    def prepare(file, example, models, template, precision="full", max_new_tokens=256, user=""):
        return task.prepare(config, file, example, models, template, precision, int(max_new_tokens), user)

    def run_batch(file, example, models, template, precision="full", max_new_tokens=256, request: gr.Request = None):
        user = user_of(request)
        with refusals():
            job = prepare(file, example, models, template, precision, max_new_tokens, user)
            service.admit(user, len(job.requests))  # each row x model counts against the rate limits
        with stops.running(request) as stop:
            for view in task.run(service, job, stop, workers=config.settings.concurrency):
                progress, summary = view.progress, view.summary(job.models)
                report = {"progress": progress, "summary": summary, "results": [r.record() for r in view.done]}
                yield (progress_html(progress, view), summary_table(summary), chart(summary), [r.cells() for r in view.done], report)

    def show_preview(file, example):
        """The rows the batch would run, or the reason the file cannot be used, in place of the preview."""
        try:
            shown = task.preview(config, file, example)
        except TaskError as e:
            return f"⚠️ {e}", []
        return shown.summary, shown.table

    inputs = [c["file"], c["example"], c["models"], c["template"], c["precision"], c["max_new_tokens"]]
    outputs = [c["progress"], c["summary"], c["chart"], c["results"], c["report"]]
    event = when_valid(c["run"].click, run_batch, prepare, inputs, outputs, api_name="batch", concurrency_id="generate")
    event.then(export_files, c["report"], [c["csv"], c["jsonl"]], api_visibility="private")
    stops.bind(c["stop"], run_batch)
    private = {"api_visibility": "private", "queue": False}
    on_page_load(show_preview, [c["file"], c["example"]], [c["preview"], c["rows"]])
    for trigger in (c["file"].change, c["example"].change):
        trigger(show_preview, [c["file"], c["example"]], [c["preview"], c["rows"]], **private)
    c["example"].change(lambda name: sets[name].template if name in sets else gr.skip(), c["example"], c["template"], **private)
