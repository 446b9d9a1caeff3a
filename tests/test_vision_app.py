"""The tiny Qwen2.5-VL and Qwen3-VL demos through the backend and through the app."""

import threading

import av
import numpy as np
import pytest

from qwen_playground.backends.local import CacheKey
from gradio_client import handle_file
from PIL import Image
from qwen_vl_utils import process_vision_info

from qwen_playground.core.generation import Metrics, Request, TextDelta
from qwen_playground.vision import image_cost

REPLY = "Hi from the Qwen2.5-VL demo model: install real weights to hear about your images!"
QWEN3_VL_REPLY = "Greetings from the Qwen3-VL demo model; install real weights to hear about your pictures!"


def ask(backend, images, min_pixels=4 * 28 * 28, max_pixels=256 * 28 * 28, model="demo-qwen2.5-vl"):
    parts = [{"type": "image", "image": im, "min_pixels": min_pixels, "max_pixels": max_pixels} for im in images]
    messages = [{"role": "user", "content": [*parts, {"type": "text", "text": "What is shown?"}]}]
    return messages, list(backend.stream(Request(model, messages), threading.Event()))


def test_qwen3_vl_sees_in_32_pixel_tokens(backend):
    images = [Image.new("RGB", (640, 480), "red"), Image.new("RGB", (300, 200), "blue")]
    messages, events = ask(backend, images, 4 * 32 * 32, 1024 * 32 * 32, model="demo-qwen3-vl")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == QWEN3_VL_REPLY
    processor = backend.cache.get(CacheKey("demo-qwen3-vl"), 0, None).media_processor()
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    enc = processor(text=[text], images=process_vision_info(messages, image_patch_size=16)[0], return_tensors="pt")
    costs = [image_cost(im, 4 * 32 * 32, 1024 * 32 * 32, 32).tokens for im in images]
    assert int((enc["input_ids"] == 151655).sum()) == sum(costs) and costs[0] == 300  # 20 x 15 blocks of 32 px
    assert next(e for e in events if isinstance(e, Metrics)).prompt_tokens == enc["input_ids"].shape[1]


@pytest.mark.parametrize("count", [1, 2])
def test_one_and_two_images_through_the_tiny_vl_model(backend, count):
    images = [Image.new("RGB", (320 + 40 * i, 240), "red") for i in range(count)]
    messages, events = ask(backend, images)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == REPLY
    metrics = next(e for e in events if isinstance(e, Metrics))
    processor = backend.cache.get(CacheKey("demo-qwen2.5-vl"), 0, None).media_processor()
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    enc = processor(text=[text], images=process_vision_info(messages)[0], return_tensors="pt")
    image_tokens = int((enc["input_ids"] == 151655).sum())
    assert image_tokens == sum(image_cost(im, 4 * 28 * 28, 256 * 28 * 28, 28).tokens for im in images)  # our cost = the processor's
    assert metrics.prompt_tokens == enc["input_ids"].shape[1]


def test_resolution_changes_the_cost(backend):
    image = Image.new("RGB", (1024, 768), "green")
    _, low = ask(backend, [image], max_pixels=64 * 28 * 28)
    _, high = ask(backend, [image], max_pixels=384 * 28 * 28)
    prompt = lambda events: next(e for e in events if isinstance(e, Metrics)).prompt_tokens
    assert prompt(high) - prompt(low) == image_cost(image, 4 * 28 * 28, 384 * 28 * 28, 28).tokens - image_cost(image, 4 * 28 * 28, 64 * 28 * 28, 28).tokens


def test_vision_endpoint_round_trip(app, tmp_path):
    client, _ = app
    Image.new("RGB", (640, 480), "red").save(tmp_path / "red.png")
    Image.new("RGBA", (300, 300), (0, 0, 255, 128)).save(tmp_path / "blue.png")
    chat, costs, boxes, notes, metrics = client.predict([handle_file(str(tmp_path / "red.png")), handle_file(str(tmp_path / "blue.png"))],
                                                        None, "What colours?", "", "demo-qwen2.5-vl", 4, 256, api_name="/vision")
    assert chat[-1]["content"][0]["text"] == REPLY and "tok/s" in metrics
    assert [row[0] for row in costs["data"]] == ["red.png", "blue.png"] and costs["data"][0][1] == "640×480"
    assert "transparency flattened" in notes and not boxes


