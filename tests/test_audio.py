"""The Audio tab: clips checked and made mono 16 kHz, the tiny Qwen3-ASR and Qwen2-Audio demos, and the endpoints.

Speech is made at test time by espeak-ng (a Debian package, installed by .ci/run); other sounds by numpy.
"""

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file

from qwen_playground.audio import check_audio
from qwen_playground.core.config import load_config
from qwen_playground.tasks import TaskError
from qwen_playground.tasks import audio as task
from qwen_playground.tasks.inspect import processor_for
from qwen_playground.vision import UploadRejected

ASR_REPLY = "Demo mode: tiny random weights, so this transcript is scripted."
AUDIO_REPLY = "Hello from the Qwen2-Audio demo model: install real weights to hear about your recordings!"
MB = 2**20


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    """16-bit PCM; `samples` interleaved when there are several channels."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    """A spoken sentence at espeak-ng's own rate (22.05 kHz), so every use of it is resampled."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng for speech (apt-get install espeak-ng; .ci/run installs it)")
    path = tmp_path_factory.mktemp("speech") / "hello.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "Hello, this is a test of the playground."], check=True, timeout=60)
    return path


@pytest.fixture
def stereo(tmp_path) -> Path:
    t = np.arange(44100 * 2) / 44100
    return write_wav(tmp_path / "stereo.wav", np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], 1).reshape(-1) * 0.5,
                     44100, 2)


def test_speech_is_resampled_to_16_khz_and_said(speech):
    clip = check_audio(speech, 60, 25 * MB)
    assert clip.rate == 16000 and clip.samples.dtype == np.float32 and 1.5 < clip.seconds < 4
    assert clip.notes == ("resampled from 22.05 kHz to 16 kHz",)


def test_stereo_is_mixed_down_and_resampled(stereo):
    clip = check_audio(stereo, 60, 25 * MB)
    assert clip.seconds == pytest.approx(2.0, abs=0.01) and clip.samples.ndim == 1
    assert clip.notes == ("2 channels mixed down to one", "resampled from 44.1 kHz to 16 kHz")


