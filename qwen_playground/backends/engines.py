"""Which engine runs local models on this machine, and what each precision means on it.

Known without importing torch, so the page (its precision pickers) is built from the same answer the local backend
gives once torch has loaded: llama.cpp takes text requests where it was asked for (by default on a CPU) and its
library loads; transformers runs the rest (GPUs, images, fine-tuned models).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging

from . import Capabilities
from .precision import GGUF_BYTES_PER_PARAM, GGUF_TYPES, precisions_on

TRANSFORMERS, LLAMA_CPP = "transformers", "llama.cpp"


@functools.cache
def llama_cpp_problem() -> str | None:
    """Why llama.cpp cannot run here (None: it can): its package is missing or its native library does not load."""
    try:
        importlib.import_module("llama_cpp")  # loads the native library built at install
    except Exception as e:  # ImportError, or OSError from a library built for another machine
        return (f"llama-cpp-python is not usable ({type(e).__name__}: {e}); install it with pip install -r requirements.txt "
                "(it builds with a C/C++ compiler and CMake: README, 'No compiler')")
    quiet_llama_cpp()
    return None


def quiet_llama_cpp() -> None:
    """llama.cpp's own log (every tensor it loads or quantizes) only for errors: it would flood the server log.

    Its log callback keeps it to errors. The Python package also quiets llama.cpp by pointing the whole process's
    stdout and stderr at /dev/null while it loads a model (`suppress_stdout_stderr`), and every other thread's log
    lines vanished meanwhile: refusals, even an app fault's traceback (a fuzz run lost 19 of 9,047 refusal lines).
    That redirect is turned off here."""
    import llama_cpp.llama_chat_format

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    for module in (llama_cpp.llama, llama_cpp._internals, llama_cpp.llama_chat_format):
        module.suppress_stdout_stderr = _streams_as_they_are


def _streams_as_they_are(disable: bool = False) -> contextlib.nullcontext:
    return contextlib.nullcontext()


def llama_cpp_wanted(engine_setting: str, device: str) -> bool:
    return engine_setting == LLAMA_CPP or (engine_setting == "auto" and device == "cpu")


def text_engine(engine_setting: str, device: str) -> str:
    """The engine for text requests to families llama.cpp runs: llama.cpp where wanted and usable, else transformers."""
    return LLAMA_CPP if llama_cpp_wanted(engine_setting, device) and llama_cpp_problem() is None else TRANSFORMERS


def capabilities(device: str, engine_setting: str) -> Capabilities:
    """What local models can do on `device`: the precisions that run (with why the others do not) on its text engine."""
    if text_engine(engine_setting, device) == TRANSFORMERS:
        return Capabilities(device, precisions_on(device), TRANSFORMERS)
    kinds = ", ".join(f"{choice} {kind} ({round(GGUF_BYTES_PER_PARAM[choice], 2):g} bytes per parameter)" for choice, kind in GGUF_TYPES.items())
    note = f"Text models run on llama.cpp here: {kinds}; images, sound and fine-tuned models on transformers."
    return Capabilities(device, precisions_on(device, llama_cpp=True), LLAMA_CPP, note)
