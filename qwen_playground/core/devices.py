"""Which device local models run on (the setting, or the best this machine has), and the torch state they share.

transformers builds a model under torch's *process-wide* default dtype, set for the build and restored after it.
Two builds at once (two users asking two models, a demo model built while another loads) interleave those sets
and restores: measured here, three concurrent loads in bfloat16 gave models with float32 embeddings beside
bfloat16 layers, and left the process default at bfloat16. So every model build holds `model_build_lock`.
"""

from __future__ import annotations

import threading

import torch

model_build_lock = threading.Lock()  # held around every from_pretrained / from_config in this process


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
