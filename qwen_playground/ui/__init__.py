"""The Gradio interface: `build_demo` assembles the tabs; each tab lives in its own module."""

from .app import build_demo, launch_options

__all__ = ["build_demo", "launch_options"]
