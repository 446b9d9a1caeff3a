"""What one generation is: the request a tab sends and the events a backend yields.

Every backend takes a `Request` and yields, in order: any number of `Progress`
events (download, load), then `ThinkingDelta` / `TextDelta` events as tokens
arrive, then one `TokenChoices` when the request asked for alternatives, then
one `Metrics` and one `Done`. A failure at any point yields one
`Error` and ends the stream; whatever was streamed before it stays valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class SamplingParams(BaseModel):
    """Decoding settings; the registry's presets and the UI sliders share this shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.8, gt=0.0, le=1.0)
    top_k: int = Field(20, ge=0)
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, gt=0.0, le=2.0)
    presence_penalty: float = Field(0.0, ge=0.0, le=2.0)  # OpenAI's: minus this for each token already in the answer
    max_new_tokens: int = Field(2048, ge=1)


MAX_ALTERNATIVES = 20  # OpenAI's top_logprobs limit
TOP_ALTERNATIVES = 5  # what "why this token?" shows at each step
PRECISIONS = ("full", "8-bit", "4-bit")  # the weights' precision: the model's own dtype, or quantized
PRECISION_ALIASES = {"none": "full"}  # the API's name for "full" before 0.2; accepted for one release


def precision_named(value: str) -> str:
    """A precision by its current name ("none" -> "full")."""
    return PRECISION_ALIASES.get(value, value)


PROMPT_LOOKUP = "prompt lookup"  # speculative decoding's drafts copied from the prompt and answer so far (n-grams)
DRAFT_TOKENS, MAX_DRAFT_TOKENS = 4, 8  # tokens guessed per pass: the default and the most


MEDIA_PARTS = ("image", "video", "audio")  # message parts a model's processor turns into tokens


@dataclass(frozen=True)
class Request:
    """One generation: which model, the chat messages, how to sample, thinking on or off."""

    model_id: str
    messages: list[dict]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    thinking: bool = False
    thinking_budget: int | None = None  # cap on thinking tokens (local models; Qwen's early-stop recipe)
    precision: str = "full"  # the weights' precision: "full", "8-bit" or "4-bit" (local models; see backends/precision.py)
    user: str = ""  # 'session@ip', named by the UI: rate limits and the private log; never shown
    alternatives: int = 0  # report the this-many most likely tokens at each step ("why this token?"); 0: none
    engine: str = ""  # the local engine wanted ("transformers", "llama.cpp"), where it runs this request; "": the machine's choice
    tools: tuple[dict, ...] = ()  # the tools the model may call, as chat templates and OpenAI's `tools` take them
    reasoning_effort: str = ""  # how hard a family with that switch reasons (Qwen3.8: xhigh, medium, low); "": its default
    keep_reasoning: bool = False  # earlier answers keep their reasoning in the prompt (Qwen3.6's preserve_thinking)
    draft: str = ""  # speculative decoding (local models): "" off, PROMPT_LOOKUP, or a draft model's id (registry.drafts_for)
    draft_tokens: int = DRAFT_TOKENS  # tokens guessed per pass of the model
    score: tuple[int, ...] = ()  # an answer's ids to score instead of generating: one pass, its token choices ("why this token?" after)

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", precision_named(self.precision))
        if not 0 <= self.alternatives <= MAX_ALTERNATIVES:
            raise ValueError(f"alternatives must be between 0 and {MAX_ALTERNATIVES}")
        if not 1 <= self.draft_tokens <= MAX_DRAFT_TOKENS:
            raise ValueError(f"draft_tokens must be between 1 and {MAX_DRAFT_TOKENS}")

    @property
    def has_media(self) -> bool:
        """Whether any message carries an image, video or audio part (what a model's processor is for)."""
        return any(isinstance(m["content"], list) and any(isinstance(p, dict) and p.get("type") in MEDIA_PARTS for p in m["content"])
                   for m in self.messages)


@dataclass(frozen=True)
class Progress:
    message: str


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ThinkingDelta:
    text: str


