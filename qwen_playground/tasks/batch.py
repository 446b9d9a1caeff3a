"""The Batch task: a prompt set put to up to four models, every answer scored, accuracy and speed per model.

Rows come from a CSV or JSONL file (`prompt`; optional `expected`, `system`,
`id`) or from a shipped example set (`prompts/batches/`). Each (row, model)
pair becomes the request its template's own tab would send (the Chat, Code or
Math task's `prepare`, so limits and templates are theirs), and a few run at
once through the service: a local model's continuous batch holds several rows
in flight, a remote server gets them concurrently. Where a row has an expected
answer it is scored: math-verify for the math template, normalised exact
match otherwise. Stop keeps every finished row.
"""

from __future__ import annotations

import csv
import io
import json
import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

from ..backends import Backend
from ..core.config import AppConfig
from ..core.generation import Metrics, Request
from ..core.prompts import PROMPTS_DIR
from ..mathcheck import check_answer
from ..mathtext import extract_boxed
from ..service.lengths import count_tokens
from . import TaskError, chat, code, math, one_of
from .conversation import AssistantTurn
from .datafile import read_records, shipped_sets, source

EXAMPLES_DIR = PROMPTS_DIR / "batches"
TEMPLATES = ("chat", "code", "math")
MAX_MODELS = 4
FIELDS = ("id", "prompt", "expected", "system")
COLUMNS = ["id", "prompt", "model", "answer", "expected", "correct", "answer tokens", "first token (s)", "tokens/s", "error"]  # the table
RECORD_FIELDS = ["id", "prompt", "model", "answer", "expected", "correct", "answer_tokens", "time_to_first_token_s", "tokens_per_s", "error"]


@dataclass(frozen=True)
class Row:
    id: str
    prompt: str
    expected: str = ""
    system: str = ""
    line: int = 0  # where it is in its file, for messages


@dataclass(frozen=True)
class Example:
    name: str
    file: str
    template: str
    description: str


def examples() -> dict[str, Example]:
    """The shipped prompt sets, by name (prompts/batches/sets.yaml)."""
    return {name: Example(name, **entry) for name, entry in shipped_sets(EXAMPLES_DIR).items()}


# ---- reading a file --------------------------------------------------------------------------------------------


def parse(data: bytes, name: str) -> list[Row]:
    """Rows from a CSV (a header row with `prompt`) or JSONL (one object per line) file; TaskError names the line."""
    rows = []
    for record in read_records(data, name, FIELDS, ("prompt",)):
        prompt = record.values.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise TaskError(f"{name}: line {record.line}: no prompt. Every row needs a non-empty 'prompt'.", "file")
        text = {k: "" if record.values.get(k) is None else str(record.values[k]).strip() for k in FIELDS}
        rows.append(Row(text["id"] or str(len(rows) + 1), prompt.strip(), text["expected"], text["system"], record.line))
    return rows


def load_rows(config: AppConfig, file: str | Path | None, example: str | None) -> list[Row]:
    """The rows of an uploaded file, or else of a shipped example, within the row limit."""
    rows = parse(*source(file, example, EXAMPLES_DIR, "a CSV or JSONL file of prompts"))
    limit = config.settings.max_batch_rows
    if len(rows) > limit:
        raise TaskError(f"{len(rows)} prompts; a batch takes at most {limit:,}. Split the file.", "file")
    return rows


@dataclass(frozen=True)
class Preview:
    rows: list[Row]
    tokens: list[int]  # each prompt's length in tokens

    @property
    def summary(self) -> str:
        expected = sum(1 for r in self.rows if r.expected)
        return (f"**{len(self.rows)} prompts** · {sum(self.tokens):,} prompt tokens (longest {max(self.tokens):,}) · "
                f"{expected} with an expected answer")

    @property
    def table(self) -> list[list]:
        return [[r.id, r.prompt, r.expected, r.system, n] for r, n in zip(self.rows, self.tokens, strict=True)]


def preview(config: AppConfig, file: str | Path | None, example: str | None) -> Preview:
    rows = load_rows(config, file, example)
    return Preview(rows, [count_tokens(r.prompt) for r in rows])


