"""Qwen Playground: try, teach and compare Qwen models in one Gradio app."""

__version__ = "0.1.0"
