"""What every tab's inspector shows is what the tab really sends: the same token ids the model receives.

A recording backend (the real LocalBackend over the demo models, keeping each
request's input ids as it encodes them) serves the app; each tab's endpoint
runs, then its inspector endpoint is asked about the same inputs.
"""

import pytest
from gradio_client import handle_file
from PIL import Image

from qwen_playground.backends.local import LocalBackend
from tests.conftest import running_app

IMAGE_PAD = 151655
QWEN35_IMAGE_PAD = 248056


class RecordingBackend(LocalBackend):
    """The local backend, noting the input ids of every request it encodes for its model."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[str, list[int]]] = []

    def encode(self, spec, loaded, request):
        inputs = super().encode(spec, loaded, request)
        self.sent.append((request.model_id, inputs["input_ids"][0].tolist()))
        return inputs


@pytest.fixture(scope="module")
def recorded(demo_config):
    backend = RecordingBackend(demo_config.registry, demo_config.settings)
    with running_app(demo_config, backend) as client:
        yield client, backend


def sent_by(backend: RecordingBackend, call) -> list[tuple[str, list[int]]]:
    """The (model, ids) pairs a call sent to the models."""
    before = len(backend.sent)
    call()
    return backend.sent[before:]


def inspected_ids(client, api_name, *inputs) -> list[int]:
    _, _, counts = client.predict(*inputs, api_name=api_name)
    return counts["ids"]


def test_chat_sends_what_its_inspector_shows(recorded):
    client, backend = recorded
    history, _ = client.predict("First", [], "demo-qwen3", "Be brief.", True, 0.6, 0.95, 20, 0.0, 1.0, 0.0, 64, api_name="/chat")
    [(model, ids)] = sent_by(backend, lambda: client.predict("Second", history, "demo-qwen3", "Be brief.", False, 0.7, 0.8, 20, 0.0, 1.0, 0.0, 64,
                                                              api_name="/chat"))
    assert model == "demo-qwen3" and ids == inspected_ids(client, "/inspect", "Second", history, "demo-qwen3", "Be brief.", False)
    assert ids != inspected_ids(client, "/inspect", "Second", history, "demo-qwen3", "Be brief.", True)  # thinking is in the prompt


def test_chat_with_an_image_sends_what_its_inspector_shows(recorded, tmp_path):
    client, backend = recorded
    Image.new("RGB", (640, 480), "red").save(tmp_path / "red.png")
    image = [handle_file(str(tmp_path / "red.png"))]
    [(model, ids)] = sent_by(backend, lambda: client.predict("What colour?", [], "demo-qwen3.5", "", False, 0.7, 0.8, 20, 0.0, 1.0, 0.0, 32, 0,
                                                              "full", False, False, image, api_name="/chat"))
    assert model == "demo-qwen3.5" and ids == inspected_ids(client, "/inspect", "What colour?", [], "demo-qwen3.5", "", False, image)
    assert ids.count(QWEN35_IMAGE_PAD) == 300  # 640x480 in 32-pixel tokens


def test_code_sends_what_its_inspector_shows(recorded):
    client, backend = recorded
    inputs = ("Add two numbers", "Rust", "fn main() {}", "no crates", "demo-qwen2.5", "full")
    [(_, ids)] = sent_by(backend, lambda: client.predict(*inputs, api_name="/code"))
    assert ids == inspected_ids(client, "/inspect_code", *inputs)


def test_math_sends_what_its_inspector_shows(recorded):
    client, backend = recorded
    for model in ("demo-qwen2.5", "demo-qwen3"):  # the thinking model solves with thinking on
        inputs = ("Solve $x + 1 = 2$.", "1", model, "full")
        [(_, ids)] = sent_by(backend, lambda: client.predict(*inputs, api_name="/math"))
        assert ids == inspected_ids(client, "/inspect_math", *inputs)


def test_multilingual_sends_what_its_inspector_shows(recorded):
    client, backend = recorded
    inputs = ("Why is the sky blue?", ["Hindi", "English"], "demo-qwen2.5", "full")
    sent = sent_by(backend, lambda: client.predict(*inputs, api_name="/multilingual"))
    assert len(sent) == 2
    assert inspected_ids(client, "/inspect_multilingual", *inputs) in [ids for _, ids in sent]  # the first language's request
    pieces, notes, _ = client.predict(*inputs, api_name="/inspect_multilingual")
    assert "sends 2 requests" in notes and any("Hindi" in p["token"] for p in pieces)


@pytest.mark.parametrize(("model", "tokens"), [("demo-qwen3-vl", 300), ("demo-qwen2.5-vl", 391)])
def test_vision_sends_what_its_inspector_shows_image_tokens_included(recorded, tmp_path, model, tokens):
    """640x480 pixels: 20x15 blocks of 32 px on Qwen3-VL, 23x17 of 28 px on Qwen2.5-VL; the same in the cost table,
    the inspector and the ids generation gets."""
    client, backend = recorded
    Image.new("RGB", (640, 480), "red").save(tmp_path / "red.png")
    inputs = ([handle_file(str(tmp_path / "red.png"))], None, "What colour?", "", model, 4, 1024, "full")
    [(_, ids)] = sent_by(backend, lambda: client.predict(*inputs, api_name="/vision"))
    pieces, notes, counts = client.predict(*inputs, api_name="/inspect_vision")
    assert counts["ids"] == ids and ids.count(IMAGE_PAD) == tokens
    assert any(p["token"] == f"<|image_pad|> ×{tokens}" for p in pieces) and "expands each image" in notes
    _, costs, *_ = client.predict(*inputs, api_name="/vision")
    assert costs["data"][0][3] == tokens


@pytest.mark.parametrize("task, model, api_name, pad", [("Transcribe", "demo-qwen3-asr", "/transcribe", 151676),
                                                        ("Ask about it", "demo-qwen2-audio", "/ask_audio", 151669)])
def test_audio_sends_what_its_inspector_shows_audio_tokens_included(recorded, tmp_path, task, model, api_name, pad):
    """A second of a tone: 13 audio tokens on Qwen3-ASR, 25 on Qwen2-Audio; the same in the cost line, the inspector and
    the ids generation gets."""
    import wave

    import numpy as np

    client, backend = recorded
    with wave.open(str(tmp_path / "tone.wav"), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes((np.sin(np.arange(16000) / 5) * 8000).astype("<i2").tobytes())
    clip = handle_file(str(tmp_path / "tone.wav"))
    asked = (clip, "French", "Qwen", "demo-qwen3-asr") if task == "Transcribe" else (clip, "What is it?", "", "demo-qwen2-audio")
    [(_, ids)] = sent_by(backend, lambda: client.predict(*asked, "full", api_name=api_name))
    pieces, notes, counts = client.predict(task, clip, "French", "Qwen", "demo-qwen3-asr", "What is it?", "", "demo-qwen2-audio", "full",
                                           api_name="/inspect_audio")
    tokens = 13 if task == "Transcribe" else 25
    assert counts["ids"] == ids and ids.count(pad) == tokens and "expands the clip" in notes
    assert f"→ **{tokens} audio tokens** for {model}" in client.predict(*asked, "full", api_name=api_name)[-3]


def test_tools_sends_what_its_inspector_shows_tools_block_included(recorded):
    client, backend = recorded
    inputs = ("What is 6 times 7?", ["calculator"], "demo-qwen3-tools", 5, False, "", "full")
    sent = sent_by(backend, lambda: client.predict(*inputs, api_name="/tools_chat"))
    assert len(sent) == 2  # the call, then the answer from its result
    pieces, notes, counts = client.predict(*inputs, api_name="/inspect_tools")
    assert counts["ids"] == sent[0][1] and "<tools>" in counts["text"] and '"name": "calculator"' in counts["text"]


def test_compare_sends_what_its_inspector_shows(recorded):
    client, backend = recorded
    panes = [{"model": "demo-qwen3", "thinking": True, "temperature": 0.6, "max_new_tokens": 64},
             {"model": "demo-qwen2.5", "max_new_tokens": 64}]
    sent = sent_by(backend, lambda: client.predict("Is 7 prime?", panes, "Chat", api_name="/compare"))
    first = next(ids for model, ids in sent if model == "demo-qwen3")
    assert first == inspected_ids(client, "/inspect_compare", "Is 7 prime?", panes, "Chat", 0)  # the same panes as /compare


def test_inspectors_refuse_with_a_message(recorded):
    client, _ = recorded
    with pytest.raises(Exception, match="Type a task first"):
        client.predict("", "Python", "", "", "demo-qwen2.5", "full", api_name="/inspect_code")
    with pytest.raises(Exception, match="Add at least one image"):
        client.predict([], None, "What?", "", "demo-qwen2.5-vl", 4, 256, "none", api_name="/inspect_vision")  # "none": the name before 0.2, still read
    with pytest.raises(Exception, match="nothing to inspect"):
        client.predict("", [], "demo-qwen3", "", True, api_name="/inspect")
