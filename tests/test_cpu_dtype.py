"""A CPU's transformers dtype is chosen by a typical turn's end-to-end time, measured once per machine and kept."""

from __future__ import annotations

import json

import torch

from qwen_playground.backends import cpu_dtype
from qwen_playground.backends.cpu_dtype import TYPICAL_ANSWER, TYPICAL_PROMPT, choose, typical_turn_s

# Per-row and per-step seconds shaped like the EPYC VM the issue measured on: bfloat16 decodes faster (half the
# bytes) but its prompt pass is several times slower (no native bfloat16 arithmetic).
EPYC = {"float32": {"prompt_row_s": 0.0010, "decode_step_s": 0.010}, "bfloat16": {"prompt_row_s": 0.0040, "decode_step_s": 0.0062}}


def test_the_prompt_pass_counts_not_only_the_decode_step():
    assert EPYC["bfloat16"]["decode_step_s"] < EPYC["float32"]["decode_step_s"]  # a decode micro-benchmark would pick bfloat16
    assert choose(EPYC) == "float32"  # 512 prompt rows at 4x the cost outweigh 256 faster steps
    assert typical_turn_s(**EPYC["float32"]) == TYPICAL_PROMPT * 0.0010 + TYPICAL_ANSWER * 0.010
    native = {**EPYC, "bfloat16": {"prompt_row_s": 0.0006, "decode_step_s": 0.0052}}  # a CPU with bfloat16 units (AMX)
    assert choose(native) == "bfloat16"


def test_measured_once_per_machine_then_read_back(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(cpu_dtype, "measure", lambda: calls.append(1) or EPYC)
    first = cpu_dtype.cpu_dtype(tmp_path)
    assert first.dtype == "float32" and first.torch_dtype == torch.float32 and not first.cached
    assert "float32, 1.18x as fast as bfloat16 for a typical turn here" == first.why()
    again = cpu_dtype.cpu_dtype(tmp_path)
    assert again.dtype == "float32" and again.cached and len(calls) == 1  # the same choice at the next start, not re-timed
    saved = json.loads((tmp_path / "cpu-dtype.json").read_text())
    saved["machine"] = "another CPU"
    (tmp_path / "cpu-dtype.json").write_text(json.dumps(saved))
    assert not cpu_dtype.cpu_dtype(tmp_path).cached and len(calls) == 2  # another machine (or torch) is measured afresh
    (tmp_path / "cpu-dtype.json").write_text("{not json")
    assert cpu_dtype.cpu_dtype(tmp_path).dtype == "float32" and len(calls) == 3  # a damaged file is measured over


def test_the_real_measurement_times_both_shapes_for_both_dtypes():
    measured = cpu_dtype.measure(trials=1)
    assert set(measured) == {"float32", "bfloat16"}
    for figures in measured.values():
        assert 0 < figures["decode_step_s"] < 5 and 0 < figures["prompt_row_s"] < 5
    assert choose(measured) in measured
