"""A thought (`<think>…</think>`) in a token stream: split it, and strip it from history.

`ThinkingParser` turns text chunks into thinking and answer deltas, and
survives tags split across chunks (`"</thi"` + `"nk>"`) and output with no
tags at all. It only knows the tag strings it is given (a family's
`thinking_tags`), not tokens.

>>> p = ThinkingParser(("<think>", "</think>"))
>>> p.feed("<think>hmm</th") + p.feed("ink>\\n\\nYes") + p.flush()
[ThinkingDelta(text='hmm'), TextDelta(text='Yes')]
"""

from __future__ import annotations

import re

from ..core.generation import TextDelta, ThinkingDelta


def _partial_tag_len(text: str, tag: str) -> int:
    """Length of the longest end of `text` that could be the start of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ThinkingParser:
    """Feed text chunks in order; get `ThinkingDelta` / `TextDelta` events back.

    `starts_inside=True` is for templates that put `<think>` in the prompt, so
    the output begins inside the thought and only `</think>` appears; an
    opening tag the model writes anyway (a template that did not open it) is
    read as the start of the thought, not as thinking text.
    """

    def __init__(self, tags: tuple[str, str], starts_inside: bool = False):
        self.open, self.close = tags
        self._starts_inside = starts_inside
        self._state = "start"
        self._buffer = ""
        self._strip_leading = True  # drop the newlines Qwen puts after each tag

    def feed(self, chunk: str) -> list[TextDelta | ThinkingDelta]:
        self._buffer += chunk
        events: list[TextDelta | ThinkingDelta] = []
        while self._buffer:
            if self._state == "start":
                head = self._buffer.lstrip()
                if head.startswith(self.open):
                    self._buffer, self._state, self._strip_leading = head[len(self.open):], "thinking", True
                elif self.open.startswith(head):  # empty or a partial "<thi": wait for more
                    break
                else:
                    self._state = "thinking" if self._starts_inside else "answer"
            elif self._state == "thinking":
                end = self._buffer.find(self.close)
                if end >= 0:
                    self._emit(events, ThinkingDelta, self._buffer[:end].rstrip())
                    self._buffer, self._state, self._strip_leading = self._buffer[end + len(self.close):], "answer", True
                else:
                    # hold back a possible partial "</think>" and the newlines before it
                    ready = self._buffer[: len(self._buffer) - _partial_tag_len(self._buffer, self.close)].rstrip()
                    self._emit(events, ThinkingDelta, ready)
                    self._buffer = self._buffer[len(ready):]
                    break
            else:
                self._emit(events, TextDelta, self._buffer)
                self._buffer = ""
        return events

    def flush(self) -> list[TextDelta | ThinkingDelta]:
        """End of stream: whatever is held back is released as it stands."""
        events: list[TextDelta | ThinkingDelta] = []
        if self._buffer:
            inside = self._state == "thinking" or (self._state == "start" and self._starts_inside)
            self._emit(events, ThinkingDelta if inside else TextDelta, self._buffer)
            self._buffer = ""
        return events

    @property
    def in_thinking(self) -> bool:
        return self._state == "thinking" or (self._state == "start" and self._starts_inside)

    def _emit(self, events: list, kind: type, text: str) -> None:
        if self._strip_leading:
            text = text.lstrip("\n")
            if not text:
                return
            self._strip_leading = False
        if text:
            events.append(kind(text))


def strip_thinking(text: str, tags: tuple[str, str]) -> str:
    """The answer without any thought in `tags`: what Qwen says to send back in history."""
    open_tag, close_tag = tags
    if close_tag in text and open_tag not in text:  # the prompt opened the block
        text = text.split(close_tag, 1)[1]
    block = re.compile(re.escape(open_tag) + ".*?(" + re.escape(close_tag) + "|$)", re.DOTALL)
    return block.sub("", text).strip()
