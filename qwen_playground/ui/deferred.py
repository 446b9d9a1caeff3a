"""Heavy components that load with their tab, not with the first page.

Gradio's page fetches the code of every component type that is visible in its configuration, whichever tab holds
it: the code editor alone (CodeMirror) is 130 KiB of the first page's 610. A component marked `deferred` starts
hidden, so its code is not fetched, and is shown the first time its tab opens: by a click on the tab, by the
page opening on the tab last used, or by a lesson opening it.
"""

from __future__ import annotations

import gradio as gr

_MARK = "_qwen_playground_deferred"


def deferred(component: gr.components.Component) -> gr.components.Component:
    """Mark `component` to be shown when its tab first opens (it must be meant to be visible then)."""
    component.visible = False
    setattr(component, _MARK, True)
    return component


def deferred_in(block: gr.blocks.Block) -> list[gr.components.Component]:
    """The deferred components inside `block` (a tab), in layout order."""
    found = []
    for child in getattr(block, "children", []):
        if getattr(child, _MARK, False):
            found.append(child)
        found.extend(deferred_in(child))
    return found


def show_with_tabs(tabs: dict[str, gr.Tab], current: gr.State, followed: set[str]) -> None:
    """Show each tab's deferred components when it opens. Tabs in `followed` open through `current` (the id of the
    open content tab, which a click or a lesson sets); the others through their own select event."""
    by_tab = {tab_id: deferred_in(tab) for tab_id, tab in tabs.items()}
    for tab_id, parts in by_tab.items():
        if parts and tab_id not in followed:
            tabs[tab_id].select(lambda n=len(parts): _one_each([gr.update(visible=True)] * n), None, parts, queue=False,
                                api_visibility="private")
    following = [(tab_id, part) for tab_id in followed for part in by_tab.get(tab_id, [])]
    if following:
        def show(opened: str):
            return _one_each([gr.update(visible=True) if tab_id == opened else gr.skip() for tab_id, _ in following])

        current.change(show, current, [part for _, part in following], queue=False, api_visibility="private")


def _one_each(updates: list):
    return updates[0] if len(updates) == 1 else updates  # Gradio takes one output's value bare, not in a list
