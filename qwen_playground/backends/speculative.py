"""Speculative decoding: guess several tokens cheaply, then check them all in one pass of the model.

One decoded token reads every weight once, so on a CPU a model's speed is
memory bandwidth over its size (`llamacpp.py`). A pass over k+1 tokens reads
the weights once too: if a cheap guesser proposes k tokens (the draft) and
the model scores them all in one pass, every guess it agrees with is a token
for free. The guessers here: prompt lookup (the tokens that followed the last
time the context's last few tokens appeared: strong when an answer quotes or
edits its prompt) and a smaller model of the same vocabulary (`Registry.drafts_for`).

Exact: at each drafted position the model chooses its own token as it always
does (the same penalties, recorder and sampling, on the same context), and a
guess is kept only while the model chose it; the first token that differs,
or the one after the last guess, is the model's own. Greedy output is
therefore the output without drafts, token for token; with sampling, drawing
from the model and comparing with a guess that is one token (the draft is
greedy) is the standard acceptance rule (accept with probability p(guess),
else draw from the rest), so the model's distribution is kept.

The engines run the passes (`llamacpp.LlamaCppRunner`, `local/transformers_drafts.py`);
this module has what they share: the guesser, the check, and the account.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from transformers import PreTrainedTokenizerBase

from ..core.generation import PROMPT_LOOKUP, Drafts

TEACHER_FORCING = "teacher forcing"  # the guesses are a given answer, each kept: one pass scores it (`Request.score`)

PROBE_EVERY = 8  # passes between single guesses once guesses stopped being kept
# a forced answer is scored this many tokens a pass at most: every token's logits row is held until it is read
# (128 x Qwen3.5's 248,320 x 4 bytes = 127 MB; a whole long answer at once would be gigabytes)
FORCED_PASS = 128
LOOKUP_NGRAM = 3  # prompt lookup matches the context's last 3 tokens, then 2, then 1 (transformers' and llama.cpp's default)


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens `a` and `b` share. Slices compare in C: one comparison where one extends the other (a
    slot's conversation one turn on, a draft's history), else a binary search; a token-by-token loop in Python would
    cost every engine step a pass over the whole context."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n - 1  # a[:low] == b[:low]; they differ before `high` + 1
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if a[:middle] == b[:middle] else (low, middle - 1)
    return low


class PromptLookup:
    """Prompt lookup's index of one growing token sequence: where each n-gram (n = 1 to `LOOKUP_NGRAM`) last ended,
    brought up to date with the tokens added since the last guess, so a guess costs a few dictionary reads however
    long the prompt (it is made in every engine step, on the loop every answer waits on)."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self._ended: dict[tuple[int, ...], int] = {}  # n-gram -> the position right after its latest occurrence

    def guess(self, prompt: list[int], answer: list[int], length: int) -> list[int]:
        """Up to `length` tokens that followed the most recent earlier occurrence of the last 3 tokens of `prompt` +
        `answer` (fewer tokens matched when the longer tail never occurred before); [] when nothing matches. Each call
        continues the sequence of the one before."""
        tokens, indexed = self.tokens, len(self.tokens)
        tokens += (prompt + answer)[indexed:] if indexed < len(prompt) else answer[indexed - len(prompt):]
        end = len(tokens)
        for j in range(max(1, indexed), end):  # the n-grams ending before the tail's own end
            for n in range(1, min(LOOKUP_NGRAM, j) + 1):
                self._ended[tuple(tokens[j - n:j])] = j
        for n in range(min(LOOKUP_NGRAM, end - 1), 0, -1):
            if (j := self._ended.get(tuple(tokens[end - n:]))) is not None:
                return tokens[j:j + length]
        return []


def lookup_draft(tokens: list[int], length: int) -> list[int]:
    """Prompt lookup over `tokens` at once (`PromptLookup` for one guess)."""
    return PromptLookup().guess(tokens, [], length)


def verify(drafts: list[int], pick: Callable[[int], int], ends: Callable[[int], bool]) -> tuple[list[int], int]:
    """One pass's tokens: `pick(i)` is the model's own choice at drafted position i (after the tokens chosen so far);
    a guess is kept while the model chose it, and the first token that differs (or the one after the last guess) is
    the model's. Stops early at a token that `ends` the answer. Returns (the tokens, how many guesses were kept)."""
    tokens: list[int] = []
    for i in range(len(drafts) + 1):
        token = pick(i)
        tokens.append(token)
        if i == len(drafts) or token != drafts[i]:
            return tokens, i
        if ends(token):
            return tokens, i + 1
    return tokens, len(drafts)  # not reached: the loop returns at i == len(drafts)


