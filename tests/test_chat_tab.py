from qwen_playground.core.config import load_config
from qwen_playground.tasks.chat import SAMPLING_FIELDS, preset_values


def test_sliders_follow_the_model_and_thinking_mode():
    registry = load_config(demo=True).registry
    qwen3, qwen25 = registry.get("qwen3-4b"), registry.get("qwen2.5-7b-instruct")
    as_dict = lambda values: dict(zip(SAMPLING_FIELDS, values, strict=True))
    assert as_dict(preset_values(qwen3, True))["temperature"] == 0.6
    assert as_dict(preset_values(qwen3, True))["top_p"] == 0.95
    assert as_dict(preset_values(qwen3, False))["temperature"] == 0.7
    assert as_dict(preset_values(qwen3, False))["top_p"] == 0.8
    assert as_dict(preset_values(qwen25, True))["repetition_penalty"] == 1.05  # no thinking mode: same preset


def test_chat_export_writes_markdown_and_json_files():
    import json

    from qwen_playground.ui.chat_tab import export_files
    from qwen_playground.ui.chat_view import import_json

    history = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    md_path, json_path = export_files(history, None, "demo-qwen3", "", True)
    md, data = open(md_path, encoding="utf-8").read(), json.load(open(json_path, encoding="utf-8"))
    assert "- **model:** demo-qwen3" in md and data["messages"][1]["content"] == "A" and data["settings"]["thinking"] is True
    assert [m.text for m in import_json(open(json_path, encoding="utf-8").read()).path()] == ["Q", "A"]
    assert export_files([], None, "demo-qwen3", "", True) == [None, None]


def test_an_import_that_is_not_a_conversation_is_refused_with_what_to_pick():
    import pytest

    from qwen_playground.tasks import TaskError
    from qwen_playground.ui.chat_view import import_json

    for text in ("not json", '{"tree": {"messages": 3}}', '[{"role": "robot"}]', "42"):
        with pytest.raises(TaskError, match="Export JSON"):
            import_json(text)
