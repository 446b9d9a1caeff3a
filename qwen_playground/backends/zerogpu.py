"""ZeroGPU (Hugging Face Spaces): local models run inside `spaces.GPU`, which lends a GPU to one call at a time.

On a ZeroGPU Space the app's process has no GPU. The `spaces` package runs a decorated function in a worker
process forked from the app, holding a GPU for the call's estimated duration; the arguments are pickled over and
what it yields is pickled back. Outside ZeroGPU its decorator returns the function as it is, so elsewhere
nothing changes. Here a whole local request is one call: loading the model (the worker keeps it while it stays
alive), processing images, generating. The duration asked for is estimated from the request (the model's size,
the most new tokens), capped by the setting `zero_gpu_max_seconds`.

A GPU can be refused (the visitor's quota is spent, too long a duration asked) or taken back mid-answer (the
duration ran out): the caller gets an `Error` event saying which and what to do, after what was already written,
and the conversation stays as it was. Everything else the worker raises is the app's fault and goes on up.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator

from ..core.generation import Error, Event, Request
from ..core.registry import Registry
from . import Backend

START_S = 10  # a worker's start: fork, CUDA set-up, moving what the app holds on `cuda` to the lent GPU
LOAD_S_PER_B_PARAMS = 2.0  # reading a model's 16-bit weights onto the GPU, per billion parameters (~1 GB/s)
DECODE_TOKENS_PER_S = 30  # one request's decoding with transformers on a lent GPU slice, with room to spare


def gpu_seconds(registry: Registry, request: Request, max_seconds: int) -> int:
    """The GPU time to ask for `request`: starting the worker, loading the model, every new token it may write."""
    spec = registry.get(request.model_id)
    wanted = START_S + LOAD_S_PER_B_PARAMS * spec.params_b + request.sampling.max_new_tokens / DECODE_TOKENS_PER_S
    return max(1, min(max_seconds, round(wanted)))


def on_lent_gpu(backend: Backend, registry: Registry, max_seconds: int,
                gpu: Callable | None = None) -> Callable[[Request, threading.Event], Iterator[Event]]:
    """`backend.stream`, each call run under `gpu` (default `spaces.GPU`, which does nothing off ZeroGPU)."""
    if gpu is None:
        import spaces

        gpu = spaces.GPU

    def generate(request: Request) -> Iterator[Event]:  # in the GPU worker: `backend` is its forked copy
        cancel = threading.Event()
        try:
            yield from backend.stream(request, cancel)
        finally:  # the caller stopped listening (Stop): ZeroGPU closes this generator
            cancel.set()

    lent = gpu(duration=lambda request: gpu_seconds(registry, request, max_seconds))(generate)

    def stream(request: Request, cancel: threading.Event) -> Iterator[Event]:
        events = lent(request)
        try:
            for event in events:
                yield event
                if cancel.is_set():
                    break
        except Exception as e:
            refusal = zero_gpu_refusal(e, gpu_seconds(registry, request, max_seconds))
            if refusal is None:
                raise
            yield Error(refusal)  # a tab shows it as its refusals, in one log line
        finally:
            events.close()

    stream.gpu_function = lent  # what `gpu` made of `generate` (spaces.GPU marks its own with `zerogpu`)
    return stream


def zero_gpu_refusal(error: Exception, seconds: int) -> str | None:
    """What to tell the user when ZeroGPU refused or took back the GPU (its errors carry a 'ZeroGPU …' title); None
    for any other error."""
    title, message = str(getattr(error, "title", "") or ""), str(getattr(error, "message", "") or error)
    if not title.startswith("ZeroGPU"):
        return None
    if "aborted" in message:
        return (f"The GPU lent for this answer was taken back before it finished (this Space asked for {seconds} s): what "
                "was written stays. Ask for fewer new tokens, or send again.")
    said = message.strip() + ("" if message.strip().endswith((".", "!", "?")) else ".")
    return f"No GPU for this answer: {said} Your conversation stays as it was; send again later."
