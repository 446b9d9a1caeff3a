"""Math in model answers: safe LaTeX display and the final \\boxed{} answer.

`protect_math` rewrites inline `$...$` as `\\(...\\)` and escapes every other
dollar sign, so the renderer (delimiters `$$`, `\\[ \\]`, `\\( \\)`) never
mistakes prices for math. A `$` opens math only when the next character is
not a space, and closes it only when the previous character is not a space
and the next is not a digit (Pandoc's rule), and only the next dollar sign may
close it: "$5 and $10" and "$5 and $10 for $x$" keep the prices as text.
Checking answers as math is `mathcheck`'s job.
"""

from __future__ import annotations

import re

# Delimiters for Gradio's Markdown/Chatbot after `protect_math`.
LATEX_DELIMITERS = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "\\[", "right": "\\]", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
]
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)
_TAG = re.compile(r"<(?=[A-Za-z/!?])")  # what an HTML tag, comment or declaration starts with


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
    return _outside_code(text, _protect_dollars)


def protect_typed(text: str) -> str:
    """A person's own message as a chat shows it: Markdown and math render (as `protect_math`), HTML tags show as the
    text typed.

    >>> protect_typed("<b>bold?</b> costs $5")
    '\\\\<b>bold?\\\\</b> costs \\\\$5'
    """
    return protect_math(_outside_code(text, lambda piece: _TAG.sub(r"\\<", piece)))


def unprotect(text: str) -> str:
    """What was typed or answered, from its protected display: escaped dollar signs and tags as they were (math keeps
    its \\( \\) form, which reads the same to a model). For the model's next turn and for editing.

    >>> unprotect(protect_typed("<b>x</b> is $x^2$ for $5"))
    '<b>x</b> is \\\\(x^2\\\\) for $5'
    """
    return _outside_code(text, lambda piece: piece.replace("\\$", "$").replace("\\<", "<"))


def _outside_code(text: str, change) -> str:
    """`change` applied to the text between code spans and blocks, which stay as they are."""
    pieces, last = [], 0
    for m in _CODE.finditer(text):
        pieces += [change(text[last:m.start()]), m.group(0)]
        last = m.end()
    pieces.append(change(text[last:]))
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
