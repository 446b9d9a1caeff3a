"""The app in a real browser (Debian's Chromium driven by Playwright): what only a page can show."""

import os
import shutil

import pytest

from qwen_playground.lessons import Lesson, to_link

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
# Every wait and action may take this long: the page's own state is what a test waits on, and a busy two-core machine
# (the suite's other work, a class on the same box) can take tens of seconds to reach it
WAIT = 90_000


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def new_page(browser, width: int = 1400, height: int = 1000):
    """A page of the given size whose every wait and action allows WAIT."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(WAIT)
    return page


def idle(page) -> None:
    """Wait until no event is running on the page (Gradio marks the outputs of running events 'generating')."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => document.querySelectorAll('.generating, .pending').length === 0")


def open_tab(page, name: str) -> None:
    """Click a tab and wait until what it holds is on the page (every tab but Chat is put there when first opened)."""
    page.get_by_role("tab", name=name, exact=True).click()
    page.wait_for_function("() => [...document.querySelectorAll('[role=tabpanel]')].some(p => p.offsetParent && p.querySelector('.block'))")
    idle(page)


def open_app(page, url: str | None = None) -> None:
    """Open the app and wait until it is ready for a person: the page built and its load events answered (an upload
    or a click sent earlier could race them on a busy machine)."""
    page.goto(url or page.base_url)
    page.get_by_placeholder("Message Qwen").wait_for()
    idle(page)


@pytest.fixture()
def page(browser, app):
    client, _ = app
    page = new_page(browser)
    page.base_url = client.src
    yield page
    page.close()


def test_chat_in_the_browser_streams_thinking_answer_and_metrics(page):
    open_app(page)
    page.get_by_placeholder("Message Qwen").fill("Hello from a browser")
    page.keyboard.press("Enter")
    page.get_by_text("Good day from a small demo network").wait_for()
    assert page.get_by_text("💭 Thinking", exact=True).first.is_visible()  # the thought's panel, not the "Thinking mode" box
    page.get_by_text("tok/s").first.wait_for()
    assert page.get_by_placeholder("Message Qwen").input_value() == ""


@pytest.mark.parametrize("width", [1400, 390])  # desktop and phone
def test_a_lesson_link_opens_its_tab_filled_in_and_names_what_is_missing(page, width):
    page.set_viewport_size({"width": width, "height": 900})
    lesson = Lesson(title="Link lesson", tab="compare", values={"prompt": "Who is the second oldest?", "model_1": "qwen3-1.7b"})
    page.goto(to_link(lesson, page.base_url))
    prompt = page.get_by_role("textbox", name="Prompt (sent to every pane)")
    prompt.wait_for()
    page.wait_for_function("() => [...document.querySelectorAll('textarea')].some(t => t.value === 'Who is the second oldest?')")
    assert prompt.is_visible()  # the Compare tab is the one showing
    assert page.get_by_label("Pane 1 model", exact=True).input_value() == "demo-qwen3"  # the stand-in, not the default
    banner = page.locator(".lesson-banner").first  # above the tab it opened: what the lesson is, and what stands in
    banner.get_by_text("Lesson: Link lesson").wait_for()
    assert "which this server does not have" in banner.inner_text() and banner.is_visible()


def test_the_page_opens_on_the_tab_last_used_unless_a_lesson_link_names_one(page):
    open_app(page)
    page.get_by_role("tab", name="Math", exact=True).click()
    page.reload()
    page.get_by_role("tab", name="Math", selected=True).wait_for()  # back where the student left off
    lesson = Lesson(title="Link lesson", tab="compare", values={"prompt": "Which is larger?"})
    page.goto(to_link(lesson, page.base_url))
    page.get_by_role("textbox", name="Prompt (sent to every pane)").wait_for()  # the link's tab, not the last used
    page.wait_for_timeout(1000)
    assert page.get_by_role("tab", name="Compare", selected=True).count() == 1


def test_the_code_editor_and_tables_load_with_their_tab(page):
    scripts = []
    page.on("request", lambda request: scripts.append(request.url) if request.resource_type == "script" else None)
    open_app(page)
    page.wait_for_timeout(1000)
    first_page = len(scripts)
    assert page.locator(".cm-editor").count() == 0 and page.locator("table").count() == 0  # none of it on the first page
    page.get_by_role("tab", name="Code", exact=True).click()
    editor = page.locator(".cm-content").first
    editor.wait_for()  # its code fetched now, on the first open
    assert len(scripts) > first_page
    editor.click()
    page.keyboard.type("print('typed')")
    assert "print('typed')" in editor.inner_text()
    page.get_by_role("tab", name="Monitor", exact=True).click()
    page.get_by_role("tab", name="Monitor", selected=True).wait_for()
    page.locator("table:visible").first.wait_for()  # a table shows with its tab
    lesson = Lesson(title="Code lesson", tab="code", values={"task": "Reverse a string"})
    page.goto(to_link(lesson, page.base_url))  # a lesson opening the Code tab shows its editor too
    page.get_by_role("tab", name="Code", selected=True).wait_for()
    page.locator(".cm-content").first.wait_for()


def inspect_in_tab(page, tab: str, fill, expect: str) -> None:
    """Open a tab, fill what it needs, open its inspector panel, click Inspect and wait for what the model sees."""
    page.get_by_role("tab", name=tab, exact=True).click()
    fill()
    page.locator("button:visible", has_text="What the model sees").first.click()
    page.locator("button:visible", has_text="Inspect the prompt this tab would send").first.click()
    page.get_by_text(expect).first.wait_for()
    page.locator("*:visible", has_text="go into").last.wait_for()  # the notes: "N tokens go into <model>"
    assert page.locator("button:visible", has_text="What the model sees").count() == 1


