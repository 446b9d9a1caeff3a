"""The Batch tab's task: reading prompt files, running rows x models on the demo models, scoring, downloads, Stop."""

import csv
import io
import json
import threading

import pytest
from gradio_client import handle_file

from qwen_playground.service.guard import Guard, RateLimited
from qwen_playground.tasks import TaskError, batch

QWEN25 = "Hi there, I am a demo model: install real weights for useful answers!"  # the demo models' scripted answers
QWEN3 = "Hello from a little demo network! Install real weights for useful answers."


def write(tmp_path, name: str, body: str | bytes):
    path = tmp_path / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return path


def quiz(tmp_path):
    """Four rows: one each model's scripted answer expects, one nobody gets right, one without an expected answer."""
    rows = [{"id": "q1", "prompt": "Say hi", "expected": QWEN25.lower().rstrip("!")}, {"id": "q2", "prompt": "Greet me", "expected": QWEN3},
            {"id": "q3", "prompt": "Capital of France?", "expected": "Paris"}, {"id": "q4", "prompt": "Tell me something"}]
    return write(tmp_path, "quiz.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def finish(backend, job, **options):
    for view in batch.run(backend, job, **options):
        pass
    return view


def test_csv_and_jsonl_read_the_same_rows(demo_config, tmp_path):
    from_csv = batch.load_rows(demo_config, write(tmp_path, "a.csv", 'id,prompt,expected\n1,"Hi, you",x\n\n2,Two,\n'), None)
    from_jsonl = batch.load_rows(demo_config, write(tmp_path, "a.jsonl", '{"id": 1, "prompt": "Hi, you", "expected": "x"}\n\n'
                                                                         '{"prompt": "Two"}\n'), None)
    assert [(r.id, r.prompt, r.expected, r.line) for r in from_csv] == [("1", "Hi, you", "x", 2), ("2", "Two", "", 4)]
    assert [(r.id, r.prompt, r.expected) for r in from_jsonl] == [("1", "Hi, you", "x"), ("2", "Two", "")]
    for sep in (";", "\t", "|"):  # a spreadsheet in another locale: its separator is found in the header
        other = batch.load_rows(demo_config, write(tmp_path, "b.csv", f'id{sep}prompt{sep}expected\n1{sep}"Hi, you"{sep}x\n\n2{sep}Two{sep}\n'), None)
        assert [(r.id, r.prompt, r.expected, r.line) for r in other] == [("1", "Hi, you", "x", 2), ("2", "Two", "", 4)], sep
    assert {r.name for r in batch.examples().values()} == {"arithmetic", "general"}
    assert len(batch.load_rows(demo_config, None, "arithmetic")) == 20 and len(batch.load_rows(demo_config, None, "general")) == 10


@pytest.mark.parametrize("name, body, message", [
    ("bad.csv", "id,question\n1,hi\n", r"bad.csv: line 1 \(the header\) has no 'prompt' column; it has: id, question"),
    ("bad.jsonl", '{"prompt": "ok"}\n{"prompt": "broken"\n', r"bad.jsonl: line 2 is not JSON"),
    ("bad.jsonl", '{"prompt": "ok"}\n\n{"expected": "4"}\n', r"line 3: no prompt"),
    ("bad.jsonl", '{"prompt": "ok", "colour": "red"}\n', r"line 1: unknown field 'colour'"),
    ("bad.csv", "prompt\nfine\n".encode() + b"caf\xe9\n", r"bad.csv: line 3 is not UTF-8 text"),
    ("empty.csv", "  \n", r"empty.csv is empty"),
    ("bad.csv", "prompt\nok\n\"a\",b\n", r"line 3 has more cells than the header"),
])
def test_a_malformed_file_is_refused_with_its_line(demo_config, tmp_path, name, body, message):
    with pytest.raises(TaskError, match=message) as refused:
        batch.load_rows(demo_config, write(tmp_path, name, body), None)
    assert refused.value.field == "file"


def test_limits_on_rows_tokens_and_models(demo_config, tmp_path):
    small = type(demo_config)(demo_config.registry, demo_config.settings.model_copy(
        update={"max_batch_rows": 3, "max_batch_tokens": 1000, "max_message_tokens": 50}), demo_config.demo)
    with pytest.raises(TaskError, match="4 prompts; a batch takes at most 3"):
        batch.load_rows(small, write(tmp_path, "four.csv", "prompt\na\nb\nc\nd\n"), None)
    three = write(tmp_path, "three.csv", "prompt\na\nb\nc\n")
    with pytest.raises(TaskError, match="may generate 1,536 tokens; a batch may generate at most 1,000"):
        batch.prepare(small, three, None, ["demo-qwen2.5", "demo-qwen3"], max_new_tokens=256)
    with pytest.raises(TaskError, match=r"Line 3 \(2\): This message is [\d,]+ tokens long; the limit is 50"):
        batch.prepare(small, write(tmp_path, "long.csv", "prompt\nshort\n" + "word " * 80 + "\n"), None, ["demo-qwen2.5"], max_new_tokens=8)
    with pytest.raises(TaskError, match="at most 4 models"):
        batch.prepare(demo_config, three, None, ["demo-qwen2.5"] * 5)
    with pytest.raises(TaskError, match="Unknown model 'qwen-nope'") as refused:
        batch.prepare(demo_config, three, None, ["qwen-nope"])
    assert refused.value.field == "models"
    with pytest.raises(TaskError, match=r"Line 2 \(1\): Could not read the expected answer"):
        batch.prepare(demo_config, write(tmp_path, "m.csv", "prompt,expected\n2+2?,@@@\n"), None, ["demo-qwen2.5"], "math")


def test_scoring_rules():
    assert batch.normalise('  **Paris.** ') == "paris" and batch.normalise("Carbon  dioxide!") == "carbon dioxide"
    assert batch.score("chat", "Paris", "paris.") is True and batch.score("chat", "Paris", "It is Paris.") is False
    assert batch.score("chat", "Paris", "so \\boxed{Paris}") is True and batch.score("chat", "", "anything") is None
    assert batch.score("math", "1/2", "Half: \\boxed{0.5}") is True and batch.score("math", "1/2", "\\boxed{0.6}") is False
    assert batch.score("math", "1/2", "no boxed answer") is False


def test_one_row_per_prompt_and_model_with_accuracy_counted_right(demo_config, backend, tmp_path):
    job = batch.prepare(demo_config, quiz(tmp_path), None, ["demo-qwen2.5", "demo-qwen3"], "chat", max_new_tokens=32)
    view = finish(backend, job, workers=4)
    assert view.finished and not view.stopped and len(view.done) == 8
    assert [(r.row.id, r.model) for r in view.results] == [(q, m) for q in ("q1", "q2", "q3", "q4") for m in ("demo-qwen2.5", "demo-qwen3")]
    marks = {(r.row.id, r.model): r.correct for r in view.results}
    assert marks == {("q1", "demo-qwen2.5"): True, ("q1", "demo-qwen3"): False, ("q2", "demo-qwen2.5"): False,
                     ("q2", "demo-qwen3"): True, ("q3", "demo-qwen2.5"): False, ("q3", "demo-qwen3"): False,
                     ("q4", "demo-qwen2.5"): None, ("q4", "demo-qwen3"): None}
    summary = {s["model"]: s for s in view.summary(job.models)}
    assert summary["demo-qwen2.5"]["right"] == 1 and summary["demo-qwen2.5"]["scored"] == 3 and summary["demo-qwen2.5"]["accuracy"] == 0.333
    assert summary["demo-qwen3"]["answer_tokens"] > 0 and summary["demo-qwen3"]["mean_tokens_per_s"] > 0
    loads = {r.model: r.metrics.load_s for r in view.results if r.metrics}
    timed = [r.metrics for r in view.results if r.model == "demo-qwen3" and r.metrics]
    assert summary["demo-qwen3"]["load_s"] == round(sum(m.load_s for m in timed), 1) and loads  # loading reported apart
    assert summary["demo-qwen3"]["mean_s"] == round(sum(m.total_s - m.load_s for m in timed) / len(timed), 2)
    assert view.progress["done"] == view.progress["total"] == 8


def test_the_downloads_are_valid_csv_and_jsonl(demo_config, backend, tmp_path):
    view = finish(backend, batch.prepare(demo_config, quiz(tmp_path), None, ["demo-qwen2.5"], max_new_tokens=32))
    records = [r.record() for r in view.done]
    table = list(csv.DictReader(io.StringIO(batch.to_csv(records))))
    lines = [json.loads(line) for line in batch.to_jsonl(records).splitlines()]
    assert len(table) == len(lines) == 4 and table[0]["answer"] == lines[0]["answer"] == QWEN25
    assert [row["correct"] for row in table] == ["True", "False", "False", ""] and lines[0]["tokens_per_s"] > 0


def test_stop_keeps_the_finished_rows(demo_config, backend, tmp_path):
    rows = write(tmp_path, "many.csv", "prompt\n" + "".join(f"question {i}\n" for i in range(10)))
    job, stop = batch.prepare(demo_config, rows, None, ["demo-qwen2.5"], max_new_tokens=32), threading.Event()
    for view in batch.run(backend, job, stop, workers=1):
        if view.done:
            stop.set()
    assert view.finished and view.stopped and 1 <= len(view.done) < 10
    assert view.done[0].answer == QWEN25 and view.done[0].error is None


def test_a_batch_counts_each_request_against_the_rate_limits(demo_config):
    guard = Guard(demo_config.settings.model_copy(update={"rate_limits": True, "requests_per_minute": 5}))
    with pytest.raises(RateLimited, match="5 requests a minute, and this asks for 6 at once"):
        guard.admit("s@1.2.3.4", 6)
    guard.admit("s@1.2.3.4", 4)
    with pytest.raises(RateLimited, match="Try again in"):
        guard.admit("s@1.2.3.4", 2)


def test_the_batch_api(app, tmp_path):
    client, _ = app
    progress, summary, _, table, report = client.predict(handle_file(str(quiz(tmp_path))), "general", ["demo-qwen2.5", "demo-qwen3"],
                                                         "chat", "full", 32, api_name="/batch")
    assert "8 / 8 answers" in progress and len(table["data"]) == 8 and len(report["results"]) == 8
    assert [s["right"] for s in report["summary"]] == [1, 1]
    # no file: the example set; a malformed file: refused with its line, as the tab shows it
    _, _, _, _, report = client.predict(None, "general", ["demo-qwen2.5"], "chat", "full", 16, api_name="/batch")
    assert len(report["results"]) == 10 and report["results"][0]["expected"] == "Paris"
    with pytest.raises(Exception, match="line 1 \\(the header\\) has no 'prompt' column"):
        client.predict(handle_file(str(write(tmp_path, "bad.csv", "question\nhi\n"))), "general", ["demo-qwen2.5"], "chat", "full", 16,
                       api_name="/batch")
