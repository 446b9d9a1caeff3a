"""Which device local models run on: the setting, or the best this machine has."""

from __future__ import annotations

import torch


def pick_device(setting: str = "auto") -> str:
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def accelerator_memory_bytes(device: str) -> int | None:
    """The memory of the GPU models would load on (None on a CPU, or where it cannot be read)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory
    return None
