"""Math answer checking (Hugging Face's math-verify), in a helper program of its own, with a deadline.

math-verify's own time-outs use signals, which work only in a main thread, and Gradio runs handlers in worker
threads: a pathological expression could hold a worker for minutes. So checks run in a helper,
`python -m qwen_playground.mathcheck`, one JSON line in and one JSON line out per check, and the helper is
replaced when a check outlives its deadline.

The helper is a program of its own, not a `multiprocessing` child: it never re-runs the caller's `__main__`
(a script without a main guard, or one read from standard input), and it ends when its standard input closes,
so it cannot outlive the app. When it cannot start, or dies unexpectedly `MAX_FAILURES` times, checks run in
this process instead, in a thread abandoned at the deadline (one log line says so), and the app keeps answering.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 5.0
START_TIMEOUT_S = 60.0  # python + sympy imports; generous for a loaded CI machine
MAX_FAILURES = 3  # unexpected helper deaths or failed starts before checks move into this process


@dataclass(frozen=True)
class Verdict:
    equal: bool | None  # None: nothing to compare, or no verdict in time
    message: str


def verify_answer(expected: str, answer: str | None) -> Verdict:
    """Compare the model's final answer with the expected one, as math, here and now (no deadline).

    Raises ValueError when the expected answer cannot be read as math.
    """
    from math_verify import verify  # sympy: seconds to import, so only where checks run

    gold = _parse(expected.strip())
    if not gold:
        raise ValueError(f"Could not read the expected answer {expected.strip()!r} as math. "
                         "Write a number, fraction or expression, e.g. 1/2, 0.5, \\frac{1}{2}, x^2+1 or \\{1, 2\\}.")
    if answer is None:
        return Verdict(None, "No \\boxed{} final answer to check.")
    predicted = _parse(f"\\boxed{{{answer}}}")
    if not predicted:
        return Verdict(False, f"✗ The final answer {answer!r} could not be read as math.")
    if verify(gold, predicted, timeout_seconds=None):
        return Verdict(True, f"✓ Correct: {answer} equals the expected {expected.strip()}.")
    return Verdict(False, f"✗ Different: {answer} is not {expected.strip()}.")


def _parse(text: str) -> list:
    from math_verify import parse

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns on every call that time-outs are off
    # time-outs off: math-verify's timer uses signals, which only work in the main thread
    # read as one LaTeX expression first: bare text lets the extractor pick a fragment ("2" of "\{1, 2\}")
    options = {"parsing_timeout": None, "fallback_mode": "no_fallback"}
    if "$" not in text and r"\boxed" not in text:
        return parse(f"${text}$", **options) or parse(text, **options)
    return parse(text, **options)


def _answer(request: dict) -> dict:
    """One check as a JSON-ready reply: the verdict, or the ValueError for an unreadable expected answer."""
    try:
        return asdict(verify_answer(request["expected"], request["answer"]))
    except ValueError as e:
        return {"refused": str(e)}
    except Exception as e:  # a checker bug must not cost the answer: say so in the verdict
        return asdict(Verdict(None, f"Could not check the answer ({type(e).__name__}: {e})."))


def _verdict(reply: dict) -> Verdict:
    if "refused" in reply:
        raise ValueError(reply["refused"])
    return Verdict(reply["equal"], reply["message"])


def _too_slow(timeout_s: float) -> Verdict:
    return Verdict(None, f"Could not check the answer within {timeout_s:g} s (the expressions are too hard for the checker).")


class HelperFailed(Exception):
    """The helper could not start, or ended without being asked to."""


def helper_command() -> list[str]:
    return [sys.executable or "python3", "-m", __name__]


class _Helper:
    """One running helper program, and a thread that queues its replies."""

    def __init__(self, command: list[str]):
        package_root = str(Path(__file__).resolve().parents[1])  # importable wherever the app was started from
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                            text=True, encoding="utf-8", bufsize=1)
        except OSError as e:
            raise HelperFailed(f"could not start {command[0]!r}: {e}") from None
        self.replies: queue.Queue[dict | None] = queue.Queue()
        threading.Thread(target=self._read, name="math-checker-replies", daemon=True).start()
        self._last_id = 0
        try:
            self._reply(lambda reply: reply.get("ready"), START_TIMEOUT_S)
        except TimeoutError:
            self.kill()
            raise HelperFailed(f"not ready within {START_TIMEOUT_S:g} s") from None

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                self.replies.put(json.loads(line))
            except ValueError:
                pass  # not a reply (the helper sends library prints to its stderr; this is belt and braces)
        self.replies.put(None)  # end of output: the helper has ended

    def _reply(self, wanted, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                reply = self.replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError from None
            if reply is None:
                raise HelperFailed(f"ended with exit code {self.process.wait()}")
            if wanted(reply):
                return reply

    def ask(self, expected: str, answer: str | None, timeout_s: float) -> dict:
        """The helper's reply to one check; TimeoutError past `timeout_s`, HelperFailed when it has ended."""
        self._last_id += 1
        request_id = self._last_id
        try:
            self.process.stdin.write(json.dumps({"id": request_id, "expected": expected, "answer": answer}) + "\n")
            self.process.stdin.flush()
        except OSError as e:  # a broken pipe: it ended while idle
            raise HelperFailed(f"stopped taking checks ({e})") from None
        reply = self._reply(lambda reply: reply.get("id") == request_id, timeout_s)
        return {k: v for k, v in reply.items() if k != "id"}

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """Ask the helper to end (the end of its input), and kill it if it does not within a second."""
        try:
            self.process.stdin.close()
            self.process.wait(1)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