def test_inspect_in_every_task_tab(page, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48), "red").save(tmp_path / "red.png")
    open_app(page)
    page.get_by_role("tab", name="Chat", exact=True).wait_for()
    page.get_by_placeholder("Message Qwen").fill("What is 2+2?")
    page.locator("button:visible", has_text="What the model sees").first.click()
    page.locator("button:visible", has_text="Inspect this conversation + message").first.click()
    page.get_by_text("What is 2+2?").last.wait_for()
    inspect_in_tab(page, "Code", lambda: page.get_by_role("textbox", name="Task").fill("Reverse a list"),
                   "Write Python code for this task: Reverse a list")
    inspect_in_tab(page, "Math", lambda: page.get_by_role("textbox", name="Problem").fill("Solve $x+1=2$"),
                   "Please reason step by step")  # Qwen2.5-Math's system prompt, templated
    inspect_in_tab(page, "Multilingual", lambda: page.get_by_role("textbox", name="Prompt").first.fill("Why is grass green?"),
                   "Always answer in English")

    def add_image():
        page.locator("input[type=file][accept*='video']").set_input_files(str(tmp_path / "red.png"))  # the images-or-video input
        page.get_by_role("textbox", name="Question").fill("What colour is it?")
        page.get_by_label("red.png").first.wait_for()  # uploaded: the file list names it

    inspect_in_tab(page, "Vision", add_image, "<|image_pad|> ×")
    inspect_in_tab(page, "Compare", lambda: page.get_by_role("textbox", name="Prompt (sent to every pane)").fill("Is 9 prime?"),
                   "Is 9 prime?")


def no_error_badge(page) -> bool:
    return page.locator(".error:visible, .validation-error:visible").filter(has_text="Error").count() == 0 and \
        page.get_by_text("Error", exact=True).locator("visible=true").count() == 0


def test_refusals_are_notes_beside_the_input_and_the_work_stays(page):
    open_app(page)
    box = page.get_by_placeholder("Message Qwen")
    box.fill("Hello there")
    page.keyboard.press("Enter")
    page.get_by_text("Good day from a small demo network").wait_for()
    page.get_by_text("tok/s").first.wait_for()
    box.fill("   ")
    page.keyboard.press("Enter")
    page.get_by_text("Type a message first.").wait_for()  # an inline note on the message box
    assert page.get_by_text("Good day from a small demo network").is_visible() and no_error_badge(page)

    page.get_by_role("tab", name="Math", exact=True).click()
    page.get_by_role("textbox", name="Problem").fill("What is $1+1$?")
    page.get_by_role("button", name="Solve").click()
    page.get_by_text("Hi there, I am a demo model").first.wait_for()
    # the solve has finished: a click while it runs would be ignored
    page.wait_for_function("() => [...document.querySelectorAll('textarea, input')].some(t => t.value === '(no \\\\boxed{} answer)')")
    page.get_by_role("textbox", name="Expected answer (optional)").fill("((2")
    page.get_by_role("button", name="Solve").click()
    page.get_by_text("Could not read the expected answer").first.wait_for()
    assert page.get_by_text("Hi there, I am a demo model").first.is_visible() and no_error_badge(page)


def test_a_refusal_after_sending_is_a_toast_and_the_conversation_stays_in_view(page):
    """A model that will not load (as a ZeroGPU quota refusal would): the reason in a toast, no Error badge over the
    conversation, the message back in the box to send again."""
    open_app(page)
    box = page.get_by_placeholder("Message Qwen")
    box.fill("Hello there")
    page.keyboard.press("Enter")
    page.get_by_text("tok/s").first.wait_for()
    picker = page.get_by_label("Model").first
    picker.fill("broken")
    picker.press("Enter")
    box.fill("And now?")
    page.keyboard.press("Enter")
    page.get_by_text("Could not load broken").first.wait_for()
    idle(page)
    assert page.get_by_text("Good day from a small demo network").is_visible() and no_error_badge(page)
    assert box.input_value() == "And now?"


def test_vision_screens_uploads_and_shows_thumbnails(page, tmp_path):
    from PIL import Image

    Image.new("RGB", (320, 240), "blue").save(tmp_path / "blue.png")
    (tmp_path / "fake.png").write_text("just text")
    open_app(page)
    page.get_by_role("tab", name="Vision", exact=True).click()
    assert not page.get_by_text("Boxes from the answer").is_visible()  # out of sight until there are boxes
    page.locator("input[type=file][accept*='video']").set_input_files([str(tmp_path / "blue.png"), str(tmp_path / "fake.png")])
    page.get_by_text("fake.png is not an image this app can read").first.wait_for()  # refused at upload
    page.get_by_text("Your images").first.wait_for()
    assert page.get_by_alt_text("blue.png").first.is_visible()  # the accepted image is shown as a thumbnail
    assert page.get_by_alt_text("blue.png").first.evaluate("i => getComputedStyle(i).objectFit") == "contain"  # whole, not cropped
    assert page.get_by_alt_text("fake.png").count() == 0
    page.get_by_label("blue.png").first.wait_for()
    assert page.get_by_label("fake.png").count() == 0  # the refused file left the list


def open_shipped_lesson(page, title: str) -> None:
    """Open the app, then a lesson that comes with it (a Compare lesson: wait for its tab)."""
    open_app(page)
    page.get_by_role("tab", name="Lessons", exact=True).click()
    page.get_by_label("Lessons that come with the playground").click()
    page.get_by_role("option", name=title).click()
    page.get_by_role("button", name="Open lesson").click()
    page.get_by_role("textbox", name="Prompt (sent to every pane)").wait_for()


