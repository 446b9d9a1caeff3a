"""One turn on any local engine: template, length check, thinking phases, streaming, counting, metrics.

The engine only turns prompt ids into new ids (`Engine.generate`, in a worker
thread, its tokens through a streamer); everything a person sees of a turn
is the same on every engine: the chat template applied here (`encoding.py`,
as the inspector shows it), thoughts split from the answer, Qwen's
thinking-budget recipe, the "why this token?" record and the metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterator

import torch
from transformers import PreTrainedTokenizerBase

from ...core.generation import Done, Error, Event, Metrics, Request, SamplingParams, TextDelta, TokenChoices
from ...core.registry import ModelSpec
from .. import llamacpp
from ..alternatives import TokenRecorder
from ..llamacpp import EngineFailed
from ..speculative import Speculation
from ..text_stream import LiveTextStreamer
from ..thinking import ThinkingParser
from .engine import Engine, LoadedModel

log = logging.getLogger("qwen_playground")

# Qwen's documented thinking-budget recipe: when the budget runs out mid-thought, append this (and the family's
# closing tag) and continue.
EARLY_STOP = "\n\nConsidering the limited time by the user, I have to give the solution based on the thinking directly now.\n"


class _GenerationFailed(Exception):
    def __init__(self, cause: Exception):
        super().__init__(str(cause))
        self.cause = cause


class _Clock:
    """When the answer began, its first token came, its thought ended."""

    def __init__(self) -> None:
        self.start, self.first, self.thinking_end = time.perf_counter(), None, None

    def feed(self, parser: ThinkingParser, text: str) -> Iterator[Event]:
        """The parser's events for `text`, timed."""
        if text and self.first is None:
            self.first = time.perf_counter()
        for event in parser.feed(text):
            if isinstance(event, TextDelta) and self.thinking_end is None:
                self.thinking_end = time.perf_counter()
            yield event


def stream_turn(engine: Engine, spec: ModelSpec, loaded: LoadedModel, request: Request, cancel: threading.Event,
                encode: Callable[[ModelSpec, LoadedModel, Request], dict], max_input_tokens: int, load_s: float,
                speculation: Speculation | None = None) -> Iterator[Event]:
    """The events of one answer from a loaded model: thoughts and text as they stream, then the token choices (when
    asked for), the metrics (with the drafts' account when `speculation` asked for them) and how it ended; or an
    Error, after whatever streamed before it."""
    tokenizer, family = loaded.tokenizer, spec.family
    context = min(spec.context_length, loaded.context_tokens or spec.context_length)
    try:  # images and videos are torch work: `apart`, so this long-lived server thread keeps no OpenMP pool
        inputs = llamacpp.apart(encode, spec, loaded, request) if request.has_media else encode(spec, loaded, request)
    except Exception as e:
        yield Error(f"Could not apply {spec.id}'s chat template to these messages: {e}")
        return
    prompt_tokens = inputs["input_ids"].shape[1]
    limit = min(max_input_tokens, context - 1)
    if prompt_tokens > limit:
        # the exact check after templating; every tab refuses before sending, with its own advice (tasks.refuse_if_too_long)
        yield Error(f"This prompt is {prompt_tokens:,} tokens long with its chat template; the limit is {limit:,}. Shorten it.")
        return
    sampling = request.sampling.model_copy(update={"max_new_tokens": min(request.sampling.max_new_tokens, context - prompt_tokens)})

    budget = request.thinking_budget if family.thinks(request.thinking) and request.thinking_budget else None
    eos, close_id = loaded.eos_ids, tokenizer.convert_tokens_to_ids(family.thinking_tags[1])
    flags = (cancel, threading.Event())  # the second is set when the consumer stops listening
    parser = ThinkingParser(family.thinking_tags, starts_inside=family.starts_in_thought(request.thinking))
    clock, prompt_ids = _Clock(), inputs["input_ids"]
    recorder = TokenRecorder(request.alternatives) if request.alternatives else None
    phase = _Phase(engine, loaded, sampling, flags, parser, clock, prompt_tokens, recorder, speculation)
    own: list[int] = []  # tokens the model generated (the early-stop sentence is ours, not its)
    injected: list[int] = []
    try:
        first = yield from phase.run(dict(inputs), min(budget or sampling.max_new_tokens, sampling.max_new_tokens), [close_id] if budget else [])
        own += first
        ran_out = budget and first and first[-1] not in eos and not cancel.is_set() and len(own) < sampling.max_new_tokens
        if ran_out:  # Qwen's thinking-budget recipe: close the thought ourselves (unless the model did), then answer
            if first[-1] != close_id:
                early_stop = EARLY_STOP + family.thinking_tags[1] + "\n\n"
                injected = tokenizer(early_stop, add_special_tokens=False).input_ids
                yield from clock.feed(parser, early_stop)
            resumed = torch.cat([prompt_ids, torch.tensor([first + injected], dtype=prompt_ids.dtype)], dim=1)
            own += yield from phase.run({"input_ids": resumed, "attention_mask": torch.ones_like(resumed)}, sampling.max_new_tokens - len(own), [])
        yield from parser.flush()
    except _GenerationFailed as e:
        log.error("Generation failed on %s", spec.id, exc_info=e.cause)  # the engine's fault: in full for whoever runs the app
        yield from parser.flush()
        yield Error(str(e.cause) if isinstance(e.cause, EngineFailed) else f"Generation failed: {type(e.cause).__name__}: {e.cause}")
        return
    finally:
        flags[1].set()
    end = time.perf_counter()
    if injected:  # the thought is what the model wrote before we closed it
        thinking_tokens = len(first)
        answer_tokens = len([i for i in own[len(first):] if i not in set(tokenizer.all_special_ids)])
    else:
        thinking_tokens, answer_tokens = split_counts(tokenizer, own, parser.in_thinking, close_id)
    if recorder is not None:
        yield TokenChoices(recorder.steps(tokenizer, own, thinking_tokens))
    drafts = speculation.report(tokenizer, own) if speculation is not None and not speculation.forced else None
    yield Metrics.timed(prompt_tokens, answer_tokens, thinking_tokens, len(own), clock.start, clock.first, clock.thinking_end, end, load_s,
                        weights_bytes=loaded.weights_bytes, precision=request.precision, engine=engine.name, drafts=drafts,
                        token_ids=tuple(first + injected + own[len(first):]) if injected else tuple(own))
    stopped = bool(own) and own[-1] in eos
    if cancel.is_set() and not stopped:
        yield Done("cancelled")
    else:
        yield Done("stop" if stopped or len(own) < sampling.max_new_tokens else "length")


