"""Math in model answers: safe LaTeX display, the final \\boxed{} answer, answer checking.

`protect_math` rewrites inline `$...$` as `\\(...\\)` and escapes every other
dollar sign, so the renderer (delimiters `$$`, `\\[ \\]`, `\\( \\)`) never
mistakes prices for math. A `$` opens math only when the next character is
not a space, and closes it only when the previous character is not a space
and the next is not a digit (Pandoc's rule), and only the next dollar sign may
close it: "$5 and $10" and "$5 and $10 for $x$" keep the prices as text.
Answer checking uses Hugging Face's math-verify, so 1/2, 0.5 and \\frac{1}{2} agree.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import re
import threading
from dataclasses import dataclass

from math_verify import parse, verify

logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns on every call that timeouts are off

# Delimiters for Gradio's Markdown/Chatbot after `protect_math`.
LATEX_DELIMITERS = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "\\[", "right": "\\]", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
]
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)


def _protect_dollars(text: str) -> str:
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:  # keep escapes (\$, \(, ...) as they are
            out.append(text[i:i + 2])
            i += 2
        elif text.startswith("$$", i):
            end = text.find("$$", i + 2)
            if end < 0:
                out.append("\\$\\$")
                i += 2
            else:
                out.append(text[i:end + 2])
                i = end + 2
        elif c == "$":
            end = _inline_close(text, i)
            if end is None:
                out.append("\\$")
                i += 1
            else:
                out.append("\\(" + text[i + 1:end] + "\\)")
                i = end + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _inline_close(text: str, start: int) -> int | None:
    """Index of the `$` closing inline math opened at `start`, or None when it is a plain dollar.

    Only the next unescaped `$` may close: "$5 and $10 … $x$" keeps both prices as text.
    """
    if start + 1 >= len(text) or text[start + 1].isspace():
        return None
    j = start + 1
    while (j := text.find("$", j)) >= 0 and text[j - 1] == "\\":
        j += 1
    if j < 0 or "\n\n" in text[start:j]:
        return None
    if text[j - 1].isspace() or (j + 1 < len(text) and text[j + 1].isdigit()):
        return None
    return j


def protect_math(text: str) -> str:
    """Text ready for a renderer with LATEX_DELIMITERS; code spans and blocks untouched.

    >>> protect_math("Area $\\\\pi r^2$ costs $5 and $10.")
    'Area \\\\(\\\\pi r^2\\\\) costs \\\\$5 and \\\\$10.'
    """
    pieces, last = [], 0
    for m in _CODE.finditer(text):
        pieces += [_protect_dollars(text[last:m.start()]), m.group(0)]
        last = m.end()
    pieces.append(_protect_dollars(text[last:]))
    return "".join(pieces)


def extract_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (nested braces allowed), or None.

    >>> extract_boxed(r"so \\boxed{\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    """
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j].strip()
    return None  # still streaming, or unbalanced


@dataclass(frozen=True)
class Verdict:
    equal: bool | None  # None: nothing to compare
    message: str


def _parse(text: str) -> list:
    # timeouts off: math-verify's timer uses signals, which only work in the main thread
    # read as one LaTeX expression first: bare text lets the extractor pick a fragment ("2" of "\{1, 2\}")
    options = {"parsing_timeout": None, "fallback_mode": "no_fallback"}
    if "$" not in text and "\boxed" not in text:
        return parse(f"${text}$", **options) or parse(text, **options)
    return parse(text, **options)


CHECK_TIMEOUT_S = 5.0
_pool = None
_pool_lock = threading.Lock()


def check_answer(expected: str, answer: str | None, timeout_s: float = CHECK_TIMEOUT_S) -> Verdict:
    """Compare the model's final answer with the expected one, as math, within `timeout_s`.

    math-verify's own timeout uses signals, which only work in the main thread, and Gradio runs handlers in
    worker threads; so the check runs in one helper process, which is replaced when a pathological
    expression outlives the deadline.
    """
    global _pool
    pool = _helper()
    pending = pool.apply_async(_check_answer, (expected, answer))
    try:
        return pending.get(timeout_s)
    except multiprocessing.TimeoutError:
        with _pool_lock:
            if _pool is pool:
                _pool = None
        pool.terminate()
        return Verdict(None, f"Could not check the answer within {timeout_s:g} s (the expressions are too hard for the checker).")


def _helper():
    """The checker's helper process, started on first use (a few seconds: sympy and math-verify imports)."""
    global _pool
    with _pool_lock:
        if _pool is None:  # forkserver: never fork a process that already runs threads (torch, Gradio)
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])  # the server starts with this module loaded, not the caller's __main__
            _pool = context.Pool(1)
            atexit.register(_pool.terminate)  # before interpreter teardown, or Pool.__del__ complains
            _pool.apply(_check_answer, ("1", "1"))  # start-up and imports do not count against the deadline
        return _pool


def warm_up() -> None:
    """Start the helper in the background now, so the first check (a Math solve, a Compare agreement) does not wait.
    Not inside a process that multiprocessing is itself starting (an unguarded script is re-run there)."""
    if multiprocessing.parent_process() is None:
        threading.Thread(target=_helper, name="math-checker-start", daemon=True).start()


def _check_answer(expected: str, answer: str | None) -> Verdict:
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
