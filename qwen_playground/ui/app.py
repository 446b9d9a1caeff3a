"""Assemble the playground's Blocks from the config. Builds; never launches."""

from __future__ import annotations

import gradio as gr
from fastapi.middleware import Middleware
from fastapi.middleware.gzip import GZipMiddleware

from .. import mathcheck
from ..arena_store import ArenaStore
from ..backends import Backend, engines
from ..backends.starting import StartingBackend
from ..core import ml_stack
from ..core.config import AppConfig
from ..core.devices import pick_device
from ..service import Service
from .arena_tab import build_arena_tab, build_leaderboard_tab, standings_table
from .audio_tab import build_audio_tab
from .batch_tab import build_batch_tab
from .chat_tab import build_chat_tab
from .code_tab import build_code_tab
from .common import on_page_load, refresh_pickers
from .compare_tab import build_compare_tab
from .documents_tab import build_documents_tab
from .finetune_tab import build_finetune_tab
from .input_checks import refuse_bad_input
from .lazy import LazyBlocks, later
from .inspector_tab import build_guide_tab, build_inspector_tab
from .lessons_tab import build_lessons_tab
from .math_tab import build_math_tab
from .monitor_tab import build_monitor_tab
from .multilingual_tab import build_multilingual_tab
from .tools_tab import build_tools_tab
from .vision_tab import build_vision_tab

MATH_CHECKER_AFTER_S = 20.0  # the page, the engine and Chat's first answer share a small machine's cores before this

# Tabs whose state a lesson can hold: (label, id, builder returning its fields)
CONTENT_TABS = (("Chat", "chat", build_chat_tab), ("Code", "code", build_code_tab), ("Math", "math", build_math_tab),
                ("Multilingual", "multilingual", build_multilingual_tab), ("Vision", "vision", build_vision_tab),
                ("Audio", "audio", build_audio_tab), ("Tools", "tools", build_tools_tab), ("Documents", "documents", build_documents_tab),
                ("Compare", "compare", build_compare_tab))

CSS = """
html {scrollbar-gutter: stable;}  /* the page grows past the window as it renders: no sideways jump when the scrollbar comes */
.demo-banner {border-left: 4px solid #f59e0b; padding: 0.4em 0.8em; background: rgba(245, 158, 11, 0.08);}
@media (min-width: 900px) {.sidebar {max-height: 78vh; overflow-y: auto; flex-wrap: nowrap;} .sidebar > * {flex-shrink: 0;}}
button:disabled {opacity: 0.45; cursor: not-allowed;}
@media (max-width: 600px) {  /* a phone: the wrapped tab rows compact, Chat's message box and Send on the first screen */
  [role=tab] {padding: 2px 8px !important; font-size: 13px !important;}
  .chat-conversation {height: 36vh !important; min-height: 220px !important;}
}
.wide-table table {min-width: 1100px;}  /* a narrow screen scrolls the table sideways instead of a letter per line */
.lesson-banner {border-left: 4px solid #6366f1; padding: 0.4em 0.8em; background: rgba(99, 102, 241, 0.08);}
.skip-link {position: absolute; left: -9999px; top: 0; z-index: 1000; padding: 6px 12px; background: #fff; border: 2px solid #6366f1;}
.skip-link:focus {left: 8px; top: 8px;}
.dark .legend-item {color: #fff !important;}  /* a highlight legend's black text on its colours over the dark page: 2.6:1 */
"""

