"""Accessibility in a real browser: axe-core's WCAG 2.1 A/AA rules over every tab in both themes and over a
conversation, names a screen reader reads, and the keyboard path to the message box."""

from contextlib import contextmanager

import pytest

from .test_browser import browser, idle, new_page, open_app, open_tab, pytestmark  # noqa: F401,F811 (fixtures and the chromium skip)

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


def serious_faults(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is, one line per element."""
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page, options=WCAG).response["violations"]
    return [f"{v['id']}: {node['html'][:160]}" for v in violations if v["impact"] in ("serious", "critical") for node in v["nodes"]]


@contextmanager
def opened(browser, app, query: str = ""):
    """A fresh page on the app, ready for a person; closed afterwards."""
    client, _ = app
    page = new_page(browser)
    try:
        open_app(page, client.src + query)
        yield page
    finally:
        page.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_no_serious_accessibility_fault_on_any_tab(browser, app, theme):
    with opened(browser, app, f"?__theme={theme}") as page:
        faults = {}
        for tab in [t.inner_text().strip() for t in page.get_by_role("tab").all()]:
            open_tab(page, tab)
            page.wait_for_timeout(500)  # the page script mends Gradio's names once a frame
            if found := serious_faults(page):
                faults[tab] = found
        assert not faults, faults


def test_a_conversation_says_who_spoke_and_its_panels_are_named_controls(browser, app):
    with opened(browser, app) as page:
        box = page.get_by_placeholder("Message Qwen")
        box.fill("Hello there")
        box.press("Enter")
        page.get_by_text("Good day from a small demo network").first.wait_for()
        idle(page)
        page.wait_for_timeout(500)
        assert page.locator("[aria-label^=\"user's message: Hello there\"]").count() == 1
        assert page.locator("[aria-label^=\"bot's message: \"]").count() >= 2  # the thought and the answer
        thought = page.get_by_role("button", name="💭 Thinking")  # each panel's title is its control, named by its text
        metrics = page.get_by_role("button", name="tok/s")
        assert thought.count() == 1 and metrics.count() == 1
        assert not serious_faults(page)
        thinking = page.get_by_text("so this thought is scripted").first
        shown = thinking.is_visible()
        thought.focus()
        page.keyboard.press("Enter")  # the keyboard opens and closes the panel
        thinking.wait_for(state="hidden" if shown else "visible")


def test_tab_reaches_the_message_box_first_and_enter_sends(browser, app):
    with opened(browser, app) as page:
        page.keyboard.press("Tab")  # the first Tab of a page just loaded
        assert page.evaluate("document.activeElement.textContent") == "Skip to the message box"
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.activeElement?.placeholder?.startsWith('Message Qwen')")
        page.keyboard.type("Hi from the keyboard")
        page.keyboard.press("Enter")
        page.locator("[aria-label^=\"user's message: Hi from the keyboard\"]").wait_for()
        idle(page)
