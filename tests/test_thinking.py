from qwen_playground.generation import TextDelta, ThinkingDelta
from qwen_playground.thinking import ThinkingParser, strip_thinking


def run(chunks, **kwargs):
    parser = ThinkingParser(**kwargs)
    events = [e for c in chunks for e in parser.feed(c)] + parser.flush()
    thinking = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    return thinking, answer


FULL = "<think>\nLet me see: 2+2.\n</think>\n\nIt is 4."


def test_whole_output_in_one_chunk():
    assert run([FULL]) == ("Let me see: 2+2.", "It is 4.")


def test_tags_split_at_every_position():
    for cut in range(1, len(FULL)):
        assert run([FULL[:cut], FULL[cut:]]) == ("Let me see: 2+2.", "It is 4."), cut


def test_one_character_at_a_time():
    assert run(list(FULL)) == ("Let me see: 2+2.", "It is 4.")


def test_output_with_no_tags_is_all_answer():
    assert run(["Just ", "an answer."]) == ("", "Just an answer.")
    assert run(["<thing> is not a tag"]) == ("", "<thing> is not a tag")
    assert run(["<thi", "s> is text"]) == ("", "<this> is text")


def test_template_that_opened_the_block():
    assert run(["reasoning</th", "ink>\n\nanswer"], starts_inside=True) == ("reasoning", "answer")


def test_unfinished_thinking_is_flushed_as_thinking():
    assert run(["<think>still going</thi"]) == ("still going</thi", "")


def test_tags_in_the_answer_stay_text():
    assert run(["Hello <think>x</think>"]) == ("", "Hello <think>x</think>")


def test_strip_thinking_for_history():
    assert strip_thinking(FULL) == "It is 4."
    assert strip_thinking("plain") == "plain"
    assert strip_thinking("reasoning</think>\n\nanswer") == "answer"
    assert strip_thinking("<think>cut off") == ""