# The page opens on the tab last used in this browser (a lesson link opens its own). The keyboard: a skip link first in the page (Tab, Enter: the message box), Escape stops what the open tab is
# generating (its visible Stop button), and the tab bar is one Tab stop whose tabs the arrow keys move between. And
# what Gradio's own markup gets wrong for screen readers (axe-core: serious or critical), mended where it appears: an
# empty plot's or JSON's "Empty value" label on an element with no role, an upload area named other than its visible
# text, the footer's settings icon repeating its button's text, and an unnamed button inside each thinking or metrics
# panel's title, itself a button (the inner one is made inert: a click on it reaches the title).
PAGE_SCRIPT = """
<script>
(() => {
  const visible = (el) => el && el.offsetParent !== null;
  const messageBox = () => [...document.querySelectorAll('textarea[placeholder^="Message Qwen"]')].find(visible);
  function addSkipLink() {
    if (document.querySelector('.skip-link') || !document.body) return;
    const link = Object.assign(document.createElement('a'), {href: '#', className: 'skip-link', textContent: 'Skip to the message box'});
    link.addEventListener('click', (e) => {
      e.preventDefault();
      const chat = [...document.querySelectorAll('[role=tab]')].find((t) => t.textContent.trim() === 'Chat');
      if (chat && chat.getAttribute('aria-selected') !== 'true') chat.click();
      setTimeout(() => messageBox()?.focus(), 50);
    });
    document.body.prepend(link);
  }
  function rovingTabs() {  // only the selected tab takes a Tab stop
    document.querySelectorAll('[role=tab]').forEach((tab) => {
      const index = tab.getAttribute('aria-selected') === 'true' ? 0 : -1;
      if (tab.tabIndex !== index) tab.tabIndex = index;
    });
  }
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      const open = document.activeElement?.getAttribute('aria-expanded') === 'true';  // Escape closes an open list first
      const stop = [...document.querySelectorAll('button')].find((b) => visible(b) && b.textContent.trim() === 'Stop' && !b.disabled);
      if (!open && stop) stop.click();
    }
    const tab = e.target.closest?.('[role=tab]');
    if (tab && (e.key === 'ArrowRight' || e.key === 'ArrowLeft')) {
      const tabs = [...document.querySelectorAll('[role=tab]')].filter(visible);
      const next = tabs[(tabs.indexOf(tab) + (e.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length];
      next.click();
      next.focus();
      e.preventDefault();
    }
  });
  const LAST_TAB = 'qwen-playground-tab';  // the page opens on the tab last used here, unless a lesson link names one
  let opened = new URLSearchParams(location.search).has('lesson');
  function openLastTab() {
    const tabs = [...document.querySelectorAll('[role=tab]')];
    if (opened || !tabs.length) return;
    opened = true;
    const last = tabs.find((tab) => tab.textContent.trim() === localStorage.getItem(LAST_TAB));
    if (last && last.getAttribute('aria-selected') !== 'true') last.click();
  }
  document.addEventListener('click', (e) => {
    const tab = e.target.closest?.('[role=tab]');
    if (tab) localStorage.setItem(LAST_TAB, tab.textContent.trim());
  });
  document.addEventListener('click', (e) => {  // a citation [n] in a Documents answer opens its source below the answer
    const link = e.target.closest?.('a[href^="#doc-"]');
    const source = link && document.getElementById(link.getAttribute('href').slice(1));
    if (!source) return;
    e.preventDefault();
    e.stopPropagation();
    source.open = true;
    source.scrollIntoView({block: 'nearest', behavior: 'smooth'});
    source.querySelector('summary')?.focus();
  }, true);
  function mendNames() {
    document.querySelectorAll('div.empty[aria-label]:not([role])').forEach((box) => box.setAttribute('role', 'img'));
    document.querySelectorAll('button.upload-container[aria-label]').forEach((area) => {
      const said = area.innerText.replace(/\s+/g, ' ').trim();
      if (said && area.getAttribute('aria-label') !== said) area.setAttribute('aria-label', said);
    });
    document.querySelectorAll('footer button img[alt]:not([alt=""])').forEach((icon) => icon.setAttribute('alt', ''));
    // a thinking or metrics panel's title is its button (named by its text): the chevron inside it is a second, unnamed one
    document.querySelectorAll('[role=button].title button:not([inert])').forEach((chevron) => chevron.setAttribute('inert', ''));
  }
  let queued = false;  // the page changes with every streamed token: look at it once a frame at most
  new MutationObserver(() => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; addSkipLink(); rovingTabs(); openLastTab(); mendNames(); });
  }).observe(document.documentElement, {childList: true, subtree: true, attributes: true, attributeFilter: ['aria-selected']});
})();
</script>
"""