# ---- the requests ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchJob:
    rows: list[Row]
    models: list[str]  # as given: a model id, or 'id@8-bit' for one precision
    template: str
    requests: list[Request]  # row-major: row i, model j at i * len(models) + j

    def pair(self, index: int) -> tuple[Row, str]:
        return self.rows[index // len(self.models)], self.models[index % len(self.models)]


def request_for(config: AppConfig, row: Row, model: str, template: str, precision: str, user: str) -> Request:
    """What the template's own tab would send for this row (its prompt template, presets and length check)."""
    model_id, _, own = model.partition("@")
    precision = own or precision
    try:
        if template == "math":
            return math.prepare(config, row.prompt, row.expected, model_id, precision, user).request
        if template == "code":
            return code.prepare(config, row.prompt, "Python", "", "", model_id, precision, user).request
        settings = chat.ChatSettings(model_id, row.system, precision=precision)
        return chat.prepare(config, chat.ChatInputs(row.prompt, settings=settings), user).request
    except TaskError as e:
        where = "models" if e.field == "model" else "file"
        raise TaskError(f"{e}" if where == "models" else f"Line {row.line} ({row.id}): {e}", where) from None


def prepare(config: AppConfig, file: str | Path | None, example: str | None, models: object, template: str = "chat",
            precision: str = "full", max_new_tokens: int = 256, user: str = "") -> BatchJob:
    one_of(template, TEMPLATES, "template", "template")
    chosen = [models] if isinstance(models, str) else list(models or [])
    if not chosen or not all(isinstance(m, str) and m for m in chosen):
        raise TaskError("Pick at least one model.", "models")
    if len(chosen) > MAX_MODELS:
        raise TaskError(f"Pick at most {MAX_MODELS} models (you picked {len(chosen)}).", "models")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise TaskError("Max new tokens must be a whole number of at least 1.", "max_new_tokens")
    rows = load_rows(config, file, example)
    budget = len(rows) * len(chosen) * max_new_tokens
    if budget > config.settings.max_batch_tokens:
        raise TaskError(f"{len(rows)} prompts x {len(chosen)} models x {max_new_tokens:,} new tokens may generate {budget:,} tokens; "
                        f"a batch may generate at most {config.settings.max_batch_tokens:,}. Lower max new tokens, or use "
                        "fewer prompts or models.", "max_new_tokens")
    requests = []
    for row in rows:
        for model in chosen:
            request = request_for(config, row, model, template, precision, user)
            requests.append(replace(request, sampling=request.sampling.model_copy(update={"max_new_tokens": max_new_tokens})))
    return BatchJob(rows, chosen, template, requests)


# ---- running and scoring ---------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Lower case, single spaces, no surrounding quotes, emphasis or final punctuation: 'Paris.' == '**paris**'."""
    return re.sub(r"\s+", " ", text.casefold()).strip().strip("\"'`*_ ").rstrip(".!?;:,").strip("\"'`*_ ")


def score(template: str, expected: str, answer: str) -> bool | None:
    """Right or wrong, or None without an expected answer. No \\boxed{} answer in a math row counts as wrong."""
    if not expected:
        return None
    boxed = extract_boxed(answer)
    if template == "math":
        return bool(check_answer(expected, boxed).equal)
    return normalise(expected) in {normalise(answer), normalise(boxed or "")}


@dataclass
class Result:
    row: Row
    model: str
    answer: str = ""
    metrics: Metrics | None = None
    error: str | None = None
    correct: bool | None = None
    done: bool = False
    finished_s: float | None = None  # seconds from the batch's start to this row's end

    def record(self) -> dict:
        """The row as the downloads and the API give it (RECORD_FIELDS)."""
        m = self.metrics
        return {"id": self.row.id, "prompt": self.row.prompt, "model": self.model, "answer": self.answer,
                "expected": self.row.expected, "correct": self.correct, "answer_tokens": m.answer_tokens if m else None,
                "time_to_first_token_s": round(m.time_to_first_token_s, 3) if m and m.time_to_first_token_s is not None else None,
                "tokens_per_s": round(m.tokens_per_s, 2) if m and m.tokens_per_s is not None else None, "error": self.error}

    def cells(self) -> list:
        r = self.record()
        mark = {True: "✓", False: "✗", None: ""}[self.correct]
        return [r["id"], r["prompt"], r["model"], r["answer"], r["expected"], mark, r["answer_tokens"], r["time_to_first_token_s"],
                r["tokens_per_s"], r["error"] or ""]


@dataclass
class BatchView:
    results: list[Result]
    started: float = field(default_factory=time.perf_counter)
    notice: str = ""
    finished: bool = False
    stopped: bool = False

    @property
    def done(self) -> list[Result]:
        return [r for r in self.results if r.done]

    @property
    def progress(self) -> dict:
        done, total, elapsed = len(self.done), len(self.results), time.perf_counter() - self.started
        eta = elapsed / done * (total - done) if done and not self.finished else None
        return {"done": done, "total": total, "elapsed_s": round(elapsed, 1), "eta_s": None if eta is None else round(eta, 1)}

    def summary(self, models: list[str]) -> list[dict]:
        """Per model: rows answered, right of those with an expected answer, accuracy, mean tokens/s, mean time per answer
        (without loading the model), the seconds spent loading it, answer tokens generated (what it cost), errors, and the
        seconds until its last row finished."""
        rows = []
        for model in models:
            mine = [r for r in self.done if r.model == model]
            scored = [r for r in mine if r.correct is not None]
            timed = [r for r in mine if r.metrics]
            speeds = [r.metrics.tokens_per_s for r in timed if r.metrics.tokens_per_s]
            rows.append({"model": model, "answered": len(mine), "errors": sum(1 for r in mine if r.error),
                         "right": sum(1 for r in scored if r.correct), "scored": len(scored),
                         "accuracy": round(sum(1 for r in scored if r.correct) / len(scored), 3) if scored else None,
                         "mean_tokens_per_s": round(sum(speeds) / len(speeds), 2) if speeds else None,
                         "mean_s": round(sum(r.metrics.total_s - r.metrics.load_s for r in timed) / len(timed), 2) if timed else None,
                         "load_s": round(sum(r.metrics.load_s for r in timed), 1),
                         "answer_tokens": sum(r.metrics.answer_tokens + r.metrics.thinking_tokens for r in timed),
                         "total_s": round(max((r.finished_s for r in mine), default=0.0), 1)})
        return rows


def _generate(backend: Backend, request: Request, cancel: threading.Event) -> AssistantTurn:
    turn = AssistantTurn()
    try:
        for event in backend.stream(request, cancel):
            turn.apply(event)
    except Exception as e:  # one row's crash is that row's error
        turn.error = f"{type(e).__name__}: {e}"
    return turn


def run(backend: Backend, job: BatchJob, stop: threading.Event | None = None, workers: int = 4) -> Iterator[BatchView]:
    """Yield the batch as rows finish (and about once a second for the clock), ending with a finished view. Rows run
    `workers` at a time; models that cannot be resident together run one after another. Setting `stop` (or closing
    the stream) ends the rows in flight at their next token and starts no more; finished rows stay."""
    cancel = stop or threading.Event()
    view = BatchView([Result(*job.pair(i)) for i in range(len(job.requests))])
    loads = list(dict.fromkeys((r.model_id, r.precision) for r in job.requests))
    view.notice = (backend.fit_problem(loads) or "") if len(loads) > 1 else ""
    everything, m = range(len(job.requests)), len(job.models)
    groups = [[i for i in everything if i % m == j] for j in range(m)] if view.notice else [list(everything)]  # one model at a time
    finished: queue.Queue = queue.Queue()

    def work(index: int) -> None:
        finished.put((index, None if cancel.is_set() else _generate(backend, job.requests[index], cancel)))

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="batch")
    try:
        yield view
        for group in groups:
            for index in group:
                pool.submit(work, index)
            for _ in group:
                while True:
                    try:
                        index, turn = finished.get(timeout=1.0)
                        break
                    except queue.Empty:
                        yield view  # the clock and ETA move on
                if turn is not None and (turn.produced_output or turn.finish_reason != "cancelled"):
                    _fill(view.results[index], turn, job.template)
                    view.results[index].finished_s = time.perf_counter() - view.started
                    yield view
            if cancel.is_set():
                break
        view.finished, view.stopped = True, cancel.is_set()
        yield view
    finally:
        cancel.set()
        pool.shutdown(wait=False, cancel_futures=True)


def _fill(result: Result, turn: AssistantTurn, template: str) -> None:
    """A finished row: scored, unless it failed or was stopped half-way (kept, marked, not scored)."""
    result.answer, result.metrics, result.error, result.done = turn.answer, turn.metrics, turn.error, True
    if turn.finish_reason == "cancelled":
        result.error = "stopped before the end"
    elif turn.error is None:
        result.correct = score(template, result.row.expected, turn.answer)


def to_csv(records: list[dict]) -> str:
    """Finished rows (`Result.record()`) as CSV, one line per prompt and model."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=RECORD_FIELDS)
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def to_jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
