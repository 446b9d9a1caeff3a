"""The conversation the tasks own (a tree of typed messages) and its one view as Chatbot messages."""

import pytest

from qwen_playground.core.generation import Done, Error, Metrics, Progress, TextDelta, ThinkingDelta
from qwen_playground.tasks.conversation import AssistantTurn, Conversation, Message, model_messages
from qwen_playground.ui import chat_view
from qwen_playground.ui.chat_view import conversation_for, parse, render, text_of

TAGS = ("<think>", "</think>")


def answered(*events) -> AssistantTurn:
    turn = AssistantTurn()
    for event in events:
        turn.apply(event)
    return turn


def test_text_of_gradio_contents():
    assert text_of("hi") == "hi"
    assert text_of([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]) == "ab"
    assert text_of(None) == ""


def test_the_model_gets_answers_without_thinking_and_no_display_bubbles():
    turn = answered(Progress("Loading…"), ThinkingDelta("secret plan"), TextDelta("Answer one."), Metrics(5, 3, 2, 0.1, 10.0, 0.2, 0.5),
                    Done("stop"))
    conversation = Conversation.of([Message.user("Q1"), Message.assistant(turn), Message.user("Q2")])
    messages = model_messages(conversation.path(), "Be brief.", TAGS)
    assert messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1"},
                        {"role": "assistant", "content": "Answer one."}, {"role": "user", "content": "Q2"}]
    assert "secret" not in str(messages)
    # the same through the page: rendered as bubbles and read back
    assert model_messages(parse(render(conversation.path())).path(), "Be brief.", TAGS) == messages


def test_renaming_every_display_title_leaves_the_models_messages_unchanged(monkeypatch):
    turn = answered(ThinkingDelta("plan"), TextDelta("A1"), Metrics(5, 3, 2, 0.1, 10.0, 0.2, 0.5), Done("stop"))
    conversation = Conversation.of([Message.user("Q1"), Message.assistant(turn), Message.user("Q2")])
    before = model_messages(conversation.path(), "", TAGS)
    monkeypatch.setattr(chat_view, "THINKING_TITLE", "🤔 Reasoning")
    monkeypatch.setattr(chat_view, "ERROR_TITLE", "Problem")
    monkeypatch.setattr(chat_view.token_choices, "TITLE", "Tokens")
    shown = render(conversation.path())
    assert any((m.get("metadata") or {}).get("title") == "🤔 Reasoning" for m in shown)
    assert model_messages(conversation.path(), "", TAGS) == before
    assert model_messages(parse(shown).path(), "", TAGS) == before