@pytest.mark.parametrize("make, message", [
    (lambda d: write_wav(d / "quiet.wav", np.zeros(16000), 16000), "quiet.wav is silent (digital silence)"),
    (lambda d: write_wav(d / "hum.wav", np.full(16000, 0.001), 16000), "its loudest moment is -60 dBFS"),
    (lambda d: write_wav(d / "long.wav", np.random.default_rng(0).normal(0, 0.1, 16000 * 12), 16000),
     "long.wav is 12.0 s long; the limit is 10.0 s"),
    (lambda d: write_bytes(d / "empty.wav", b""), "empty.wav is empty"),
    (lambda d: write_wav(d / "blip.wav", np.full(400, 0.5), 16000), "holds no sound (25 ms)"),
    (lambda d: write_bytes(d / "broken.wav", b"RIFF\0\0\0\0WAVEfmt " + b"\x07" * 64), "broken.wav is not audio this app can read, or is damaged"),
    (lambda d: write_png(d / "photo.mp3"), "photo.mp3 has no sound in it (checked by content, not by name)"),
])
def test_bad_clips_are_refused_with_what_to_do(tmp_path, make, message):
    with pytest.raises(UploadRejected) as refused:
        check_audio(make(tmp_path), 10, 25 * MB)
    assert message in str(refused.value)


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def write_png(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(path, format="PNG")
    return path


def test_a_file_over_the_size_limit_is_refused_before_decoding(stereo):
    with pytest.raises(UploadRejected, match=r"stereo.wav is 0.3 MB; a clip may be at most 0.1 MB"):
        check_audio(stereo, 60, int(0.1 * MB))


@pytest.mark.parametrize("answer, done, expected", [
    ("langu", False, (None, "")),
    ("language Eng", False, (None, "")),
    ("language English<asr_text>Hello wor", False, ("English", "Hello wor")),
    ("language None<asr_text>", True, (None, "")),
    ("Just text without the format", True, (None, "Just text without the format")),
])
def test_the_transcript_and_language_are_read_as_they_stream(demo_config, answer, done, expected):
    traits = demo_config.registry.get("demo-qwen3-asr").family.audio
    assert task.read_transcript(traits, answer, None, done) == expected


def test_the_demo_asr_streams_a_transcript_with_its_language(demo_config, backend, speech):
    job = task.prepare_transcription(demo_config, speech, task.AUTO, "", "demo-qwen3-asr")
    views = list(task.run(backend, job))
    growing = [v.transcript for v in views if v.transcript]
    assert len(growing) > 2 and all(ASR_REPLY.startswith(t) for t in growing)  # streamed, not sent whole
    final = views[-1]
    assert final.done and final.error is None and final.transcript == ASR_REPLY and final.language == "English"
    assert "answer tokens" in final.metrics and job.notes == ["hello.wav: resampled from 22.05 kHz to 16 kHz"]


def test_the_audio_token_count_is_the_models_own(demo_config, speech):
    """The cost line's count equals what the model's encoder makes of the clip (its own length formula over the
    feature extractor's frames), and the registry's rate estimates it within a second's worth."""
    from transformers.models.qwen3_asr.modeling_qwen3_asr import _get_feat_extract_output_lengths

    spec = demo_config.registry.get("demo-qwen3-asr")
    clip = check_audio(speech, 60, 25 * MB)
    cost = task.clip_cost(demo_config, spec, clip)
    features = processor_for(spec, demo_config.settings.cache_dir).feature_extractor(clip.samples, sampling_rate=16000, return_tensors="pt",
                                                                                     return_attention_mask=True)
    encoder = int(_get_feat_extract_output_lengths(features["attention_mask"].sum(-1))[0])
    assert cost.exact and cost.tokens == encoder == 31  # 2.38 s: two whole seconds of 13 tokens, then 5
    assert abs(cost.tokens - clip.seconds * spec.family.audio.tokens_per_second) < 13
    qwen2 = demo_config.registry.get("demo-qwen2-audio")
    frames = -(-len(clip.samples) // 160)  # Whisper mel frames (10 ms each), then a stride-2 convolution and 2x pooling
    assert task.clip_cost(demo_config, qwen2, clip).tokens == (((frames - 1) // 2 + 1) - 2) // 2 + 1 == 60


def test_a_chosen_language_begins_the_answer(demo_config, backend, speech):
    from qwen_playground.tasks.inspect import explain

    job = task.prepare_transcription(demo_config, speech, "French", "Names: Qwen", "demo-qwen3-asr")
    shown = explain(job.spec, job.request, demo_config.settings.cache_dir)
    text = "".join(piece for piece, _ in shown.pieces)
    assert text.endswith("<|im_start|>assistant\nlanguage French<asr_text>") and "system\nNames: Qwen" in text
    assert "<|audio_pad|> ×31" in [piece for piece, _ in shown.pieces]
    view = task.transcribe(backend, job)
    assert view.language == "French" and view.transcript == ASR_REPLY


def test_asking_about_a_recording_goes_to_an_audio_chat_model(demo_config, backend, stereo):
    job = task.prepare_question(demo_config, stereo, "What do you hear?", "", "demo-qwen2-audio")
    view = task.transcribe(backend, job)
    assert view.conversation[-1].turn.answer == AUDIO_REPLY and view.error is None
    assert job.cost.tokens == 50 and job.notes == ["stereo.wav: 2 channels mixed down to one", "stereo.wav: resampled from 44.1 kHz to 16 kHz"]


@pytest.mark.parametrize("call, field, message", [
    (lambda c, p: task.prepare_question(c, p, "What is it?", "", "demo-qwen3-asr"), "model", "only transcribes speech"),
    (lambda c, p: task.prepare_transcription(c, p, task.AUTO, "", "demo-qwen2-audio"), "model", "to transcribe, pick"),
    (lambda c, p: task.prepare_transcription(c, p, task.AUTO, "", "demo-qwen3"), "model", "does not hear sound"),
    (lambda c, p: task.prepare_transcription(c, p, "Klingon", "", "demo-qwen3-asr"), "language", "does not transcribe Klingon"),
    (lambda c, p: task.prepare_question(c, p, "  ", "", "demo-qwen2-audio"), "question", "Type a question"),
    (lambda c, p: task.prepare_transcription(c, None, task.AUTO, "", "demo-qwen3-asr"), "audio", "Record or upload a clip first"),
])
def test_wrong_choices_are_refused_beside_their_input(demo_config, stereo, call, field, message):
    with pytest.raises(TaskError, match=message) as refused:
        call(demo_config, stereo)
    assert refused.value.field == field


def test_the_length_limit_is_a_setting(tmp_path, demo_config, stereo):
    config = load_config(demo=True, cache_dir=demo_config.settings.cache_dir, max_audio_seconds=1.5)
    with pytest.raises(TaskError, match=r"stereo.wav is 2.0 s long; the limit is 1.5 s") as refused:
        task.prepare_transcription(config, stereo, task.AUTO, "", "demo-qwen3-asr")
    assert refused.value.field == "audio"
    assert task.clip_limit(config, config.registry.get("demo-qwen2-audio")) == 1.5  # the model's own (30 s) is longer


def test_a_spoken_chat_message_is_dictated(demo_config, backend, speech):
    text, view, spec = task.dictate(demo_config, backend, speech)
    assert text == ASR_REPLY and spec.id == "demo-qwen3-asr" and view.language == "English"


def test_transcribe_and_ask_audio_endpoints(app, speech, stereo):
    client, _ = app
    transcript, language, cost, notes, metrics = client.predict(handle_file(str(speech)), task.AUTO, "", "demo-qwen3-asr", "full",
                                                                api_name="/transcribe")
    assert transcript == ASR_REPLY and "English (detected by the model)" in language
    assert "31 audio tokens** for demo-qwen3-asr (13.0 a second; counted by its processor)" in cost and "resampled" in notes
    conversation, cost, notes, metrics = client.predict(handle_file(str(stereo)), "What is it?", "", "demo-qwen2-audio", "full",
                                                        api_name="/ask_audio")
    assert conversation[0]["content"][0]["text"] == "🎧 1 clip: What is it?" and conversation[-1]["content"][0]["text"] == AUDIO_REPLY
    assert "mixed down" in notes and "50 audio tokens" in cost


def test_inspect_audio_shows_the_placeholders_with_their_count(app, speech):
    client, _ = app
    pieces, notes, counts = client.predict(task.TASKS[0], handle_file(str(speech)), task.AUTO, "", "demo-qwen3-asr", "", "", "demo-qwen2-audio",
                                           "full", api_name="/inspect_audio")
    tokens = [p["token"] for p in pieces]
    assert tokens[tokens.index("<|audio_start|>") + 1] == "<|audio_pad|> ×31" and "**Audio:** the processor expands the clip" in notes
    assert "**The clip:** **2.4 s** of sound at 16 kHz → **31 audio tokens** for demo-qwen3-asr (13.0 a second" in notes
    assert counts["total"] == len(counts["ids"]) == 46


def test_a_bad_clip_is_refused_and_the_app_serves_on(app, tmp_path, speech):
    client, _ = app
    silent = write_wav(tmp_path / "silent.wav", np.zeros(8000), 16000)
    with pytest.raises(Exception, match="silent.wav is silent"):
        client.predict(handle_file(str(silent)), task.AUTO, "", "demo-qwen3-asr", "full", api_name="/transcribe")
    assert client.predict(handle_file(str(speech)), task.AUTO, "", "demo-qwen3-asr", "full", api_name="/transcribe")[0] == ASR_REPLY


def test_an_omni_model_is_listed_with_its_memory_and_refused_locally_with_where_to_serve_it(demo_config, backend):
    import threading

    from qwen_playground.core.generation import Error, Request
    from qwen_playground.tasks import guide

    rows = {row[0]: row for row in guide.table(demo_config.registry, ("full",), "audio", 80, 8192, ["English"])}
    assert {"qwen2-audio-7b-instruct", "qwen2.5-omni-7b", "qwen3-omni-30b-a3b-instruct"} <= set(rows)
    assert "OpenAI-compatible server" in rows["qwen2.5-omni-7b"][-1] and "server" not in rows["qwen2-audio-7b-instruct"][-1]
    events = list(backend.stream(Request("qwen2.5-omni-7b", [{"role": "user", "content": "Hi"}]), threading.Event()))
    assert isinstance(events[-1], Error) and "runs on an OpenAI-compatible server" in events[-1].message and "docs/backends.md" in events[-1].message