def demo_banner(config: AppConfig) -> str:
    return (
        f"**Demo mode** ({config.demo_reason}). The models here are tiny Qwen-architecture networks with random "
        "weights built offline: they only say a scripted greeting, but every part of the app runs as with real models. "
        "For real answers, start without `--demo` on a machine that can reach the Hugging Face Hub (weights download on "
        "first use), or list local model folders in a config file (see docs/configuration.md)."
    )


def endpoints_markdown(config: AppConfig, service: Service) -> str:
    health = service.endpoint_health()
    lines = [f"- {'✅' if ok else '❌'} **{eid}** `{config.registry.endpoints[eid].base_url}`: {line}" for eid, (ok, line) in health.items()]
    lines += [f"- ⚪ **{eid}** `{endpoint.base_url}`: not asked: it {endpoint.missing_key()}"
              for eid, endpoint in config.registry.endpoints.items() if eid not in health and endpoint.missing_key()]
    return "\n".join(lines) or "No remote endpoints configured (see docs/backends.md)."


def build_demo(config: AppConfig, backend: Backend | None = None) -> gr.Blocks:
    """The whole app as a `gr.Blocks`, with named API endpoints, not yet launched. `backend` defaults to a
    router over this config's engines, started in the background (`service.wait_started()` starts it; a request
    starts it too); the service layer (limits, monitor, log) always wraps it."""
    service = Service(backend or starting_router(config), config.settings)
    # the answer checker's helper takes seconds of CPU to start: not on the first Math solve, nor beside the first answer
    mathcheck.warm_up(after_s=MATH_CHECKER_AFTER_S)
    store = ArenaStore(config.settings.arena_db_path)
    with LazyBlocks(title="Qwen Playground") as demo:
        gr.Markdown("# Qwen Playground\nTry, teach and compare Alibaba's Qwen models.")
        if config.demo:
            with gr.Accordion("Demo mode: tiny offline models that only say a scripted greeting (open for why and what to do)",
                              open=False, elem_classes="demo-banner"):
                gr.Markdown(demo_banner(config))
        if any(not e.missing_key() for e in config.registry.endpoints.values()):  # the built-in DashScope one, keyless, is not news
            with gr.Accordion("Endpoints (OpenAI-compatible servers)", open=False):
                health = gr.Markdown("Checking…")
                check = gr.Button("Check again", size="sm")
            check.click(lambda: endpoints_markdown(config, service), None, health, api_visibility="private")
            on_page_load(lambda: endpoints_markdown(config, service), None, health, queue=True)
        lesson_banner = gr.Markdown(visible=False, elem_classes="lesson-banner")  # the lesson a link or file opened
        current = gr.State("chat")  # the content tab a lesson is saved from
        with gr.Tabs(overflow_behavior="wrap") as tabs:  # every tab in reach on a phone too, no overflow menu
            fields, tab_by_id = {}, {}
            for label, tab_id, build in CONTENT_TABS:
                with gr.Tab(label, id=tab_id) as tab_by_id[tab_id]:
                    fields[tab_id] = build(config, service)
                # through the queue: only then does `current` announce its change (which puts a tab on the page)
                tab_by_id[tab_id].select(lambda t=tab_id: t, None, current, api_visibility="private")
            chat_images = fields["chat"].pop("images")  # uploads: the inspector reads them, a lesson does not carry them
            with gr.Tab("Batch", id="batch") as tab_by_id["batch"]:
                build_batch_tab(config, service)
            with gr.Tab("Fine-tune", id="finetune") as tab_by_id["finetune"]:
                trained = build_finetune_tab(config, service)
            with gr.Tab("Arena", id="arena") as tab_by_id["arena"]:
                votes = build_arena_tab(config, service, store)
            with gr.Tab("Leaderboard", id="leaderboard") as tab_by_id["leaderboard"]:
                table = build_leaderboard_tab(store)
            for vote in votes:
                vote.then(lambda: standings_table(store), None, table, api_visibility="private")
            with gr.Tab("Inspector", id="inspector") as tab_by_id["inspector"]:
                build_inspector_tab(config, {**fields["chat"], "images": chat_images}, tab_by_id["inspector"])
            with gr.Tab("Model guide", id="guide") as tab_by_id["guide"]:
                build_guide_tab(config, service.capabilities().runnable_precisions)
            with gr.Tab("Monitor", id="monitor") as tab_by_id["monitor"]:
                build_monitor_tab(service)
            with gr.Tab("Lessons", id="lessons") as tab_by_id["lessons"]:
                lesson_fields = {tab: {k: c for k, c in group.items() if k != "chatbot"} for tab, group in fields.items()}
                open_link, link_outputs = build_lessons_tab(tabs, lesson_fields, current, config.registry, tab_by_id["lessons"], lesson_banner)
        opening_later(tab_by_id, current, content={tab_id for _, tab_id, _ in CONTENT_TABS})
        on_page_load(lambda: standings_table(store), None, table, queue=True)
        pickers, choices = refresh_pickers(demo)  # fine-tuned models join every model picker: after a training, on each page load
        on_page_load(choices, None, pickers)
        if trained is not None:
            trained.then(choices, None, pickers, api_visibility="private", queue=False)
        on_page_load(open_link, None, link_outputs, queue=True)
    demo.queue(default_concurrency_limit=config.settings.concurrency, max_size=config.settings.queue_size)
    refuse_bad_input(demo)  # Gradio's checks of a caller's input refuse in one log line, not a traceback
    demo.service = service  # for the start-up summary and scripts that drive the app in-process
    return demo