def test_a_shipped_lesson_in_demo_mode_keeps_thinking_and_re_shares_as_written(page):
    open_shipped_lesson(page, "Thinking on vs off on a logic puzzle")
    page.wait_for_function("() => [...document.querySelectorAll('input')].filter(i => i.value === 'demo-qwen3').length >= 2")
    idle(page)
    thinking = page.get_by_label("Thinking", exact=True)
    assert [thinking.nth(i).is_checked() for i in range(2)] == [True, False]  # as the lesson asks, after the models changed
    page.get_by_role("tab", name="Lessons", exact=True).click()
    page.get_by_role("button", name="Make a link").click()
    page.wait_for_function("() => [...document.querySelectorAll('textarea, input')].some(t => t.value.includes('?lesson='))")
    link = page.evaluate("() => [...document.querySelectorAll('textarea, input')].map(t => t.value).find(v => v.includes('?lesson='))")
    from qwen_playground.lessons import from_link

    shared = from_link(link.split("lesson=")[1])
    assert shared.title == "Thinking on vs off on a logic puzzle"  # the title travels on
    assert shared.values["model_1"] == shared.values["model_2"] == "qwen3-1.7b"  # as written, not this server's stand-ins


def test_phone_width_shows_the_tabs_and_folds_the_demo_banner(browser, demo_config):
    from qwen_playground.ui import build_demo
    from qwen_playground.ui.app import launch_options

    demo = build_demo(demo_config)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, ssr_mode=False, **launch_options())  # its CSS too
    phone = new_page(browser, 390, 844)
    try:
        phone.goto(url)
        phone.get_by_placeholder("Message Qwen").wait_for()
        banner = phone.get_by_text("Demo mode: tiny offline models").first
        assert banner.is_visible() and banner.bounding_box()["height"] < 120  # one folded line, not half the screen
        assert not phone.get_by_text("they only say a scripted greeting, but every part").is_visible()
        box = phone.get_by_placeholder("Message Qwen").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # nothing runs off the screen
        send = phone.get_by_role("button", name="Send").bounding_box()
        assert box["y"] + box["height"] <= 844 and send["y"] + send["height"] <= 844  # message box and Send on the first screen
        names = ["Chat", "Code", "Math", "Multilingual", "Vision", "Compare", "Batch", "Fine-tune", "Arena", "Leaderboard", "Inspector",
                 "Model guide", "Monitor", "Lessons"]
        for name in names:  # every tab one tap away: in the wrapped tab rows, none behind an overflow menu
            tab = phone.get_by_role("tab", name=name, exact=True).bounding_box()
            assert tab and 0 <= tab["x"] and tab["x"] + tab["width"] <= 390 and tab["y"] + tab["height"] <= 844, name
        phone.get_by_role("tab", name="Lessons", exact=True).click()
        phone.get_by_text("Lessons that come with the playground").first.wait_for()
    finally:
        phone.close()
        demo.close()


def test_a_vote_updates_the_leaderboard_and_a_thinking_pane_takes_qwens_temperature(page):
    open_app(page)
    page.get_by_role("tab", name="Arena", exact=True).click()
    page.get_by_role("textbox", name="Prompt").last.fill("Say hi")
    page.get_by_role("button", name="New battle").click()
    page.get_by_text("Your vote?").wait_for()
    page.locator("button:visible").filter(has_text="Tie").first.click()
    page.get_by_text("Model A was").wait_for()
    page.get_by_role("tab", name="Leaderboard", exact=True).click()
    page.locator("td:visible, [role=gridcell]:visible", has_text="too few votes").first.wait_for()  # without Refresh

    page.get_by_role("tab", name="Compare", exact=True).click()
    page.get_by_label("Pane 1 model").wait_for()
    page.locator("label:visible", has_text="Thinking").locator("input[type=checkbox]").first.check()
    page.locator("button:visible", has_text="Settings").first.click()  # pane 1's folded settings: the Qwen3.5 demo, thinking
    page.wait_for_function("() => [...document.querySelectorAll('input[type=number]')]"
                           ".some(i => ['1', '1.0'].includes(i.value) && i.offsetParent)")


def test_every_download_takes_one_click(page):
    open_app(page)
    page.get_by_placeholder("Message Qwen").fill("Export me")
    page.keyboard.press("Enter")
    page.get_by_text("Good day from a small demo network").wait_for()
    page.get_by_text("tok/s").first.wait_for()
    idle(page)
    for label, suffix in (("Export Markdown", ".md"), ("Export JSON", ".json")):
        with page.expect_download() as download:
            page.locator("button:visible, a:visible", has_text=label).first.click()
        assert download.value.suggested_filename.endswith(suffix)
    assert "Export me" in open(download.value.path(), encoding="utf-8").read()

    page.get_by_role("tab", name="Compare", exact=True).click()
    page.get_by_role("textbox", name="Prompt (sent to every pane)").fill("Is 3 prime?")
    page.get_by_role("button", name="Send to all panes").click()
    page.locator("*:visible", has_text="total").last.wait_for()
    idle(page)
    with page.expect_download() as download:
        page.locator("button:visible, a:visible", has_text="Export Markdown").first.click()
    assert "Is 3 prime?" in open(download.value.path(), encoding="utf-8").read()

    page.get_by_role("tab", name="Lessons", exact=True).click()
    page.get_by_role("textbox", name="Title for the current tab's lesson").fill("Primes")
    idle(page)
    with page.expect_download() as download:
        page.locator("button:visible, a:visible", has_text="Download lesson").first.click()
    saved = open(download.value.path(), encoding="utf-8").read()
    assert '"title": "Primes"' in saved and '"tab": "compare"' in saved and "Is 3 prime?" in saved


def test_stop_marks_the_answer_stopped_with_its_metrics_so_far(page):
    open_app(page)
    page.get_by_label("Model").first.click()
    page.get_by_role("option", name="tiny-random").click()  # random weights: it rambles until stopped
    page.get_by_text("Sampling (Qwen's recommended settings)").click()
    tokens = page.get_by_label("number input for Max new tokens")
    page.wait_for_function("() => document.querySelector('[aria-label=\"number input for Max new tokens\"]')?.value === '64'")  # preset set
    tokens.fill("4000")  # far more than a busy machine streams before Stop lands (the preset's 64 could finish first)
    tokens.press("Enter")
    page.get_by_placeholder("Message Qwen").fill("Ramble on")
    page.keyboard.press("Enter")
    page.wait_for_function("() => [...document.querySelectorAll('.bot, [data-testid=bot]')].some(m => m.innerText.trim().length > 20 "
                           "&& !m.innerText.includes('Loading') && !m.innerText.includes('Building'))")  # streaming
    page.locator("button:visible", has_text="Stop").first.click()
    footer = page.get_by_text("⏹ stopped").first
    footer.wait_for()
    assert "tok/s" in footer.inner_text() and "answer tokens" in footer.inner_text()
    assert no_error_badge(page) and page.get_by_placeholder("Message Qwen").input_value() == ""


