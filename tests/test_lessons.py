import pytest

from qwen_playground.core.config import load_config
from qwen_playground.lessons import FieldSpec, Lesson, from_json, from_link, load_lessons, resolve, to_json, to_link
from qwen_playground.tasks.compare import comparable_models


@pytest.fixture(scope="module")
def demo_fields():
    """Lesson fields shaped like the demo app's (defaults and choices)."""
    registry = load_config(demo=True).registry
    compare_models = [m.id for m in comparable_models(registry)]
    fields = {"compare": {"prompt": FieldSpec(""), "panes": FieldSpec("2", ["2", "3", "4"]), "template": FieldSpec("Chat", ["Chat", "Math"])}}
    for i in range(1, 5):
        fields["compare"] |= {f"model_{i}": FieldSpec(compare_models[0], compare_models), f"thinking_{i}": FieldSpec(False)}
    fields["math"] = {"problem": FieldSpec(""), "expected": FieldSpec(""), "model": FieldSpec("demo-qwen2.5", ["demo-qwen2.5", "demo-qwen3"])}
    fields["multilingual"] = {"prompt": FieldSpec(""), "languages": FieldSpec(["English"], ["English", "Chinese", "Hindi", "Arabic", "Japanese"]),
                              "model": FieldSpec("demo-qwen2.5", ["demo-qwen2.5"])}
    return fields


def test_five_lessons_ship_and_parse():
    lessons = load_lessons()
    assert len(lessons) >= 5
    assert {"compare", "multilingual", "math", "vision"} <= {lesson.tab for lesson in lessons.values()}


def test_link_and_file_round_trip():
    lesson = Lesson(title="Week 1 ✓ 日本語", tab="chat", values={"message": "{{ 7*7 }} & ?lesson=x", "thinking": True, "temperature": 0.6})
    link = to_link(lesson, "http://127.0.0.1:7860/?old=1")
    assert link.startswith("http://127.0.0.1:7860/?lesson=") and "old" not in link
    assert from_link(link.split("lesson=")[1]) == lesson
    assert from_json(to_json(lesson)) == lesson


def test_damaged_lessons_say_so():
    with pytest.raises(ValueError, match="damaged"):
        from_link("%%%")
    with pytest.raises(ValueError, match="not JSON"):
        from_json("{nope")
    with pytest.raises(ValueError, match="not a lesson: tab"):
        from_json('{"title": "x"}')


def test_a_lesson_naming_a_missing_model_opens_anyway_and_says_so(demo_fields):
    tab, values, notes = resolve(load_lessons()["math-answer-check"], demo_fields)
    assert tab == "math" and values["expected"] == "3/28" and values["model"] == "demo-qwen2.5"
    assert "qwen2.5-math-1.5b-instruct" in notes[0] and "does not have" in notes[0]


def test_missing_languages_are_left_out_with_a_note(demo_fields):
    tab, values, notes = resolve(load_lessons()["tokenizer-cost"], demo_fields)
    assert values["languages"] == ["English", "Chinese", "Hindi", "Arabic", "Japanese"] and "Russian" in notes[0]


def test_a_lesson_for_a_missing_tab_changes_nothing_and_explains(demo_fields):
    lesson = Lesson(title="Listening", tab="audio", values={"clip": "x.wav"})
    tab, values, notes = resolve(lesson, demo_fields)
    assert tab is None and values == {} and "audio" in notes[0] and "does not have yet" in notes[0]


def test_a_missing_model_is_replaced_by_the_most_alike_one_offered():
    """Demo mode: the thinking lesson's Qwen3 becomes the demo Qwen3 in both panes, not a model without thinking."""
    import functools

    from qwen_playground.lessons import closest_model

    registry = load_config(demo=True).registry
    offered = ["demo-qwen2.5", "demo-qwen3"]
    like = functools.partial(closest_model, registry)
    fields = {"compare": {f"model_{i}": FieldSpec("demo-qwen2.5", offered, like) for i in (1, 2)} | {
        "prompt": FieldSpec(""), "panes": FieldSpec("2", ["2", "3", "4"]), "template": FieldSpec("Chat", ["Chat"]),
        "thinking_1": FieldSpec(False), "thinking_2": FieldSpec(False)}}
    _, values, notes = resolve(load_lessons()["thinking-on-vs-off"], fields)
    assert values["model_1"] == values["model_2"] == "demo-qwen3" and "**demo-qwen3** stands in" in notes[0]
    assert closest_model(registry, "qwen2.5-coder-7b-instruct", offered) == "demo-qwen2.5"  # no coder here: alike in thinking
    assert closest_model(registry, "not-a-model", offered) is None
