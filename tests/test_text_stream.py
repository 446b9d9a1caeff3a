"""Token text reaches the screen as each token comes, except a character still missing bytes."""

import torch
from transformers import AutoTokenizer

from qwen_playground.backends.text_stream import LiveTextStreamer
from qwen_playground.core.tokenizer_files import qwen3_tokenizer_dir


def pieces_per_token(text: str) -> tuple[list[str], list[int]]:
    """Feed `text`'s ids one by one: (the text given after each token, the ids)."""
    tokenizer = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir())
    ids = tokenizer(text, add_special_tokens=False).input_ids
    streamer = LiveTextStreamer(tokenizer, skip_special_tokens=True)
    given: list[str] = []
    streamer.on_finalized_text = lambda piece, stream_end=False: given.append(piece)
    for token in ids:
        streamer.put(torch.tensor([token]))
    streamer.end()
    return given, ids


def test_symbols_and_formatting_come_with_their_token():
    text = "x = f(a, b) ** 2; print(`{x}`) -> <br>**bold**\n\nnext line: 42%"
    given, ids = pieces_per_token(text)
    assert "".join(given) == text
    assert len(given) == len(ids) + 1 and all(given[:-1])  # each token's text came with it (transformers' streamer holds these back)


def test_a_character_split_across_tokens_waits_for_its_last_byte():
    text = "Smile 😀 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 龘"
    given, ids = pieces_per_token(text)
    assert "".join(given) == text and "\ufffd" not in "".join(given)
    assert len(ids) > len(text.split())  # the rare characters are several byte tokens each
    assert len(given) <= len(ids) - 3  # tokens holding part of a character gave nothing yet (end() gives one more)
