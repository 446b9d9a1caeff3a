from qwen_playground.backends.thinking import ThinkingParser, strip_thinking
from qwen_playground.core.generation import TextDelta, ThinkingDelta

TAGS = ("<think>", "</think>")


def run(chunks, tags=TAGS, **kwargs):
    parser = ThinkingParser(tags, **kwargs)
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
    assert strip_thinking(FULL, TAGS) == "It is 4."
    assert strip_thinking("plain", TAGS) == "plain"
    assert strip_thinking("reasoning</think>\n\nanswer", TAGS) == "answer"
    assert strip_thinking("<think>cut off", TAGS) == ""


def test_a_template_that_opened_the_block_and_a_model_that_opens_it_again():
    assert run(["<think>\nreasoning</think>\n\nanswer"], starts_inside=True) == ("reasoning", "answer")
    assert run(["<thi", "nk>reasoning</think>answer"], starts_inside=True) == ("reasoning", "answer")


def test_an_unfinished_opened_thought_is_thinking():
    assert run(["still thinking"], starts_inside=True) == ("still thinking", "")
    assert run(["<th"], starts_inside=True) == ("<th", "")


def test_other_tags_come_from_the_family():
    tags = ("<reasoning>", "</reasoning>")
    assert run(["<reasoning>x</reasoning>y"], tags=tags) == ("x", "y")
    assert run(["<think>x</think>y"], tags=tags) == ("", "<think>x</think>y")
    assert strip_thinking("<reasoning>x</reasoning>y", tags) == "y"