def test_the_work_fills_the_first_screen(browser, app):
    """1400x900: Chat's conversation takes the window's height with the message box still on screen; Compare's answers
    start on the first screen."""
    client, _ = app
    desk = new_page(browser, 1400, 900)
    try:
        open_app(desk, client.src)
        box = desk.get_by_placeholder("Message Qwen")
        box.wait_for()
        conversation = desk.locator(".bubble-wrap:visible").first.bounding_box()  # Chat's conversation
        assert box.bounding_box()["y"] + box.bounding_box()["height"] <= 900 and conversation["height"] >= 450
        desk.get_by_role("tab", name="Compare", exact=True).click()
        pane = desk.locator(".bubble-wrap:visible").first  # pane 1's answer area
        pane.wait_for()
        assert pane.bounding_box()["y"] < 750  # at least a few lines of each answer on the first screen
    finally:
        desk.close()


def test_code_and_multilingual_main_actions(page):
    open_app(page)
    page.get_by_role("tab", name="Code", exact=True).click()
    page.get_by_role("textbox", name="Task").fill("Reverse a string")
    page.get_by_role("button", name="Write code").click()
    page.get_by_text("No Python code block in this answer").first.wait_for()  # the demo model writes no code
    assert page.locator("button:visible", has_text="Run in sandbox").count() == 1  # the test app allows code execution

    page.get_by_role("tab", name="Multilingual", exact=True).click()
    page.get_by_role("textbox", name="Prompt").first.fill("Why is the sea salty?")
    page.get_by_role("button", name="Answer in each language").click()
    page.get_by_text("detected English").first.wait_for()
    page.get_by_text("asked for Spanish, detected English").first.wait_for()  # the demo only speaks English
    idle(page)
    for name in ("Hindi", "Arabic", "French", "German"):  # German would be the seventh
        page.get_by_role("checkbox", name=name, exact=True).click()
        idle(page)
    page.get_by_text("At most 6 languages at once").first.wait_for()
    assert page.get_by_text("asked for Spanish, detected English").first.is_visible()  # earlier answers stay


def test_a_batch_from_an_uploaded_file_fills_the_table_and_downloads(page, tmp_path):
    quiz = tmp_path / "quiz.csv"
    # the default models are the Qwen3.5 and Qwen3 demos: q1 expects the first one's scripted answer
    quiz.write_text("id;prompt;expected\nq1;Say hi;\"good day from a small demo network; install real weights for useful answers\"\n"
                    "q2;Capital of France?;Paris\n")  # a spreadsheet's semicolons: the separator is found
    open_app(page)
    page.get_by_role("tab", name="Batch", exact=True).click()
    bad = tmp_path / "bad.csv"
    bad.write_text("id,question\n1,hi\n")
    upload = page.locator("input[type=file][accept*='.jsonl']")
    upload.set_input_files(str(bad))
    page.get_by_text("line 1 (the header) has no 'prompt' column").first.wait_for()  # said in place of the preview
    page.locator("button:visible", has_text="Clear").or_(page.get_by_label("Clear").locator("visible=true")).first.click()
    upload.set_input_files(str(quiz))
    page.get_by_text("2 prompts").first.wait_for()  # the preview counts the file's rows and tokens
    page.get_by_role("button", name="Run the batch").click()
    page.get_by_text("4 / 4 answers").first.wait_for()
    idle(page)
    page.locator("td:visible, [role=gridcell]:visible", has_text="✓").first.wait_for()  # q1 is right for the Qwen3.5 demo
    page.locator("td:visible, [role=gridcell]:visible", has_text="1 / 2").first.wait_for()  # its accuracy line
    for header in ("expected", "correct"):  # the verdict in view beside the answer, not off to the right
        box = page.locator("th:visible", has_text=header).last.bounding_box()
        assert box["x"] + box["width"] <= 1400, header
    page.set_viewport_size({"width": 390, "height": 844})
    idle(page)
    heights = {h.inner_text(): h.bounding_box()["height"] for h in page.locator("th:visible").all()}
    assert max(heights.values()) < 80, heights  # on a phone the headers read as words, not a letter per line
    page.set_viewport_size({"width": 1400, "height": 1000})
    with page.expect_download() as download:
        page.locator("button:visible, a:visible", has_text="Download CSV").first.click()
    saved = open(download.value.path(), encoding="utf-8").read()
    assert download.value.suggested_filename.endswith(".csv") and saved.count("\n") == 5 and "Capital of France?" in saved


