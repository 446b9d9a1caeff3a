"""Which device local models run on (the setting, or the best this machine has), and the torch state they share.

The device is found without importing torch: the page is built from it (which model each tab starts with, which
precisions run here) while torch still loads in the background. An NVIDIA GPU is what the CUDA driver reports
(as torch asks it, honouring CUDA_VISIBLE_DEVICES); Apple silicon has Metal (mps). The local backend confirms the
choice with torch once torch has loaded (`usable_device`). On a ZeroGPU Space the process has no GPU of its own:
one is lent to each call under `spaces.GPU` (backends/zerogpu.py), models go on `cuda` as ZeroGPU emulates it, and
its size is the package's; the driver is never touched here, since CUDA set up before a fork breaks the child.

transformers builds a model under torch's *process-wide* default dtype, set for the build and restored after it.
Two builds at once (two users asking two models, a demo model built while another loads) interleave those sets
and restores: measured here, three concurrent loads in bfloat16 gave models with float32 embeddings beside
bfloat16 layers, and left the process default at bfloat16. So every model build holds `model_build_lock`.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform
import sys
import threading

log = logging.getLogger(__name__)
model_build_lock = threading.Lock()  # held around every from_pretrained / from_config in this process


def on_zero_gpu() -> bool:
    """Running on a ZeroGPU Space, as the `spaces` package reads its environment (SPACES_ZERO_GPU). Where the variable
    is not set at all, the package (which imports Gradio) is not asked."""
    if not os.environ.get("SPACES_ZERO_GPU"):
        return False
    from spaces.config import Config

    return Config.zero_gpu


def pick_device(setting: str = "auto") -> str:
    if setting != "auto":
        return setting
    if on_zero_gpu() or _cuda_memory_bytes() is not None:
        return "cuda"
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return "mps"
    return "cpu"


def accelerator_memory_bytes(device: str) -> int | None:
    """The memory of the GPU models would load on (None on a CPU, or where it cannot be read)."""
    if not device.startswith("cuda"):
        return None
    if on_zero_gpu():  # the lent GPU's, as the package tells it (by the GPU model its host has)
        from spaces.zero.config import get_config

        return get_config()["memory"]
    return _cuda_memory_bytes()


def usable_device(device: str) -> str:
    """`device` if the installed torch can use it, else "cpu" with a warning (a CPU-only torch on a GPU machine).
    Imports torch: for the backend, not the page."""
    import torch

    usable = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}.get(device.split(":")[0], lambda: True)()
    if not usable:
        log.warning("This machine has %s, but the installed torch cannot use it: local models run on the CPU. "
                    "Install a torch build for it, or start with --device cpu to silence this.", device)
    return device if usable else "cpu"


@functools.cache
def _cuda_memory_bytes() -> int | None:
    """The first CUDA device's memory as the driver reports it, or None where there is no driver or no device."""
    for name in ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so"):
        try:
            cuda = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        return None
    count, device, total = ctypes.c_int(), ctypes.c_int(), ctypes.c_size_t()
    try:
        if cuda.cuInit(0) or cuda.cuDeviceGetCount(ctypes.byref(count)) or count.value < 1:
            return None
        if cuda.cuDeviceGet(ctypes.byref(device), 0) or cuda.cuDeviceTotalMem_v2(ctypes.byref(total), device):
            return None
    except AttributeError:  # a library by that name without the driver API
        return None
    return total.value