def test_bad_uploads_get_clear_messages_and_the_app_serves_on(app, tmp_path):
    client, _ = app
    fake = tmp_path / "cat.png"
    fake.write_text("not a cat")
    with pytest.raises(Exception, match="not an image this app can read"):
        client.predict([handle_file(str(fake))], None, "What is it?", "", "demo-qwen2.5-vl", 4, 256, api_name="/vision")
    with pytest.raises(Exception, match="Add at least one image"):
        client.predict([], None, "What is it?", "", "demo-qwen2.5-vl", 4, 256, api_name="/vision")
    with pytest.raises(Exception, match="must not exceed"):
        Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
        client.predict([handle_file(str(tmp_path / "ok.png"))], None, "q", "", "demo-qwen2.5-vl", 512, 16, api_name="/vision")
    chat, *_ = client.predict([handle_file(str(tmp_path / "ok.png"))], None, "Still there?", "", "demo-qwen2.5-vl", 4, 256, api_name="/vision")
    assert chat[-1]["content"][0]["text"] == REPLY


def make_video(path, seconds: int = 3, fps: int = 8) -> None:
    """A real MPEG-4 file, one grey level per frame."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 10 % 255, dtype=np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


@pytest.mark.parametrize(("model", "reply"), [("demo-qwen3-vl", QWEN3_VL_REPLY), ("demo-qwen2.5-vl", REPLY)])
def test_a_video_is_sampled_and_answered_with_its_frame_times_where_the_family_takes_them(app, tmp_path, model, reply):
    client, _ = app
    make_video(tmp_path / "clip.mp4")
    inputs = ([handle_file(str(tmp_path / "clip.mp4"))], None, "What happens?", "", model, 4, 256)
    chat, costs, _, _, metrics = client.predict(*inputs, api_name="/vision")
    assert chat[-1]["content"][0]["text"] == reply and "tok/s" in metrics
    assert costs["data"][0][:3] == ["clip.mp4", "video, 64×48", "3 frames at 1 per second"]
    pieces, _, _ = client.predict(*inputs, api_name="/inspect_vision")
    text = "".join(p["token"] for p in pieces)
    assert "<|video_pad|>" in text and ("seconds>" in text) == (model == "demo-qwen3-vl")  # Qwen3-VL writes each frame's time


def test_a_broken_video_is_refused_with_a_message(app, tmp_path):
    client, _ = app
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)  # an MP4 signature, no video inside
    with pytest.raises(Exception, match="could not be decoded as a video"):
        client.predict([handle_file(str(broken))], None, "What?", "", "demo-qwen3-vl", 4, 256, api_name="/vision")


def test_a_vision_models_processor_comes_with_its_first_image(demo_config):
    """A text turn to a vision model loads its tokenizer only: the image libraries' seconds wait for the first image."""
    from qwen_playground.backends.local import LocalBackend

    fresh = LocalBackend(demo_config.registry, demo_config.settings)
    text = list(fresh.stream(Request("demo-qwen3-vl", [{"role": "user", "content": "Hello"}]), threading.Event()))
    assert "".join(e.text for e in text if isinstance(e, TextDelta)) == QWEN3_VL_REPLY
    loaded = fresh.cache.get(CacheKey("demo-qwen3-vl"), 0, None)
    assert loaded.processor is None
    _, events = ask(fresh, [Image.new("RGB", (320, 240), "red")], 4 * 32 * 32, 256 * 32 * 32, model="demo-qwen3-vl")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == QWEN3_VL_REPLY
    assert loaded.processor is not None and loaded.media_processor() is loaded.processor  # made once
