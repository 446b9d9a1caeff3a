"""The app in a real browser (Debian's Chromium driven by Playwright): what only a page can show."""

import shutil

import pytest

from qwen_playground.lessons import Lesson, to_link

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, app):
    client, _ = app
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.base_url = client.src
    yield page
    page.close()


def test_chat_in_the_browser_streams_thinking_answer_and_metrics(page):
    page.goto(page.base_url)
    page.get_by_placeholder("Message Qwen").fill("Hello from a browser")
    page.keyboard.press("Enter")
    page.get_by_text("Hello from the Qwen3 demo model!").wait_for(timeout=60_000)
    assert page.get_by_text("Thinking").first.is_visible()
    page.get_by_text("tok/s").first.wait_for(timeout=30_000)
    assert page.get_by_placeholder("Message Qwen").input_value() == ""


def test_a_lesson_link_opens_its_tab_filled_in_and_names_what_is_missing(page):
    lesson = Lesson(title="Link lesson", tab="compare", values={"prompt": "Who is the second oldest?", "model_1": "qwen3-1.7b"})
    page.goto(to_link(lesson, page.base_url))
    prompt = page.get_by_role("textbox", name="Prompt (sent to every pane)")
    prompt.wait_for(timeout=30_000)
    page.wait_for_function("() => [...document.querySelectorAll('textarea')].some(t => t.value === 'Who is the second oldest?')", timeout=30_000)
    assert prompt.is_visible()  # the Compare tab is the one showing
    page.get_by_text("which this server lacks").first.wait_for(timeout=10_000)


def test_every_task_tab_has_a_prompt_inspector_panel(page):
    page.goto(page.base_url)
    page.get_by_role("tab", name="Math", exact=True).click()
    page.get_by_role("textbox", name="Problem").fill("Solve $x+1=2$")
    page.locator("button:visible", has_text="What the model sees").first.click()
    page.locator("button:visible", has_text="Inspect the prompt this tab would send").first.click()
    page.get_by_text("Please reason step by step").first.wait_for(timeout=30_000)  # Qwen2.5-Math's system prompt, templated
    assert page.locator("button:visible", has_text="What the model sees").count() == 1
