"""Assemble the playground's Blocks from the config. Builds; never launches."""

from __future__ import annotations

import gradio as gr

from ..backends import Backend
from ..backends.router import Router
from ..config import AppConfig
from ..arena import ArenaStore
from .arena_tab import build_arena_tab, build_leaderboard_tab, standings_table
from .chat_tab import build_chat_tab
from .compare_tab import build_compare_tab
from .inspector_tab import build_guide_tab, build_inspector_tab
from .code_tab import build_code_tab
from .math_tab import build_math_tab
from .multilingual_tab import build_multilingual_tab

CSS = """
.demo-banner {border-left: 4px solid #f59e0b; padding: 0.4em 0.8em; background: rgba(245, 158, 11, 0.08);}
"""


def demo_banner(config: AppConfig) -> str:
    return (
        f"**Demo mode** ({config.demo_reason}). The models here are tiny Qwen-architecture networks with random "
        "weights built offline: they only say a scripted greeting, but every part of the app runs as with real models. "
        "For real answers, start without `--demo` on a machine that can reach the Hugging Face Hub (weights download on "
        "first use), or list local model folders in a config file (see README, *Configuration*)."
    )


def build_demo(config: AppConfig, backend: Backend | None = None) -> gr.Blocks:
    """The whole app as a `gr.Blocks`, with named API endpoints, not yet launched."""
    backend = backend or Router(config)
    store = ArenaStore(config.settings.arena_db_path)
    with gr.Blocks(title="Qwen Playground") as demo:
        gr.Markdown("# Qwen Playground\nTry, teach and compare Alibaba's Qwen models.")
        if config.demo:
            gr.Markdown(demo_banner(config), elem_classes="demo-banner")
        if config.registry.endpoints and isinstance(backend, Router):
            with gr.Accordion("Endpoints (OpenAI-compatible servers)", open=False):
                health = gr.Markdown("Checking…")
                check = gr.Button("Check again", size="sm")
            check.click(backend.health_markdown, None, health, api_visibility="private")
            demo.load(backend.health_markdown, None, health, api_visibility="private")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chat = build_chat_tab(config, backend)
            with gr.Tab("Code", id="code"):
                build_code_tab(config, backend)
            with gr.Tab("Math", id="math"):
                build_math_tab(config, backend)
            with gr.Tab("Multilingual", id="multilingual"):
                build_multilingual_tab(config, backend)
            with gr.Tab("Compare", id="compare"):
                build_compare_tab(config, backend)
            with gr.Tab("Arena", id="arena"):
                build_arena_tab(config, backend, store)
            with gr.Tab("Leaderboard", id="leaderboard"):
                table = build_leaderboard_tab(store)
            with gr.Tab("Inspector", id="inspector"):
                build_inspector_tab(config, chat)
            with gr.Tab("Model guide", id="guide"):
                build_guide_tab(config)
        demo.load(lambda: standings_table(store), None, table, api_visibility="private")
    demo.queue(default_concurrency_limit=config.settings.concurrency)
    return demo


def launch_options() -> dict:
    """Keyword arguments for `launch()` that belong to the look (Gradio 6 moved them there)."""
    return {"theme": gr.themes.Soft(), "css": CSS}