@dataclass(frozen=True)
class Drafts:
    """What speculative decoding did for one answer: guesses made, guesses the model kept, its passes, and each
    generated token's text with whether it came from a kept guess (the glass box colours them)."""

    method: str  # PROMPT_LOOKUP or the draft model's id
    length: int  # tokens guessed per pass at most
    drafted: int = 0
    accepted: int = 0
    passes: int = 0  # passes of the model over the answer (each checks one pass's guesses and adds a token of its own)
    tokens: tuple[tuple[str, bool], ...] = ()
    plain_tokens_per_s: float | None = None  # the same model's last answer without drafts on this engine, when measured
    note: str = ""  # why drafts were not used, when they were asked for and could not be

    @property
    def rejected(self) -> int:
        return self.drafted - self.accepted

    @property
    def acceptance(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None

    @property
    def tokens_per_pass(self) -> float | None:
        return len(self.tokens) / self.passes if self.passes else None

    def summary(self, tokens_per_s: float | None = None) -> str:
        if self.note:
            return self.note
        said = f"drafts ({self.method}, {self.length}): {self.accepted} of {self.drafted} accepted"
        if self.acceptance is not None:
            said += f" ({self.acceptance:.0%})"
        if self.tokens_per_pass is not None:
            said += f", {self.tokens_per_pass:.2f} tokens per pass"
        if tokens_per_s and self.plain_tokens_per_s:
            said += f", {tokens_per_s / self.plain_tokens_per_s:.2f}x the {self.plain_tokens_per_s:.1f} tok/s without drafts"
        return said

    @classmethod
    def from_dict(cls, data: dict) -> Drafts:
        return cls(**{**data, "tokens": tuple((str(t), bool(d)) for t, d in data.get("tokens", ()))})


@dataclass(frozen=True)
class Metrics:
    """Numbers that tell answers apart. Times in seconds; None when not measurable."""

    prompt_tokens: int
    answer_tokens: int
    thinking_tokens: int
    time_to_first_token_s: float | None
    tokens_per_s: float | None
    thinking_s: float | None
    total_s: float
    load_s: float = 0.0
    weights_bytes: int | None = None  # memory the model's weights occupy (local models)
    precision: str = "full"
    engine: str = ""  # the local engine that answered ("transformers", "llama.cpp"); "" for a server
    preferred_engine: str = ""  # the engine that runs this model best, where another answered while it converted the weights
    counted_with: str = ""  # a server that reported no token counts: the tokenizer that counted them here
    drafts: Drafts | None = None  # speculative decoding's account, when the request asked for drafts
    token_ids: tuple[int, ...] = ()  # the ids the model generated (local models): what "why this token?" scores afterwards

    @classmethod
    def timed(cls, prompt_tokens: int, answer_tokens: int, thinking_tokens: int, generated: int, start: float, first: float | None,
              thinking_end: float | None, end: float, load_s: float = 0.0, **facts) -> Metrics:
        """The numbers of one answer from its clock readings (`time.perf_counter`): `start` when generation began, `first`
        the first token (None: there was none), `thinking_end` the first answer text (None: the thought never ended),
        `end`; `generated` tokens in all. The one formula every backend uses; `facts` are the other fields."""
        return cls(prompt_tokens, answer_tokens, thinking_tokens,
                   time_to_first_token_s=(first - start) if first else None,
                   tokens_per_s=(generated - 1) / (end - first) if first and generated > 1 and end > first else None,
                   thinking_s=((thinking_end or end) - start) if thinking_tokens else None,
                   total_s=end - start + load_s, load_s=load_s, **facts)

    @classmethod
    def from_dict(cls, data: dict) -> Metrics:
        """`dataclasses.asdict`'s output (a saved conversation) back."""
        drafts = data.get("drafts")
        return cls(**{**data, "drafts": Drafts.from_dict(drafts) if drafts else None, "token_ids": tuple(data.get("token_ids", ()))})

    def summary(self) -> str:
        """One human line, e.g. for the metrics line under an answer."""
        parts = []
        if self.time_to_first_token_s is not None:
            parts.append(f"first token {self.time_to_first_token_s:.2f} s")
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.1f} tok/s")
        parts.append(f"{self.answer_tokens} answer tokens")
        if self.thinking_tokens:
            parts.append(f"{self.thinking_tokens} thinking tokens")
        parts.append(f"{self.prompt_tokens} prompt tokens")
        if self.counted_with:
            parts.append(f"counted here with the {self.counted_with} (the server reported no counts)")
        if self.weights_bytes:
            precision = "" if self.precision == "full" else f", {self.precision}"
            engine = f" on {self.engine}" if self.engine else ""
            if self.preferred_engine:
                engine += f" ({self.preferred_engine} was still converting the weights)"
            parts.append(f"weights {self.weights_bytes / 2**30:.2f} GiB{precision}{engine}")
        if self.drafts is not None:
            parts.append(self.drafts.summary(self.tokens_per_s))
        if self.load_s >= 0.05:
            parts.append(f"model load {self.load_s:.1f} s")
        parts.append(f"total {self.total_s:.1f} s")
        return " · ".join(parts)


@dataclass(frozen=True)
class Candidate:
    """A token the model could have picked, with the probability it gave it."""

    token: str
    probability: float


@dataclass(frozen=True)
class TokenStep:
    """One generated token: its probability and the most likely tokens at that step (the model's distribution after
    the repetition and presence penalties, before temperature, top-k and top-p choose among them). `probability` is
    None where the engine did not say."""

    token: str
    probability: float | None
    alternatives: tuple[Candidate, ...]
    thinking: bool = False
    token_id: int | None = None  # where the engine says (local models)


@dataclass(frozen=True)
class TokenChoices:
    """Every generated token of the answer with its alternatives; `note` says why some or all are missing."""

    steps: tuple[TokenStep, ...]
    note: str = ""


FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class Done:
    finish_reason: FinishReason


@dataclass(frozen=True)
class Error:
    message: str


Event = Union[Progress, TextDelta, ThinkingDelta, TokenChoices, Metrics, Done, Error]
