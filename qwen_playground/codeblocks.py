"""Fenced code blocks in a (possibly still streaming) Markdown answer.

>>> extract_code_blocks("Here:\\n```python\\nprint(1)\\n```\\nand ```js\\nx()")
[CodeBlock(language='python', code='print(1)'), CodeBlock(language='js', code='x()')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)


@dataclass(frozen=True)
class CodeBlock:
    language: str
    code: str


def extract_code_blocks(markdown: str) -> list[CodeBlock]:
    """Every fenced block, the last one possibly unterminated (mid-stream)."""
    return [CodeBlock(m.group(1).lower(), m.group(2).rstrip("\n")) for m in _FENCE.finditer(markdown) if m.group(2).strip()]