def test_a_short_training_shows_progress_and_loss_then_the_adapter_is_in_chats_picker(browser, config_file, tmp_path):
    from qwen_playground.core.config import load_config
    from tests.conftest import running_app

    config = load_config(config_file, demo=True, cache_dir=tmp_path / "cache", max_input_tokens=512, engine="transformers")  # adapters stay in here
    with running_app(config) as client:
        page = new_page(browser)
        try:
            open_app(page, client.src)
            page.get_by_role("tab", name="Fine-tune", exact=True).click()
            page.get_by_text("30 examples").first.wait_for()  # the example set's preview
            page.get_by_label("Base model (local text models)").click()  # it offers what can train here, offline too
            offered = [o.inner_text() for o in page.get_by_role("option").all()]
            assert "demo-qwen3" in offered and "qwen2.5-0.5b-instruct" not in offered, offered
            page.keyboard.press("Escape")
            page.get_by_role("textbox", name="Adapter name").fill("browser")
            page.locator("button:visible", has_text="Training settings").first.click()
            page.get_by_label("Max steps (0: as the epochs take)").fill("2")
            page.get_by_role("button", name="Train", exact=True).click()
            # the clock moves while the worker loads the model, before step 1
            page.wait_for_function("() => /loading demo-qwen3.5 in the training worker… · [1-9]/.test(document.body.innerText)")
            page.get_by_text("Saved demo-qwen3.5+browser").wait_for(timeout=180_000)
            assert no_error_badge(page)
            # the progress bar counted every step
            page.wait_for_function("() => [...document.querySelectorAll('progress')].some(p => p.max > 1 && p.value === p.max)")
            page.locator(".vega-embed canvas, .vega-embed svg").first.wait_for()  # the loss plot is drawn
            page.get_by_role("tab", name="Chat", exact=True).click()
            page.get_by_label("Model").first.click()
            page.get_by_role("option", name="demo-qwen3.5+browser").wait_for()  # in Chat's picker without a reload
            page.keyboard.press("Escape")
            page.get_by_role("tab", name="Compare", exact=True).click()
            page.get_by_label("Change one thing").click()  # its preset runs base and tuned on one engine
            page.get_by_role("option", name="Base vs fine-tuned (demo-qwen3.5 vs demo-qwen3.5+browser, both on transformers)").wait_for()
        finally:
            page.close()


def test_math_renders_in_chat_and_a_typed_tag_shows_as_text(page):
    open_app(page)
    page.get_by_placeholder("Message Qwen").fill("Is <b>bold</b> the same as $x^2$ for $5?")
    page.keyboard.press("Enter")
    page.get_by_text("Good day from a small demo network").wait_for()
    user = page.locator(".message.user, [data-testid=user]").first
    user.locator(".katex").first.wait_for()  # $x^2$ is typeset
    assert "<b>bold</b>" in user.inner_text() and user.locator("b").count() == 0  # the tag shows as typed, not as bold
    assert "$5" in user.inner_text()  # a price stays a price


def test_stop_while_queued_takes_the_request_out_of_the_queue(browser, config_file, cache_dir):
    from qwen_playground.core.config import load_config
    from tests.conftest import running_app

    config = load_config(config_file, demo=True, cache_dir=cache_dir, max_input_tokens=512, concurrency=1, engine="transformers")  # one generation at a time
    with running_app(config) as client:
        first, second = (new_page(browser) for _ in range(2))
        try:
            open_app(first, client.src)
            first.get_by_role("tab", name="Batch", exact=True).click()
            first.get_by_role("button", name="Run the batch").click()  # 20 answers: it holds the only slot for a while
            first.get_by_text("answers ·").first.wait_for()
            open_app(second, client.src)
            second.get_by_placeholder("Message Qwen").fill("Waiting my turn")
            second.keyboard.press("Enter")
            second.get_by_text("queue").first.wait_for()  # Gradio shows its place in the queue
            second.locator("button:visible", has_text="Stop").first.click()
            second.get_by_text("Stopped while it waited in the queue").first.wait_for()
            first.get_by_text("finished").first.wait_for(timeout=120_000)
            second.wait_for_timeout(3000)  # the slot is free now: the stopped request must not run after all
            assert not second.get_by_text("Good day from a small demo network").count()
            assert second.get_by_placeholder("Message Qwen").input_value() == "Waiting my turn"  # nothing lost
        finally:
            first.close()
            second.close()


def test_a_conversation_survives_a_reload_and_can_be_renamed_and_deleted(page):
    open_app(page)
    page.get_by_placeholder("Message Qwen").fill("Remember me after a reload")
    page.keyboard.press("Enter")
    page.get_by_text("Good day from a small demo network").wait_for()
    idle(page)
    page.reload()
    page.get_by_text("Remember me after a reload").first.wait_for()  # reopened from the browser's storage
    page.locator("button:visible", has_text="Conversations (kept in this browser)").first.click()
    # the reopened one is the open conversation: a rename now names it
    page.wait_for_function("() => [...document.querySelectorAll('input')].some(i => i.value.startsWith('Remember me'))")
    page.get_by_role("textbox", name="Title").fill("Kept")
    page.get_by_role("button", name="Rename").click()
    for _ in range(10):  # the picker's new choices arrive with the rename's reply: open it once they are there
        idle(page)
        page.get_by_label("Open a saved conversation").click()
        if page.get_by_role("option", name="Kept").count():
            break
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)
    page.get_by_role("option", name="Kept").wait_for()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="New conversation").click()
    page.wait_for_function("() => !document.body.innerText.includes('Remember me after a reload')")
    page.get_by_label("Open a saved conversation").click()
    page.get_by_role("option", name="Kept").click()  # reopen it
    page.get_by_text("Remember me after a reload").first.wait_for()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.wait_for_function("() => !document.body.innerText.includes('Remember me after a reload')")


def test_why_this_token_opens_under_the_answer_shaded_with_its_alternatives(page):
    open_app(page)
    page.get_by_label("🔎 Why this token?").first.check()
    page.get_by_placeholder("Message Qwen").fill("Hello, $x$ and *you*")
    page.keyboard.press("Enter")
    title = page.get_by_text("🔎 Why this token? ·").first
    title.wait_for()
    title.click()  # folded until asked
    bubble = page.locator(".message", has_text="most likely at this step").first
    bubble.wait_for()
    shaded = bubble.locator("span[style*='background']")
    assert shaded.count() > 5 and "%" in (shaded.first.get_attribute("title") or "")  # the sanitizer kept shading and alternatives
    assert bubble.locator("table tr").count() > 5 and bubble.locator(".katex").count() == 0
    assert bubble.locator("table").first.is_visible() and shaded.first.is_visible()
    if (folder := os.environ.get("QP_SCREENSHOTS")):  # to look at by eye
        page.screenshot(path=f"{folder}/why-this-token.png")


