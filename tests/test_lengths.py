"""One length rule for every tab: each task refuses an over-long prompt before sending, naming the input it concerns."""

import random

import pytest
from PIL import Image

from qwen_playground.ui.chat_view import parse
from qwen_playground.arena_store import ArenaStore
from qwen_playground.tasks import TaskError, arena, chat, code, compare, math, multilingual, vision

LONG = "word " * 400  # about 400 tokens


@pytest.fixture(scope="module")
def small(demo_config):
    """The demo config with 50 tokens per message and 300 per prompt."""
    settings = demo_config.settings.model_copy(update={"max_message_tokens": 50, "max_input_tokens": 300})
    return type(demo_config)(demo_config.registry, settings, demo_config.demo)


def image(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (32, 32), "red").save(path)
    return path


def every_tab(config, text, tmp_path):
    """Each tab's request builder with `text` where its person types, and the input a refusal should name."""
    store = ArenaStore(tmp_path / "arena.sqlite3")
    return {
        "chat": (lambda: chat.prepare(config, chat.ChatInputs(text, settings=chat.ChatSettings("demo-qwen3"))), "message"),
        "math": (lambda: math.prepare(config, text, "", "demo-qwen2.5"), "problem"),
        "code": (lambda: code.prepare(config, text, "Python", "", "", "demo-qwen2.5"), "task"),
        "multilingual": (lambda: multilingual.prepare(config, text, ["English"], "demo-qwen2.5"), "prompt"),
        "vision": (lambda: vision.prepare(config, [image(tmp_path)], text, "", "demo-qwen2.5-vl", 4, 64), "question"),
        "compare": (lambda: compare.prepare(config, text, [{"model": "demo-qwen3"}, {"model": "demo-qwen2.5"}]), "prompt"),
        "arena": (lambda: arena.prepare(config, store, ["demo-qwen3", "demo-qwen2.5"], text, rng=random.Random(0)), "prompt"),
    }


def test_every_tab_refuses_an_over_long_message_before_sending(small, tmp_path):
    for tab, (prepare, field) in every_tab(small, LONG, tmp_path).items():
        with pytest.raises(TaskError, match=r"This message is [\d,]+ tokens long; the limit is 50 tokens per message") as refused:
            prepare()
        assert refused.value.field == field, tab


def test_every_tab_refuses_a_prompt_over_the_input_limit(small, tmp_path):
    config = type(small)(small.registry, small.settings.model_copy(update={"max_message_tokens": 4096}), small.demo)
    for tab, (prepare, field) in every_tab(config, LONG, tmp_path).items():
        with pytest.raises(TaskError, match=r"This prompt is about [\d,]+ tokens long; the limit is 300\.") as refused:
            prepare()
        assert refused.value.field == field, tab


def test_every_tab_sends_a_prompt_within_the_limits(small, tmp_path):
    for tab, (prepare, _) in every_tab(small, "Is 7 prime?", tmp_path).items():
        assert prepare().requests, tab


def test_the_advice_fits_the_tab(small):
    config = type(small)(small.registry, small.settings.model_copy(update={"max_message_tokens": 4096}), small.demo)
    history = [{"role": "user", "content": LONG}, {"role": "assistant", "content": "ok"}]
    with pytest.raises(TaskError, match="Trim oldest turns to fit"):
        chat.prepare(config, chat.ChatInputs("next", parse(history), chat.ChatSettings("demo-qwen3")))
    assert chat.prepare(config, chat.ChatInputs("next", parse(history), chat.ChatSettings("demo-qwen3", trim_history=True))).dropped == 1
    with pytest.raises(TaskError, match=r"clear the panes \(pane 1 is over\)"):
        compare.prepare(config, "next", [{"model": "demo-qwen3", "history": parse(history)}, {"model": "demo-qwen2.5"}])