def test_inline_think_tags_in_an_answer_are_stripped_too():
    conversation = parse([{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>x</think>\n\ny"}])
    assert model_messages(conversation.path(), "", TAGS)[-1] == {"role": "assistant", "content": "y"}


def test_turn_rendering():
    turn = AssistantTurn()
    turn.apply(Progress("Downloading"))
    assert render([Message.assistant(turn)])[0]["metadata"]["status"] == "pending" and not turn.produced_output
    for event in (ThinkingDelta("a"), ThinkingDelta("b"), TextDelta("x")):
        turn.apply(event)
    thinking, answer = render([Message.assistant(turn)])
    assert thinking["content"] == "ab" and thinking["metadata"]["status"] == "done"
    assert answer == {"role": "assistant", "content": "x"}
    turn.apply(Metrics(4, 1, 2, 0.25, 12.5, 0.1, 0.4))
    turn.apply(Done("length"))
    title = render([Message.assistant(turn)])[-1]["metadata"]["title"]
    assert "first token 0.25 s" in title and "12.5 tok/s" in title and "1 answer tokens" in title
    assert "2 thinking tokens" in title and "max new tokens" in title
    assert len(render([Message.assistant(turn)], footer=False)) == 2  # tabs that show the numbers apart


def test_error_keeps_partial_answer():
    turn = answered(TextDelta("partial"), Error("boom"))
    assert turn.error == "boom"
    assert [m["content"] for m in render([Message.assistant(turn)])] == ["partial", "boom"]
    assert [m["content"] for m in render([Message.assistant(turn)], footer=False)] == ["partial", "boom"]


def test_malformed_history_is_refused():
    with pytest.raises(ValueError, match="history must be"):
        parse([{"role": "robot", "content": "x"}])
    with pytest.raises(ValueError):
        parse(["just a string"])


def test_what_a_person_typed_is_shown_as_typed_and_sent_back_as_typed():
    from qwen_playground.mathtext import protect_typed

    shown = protect_typed("Is <b>this</b> $x^2$? It costs $5. `<i>code</i>`")
    assert "\\<b>" in shown and "\\(x^2\\)" in shown and "\\$5" in shown and "`<i>code</i>`" in shown
    history = [{"role": "user", "content": shown}, {"role": "assistant", "content": "It is \\(x^2\\), for \\$5."}]
    messages = model_messages(parse(history).path(), "", TAGS)
    assert messages == [{"role": "user", "content": "Is <b>this</b> \\(x^2\\)? It costs $5. `<i>code</i>`"},
                        {"role": "assistant", "content": "It is \\(x^2\\), for $5."}]
    assert render(parse(history).path())[0]["content"] == shown  # and shown again as it was


def test_siblings_branch_and_switch():
    conversation = Conversation()
    q1 = conversation.add(Message.user("one"))
    a1 = conversation.add(Message.assistant(AssistantTurn(answer="1")))
    conversation.add(Message.user("two"))
    edited = conversation.add(Message.user("one, said better"), parent="")  # an edit of the first message
    assert [m.text for m in conversation.path()] == ["one, said better"]
    assert conversation.siblings(edited.id) == (2, 2)
    conversation.switch(edited.id, -1)
    assert [m.text for m in conversation.path()] == ["one", "1", "two"]  # the old branch, intact
    conversation.switch(q1.id, -5)  # as far as there is one
    assert conversation.path()[0].id == q1.id
    conversation.remove(a1.id)
    assert [m.text for m in conversation.path()] == ["one"]


def test_a_tree_survives_its_round_trip_through_storage():
    turn = answered(ThinkingDelta("t"), TextDelta("A"), Metrics(5, 3, 2, 0.1, 10.0, 0.2, 0.5), Done("stop"))
    conversation = Conversation.of([Message.user("Q", ["/tmp/cat.png"]), Message.assistant(turn)])
    conversation.add(Message.assistant(AssistantTurn(answer="B")), conversation.path()[0].id)
    again = Conversation.from_dict(__import__("json").loads(__import__("json").dumps(conversation.to_dict())))
    assert again == conversation and again.path()[-1].text == "B"
    assert again.messages[turn_id(conversation, "A")].turn.metrics == turn.metrics
    with pytest.raises(ValueError, match="not a stored conversation"):
        Conversation.from_dict({"messages": [{"role": "user"}]})


def turn_id(conversation: Conversation, answer: str) -> str:
    return next(m.id for m in conversation.messages.values() if m.turn is not None and m.turn.answer == answer)


def test_the_page_keeps_its_tree_while_the_chatbot_shows_it():
    conversation = Conversation.of([Message.user("Q"), Message.assistant(AssistantTurn(answer="A"))])
    conversation.add(Message.assistant(AssistantTurn(answer="B")), conversation.path()[0].id)
    shown = render(conversation.path())
    assert conversation_for(shown, conversation) is conversation  # branches kept
    other = conversation_for([{"role": "user", "content": "Something else"}], conversation)  # an API caller's own history
    assert [m.text for m in other.path()] == ["Something else"]


def test_edit_regenerate_and_undo_refuse_what_they_cannot_do():
    from qwen_playground.tasks import TaskError, chat

    settings = chat.ChatSettings("demo-qwen3")
    conversation = Conversation.of([Message.user("Q"), Message.assistant(AssistantTurn(answer="A"))])
    question, answer = conversation.path()
    with pytest.raises(TaskError, match="needs some text"):
        chat.edit(conversation, question.id, "  ", settings)
    with pytest.raises(TaskError, match="Only your own messages"):
        chat.edit(conversation, answer.id, "new", settings)
    with pytest.raises(TaskError, match="Nothing to retry"):
        chat.regenerate(Conversation(), settings)
    with pytest.raises(TaskError, match="Nothing to undo"):
        chat.undo(Conversation())
    edited = chat.edit(conversation, question.id, "Q, again", settings)
    assert edited.after == question.parent and edited.message == "Q, again"  # a sibling of the first question
    kept, text, files = chat.undo(conversation)
    assert kept.path() == [] and text == "Q" and conversation.path() == [question, answer]  # the original untouched
