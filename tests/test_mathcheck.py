"""Answer checking with math-verify, in a helper program with a deadline, and what happens when the helper fails."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qwen_playground import mathcheck
from qwen_playground.mathcheck import MAX_FAILURES, Checker, check_answer

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("expected, answer", [
    ("1/2", "0.5"), ("0.5", r"\frac{1}{2}"), (r"\frac{1}{2}", "1/2"), ("x^2+1", "1+x^2"),
    (r"\{1, 2\}", r"\{2, 1\}"), ("3", "3.0"), (r"\sqrt{4}", "2"),
])
def test_equivalent_answers_agree(expected, answer):
    assert check_answer(expected, answer).equal is True


@pytest.mark.parametrize("expected, answer", [("1/3", "0.5"), ("2", "3"), ("x^2", "2x"), (r"\{1, 2\}", r"\{1, 3\}")])
def test_different_answers_do_not(expected, answer):
    verdict = check_answer(expected, answer)
    assert verdict.equal is False and "Different" in verdict.message


def test_missing_or_malformed_answers():
    assert check_answer("1/2", None).equal is None
    with pytest.raises(ValueError, match="Could not read the expected answer 'abc\\(\\(' as math"):
        check_answer("abc((", "1")
    with pytest.raises(ValueError):
        check_answer("   ", "1")




@pytest.fixture
def checker():
    checker = Checker()
    yield checker
    checker.close()


def test_a_check_that_outlives_its_deadline_gives_up_and_a_fresh_helper_takes_over(checker):
    checker.start()
    stuck = checker._helper.process
    os.kill(stuck.pid, signal.SIGSTOP)  # the helper is busy past any deadline, whatever the machine's load
    started = time.monotonic()
    verdict = checker.check("1/2", "0.5", timeout_s=0.5)
    assert time.monotonic() - started < 3
    assert verdict.equal is None and "Could not check the answer within 0.5 s" in verdict.message
    assert stuck.poll() is not None  # the stuck helper is gone, not left behind
    assert checker.check("1/2", "0.5").equal is True  # a fresh helper process took over
    assert not checker.in_process


def test_a_helper_that_dies_is_restarted(checker):
    checker.start()
    first = checker._helper.process
    first.kill()
    first.wait()
    assert checker.check("3/4", "0.75").equal is True
    assert checker._helper.process.pid != first.pid and not checker.in_process


def test_refusals_cross_the_process_boundary_as_value_errors(checker):
    with pytest.raises(ValueError, match="Could not read the expected answer"):
        checker.check("abc((", "1")
    assert checker.check("2", "2").equal is True  # the helper survived the refusal


@pytest.mark.parametrize("command", [
    ["/nonexistent/python"],  # cannot start at all
    [sys.executable, "-c", "import sys; sys.exit(3)"],  # starts, then ends before it is ready
])
def test_a_helper_that_keeps_failing_gives_way_to_checks_in_this_process(command, caplog):
    checker = Checker(command)
    with caplog.at_level(logging.WARNING, logger=mathcheck.__name__):
        assert checker.check("3/4", "0.75").equal is True
        assert checker.check("1/3", "0.5").equal is False
        with pytest.raises(ValueError):
            checker.check("abc((", "1")
    assert checker.in_process
    warnings = [r for r in caplog.records if r.name == mathcheck.__name__]
    assert len(warnings) == 1 and f"failed {MAX_FAILURES} times" in warnings[0].getMessage()


def test_in_process_checks_keep_their_deadline(monkeypatch):
    checker = Checker(["/nonexistent/python"])
    monkeypatch.setattr(mathcheck, "verify_answer", lambda expected, answer: time.sleep(3))
    started = time.monotonic()
    verdict = checker.check("1", "1", timeout_s=0.3)
    assert time.monotonic() - started < 2 and verdict.equal is None and "within 0.3 s" in verdict.message


def test_the_helper_ends_with_its_input():
    checker = Checker()
    checker.start()
    process = checker._helper.process
    checker.close()
    assert process.returncode == 0


# Building the app the way a Gradio tutorial does: at top level, no `if __name__ == "__main__":` guard.
UNGUARDED = """\
from qwen_playground.core.config import load_config
from qwen_playground.mathcheck import check_answer
from qwen_playground.ui import build_demo
demo = build_demo(load_config(None, demo=True, cache_dir={cache!r}))
print("check:", check_answer("3/4", "0.75").message)
"""


def _run_unguarded(args: list[str], tmp_path: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True, timeout=240,
                          cwd=tmp_path, env=env)


@pytest.mark.parametrize("how", ["stdin", "script file"])
def test_an_app_built_without_a_main_guard_checks_once_and_exits_quietly(how, tmp_path):
    source = UNGUARDED.format(cache=str(tmp_path / "cache"))
    if how == "stdin":
        done = _run_unguarded(["-"], tmp_path, stdin=source)
    else:
        (tmp_path / "my_app.py").write_text(source)
        done = _run_unguarded(["my_app.py"], tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert done.stdout.count("check: ✓ Correct: 0.75 equals the expected 3/4.") == 1, output[-3000:]
    assert len(output.splitlines()) < 50, output[-3000:]
    assert "Traceback" not in output


@pytest.mark.parametrize("text, first_try", [
    ("1/2", "$1/2$"),  # bare text: read as one LaTeX expression first
    (r"so the answer is \boxed{1/2}", r"so the answer is \boxed{1/2}"),  # a \boxed{} answer: as it stands (extraction finds it)
    ("$x$ and $y$", "$x$ and $y$"),  # already delimited
])
def test_answers_are_read_as_latex_unless_they_are_delimited_or_boxed(monkeypatch, text, first_try):
    import math_verify

    tried = []
    monkeypatch.setattr(math_verify, "parse", lambda t, **options: tried.append(t) or ["parsed"])
    assert mathcheck._parse(text) == ["parsed"] and tried == [first_try]
