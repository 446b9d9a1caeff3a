"""The weights' precision: full, 8-bit or 4-bit (quantized), and what each needs to run.

On CUDA, bitsandbytes (8-bit LLM.int8, 4-bit NF4 with double quantization,
as Qwen's docs show). On CPU, torchao's weight-only int8. torchao's CPU int4
path needs kernels that are not installable here (`mslk`), and its fallback
keeps 4-bit values unpacked in int8 bytes, so it would save no memory over
8-bit: 4-bit is offered on CUDA only, and the picker says why.

On a CPU where llama.cpp runs (`llamacpp.py`), text models take its GGUF
types instead: full is BF16, 8-bit Q8_0, 4-bit Q4_K_M, so 4-bit is there too.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from ..core.generation import PRECISIONS

if TYPE_CHECKING:  # torch loads after the page is up (backends/starting.py)
    import torch

BITS = {"full": None, "8-bit": 8, "4-bit": 4}  # None: the model's own dtype


GGUF_TYPES = {"full": "BF16", "8-bit": "Q8_0", "4-bit": "Q4_K_M"}  # each precision as llama.cpp stores it
# bytes per parameter in those files: Q8_0 packs 32 int8 weights with one fp16 scale; Q4_K_M mixes 4- and 6-bit blocks
GGUF_BYTES_PER_PARAM = {"full": 2.0, "8-bit": 34 / 32, "4-bit": 0.6}


def unavailable_reason(choice: str, device: str, llama_cpp: bool = False) -> str | None:
    """Why `choice` cannot run on `device`, or None when it can (`llama_cpp`: that engine runs text models here)."""
    if choice not in PRECISIONS:
        return f"Unknown precision '{choice}': choose one of {', '.join(PRECISIONS)}."
    if choice == "full":
        return None
    if device == "cuda":
        return None if importlib.util.find_spec("bitsandbytes") else "needs the bitsandbytes package"
    if device == "cpu":
        if choice == "4-bit" and llama_cpp:
            return None
        if choice == "4-bit":
            return "needs a CUDA GPU (bitsandbytes NF4); torchao's CPU 4-bit would save no memory over 8-bit here"
        return None if importlib.util.find_spec("torchao") else "needs the torchao package"
    return f"not offered on {device}"


def precisions_on(device: str, llama_cpp: bool = False) -> dict[str, str | None]:
    """Each choice with the reason it cannot run here (None: it can)."""
    return {choice: unavailable_reason(choice, device, llama_cpp) for choice in PRECISIONS}


def transformers_config(choice: str, device: str, dtype: torch.dtype):
    """The `quantization_config` for `from_pretrained`, or None for full precision."""
    if reason := unavailable_reason(choice, device):
        raise ValueError(f"{choice} weights are unavailable: {reason}.")
    if choice == "full":
        return None
    if device == "cuda":
        from transformers import BitsAndBytesConfig

        if choice == "8-bit":
            return BitsAndBytesConfig(load_in_8bit=True)
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=dtype)
    from torchao.quantization import Int8WeightOnlyConfig
    from transformers import TorchAoConfig

    return TorchAoConfig(Int8WeightOnlyConfig())


SCALES = {"4-bit": 1.06}  # 4-bit weights carry per-group scales: about 6% more than the packed values


def bytes_per_param(choice: str, full_bytes: int = 2, gguf: bool = False) -> float:
    """Weight bytes per parameter for memory estimates before loading (the model guide and the cache use this one
    rule): full `full_bytes` (the dtype's: 2 for bf16), 8-bit 1, 4-bit 0.53; in llama.cpp's files (`gguf`) 2, 1.06
    and 0.6."""
    if gguf:
        return GGUF_BYTES_PER_PARAM[choice]
    return (BITS[choice] / 8 if BITS[choice] else full_bytes) * SCALES.get(choice, 1.0)


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes the loaded weights really occupy: quantized tensors are counted by their packed parts
    (transformers' `get_memory_footprint` counts torchao's int8 tensors at their logical dtype)."""
    return sum(tensor_bytes(t) for t in (*model.parameters(), *model.buffers()))


def tensor_bytes(tensor: torch.Tensor) -> int:
    if hasattr(tensor, "__tensor_flatten__"):  # a tensor subclass (torchao): sum its inner tensors
        names, _ = tensor.__tensor_flatten__()
        return sum(tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.nelement() * tensor.element_size()
