"""The logits processors every engine runs per request, in one order: repetition, presence, then the record.

Repetition penalty (the prompt counts), presence penalty (the answer only),
then "why this token?" records what the model wanted after both, before
temperature, top-k and top-p choose. transformers' `generate` applies the
repetition penalty itself (`repetition=False`); llama.cpp runs all three on
its logits; the continuous batch inserts the batched twins of the last two in
the same order (`batching.py`).
"""

from __future__ import annotations

from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

from ..core.generation import SamplingParams
from .alternatives import RecordAlternatives, TokenRecorder
from .presence import PresencePenalty


def logits_processors(sampling: SamplingParams, answer_start: int, recorder: TokenRecorder | None, prompt_length: int | None = None,
                      repetition: bool = True) -> LogitsProcessorList:
    """The processors for one request whose answer starts at `answer_start` in the ids (`prompt_length`: where this
    call's new tokens start, when a phase resumes after the first)."""
    processors = LogitsProcessorList()
    if repetition and sampling.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(sampling.repetition_penalty))
    if sampling.presence_penalty:
        processors.append(PresencePenalty(sampling.presence_penalty, answer_start))
    if recorder is not None:
        processors.append(RecordAlternatives(recorder, answer_start if prompt_length is None else prompt_length))
    return processors
