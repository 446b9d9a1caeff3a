"""Chat's saved conversations: the list the browser keeps, turned into the next one."""

import pytest

from qwen_playground.tasks import TaskError, conversations

HI = [{"role": "user", "content": "Hi there, what is a capybara exactly and where does it live in the wild?"},
      {"role": "assistant", "content": "A rodent."}]


def test_saving_adds_then_updates_one_conversation_newest_first():
    saved, first = conversations.save([], None, HI)
    assert saved[0]["title"] == "Hi there, what is a capybara exactly and where …" and len(saved[0]["title"]) == conversations.TITLE_LENGTH
    saved, again = conversations.save(saved, first, [*HI, {"role": "user", "content": "More"}])
    assert again == first and len(saved) == 1 and len(saved[0]["messages"]) == 3
    saved, second = conversations.save(saved, None, [{"role": "user", "content": "Other"}])
    assert second != first and [c for _, c in conversations.choices(saved)] == [second, first]
    assert conversations.save(saved, None, []) == (saved, None)  # an empty chat is not saved


def test_rename_and_delete_refuse_without_an_open_conversation():
    saved, current = conversations.save([], None, HI)
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
        saved, _ = conversations.save(saved, None, [{"role": "user", "content": f"question {i}"}])
    assert len(saved) == conversations.MAX_SAVED and saved[0]["title"] == f"question {conversations.MAX_SAVED + 4}"
