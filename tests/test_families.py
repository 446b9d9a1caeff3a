"""Families as data: a user's config file adds a Qwen generation, and its demo model runs through Chat."""

import pytest
import yaml

from qwen_playground.core.config import builtin_families, load_config
from qwen_playground.tasks.guide import kv_cache_bytes
from tests.conftest import running_app

SHAPE = {"vocab_size": 151936, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "max_position_embeddings": 4096, "tie_word_embeddings": False,
         "bos_token_id": 151643, "eos_token_id": 151645, "pad_token_id": 151643}
FAMILY = {
    "label": "Qwen-Tutor", "generation": "Tutor", "thinking": "switch", "suits": ["chat"], "kv_layer_interval": 4,
    "presets": {"thinking": {"temperature": 0.6, "top_p": 0.95}, "non_thinking": {"temperature": 0.7, "top_p": 0.8}},
    "demo": {"model_type": "qwen3", "config": {**SHAPE, "head_dim": 16},
             "reply": "<think>Tutors ponder first.\n</think>\n\nGreetings, student of the tutor family!<|im_end|>"},
}


@pytest.fixture(scope="module")
def tutor_config(tmp_path_factory, cache_dir):
    path = tmp_path_factory.mktemp("family") / "tutor.yaml"
    path.write_text(yaml.safe_dump({
        "families": {"tutor": FAMILY},
        "models": [{"id": "demo-tutor", "demo": True, "family": "tutor", "params_b": 0.01, "context_length": 4096,
                    "layers": 8, "kv_heads": 2, "head_dim": 16}],
        "routes": {"chat": {"default": "demo-tutor"}},
    }))
    return load_config(path, demo=True, cache_dir=cache_dir, engine="transformers")


def test_a_family_from_the_config_file_is_one_data_entry(tutor_config):
    spec = tutor_config.registry.get("demo-tutor")
    assert spec.family.label == "Qwen-Tutor" and spec.family.thinking == "switch" and spec.preset(True).temperature == 0.6
    assert "tutor" in tutor_config.registry.families and set(builtin_families()) <= set(tutor_config.registry.families)
    assert kv_cache_bytes(spec, 1000) == 2 * (8 // 4) * 2 * 16 * 2 * 1000  # only every 4th layer keeps a KV cache


def test_its_demo_model_runs_through_chat(tutor_config):
    with running_app(tutor_config) as client:
        history, _ = client.predict("Hello", [], "demo-tutor", "", True, 0.6, 0.95, 20, 0.0, 1.0, 0.0, 64, api_name="/chat")
        shown = [((m.get("metadata") or {}).get("title"), "".join(p["text"] for p in m["content"])) for m in history]
        assert shown[1] == ("💭 Thinking", "Tutors ponder first.")
        assert shown[2] == (None, "Greetings, student of the tutor family!")
        history, _ = client.predict("Again, briefly", history, "demo-tutor", "", False, 0.7, 0.8, 20, 0.0, 1.0, 0.0, 64, api_name="/chat")
        assert history[-2]["content"][0]["text"] == "Greetings, student of the tutor family!"  # thinking off: straight to the answer
        _, notes, _ = client.predict("Hi", [], "demo-tutor", "", True, api_name="/inspect")
        assert "go into **demo-tutor**" in notes and "Thinking on vs off" in notes  # a switchable family's diff
