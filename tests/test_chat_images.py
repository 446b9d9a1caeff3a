"""Images in Chat, for the models that see (Qwen3.5, Qwen3-VL): attached, shown, priced, kept for follow-ups."""

from pathlib import Path

import pytest
from gradio_client import handle_file
from PIL import Image

from qwen_playground.tasks import chat
from qwen_playground.ui.chat_view import files_of, parse

SETTINGS = ("", False, 0.7, 0.8, 20, 0.0, 1.0, 0.0, 64, 0, "full", False, False)  # system prompt ... alternatives


def resendable(history: list[dict]) -> list[dict]:
    """A conversation gradio_client returned, ready to send back: its downloaded images as uploads again."""
    def part(p):
        return {**p, "file": handle_file(p["file"])} if p.get("type") == "file" and isinstance(p["file"], str) else p
    return [{**m, "content": [part(p) for p in m["content"]]} if isinstance(m["content"], list) else m for m in history]


def title(message) -> str:
    return (message.get("metadata") or {}).get("title") or ""


@pytest.fixture()
def red(tmp_path):
    """320x240: 10x8 blocks of 32 px after Qwen's resize to 320x256 (640x480 = 300 is the inspector test's case)."""
    Image.new("RGB", (320, 240), "red").save(tmp_path / "red.png")
    return handle_file(str(tmp_path / "red.png"))


def test_an_image_is_shown_answered_priced_and_kept_for_the_next_turn(app, red):
    client, _ = app
    history, box = client.predict("What colour is it?", [], "demo-qwen3.5", *SETTINGS, [red], api_name="/chat")
    user = history[0]
    assert [part["type"] for part in user["content"]] == ["file", "text"] and user["content"][1]["text"] == "What colour is it?"
    assert "Good day from a small demo network" in "".join(p.get("text", "") for m in history[1:] for p in m["content"])
    footer = next(title(m) for m in history if title(m).startswith("📊"))
    assert "🖼 1 image: 80 of the prompt tokens" in footer and box == ""
    follow_up, _ = client.predict("And the size?", resendable(history), "demo-qwen3.5", *SETTINGS, None, api_name="/chat")
    assert files_of(follow_up[0]["content"]) and not files_of(follow_up[-3]["content"])  # the first message keeps its image
    pieces, _, _ = client.predict("One more?", resendable(follow_up), "demo-qwen3.5", "", False, None, api_name="/inspect")
    assert any(p["token"] == "<|image_pad|> ×80" for p in pieces)  # the earlier image still goes to the model


def test_a_model_that_reads_text_only_refuses_an_image_and_nothing_is_lost(app, red):
    client, _ = app
    with pytest.raises(Exception, match="demo-qwen2.5 reads text only: pick a model that sees"):
        client.predict("What is it?", [], "demo-qwen2.5", *SETTINGS, [red], api_name="/chat")
    history, _ = client.predict("Look", [], "demo-qwen3.5", *SETTINGS, [red], api_name="/chat")
    with pytest.raises(Exception, match="This conversation has images"):
        client.predict("Now you", resendable(history), "demo-qwen2.5", *SETTINGS, None, api_name="/chat")


def test_an_unreadable_image_and_a_server_path_are_refused(app, tmp_path):
    client, _ = app
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    with pytest.raises(Exception, match="not an image this app can read"):
        client.predict("What?", [], "demo-qwen3.5", *SETTINGS, [handle_file(str(fake))], api_name="/chat")
    for server_file in ("/etc/hostname", str(Path("app.py").resolve())):  # outside every folder, and in the app's own
        forged = [{"role": "user", "content": [{"type": "file", "file": {"path": server_file, "meta": {"_type": "gradio.FileData"}}},
                                               {"type": "text", "text": "hi"}]}, {"role": "assistant", "content": "hello"}]
        with pytest.raises(Exception):  # Gradio's own file check, then ours (uploads.require_uploaded)
            client.predict("And this?", forged, "demo-qwen3.5", *SETTINGS, None, api_name="/chat")
    history, _ = client.predict("Still there?", [], "demo-qwen3.5", *SETTINGS, None, api_name="/chat")
    assert "Good day from a small demo network" in str(history)


def test_images_go_first_in_the_user_turn_within_the_models_pixel_bounds(demo_config, tmp_path):
    Image.new("RGB", (64, 64), "blue").save(tmp_path / "blue.png")
    inputs = chat.ChatInputs("What is it?", settings=chat.ChatSettings("demo-qwen3-vl"), images=(str(tmp_path / "blue.png"),))
    job = chat.prepare(demo_config, inputs)
    image, text = job.request.messages[-1]["content"]
    assert image == {"type": "image", "image": str(tmp_path / "blue.png"), "min_pixels": 4 * 32 * 32, "max_pixels": 1280 * 32 * 32}
    assert text["type"] == "text" and "What is it?" in text["text"] and job.image_tokens == 4
    with pytest.raises(chat.TaskError, match="Add a question about the images"):
        chat.prepare(demo_config, chat.ChatInputs("", settings=chat.ChatSettings("demo-qwen3-vl"), images=(str(tmp_path / "blue.png"),)))


def test_retry_and_undo_take_the_last_message_with_its_images(demo_config, tmp_path):
    Image.new("RGB", (64, 64), "blue").save(tmp_path / "blue.png")
    history = [{"role": "user", "content": [{"type": "file", "file": {"path": str(tmp_path / "blue.png")}}, {"type": "text", "text": "What?"}]},
               {"role": "assistant", "content": "Blue."}]
    kept, text, images = chat.undo(parse(history))
    assert (kept.path(), text, images) == ([], "What?", (str(tmp_path / "blue.png"),))
    retried = chat.prepare(demo_config, chat.regenerate(parse(history), chat.ChatSettings("demo-qwen3-vl")), require_message=False)
    assert retried.request.messages[-1]["content"][0]["image"] == str(tmp_path / "blue.png") and retried.image_tokens == 4