class _Phase:
    """One `Engine.generate` call of a turn (two when a thinking budget cuts in), streamed through the parser."""

    def __init__(self, engine: Engine, loaded: LoadedModel, sampling: SamplingParams, flags, parser: ThinkingParser, clock: _Clock,
                 answer_start: int, recorder: TokenRecorder | None, speculation: Speculation | None = None):
        self.engine, self.loaded, self.sampling, self.flags = engine, loaded, sampling, flags
        self.parser, self.clock, self.answer_start, self.recorder = parser, clock, answer_start, recorder
        self.speculation = speculation

    def run(self, inputs: dict, max_new_tokens: int, stop_ids: list[int]) -> Iterator[Event]:
        """Stream the phase's events; returns (via StopIteration) its new token ids. The recorder's last step settles
        with the phase's last token."""
        streamer = LiveTextStreamer(self.loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
        outcome: dict = {}

        def work() -> None:
            try:
                drafts = self.speculation if self.speculation is not None and self.speculation.active else None
                outcome["ids"] = self.engine.generate(self.loaded, inputs, self.sampling, max_new_tokens, stop_ids, self.recorder,
                                                      self.answer_start, streamer, self.flags, drafts)
            except Exception as e:  # reported as an Error event by the consumer
                outcome["error"] = e
            finally:
                streamer.end()

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        for chunk in streamer:
            yield from self.clock.feed(self.parser, chunk)
        worker.join()
        if "error" in outcome:
            raise _GenerationFailed(outcome["error"])
        if self.recorder is not None and outcome["ids"]:
            self.recorder.settle(outcome["ids"][-1])
        return outcome["ids"]


def split_counts(tokenizer: PreTrainedTokenizerBase, ids: list[int], still_thinking: bool, close_id: int) -> tuple[int, int]:
    """(thinking tokens, answer tokens); the closing tag counts as thinking, end-of-turn as neither."""
    special = set(tokenizer.all_special_ids)
    if close_id in ids:
        cut = ids.index(close_id) + 1
    else:
        cut = len(ids) if still_thinking else 0
    answer = [i for i in ids[cut:] if i not in special]
    return cut, len(answer)
