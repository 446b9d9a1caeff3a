"""Which dtype transformers runs in on this CPU: the one that answers a typical turn sooner, measured once per machine.

A turn costs a prompt pass (a matrix product over every prompt token: compute-bound) and then one decode step per
answer token (a matrix-vector product over all the weights: bound by memory bandwidth). bfloat16 halves the bytes
a decode step reads, but CPUs without native bfloat16 arithmetic multiply matrices several times slower in it
(measured on a 2-core EPYC VM: bfloat16 decoded 9.6 vs 6.1 tok/s, yet its prompt pass was the slower one). So both
dtypes are timed on one layer, at both shapes, and the estimate for a typical turn (`TYPICAL_PROMPT` tokens in,
`TYPICAL_ANSWER` out) decides. The layer (256 MiB in float32) is larger than most caches, so decode is timed
against memory as a real model's is. The result is kept in the cache folder per CPU and torch version: one measurement (~2 s, in the background while
the page is up), the same choice at every start.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .llamacpp import apart

log = logging.getLogger(__name__)
TYPICAL_PROMPT, TYPICAL_ANSWER = 512, 256  # tokens: a question with a system prompt and some history; a direct answer
PROMPT_ROWS = 64  # rows of the timed prompt pass (per-row cost is flat from here on: the product is compute-bound)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Choice:
    dtype: str
    seconds: dict[str, float]  # per dtype: the typical turn's estimated time on the timed layer
    cached: bool = False

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @classmethod
    def of(cls, measured: dict[str, dict[str, float]], cached: bool = False) -> Choice:
        """The dtype whose typical turn is sooner, from `measure`'s figures."""
        seconds = {name: typical_turn_s(**figures) for name, figures in measured.items()}
        return cls(min(seconds, key=seconds.get), seconds, cached)

    def why(self) -> str:
        other = next(name for name in self.seconds if name != self.dtype)
        ratio = self.seconds[other] / max(self.seconds[self.dtype], 1e-12)
        return f"{self.dtype}, {ratio:.2f}x as fast as {other} for a typical turn here"


def typical_turn_s(prompt_row_s: float, decode_step_s: float) -> float:
    return TYPICAL_PROMPT * prompt_row_s + TYPICAL_ANSWER * decode_step_s


def measure(trials: int = 5) -> dict[str, dict[str, float]]:
    """Per dtype, the best of interleaved trials (a busy neighbour slows both alike): seconds per prompt row and per
    decode step on an 8192 x 8192 layer (256 MiB in float32). Run `apart`: the asking thread keeps no OpenMP pool."""
    return apart(_measure, trials)


def _measure(trials: int) -> dict[str, dict[str, float]]:
    weight = torch.empty(8192, 8192).normal_()
    cases = {name: (weight.to(dtype), torch.randn(PROMPT_ROWS, 8192, dtype=dtype), torch.randn(1, 8192, dtype=dtype))
             for name, dtype in DTYPES.items()}
    del weight
    best = {name: {"prompt_row_s": float("inf"), "decode_step_s": float("inf")} for name in DTYPES}
    for _ in range(trials):
        for name, (w, prompt, step) in cases.items():
            for key, x, rows in (("prompt_row_s", prompt, PROMPT_ROWS), ("decode_step_s", step, 1)):
                start = time.perf_counter()
                torch.nn.functional.linear(x, w)
                best[name][key] = min(best[name][key], (time.perf_counter() - start) / rows)
    return best


def choose(measured: dict[str, dict[str, float]]) -> str:
    """The dtype whose typical turn is sooner."""
    return Choice.of(measured).dtype


def machine_key() -> str:
    model = platform.processor()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model} | {os.cpu_count()} cores | torch {torch.__version__}"


def cpu_dtype(cache_dir: Path) -> Choice:
    """The dtype for transformers on this CPU: from the cache folder when this machine was measured, else measured now."""
    path, key = Path(cache_dir).expanduser() / "cpu-dtype.json", machine_key()
    try:
        saved = json.loads(path.read_text())
        if saved["machine"] == key:
            return Choice.of(saved["measured"], cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    measured = measure()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"machine": key, "measured": measured}, indent=1))
    except OSError:  # a read-only cache: measured again at the next start
        log.info("Could not save the dtype measurement to %s", path)
    return Choice.of(measured)