def opening_later(tab_by_id: dict[str, gr.Tab], current: gr.State, content: set[str]) -> None:
    """Every tab but the opening one (Chat) is put on the page when it first opens: on its select, or for a content
    tab when `current` names it (a lesson opens it so). Through the queue: a state announces its change (which puts
    the tab on the page) only then."""
    for tab_id, tab in tab_by_id.items():
        if tab_id == "chat":
            continue
        opened = later(tab)
        tab.select(lambda: True, None, opened, api_visibility="private")
        if tab_id in content:
            current.change(lambda now, t=tab_id: True if now == t else gr.skip(), current, opened, api_visibility="private")


def starting_router(config: AppConfig) -> StartingBackend:
    """The router over this config's engines, built on a thread: torch and transformers load after the page is up;
    then the opening tab's (Chat's) default model loads, so the first message need not wait for it."""
    def build() -> Backend:
        ml_stack.load()
        from ..backends.router import Router

        router = Router(config)
        router.warm(config.registry.choices("chat")[0])
        return router

    return StartingBackend(build, engines.capabilities(pick_device(config.settings.device), config.settings.engine))


# Soft, with the system's own fonts (nothing to download before the first paint: its two families in three files were
# 192 KiB) and text at WCAG AA contrast (4.5:1) in light and dark: labels, notes, primary buttons and selected choices
# one shade darker than Soft's (its indigo 500 on white, or on its light indigo label fill, is 3.6-4.5:1).
THEME = gr.themes.Soft(
    font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"],
).set(
    block_label_text_color="*primary_700", block_title_text_color="*primary_700",
    body_text_color_subdued="*neutral_500", body_text_color_subdued_dark="*neutral_400",
    color_accent="*primary_600", link_text_color="*secondary_700",
    button_primary_background_fill="*primary_600", button_primary_background_fill_hover="*primary_700",
    button_primary_background_fill_dark="*primary_600", button_primary_background_fill_hover_dark="*primary_700",
    checkbox_label_background_fill_selected="*primary_600", slider_color="*primary_600",
)
COMPRESS_FROM_BYTES = 1024  # smaller responses cost more to compress than they save


def launch_options() -> dict:
    """Keyword arguments for `launch()` that belong to the page (Gradio 6 moved the look there): its look, and the
    page and API responses gzipped (the page's HTML carries the whole app's config: 678 KiB, a tenth of it
    compressed). Streamed answers (server-sent events) pass through uncompressed, token by token."""
    compress = Middleware(GZipMiddleware, minimum_size=COMPRESS_FROM_BYTES)
    return {"theme": THEME, "css": CSS, "head": PAGE_SCRIPT, "max_file_size": "110mb", "app_kwargs": {"middleware": [compress]}}