def test_an_image_attached_in_chat_shows_in_the_conversation_with_its_cost(page, tmp_path):
    from PIL import Image

    Image.new("RGB", (640, 480), "red").save(tmp_path / "red.png")
    open_app(page)
    page.locator(".chat-images input[type=file]").set_input_files(str(tmp_path / "red.png"))
    page.get_by_text("red.png").first.wait_for()  # uploaded
    page.locator(".chat-thumbs img").first.wait_for()  # and seen before it is sent
    page.get_by_placeholder("Message Qwen").fill("What colour is this?")
    page.keyboard.press("Enter")
    page.get_by_text("1 image: 300 of the prompt tokens").first.wait_for()
    user = page.locator(".message.user, [data-testid=user]").first
    assert user.locator("img").count() == 1 and "What colour is this?" in user.inner_text()
    page.wait_for_function("() => !document.querySelector('.chat-images')?.innerText.includes('red.png')")  # sent along


def test_retry_and_edit_keep_the_old_versions_one_arrow_away_after_a_reload(page):
    open_app(page)
    box, answer = page.get_by_placeholder("Message Qwen"), "Good day from a small demo network"
    for n, text in enumerate(("First question", "Second question"), 1):
        box.fill(text)
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => document.body.innerText.split({answer!r}).length > {n}")
        idle(page)
    versions = page.locator(".chat-versions")
    page.get_by_role("button", name="Retry").click()  # a second answer to the second question
    versions.get_by_text("2/2").wait_for()
    assert "the answer" in versions.inner_text()
    idle(page)
    page.get_by_role("button", name="Edit").first.click()  # the first question, said again: a new branch from there
    page.locator(".chat-conversation textarea").first.fill("First question, edited")
    page.get_by_role("button", name="Submit").click()
    versions.get_by_text("your message First question, edited").wait_for()
    idle(page)
    assert page.get_by_text("Second question").count() == 0
    page.reload()  # the whole tree comes back from the browser's storage
    page.get_by_text("First question, edited").first.wait_for()
    idle(page)
    page.get_by_role("button", name="‹").click()  # the old branch, intact
    page.get_by_text("Second question").first.wait_for()
    versions.get_by_text("1/2").wait_for()
    assert page.get_by_text("First question, edited").count() == 0


@pytest.mark.parametrize("width", [1400, 390])  # desktop and phone
def test_a_typed_name_in_any_dropdown_leaves_no_error_badge_and_keeps_the_message(page, width):
    page.set_viewport_size({"width": width, "height": 900})
    open_app(page)
    page.get_by_placeholder("Message Qwen").fill("keep me")
    tabs, typed = [t.inner_text().strip() for t in page.get_by_role("tab").all()], 0
    for tab in tabs:
        open_tab(page, tab)
        for dropdown in page.locator("input[role=combobox]:visible").all():
            dropdown.click()
            page.keyboard.type("mascot")
            page.keyboard.press("Enter")
            page.keyboard.press("Tab")
            idle(page)
            assert no_error_badge(page), f"{tab}: {dropdown.get_attribute('aria-label')}"
            typed += 1
    assert typed >= 10  # every tab's pickers: models, templates, examples, languages, presets
    page.get_by_role("tab", name="Chat", exact=True).click()
    assert page.get_by_placeholder("Message Qwen").input_value() == "keep me"
    page.get_by_label("Model", exact=True).first.click()
    page.keyboard.type("mascot")
    page.keyboard.press("Enter")
    page.get_by_text("Pick one from the list").first.wait_for()  # the note under the picker says what to do
    assert no_error_badge(page)



def test_the_keyboard_reaches_the_message_box_stops_with_escape_and_submits_with_enter(page, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48), "red").save(tmp_path / "red.png")
    open_app(page)
    page.keyboard.press("Tab")  # the first stop: the skip link
    assert page.evaluate("document.activeElement.textContent") == "Skip to the message box"
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement.placeholder?.startsWith('Message Qwen')")
    page.keyboard.type("Count to a thousand")
    page.keyboard.press("Enter")
    page.get_by_text("💭 Thinking", exact=True).first.wait_for()
    page.keyboard.press("Escape")  # stops the answer, which keeps its metrics and says so
    page.get_by_text("⏹ stopped").first.wait_for()
    idle(page)
    tabs = page.get_by_role("tab")
    assert sum(t.get_attribute("tabindex") != "-1" for t in tabs.all()) == 1  # the tab bar is one Tab stop
    page.get_by_role("tab", name="Chat", exact=True).focus()
    page.keyboard.press("ArrowRight")  # the arrows move along it
    page.wait_for_function("() => document.activeElement.textContent.trim() === 'Code'")
    page.get_by_role("tab", name="Arena", exact=True).click()
    page.get_by_role("textbox", name="Prompt").fill("Name a colour")
    page.get_by_role("textbox", name="Prompt").press("Enter")  # Enter starts the battle
    page.get_by_text("Your vote?").wait_for()
    page.get_by_role("tab", name="Vision", exact=True).click()
    page.locator("input[type=file][accept*='video']").set_input_files(str(tmp_path / "red.png"))
    page.get_by_label("red.png").first.wait_for()
    page.get_by_role("textbox", name="Question").fill("What colour is it?")
    page.get_by_role("textbox", name="Question").press("Enter")  # Enter asks
    page.locator("*:visible", has_text="tok/s").last.wait_for()


