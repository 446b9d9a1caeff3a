"""Chat's saved conversations: the list the browser keeps, turned into the next one."""

import pytest

from qwen_playground.tasks import TaskError, conversations
from qwen_playground.tasks.conversation import AssistantTurn, Conversation, Message

HI = [Message.user("Hi there, what is a capybara exactly and where does it live in the wild?"),
      Message.assistant(AssistantTurn(answer="A rodent."))]


def chat_of(*messages) -> Conversation:
    return Conversation.of([Message.user(m) if isinstance(m, str) else m for m in messages])


def test_saving_adds_then_updates_one_conversation_newest_first():
    saved, first = conversations.save([], None, chat_of(*HI))
    assert saved[0]["title"] == "Hi there, what is a capybara exactly and where …" and len(saved[0]["title"]) == conversations.TITLE_LENGTH
    saved, again = conversations.save(saved, first, chat_of(*HI, "More"))
    assert again == first and len(saved) == 1 and len(conversations.tree_of(saved[0]).path()) == 3
    saved, second = conversations.save(saved, None, chat_of("Other"))
    assert second != first and [c for _, c in conversations.choices(saved)] == [second, first]
    assert conversations.save(saved, None, Conversation()) == (saved, None)  # an empty chat is not saved


def test_rename_and_delete_refuse_without_an_open_conversation():
    saved, current = conversations.save([], None, chat_of(*HI))
    assert conversations.rename(saved, current, "  Rodents  ")[0]["title"] == "Rodents"
    with pytest.raises(TaskError, match="Type a title first"):
        conversations.rename(saved, current, " ")
    with pytest.raises(TaskError, match="Nothing to rename yet"):
        conversations.rename(saved, None, "x")
    assert conversations.delete(saved, current) == []
    with pytest.raises(TaskError, match="Nothing to delete"):
        conversations.delete(saved, "gone")


def test_whatever_the_browser_holds_is_read_safely_and_the_list_stays_small():
    assert conversations.choices("not a list") == [] and conversations.choices([{"id": 3}, None, {"id": "a", "messages": []}]) == [("Untitled", "a")]
    saved = []
    for i in range(conversations.MAX_SAVED + 5):
        saved, _ = conversations.save(saved, None, chat_of(f"question {i}"))
    assert len(saved) == conversations.MAX_SAVED and saved[0]["title"] == f"question {conversations.MAX_SAVED + 4}"


def test_every_branch_is_kept_and_a_chat_saved_before_trees_still_opens():
    conversation = chat_of(*HI)
    conversation.add(Message.assistant(AssistantTurn(answer="A large rodent.")), conversation.path()[0].id)  # regenerated
    saved, current = conversations.save([], None, conversation)
    again = conversations.tree_of(conversations.find(saved, current))
    assert again == conversation and len(again.children(again.path()[0].id)) == 2
    old = [{"id": "x", "title": "Old", "messages": [{"role": "user", "content": "Hi"}], "updated": 0}]
    assert conversations.choices(old) == [("Old", "x")] and conversations.tree_of(old[0]) is None  # the tab reads it as one branch
