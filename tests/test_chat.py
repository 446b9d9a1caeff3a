import pytest

from qwen_playground.core.generation import Done, Error, Metrics, Progress, TextDelta, ThinkingDelta
from qwen_playground.tasks.chat_history import ChatTurn, normalize_history, split_last_turn, text_of, to_model_messages

TAGS = ("<think>", "</think>")


def test_text_of_gradio_contents():
    assert text_of("hi") == "hi"
    assert text_of([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]) == "ab"
    assert text_of(None) == ""


def test_history_back_to_the_model_drops_thinking_and_helpers():
    turn = ChatTurn()
    for event in [Progress("Loading…"), ThinkingDelta("secret plan"), TextDelta("Answer one."),
                  Metrics(5, 3, 2, 0.1, 10.0, 0.2, 0.5), Done("stop")]:
        turn.apply(event)
    history = normalize_history([{"role": "user", "content": [{"type": "text", "text": "Q1"}]}, *turn.messages,
                                 {"role": "user", "content": "Q2"}])
    messages = to_model_messages(history, "Be brief.", TAGS)
    assert messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1"},
                        {"role": "assistant", "content": "Answer one."}, {"role": "user", "content": "Q2"}]
    assert "secret" not in str(messages)


def test_inline_think_tags_in_an_answer_are_stripped_too():
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>x</think>\n\ny"}]
    assert to_model_messages(history, "", TAGS)[-1] == {"role": "assistant", "content": "y"}


def test_turn_rendering():
    turn = ChatTurn()
    turn.apply(Progress("Downloading"))
    assert turn.messages[0]["metadata"]["status"] == "pending" and not turn.produced_output
    turn.apply(ThinkingDelta("a"))
    turn.apply(ThinkingDelta("b"))
    turn.apply(TextDelta("x"))
    thinking, answer = turn.messages
    assert thinking["content"] == "ab" and thinking["metadata"]["status"] == "done"
    assert answer == {"role": "assistant", "content": "x"}
    turn.apply(Metrics(4, 1, 2, 0.25, 12.5, 0.1, 0.4))
    turn.apply(Done("length"))
    title = turn.messages[-1]["metadata"]["title"]
    assert "first token 0.25 s" in title and "12.5 tok/s" in title and "1 answer tokens" in title
    assert "2 thinking tokens" in title and "max new tokens" in title


def test_error_keeps_partial_answer():
    turn = ChatTurn()
    turn.apply(TextDelta("partial"))
    turn.apply(Error("boom"))
    assert turn.error == "boom"
    assert [m["content"] for m in turn.messages] == ["partial", "boom"]


def test_malformed_history_is_refused():
    with pytest.raises(ValueError, match="history must be"):
        normalize_history([{"role": "robot", "content": "x"}])
    with pytest.raises(ValueError):
        normalize_history(["just a string"])


def test_undo_and_retry_split_off_the_last_turn():
    history = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "1"},
               {"role": "user", "content": "two"}, {"role": "assistant", "content": "", "metadata": {"title": "💭 Thinking"}},
               {"role": "assistant", "content": "2"}]
    before, text = split_last_turn(history)
    assert text == "two" and before == history[:2]
    assert split_last_turn([]) == ([], None)


def test_what_a_person_typed_is_shown_as_typed_and_sent_back_as_typed():
    from qwen_playground.mathtext import protect_typed

    shown = protect_typed("Is <b>this</b> $x^2$? It costs $5. `<i>code</i>`")
    assert "\\<b>" in shown and "\\(x^2\\)" in shown and "\\$5" in shown and "`<i>code</i>`" in shown
    history = [{"role": "user", "content": shown}, {"role": "assistant", "content": "It is \\(x^2\\), for \\$5."}]
    messages = to_model_messages(history, "", ("<think>", "</think>"))
    assert messages == [{"role": "user", "content": "Is <b>this</b> \\(x^2\\)? It costs $5. `<i>code</i>`"},
                        {"role": "assistant", "content": "It is \\(x^2\\), for $5."}]
    assert split_last_turn(history)[1].startswith("Is <b>this</b>")
