from qwen_playground.config import load_config
from qwen_playground.ui.chat_tab import SAMPLING_FIELDS, preset_values


def test_sliders_follow_the_model_and_thinking_mode():
    registry = load_config(demo=True).registry
    qwen3, qwen25 = registry.get("qwen3-4b"), registry.get("qwen2.5-7b-instruct")
    as_dict = lambda values: dict(zip(SAMPLING_FIELDS, values))
    assert as_dict(preset_values(qwen3, True))["temperature"] == 0.6
    assert as_dict(preset_values(qwen3, True))["top_p"] == 0.95
    assert as_dict(preset_values(qwen3, False))["temperature"] == 0.7
    assert as_dict(preset_values(qwen3, False))["top_p"] == 0.8
    assert as_dict(preset_values(qwen25, True))["repetition_penalty"] == 1.05  # no thinking mode: same preset
