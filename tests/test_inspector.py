import pytest

from qwen_playground.backends.demo import load_tokenizer
from qwen_playground.core.config import builtin_families
from qwen_playground.tasks.inspect import inspect, soft_switch, thinking_difference

FAMILIES = builtin_families()

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2? {{ 7*7 }}"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And 3+3? /no_think"},
]


@pytest.mark.parametrize("family, thinking", [("qwen3", True), ("qwen3", False), ("qwen2.5", False)])
def test_inspector_text_and_ids_equal_the_tokenizers_own(family, thinking):
    tok = load_tokenizer(FAMILIES[family])
    kwargs = FAMILIES[family].template_kwargs(thinking)
    result = inspect(tok, CONVERSATION, FAMILIES[family], thinking)
    assert result.text == tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True, **kwargs)
    assert result.ids == tok.apply_chat_template(CONVERSATION, tokenize=True, add_generation_prompt=True, return_dict=True, **kwargs)["input_ids"]
    assert "".join(text for text, _ in result.pieces) == result.text
    assert ("<|im_start|>", "special") in result.pieces and ("<|im_end|>", "special") in result.pieces
    assert [t.role for t in result.turns] == ["system", "user", "assistant", "user", "assistant"]
    assert sum(t.tokens for t in result.turns) == result.total


def test_qwen25_adds_its_default_system_prompt():
    result = inspect(load_tokenizer(FAMILIES["qwen2.5"]), [{"role": "user", "content": "hi"}], FAMILIES["qwen2.5"])
    assert result.text.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>")


def test_thinking_off_adds_an_empty_think_block():
    tok = load_tokenizer(FAMILIES["qwen3"])
    diff = thinking_difference(tok, CONVERSATION, FAMILIES["qwen3"])
    assert "+<think>" in diff and "+</think>" in diff
    off = inspect(tok, CONVERSATION, FAMILIES["qwen3"], False)
    assert off.text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") and ("<think>", "tag") in off.pieces


def test_soft_switches():
    assert soft_switch(CONVERSATION) == "/no_think"
    assert soft_switch([{"role": "user", "content": "think hard /think"}]) == "/think"
    assert soft_switch([{"role": "user", "content": "plain"}]) is None