@pytest.mark.parametrize("width", [1400, 390])  # desktop and phone
def test_an_uploaded_clip_is_priced_then_transcribed(page, tmp_path, width):
    import subprocess

    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng for speech (apt-get install espeak-ng)")
    page.set_viewport_size({"width": width, "height": 900})
    speech = tmp_path / "hello.wav"
    subprocess.run(["espeak-ng", "-w", str(speech), "Hello, this is a test of the playground."], check=True, timeout=60)
    open_app(page)
    open_tab(page, "Audio")
    page.locator(".audio-clip input[type=file]").set_input_files(str(speech))
    page.get_by_text("31 audio tokens").wait_for()  # its cost, before anything is sent
    assert page.get_by_text("resampled from 22.05 kHz to 16 kHz").is_visible()
    page.get_by_role("button", name="Transcribe", exact=True).click()
    page.wait_for_function("() => [...document.querySelectorAll('textarea')].some(t => t.value.startsWith('Demo mode: tiny random weights'))")
    page.get_by_text("English (detected by the model)").wait_for()
    page.get_by_text("tok/s").locator("visible=true").first.wait_for()  # the metrics, once the transcript is whole
    assert no_error_badge(page)


def test_a_spoken_chat_message_is_written_into_the_box_to_edit(browser, app, tmp_path):
    """Chromium's fake microphone plays a WAV file made by espeak-ng: record, stop, and the words land in the box."""
    import subprocess

    client, _ = app
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng for speech (apt-get install espeak-ng)")
    speech = tmp_path / "hello.wav"
    subprocess.run(["espeak-ng", "-w", str(speech), "Hello, this is a test of the playground."], check=True, timeout=60)
    fake_microphone = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={speech}"]
    hearing = browser.browser_type.launch(executable_path=CHROMIUM, args=[*ARGS, *fake_microphone])  # a browser of its own
    try:
        page = hearing.new_context(viewport={"width": 1400, "height": 1000}, permissions=["microphone"]).new_page()
        page.set_default_timeout(WAIT)
        open_app(page, client.src)
        box = page.get_by_placeholder("Message Qwen")
        box.fill("Please:")
        voice = page.locator(".chat-voice")
        voice.get_by_role("button", name="Record").click()
        page.wait_for_timeout(2500)
        voice.get_by_role("button", name="Stop").first.click()
        page.get_by_text("Written by").wait_for()
        idle(page)
        assert box.input_value() == "Please: Demo mode: tiny random weights, so this transcript is scripted."
        assert "demo-qwen3-asr, heard as English" in page.locator(".chat-voice-note").last.inner_text()
        box.press("Enter")  # sent as edited, like any typed message
        page.get_by_text("Good day from a small demo network").wait_for()
    finally:
        hearing.close()


@pytest.mark.parametrize("width", [1400, 390])  # desktop and phone
def test_the_tools_tab_shows_each_step_of_the_loop(page, width):
    page.set_viewport_size({"width": width, "height": 900})
    open_app(page)
    open_tab(page, "Tools")
    assert page.get_by_role("textbox", name="Message").first.input_value() == "What is 6 times 7?"  # the demo's own question
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("6 times 7 is 42: the calculator worked it out").wait_for()
    idle(page)
    for title in ("Step 1: the model writes", "🛠 Call read from it: calculator", "📤 Result, sent back", "Step 2: the model writes"):
        assert page.get_by_text(title).first.is_visible(), title
    page.locator("button:visible", has_text="A step of the last run").first.click()
    page.get_by_role("spinbutton", name="Step", exact=True).fill("2")
    page.get_by_role("button", name="Inspect this step").click()
    page.get_by_text("<tool_response>").first.wait_for()  # step 2's prompt holds the result
    assert no_error_badge(page)


def test_the_inspector_tab_shows_chats_next_prompt_as_it_opens(page):
    open_app(page)
    page.get_by_placeholder("Message Qwen").fill("What would you see?")
    page.get_by_role("tab", name="Inspector", exact=True).click()
    page.locator("*:visible", has_text="go into").last.wait_for()  # its notes: "N tokens go into <model>", with no click
    assert page.get_by_text("What would you see?").count() >= 2 and no_error_badge(page)


@pytest.mark.parametrize("width", [1400, 390])  # desktop and phone
def test_documents_are_counted_then_retrieved_with_every_candidates_scores(page, tmp_path, width):
    from .test_documents import long_text

    page.set_viewport_size({"width": width, "height": 900})
    (tmp_path / "long.txt").write_text(long_text(), encoding="utf-8")
    (tmp_path / "photo.txt").write_bytes(bytes(range(256)) * 40)
    open_app(page)
    open_tab(page, "Documents")
    upload = page.locator(".document-files input[type=file]")
    upload.set_input_files(str(tmp_path / "photo.txt"))
    page.get_by_text("photo.txt is not text").wait_for()  # a note beside the files, before anything is sent
    page.locator("button[aria-label='Clear']:visible").first.click()
    upload.set_input_files(str(tmp_path / "long.txt"))
    page.get_by_text("in demo-qwen3.5's tokenizer").wait_for()
    page.get_by_placeholder("Ask about the documents").fill("What is the courier's password?")
    page.get_by_text("Retrieval", exact=True).click()
    page.get_by_text("Retrieval settings").click()
    page.get_by_text("BM25", exact=True).click()
    page.get_by_role("button", name="Ask", exact=True).click()
    page.get_by_text("Good day from a small demo network").locator("visible=true").first.wait_for()
    table = page.get_by_text("Retrieval: the candidates and their scores, best first")
    table.wait_for()
    shown = page.locator(".wide-table").inner_text()
    assert shown.count("long.txt, lines") >= 5 and "✓" in shown  # the candidates, where each is, those in the prompt ticked
    assert "words shared with the question" in page.locator(".wide-table").locator("..").inner_text()  # how to read the scores
    assert no_error_badge(page)


