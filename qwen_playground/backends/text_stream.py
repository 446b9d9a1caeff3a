"""Generated tokens to text as they come, for the glass box's "first token" and for the screen.

transformers' `TextIteratorStreamer` holds back a token that is not a letter,
digit or space until the next space (it might start some formatting, or be half
a character): one to several tokens late on the screen and in the first-token
time, where a server streams each token's text at once. Qwen's byte-level BPE
decodes a prefix of the ids to a prefix of the text, except a character split
across tokens, which decodes to U+FFFD until its last byte arrives: only that
waits here.
"""

from __future__ import annotations

from transformers import TextIteratorStreamer

INCOMPLETE = "\ufffd"


class LiveTextStreamer(TextIteratorStreamer):
    """A `TextIteratorStreamer` that gives each token's text at once, except a character still missing bytes."""

    def put(self, value) -> None:
        if len(value.shape) > 1:
            value = value[0]
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        self.token_cache.extend(value.tolist())
        text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
        if text.endswith(INCOMPLETE):
            return
        printable = text[self.print_len:]
        if text.endswith("\n"):  # as transformers does: start over from the last token, so decoding stays short
            self.token_cache = self.token_cache[-1:]
            self.print_len = len(self.tokenizer.decode(self.token_cache, **self.decode_kwargs))
        else:
            self.print_len = len(text)
        self.on_finalized_text(printable)