@dataclass
class Speculation:
    """One request's drafts: how they are made, and the account of what they bought (across a turn's phases)."""

    method: str  # PROMPT_LOOKUP or the draft model's id
    length: int  # tokens guessed per pass at most
    drafter: object | None = None  # the engine's draft model (None: prompt lookup)
    drafted: int = 0
    accepted: int = 0
    passes: int = 0
    from_draft: list[bool] = field(default_factory=list)  # per generated token
    note: str = ""  # why drafts were not used
    plain_tokens_per_s: float | None = None  # the model's last answer without drafts on this engine (the speed-up's base)
    forced: tuple[int, ...] = ()  # teacher forcing: the answer whose tokens are taken instead of chosen

    @classmethod
    def scoring(cls, ids: tuple[int, ...]) -> Speculation:
        """Teacher forcing: every token of `ids` is the guess and the model's choice, so one pass (`FORCED_PASS` tokens
        at a time) gives the model's distribution at each, as recording during generation would have."""
        return cls(TEACHER_FORCING, len(ids), forced=tuple(ids))

    def refuse(self, why: str) -> None:
        """Answer without drafts, saying `why` in the account; returns None, what an engine then runs with."""
        self.note = why

    @property
    def active(self) -> bool:
        """Whether guesses are still to be made (no refusal so far)."""
        return not self.note

    def choose(self, made: int, choose: Callable[[], int]) -> int:
        """The token at position `made` of the answer: the forced one when scoring, else the model's choice."""
        return self.forced[made] if self.forced else choose()

    @property
    def lookup(self) -> bool:
        """Whether the guesses are made here (prompt lookup, teacher forcing) rather than by a draft model."""
        return self.method in (PROMPT_LOOKUP, TEACHER_FORCING)

    def __post_init__(self) -> None:
        self.current = self.length  # guesses a pass makes now: fewer while they are rejected (see `record`)
        self._idle = 0  # passes without guesses since they were all rejected
        self._lookup = PromptLookup()

    def wanted(self, room: int) -> int:
        """How many guesses the next pass makes, at most `room`: all of a forced answer; otherwise the current length,
        which `record` halves after a pass that kept none (down to none, with one guess tried every `PROBE_EVERY`
        passes) and raises again while they are kept: guesses that never agree cost little more than decoding alone."""
        if self.forced:
            return min(room, FORCED_PASS)
        if self.current == 0:
            self._idle += 1
            return min(1, room) if self._idle % PROBE_EVERY == 0 else 0
        return min(self.current, room)

    def guesses(self, prompt: list[int], answer: list[int], room: int) -> list[int]:
        """Prompt lookup's guesses after `prompt` + `answer` (the tokens so far), or the forced answer's next ones when
        scoring, at most `room` (the answer's tokens left after the next)."""
        room = self.wanted(room) if room > 0 else 0
        if room <= 0:
            return []
        made = len(answer)
        return list(self.forced[made:made + room]) if self.forced else self._lookup.guess(prompt, answer, room)

    def record(self, drafted: int, tokens: int, accepted: int) -> None:
        """A pass that checked `drafted` guesses and gave `tokens` tokens, the first `accepted` of them guesses."""
        self.drafted += drafted
        self.accepted += accepted
        self.passes += 1
        if drafted:
            self.current = self.current // 2 if not accepted else min(self.length, max(self.current, 1) + (accepted == drafted))
        self.from_draft += [i < accepted for i in range(tokens)]

    def report(self, tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> Drafts:
        """The account as the glass box shows it, with the text of each of the answer's `ids`."""
        texts = tokenizer.batch_decode([[i] for i in ids]) if ids else []
        flags = self.from_draft[:len(ids)] + [False] * (len(ids) - len(self.from_draft))
        return Drafts(self.method, self.length, self.drafted, self.accepted, self.passes, tuple(zip(texts, flags)),
                      self.plain_tokens_per_s, self.note)
