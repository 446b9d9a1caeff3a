"""Qwen Playground: try, teach and compare Qwen models in one Gradio app."""

import os

if os.environ.get("SPACES_ZERO_GPU"):  # a ZeroGPU Space: `spaces` must be imported before torch, to emulate CUDA here
    import spaces  # noqa: F401

__version__ = "0.1.0"