class Checker:
    """Answer checks within a deadline: in the helper program, or in this process once the helper keeps failing."""

    def __init__(self, command: list[str] | None = None):
        self.command = command or helper_command()
        self._helper: _Helper | None = None
        self._failures = 0
        self._lock = threading.Lock()  # one check at a time: the helper answers in order
        atexit.register(self.close)

    @property
    def in_process(self) -> bool:
        """True once the helper has failed too often and checks run in this process."""
        return self._failures >= MAX_FAILURES

    def start(self) -> None:
        """Start the helper now (seconds: imports), so that the first check does not wait for it."""
        with self._lock:
            self._running_helper()

    def check(self, expected: str, answer: str | None, timeout_s: float = CHECK_TIMEOUT_S) -> Verdict:
        """Compare as `verify_answer` does, giving up after `timeout_s` (helper start-up does not count)."""
        with self._lock:
            while (helper := self._running_helper()) is not None:
                try:
                    return _verdict(helper.ask(expected, answer, timeout_s))
                except TimeoutError:  # not a failure: the expressions were too hard; a fresh helper takes over
                    helper.kill()
                    self._helper = None
                    return _too_slow(timeout_s)
                except HelperFailed as e:
                    self._failed(e)
            return _check_in_thread(expected, answer, timeout_s)

    def _running_helper(self) -> _Helper | None:
        """The live helper, started (again) if need be; None once checks run in this process."""
        while not self.in_process:
            if self._helper is not None and self._helper.alive():
                return self._helper
            if self._helper is not None:
                self._failed(HelperFailed(f"ended with exit code {self._helper.process.returncode}"))
                continue
            try:
                self._helper = _Helper(self.command)
            except HelperFailed as e:
                self._failed(e)
        return None

    def _failed(self, error: HelperFailed) -> None:
        if self._helper is not None:
            self._helper.kill()
            self._helper = None
        self._failures += 1
        if self.in_process:
            log.warning("The math answer checker's helper failed %d times (last: %s); checking answers in the app's "
                        "own process from now on (a check past its deadline then keeps a thread busy).",
                        self._failures, error)

    def close(self) -> None:
        """End the helper (at exit, or when a test is done with this checker)."""
        if self._helper is not None:
            self._helper.close()
            self._helper = None


def _check_in_thread(expected: str, answer: str | None, timeout_s: float) -> Verdict:
    """The fallback: check in a thread of this process; past the deadline it is left to finish alone."""
    reply: dict = {}
    worker = threading.Thread(target=lambda: reply.update(_answer({"expected": expected, "answer": answer})),
                              name="math-check", daemon=True)
    worker.start()
    worker.join(timeout_s)
    return _verdict(reply) if reply else _too_slow(timeout_s)


_checker = Checker()


def check_answer(expected: str, answer: str | None, timeout_s: float = CHECK_TIMEOUT_S) -> Verdict:
    """Compare the model's final answer with the expected one, as math, within `timeout_s`.

    Raises ValueError when the expected answer cannot be read as math.
    """
    return _checker.check(expected, answer, timeout_s)


def warm_up(after_s: float = 0.0) -> None:
    """Start the helper in the background (in `after_s`), so the first check (a Math solve, a Compare agreement) does
    not wait; a check before then starts it itself."""
    timer = threading.Timer(after_s, _checker.start)
    timer.daemon = True
    timer.start()


def main() -> None:
    """The helper: one JSON check per line on standard input, one JSON reply per line on standard output."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the app's terminal is the app's; we end with our input
    if hasattr(os, "nice"):
        os.nice(10)  # its start-up (sympy) yields the cores to the page and the first answer; a check takes milliseconds
    replies, sys.stdout = sys.stdout, sys.stderr  # a stray print from a library must not corrupt the replies
    verify_answer("1", "1")  # imports and first-call set-up happen before "ready", not in a check's deadline
    print(json.dumps({"ready": True}), file=replies, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        print(json.dumps({"id": request["id"], **_answer(request)}), file=replies, flush=True)


if __name__ == "__main__":
    main()