def test_a_citation_opens_its_source_below_the_answer(browser):
    """An answer citing [2] and [1], rendered as the Documents tab renders it, in a page with the app's own script."""
    import gradio as gr

    from qwen_playground.tasks import documents as task
    from qwen_playground.tasks.conversation import AssistantTurn, Message
    from qwen_playground.ui import launch_options
    from qwen_playground.ui.chat_view import render
    from qwen_playground.ui.documents_tab import linked, sources_markdown

    sources = [task.Source(1, "a.pdf, page 2", "The zebra lives in Africa."), task.Source(2, "a.pdf, page 5", "Penguins breed in Antarctica.")]
    turn = AssistantTurn(answer="Penguins breed in Antarctica [2]; zebras live in Africa [1].")
    with gr.Blocks() as demo:
        gr.Chatbot(linked(render([Message.user("Where?"), Message.assistant(turn)], protect=False, footer=False), "a"))
        gr.Markdown(sources_markdown(task.citations(turn.answer, sources), sources, "a"))
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, ssr_mode=False, **launch_options())
    page = new_page(browser)
    try:
        page.goto(url)
        page.get_by_text("2 of the 2 sources in the prompt cited").wait_for()
        assert not page.locator("#doc-a-source-2").evaluate("d => d.open")
        page.locator("a[href='#doc-a-source-2']").click()
        page.wait_for_function("() => document.getElementById('doc-a-source-2').open")
        assert page.get_by_text("Penguins breed in Antarctica.", exact=True).is_visible() and page.url.rstrip("/") == url.rstrip("/")
        assert not page.locator("#doc-a-source-1").evaluate("d => d.open")  # only the one cited there
    finally:
        page.close()
        demo.close()


@pytest.mark.parametrize("width", [1400, 390])  # desktop and phone
def test_the_reasoning_switches_show_for_the_families_that_have_them(page, width):
    """Qwen3.8 shows its reasoning effort (xhigh to start) and the keep-reasoning box; Qwen3.5 has neither, so they go."""
    page.set_viewport_size({"width": width, "height": 900})
    open_app(page)
    effort, keep = page.get_by_label("Reasoning effort"), page.get_by_label("Keep earlier reasoning")
    assert effort.count() == 0 or not effort.first.is_visible()  # the default model (Qwen3.5) has no such switch
    page.get_by_label("Model").first.click()
    page.get_by_role("option", name="demo-qwen3.8").click()
    effort.first.wait_for()
    assert effort.first.input_value() == "xhigh" and keep.first.is_visible() and not keep.first.is_checked()
    keep.first.check()
    page.get_by_label("Model").first.click()
    page.get_by_role("option", name="demo-qwen3.5", exact=True).click()
    page.wait_for_function("() => ![...document.querySelectorAll('label')].some(l => l.offsetParent && l.innerText.includes('Keep earlier reasoning'))")


def test_the_model_guide_names_its_choice_for_a_32_gb_laptop(page):
    """A person asks for a 32 GB laptop: the first row is the guide's choice, with its memory and speed arithmetic (the
    choices themselves are tested in test_guide.py; the test app runs transformers here, so 4-bit is not offered)."""
    open_app(page)
    open_tab(page, "Model guide")
    page.get_by_role("radio", name="CPU").check()
    memory = page.get_by_label("Memory for the model (GiB: GPU memory, or RAM on a CPU)")
    memory.fill("32")
    memory.press("Tab")
    page.get_by_role("button", name="Rank the models").click()
    page.wait_for_function("() => document.body.innerText.includes('★ The guide')")  # what shows (the grid keeps hidden copies)
    shown = page.evaluate("() => document.body.innerText")
    choice = shown[shown.index("★ The guide's choice"):]
    assert shown.count("★ The guide's choice") == 1 and "of 32 GiB" in choice[:300] and "tokens/s (readable)" in choice[:500]


@pytest.mark.parametrize("width", [1400, 390])
def test_drafts_colour_the_answer_and_why_this_token_explains_an_answer_already_shown(page, width):
    """Prompt lookup on: the drafted-tokens fold shows kept guesses in blue and the metrics line their share; ticking
    "why this token?" after the answer scores it in place (one pass), nothing else lost."""
    page.set_viewport_size({"width": width, "height": 900})
    open_app(page)
    page.get_by_label("⚡ Drafts (speculative decoding)").first.click()
    page.get_by_role("option", name="Prompt lookup", exact=True).click()
    page.get_by_placeholder("Message Qwen").fill("Say: Demo mode: tiny random parameters, so this thought is scripted. Good day from a small "
                                                 "demo network; install real weights for useful answers")
    page.keyboard.press("Enter")
    title = page.get_by_text("⚡ Drafted tokens").first
    title.wait_for()
    idle(page)
    assert page.get_by_text("of guesses kept").count() > 0 and page.get_by_text("tokens per pass").count() > 0
    title.click()
    bubble = page.locator(".message", has_text="Blue: a guess from prompt lookup").first
    bubble.wait_for()
    assert bubble.locator("span[style*='#bfdbfe']").count() > 0 and bubble.locator("span[style*='#f3f4f6']").count() > 0
    page.get_by_label("🔎 Why this token?").first.check()
    explained = page.get_by_text("🔎 Why this token? ·").first
    explained.wait_for()
    idle(page)
    explained.click()
    page.locator(".message", has_text="Scored after the answer: one pass of").first.wait_for()
    assert page.get_by_text("⚡ Drafted tokens").count() > 0  # the answer and its other folds stay
    if (folder := os.environ.get("QP_SCREENSHOTS")):  # to look at by eye
        page.screenshot(path=f"{folder}/drafts-{width}.png", full_page=True)


def test_the_speculative_decoding_lesson_puts_drafts_beside_none(page):
    open_shipped_lesson(page, "Speculative decoding, the same answer in fewer passes")
    idle(page)
    drafts = page.get_by_label("⚡ Drafts", exact=True)  # the panes' (Chat's is "⚡ Drafts (speculative decoding)")
    page.wait_for_function("() => [...document.querySelectorAll('input')].filter(i => i.value === 'demo-qwen3.5').length >= 2")
    assert [drafts.nth(i).input_value() for i in range(2)] == ["Off", "Prompt lookup"]
    page.get_by_role("button", name="Send to all panes").click()
    page.get_by_text("⚡ Drafted tokens ·").first.wait_for()  # the fold's title (the lesson's text names it too)
    idle(page)
    assert page.get_by_text("⚡ Drafted tokens ·").count() == 1  # pane 2 only
