from pathlib import Path

import pytest
import yaml

import qwen_playground
from qwen_playground.core.config import load_config
from qwen_playground.core.registry import Registry, RegistryError, Route


def write(tmp_path, data) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return str(path)


def local_model(path, **extra):
    return {"id": "mine", "path": str(path), "family": "qwen2.5", "params_b": 0.5, "context_length": 4096,
            "presets": {"non_thinking": {"temperature": 0.7}}, **extra}


def test_builtin_registry_has_the_qwen_variants_with_facts():
    registry = load_config(demo=True).registry
    expected = {
        "Qwen/Qwen3-0.6B", "Qwen/Qwen3-1.7B", "Qwen/Qwen3-4B", "Qwen/Qwen3-8B",
        "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-7B-Instruct",
        "Qwen/Qwen2.5-Coder-0.5B-Instruct", "Qwen/Qwen2.5-Coder-1.5B-Instruct", "Qwen/Qwen2.5-Coder-7B-Instruct",
        "Qwen/Qwen2.5-Math-1.5B-Instruct", "Qwen/Qwen2.5-Math-7B-Instruct",
        "Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct",
    }
    assert expected <= {m.hub_id for m in registry.models.values()}
    qwen3 = registry.get("qwen3-8b")
    assert qwen3.family.thinking == "switch" and qwen3.preset(True).temperature == 0.6 and qwen3.preset(True).top_p == 0.95
    assert qwen3.preset(False).temperature == 0.7 and qwen3.preset(False).top_p == 0.8
    assert registry.get("qwen2.5-vl-7b-instruct").modalities == ("text", "image", "video")
    assert not registry.get("qwen2.5-7b-instruct").thinking
    assert registry.get("qwen2.5-7b-instruct").preset(True) == registry.get("qwen2.5-7b-instruct").preset(False)


def test_every_tab_has_a_route():
    registry = load_config(demo=True).registry
    for tab in ("chat", "code", "math", "multilingual", "vision"):
        assert registry.choices(tab), tab


def test_unknown_field_names_the_entry_and_suggests(tmp_path):
    bad = local_model(tmp_path, contxt_length=5)
    with pytest.raises(RegistryError, match=r"model #1 \(mine\): unknown field 'contxt_length'.*Did you mean 'context_length'"):
        load_config(write(tmp_path, {"models": [bad]}))


def test_unknown_sampling_field_suggests(tmp_path):
    bad = local_model(tmp_path)
    bad["presets"]["non_thinking"]["temprature"] = 0.3
    with pytest.raises(RegistryError, match="Did you mean 'temperature'"):
        load_config(write(tmp_path, {"models": [bad]}))


def test_duplicate_id_is_refused(tmp_path):
    with pytest.raises(RegistryError, match="duplicate model id 'mine'"):
        load_config(write(tmp_path, {"models": [local_model(tmp_path), local_model(tmp_path)]}))
    with pytest.raises(RegistryError, match="duplicate model id 'qwen3-4b'"):
        load_config(write(tmp_path, {"models": [local_model(tmp_path, id="qwen3-4b")]}))


def test_route_to_unknown_model_names_the_closest(tmp_path):
    with pytest.raises(RegistryError, match="route 'chat' names unknown model 'qwen3-17b'.*Did you mean 'qwen3-1.7b'"):
        load_config(write(tmp_path, {"routes": {"chat": {"default": "qwen3-17b"}}}))


def test_unknown_tab_and_unknown_key(tmp_path):
    with pytest.raises(RegistryError, match="unknown tab 'chatt'.*Did you mean 'chat'"):
        load_config(write(tmp_path, {"routes": {"chatt": {"default": "qwen3-4b"}}}))
    with pytest.raises(RegistryError, match="unknown key 'model'.*Did you mean 'models'"):
        load_config(write(tmp_path, {"model": []}))
    with pytest.raises(RegistryError, match="settings.max_input_token.*Did you mean 'max_input_tokens'"):
        load_config(write(tmp_path, {"settings": {"max_input_token": 5}}))


def test_a_users_strongest_order_is_checked_and_replaces_the_tasks(tmp_path):
    with pytest.raises(RegistryError, match="strongest 'chat' names unknown model 'qwen3-17b'.*Did you mean 'qwen3-1.7b'"):
        load_config(write(tmp_path, {"strongest": {"chat": ["qwen3-17b"]}}))
    with pytest.raises(RegistryError, match="unknown task 'chatt' in strongest.*Did you mean 'chat'"):
        load_config(write(tmp_path, {"strongest": {"chatt": ["qwen3-4b"]}}))
    with pytest.raises(RegistryError, match="'strongest' must map a task to a list of model ids"):
        load_config(write(tmp_path, {"strongest": {"chat": "qwen3-4b"}}))
    mine = load_config(write(tmp_path, {"strongest": {"chat": ["qwen3-4b", "qwen3-1.7b"]}})).registry.strongest
    assert mine["chat"] == ("qwen3-4b", "qwen3-1.7b") and mine["code"][0] == "qwen3.8-27b"  # the others stay built in


def test_an_active_share_above_the_whole_is_refused(tmp_path):
    with pytest.raises(RegistryError, match="active_params_b.*is more than params_b"):
        load_config(write(tmp_path, {"models": [local_model(tmp_path, active_params_b=9.0)]}))


def test_bad_values_and_files(tmp_path):
    with pytest.raises(RegistryError, match="exactly one of hub_id"):
        load_config(write(tmp_path, {"models": [local_model(tmp_path, hub_id="Qwen/X")]}))
    with pytest.raises(RegistryError, match="'thinking' is a family trait"):
        load_config(write(tmp_path, {"models": [local_model(tmp_path, thinking=True)]}))
    thinker = {"families": {"thinker": {"extends": "qwen2.5", "thinking": "switch"}}, "models": [local_model(tmp_path, family="thinker")]}
    with pytest.raises(RegistryError, match="the model needs presets.thinking"):
        load_config(write(tmp_path, thinker))
    with pytest.raises(RegistryError, match="unknown family 'qwen4'"):
        load_config(write(tmp_path, {"models": [local_model(tmp_path, family="qwen4")]}))
    with pytest.raises(RegistryError, match="extends unknown family 'qwen9'"):
        load_config(write(tmp_path, {"families": {"x": {"extends": "qwen9"}}}))
    with pytest.raises(RegistryError, match="family 'x'.*thinking"):
        load_config(write(tmp_path, {"families": {"x": {"label": "X", "thinking": "sometimes"}}}))
    with pytest.raises(RegistryError, match="context_length"):
        load_config(write(tmp_path, {"models": [local_model(tmp_path, context_length="long")]}))
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_config(write(tmp_path, "models: [unclosed"))
    with pytest.raises(RegistryError, match="Config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_user_adds_a_local_model_and_routes_to_it(config_file, random_model_dir):
    config = load_config(config_file)
    assert not config.demo  # the chat route's model can load: no demo needed
    assert config.registry.choices("chat")[0].path == str(random_model_dir)
    assert config.registry.get("qwen3-4b").hub_id == "Qwen/Qwen3-4B"  # built-ins stay


def test_demo_mode_when_no_weights_can_be_had(tmp_path):
    config = load_config()  # tests run offline with an empty Hub cache
    assert config.demo and "offline" in config.demo_reason
    assert config.registry.choices("chat")[0].id == "demo-qwen3.5"
    forced = load_config(demo=True)
    assert forced.demo and forced.demo_reason == "started with --demo"


def test_a_route_puts_its_cpu_default_first_on_a_cpu_or_where_the_default_does_not_fit():
    route = Route(default="big", alternatives=("mid",), cpu_default="small")
    assert route.for_machine(on_cpu=True, fits=lambda m: True).choices == ["small", "big", "mid"]
    assert route.for_machine(on_cpu=False, fits=lambda m: False).default == "small"
    assert route.for_machine(on_cpu=False, fits=lambda m: True) == route
    assert Route(default="only").for_machine(on_cpu=True, fits=lambda m: False).default == "only"


def test_on_a_gpu_a_route_starts_with_the_strongest_model_whose_weights_fit():
    """The built-in chat route: 16-bit weights within 60% of the GPU's memory (an H200's 141 GB holds a 27B's 55.6 GB;
    an H100's 80 GB does not, nor the 35B-A3B's 72 GB, so the 9B; 24 GB: the 4B; a CPU: its own default)."""
    registry = load_config().registry
    builtin = yaml.safe_load((Path(qwen_playground.__file__).parent / "core" / "models.yaml").read_text())
    route = Route.model_validate(builtin["routes"]["chat"])  # as shipped (offline, the demo routes stand in front of it)
    strongest = registry.strongest["chat"]  # kept through demo mode: the guide ranks by it
    assert strongest[:4] == ("qwen3.8-27b", "qwen3.6-27b", "qwen3.5-27b", "qwen3.6-35b-a3b")
    for gb, expected in ((141, "qwen3.8-27b"), (80, "qwen3.5-9b"), (24, "qwen3.5-4b"), (2, "qwen3.5-0.8b")):
        fits = lambda m: registry.get(m).params_b * 2e9 <= 0.6 * gb * 1e9  # noqa: E731
        chosen = route.for_machine(on_cpu=False, fits=fits, strongest=strongest)
        assert chosen.default == expected and set(chosen.choices) == set(route.choices)  # reordered, nothing lost
    assert route.for_machine(on_cpu=True, fits=lambda m: True, strongest=strongest).default == "qwen3.5-0.8b"
    with pytest.raises(RegistryError, match="strongest 'chat' names unknown model 'qwen9'"):
        Registry.build(list(registry.models.values()), {}, endpoints=list(registry.endpoints.values()), strongest={"chat": ("qwen9",)})


def test_the_machine_default_through_a_config_file(tmp_path, random_model_dir, cache_dir):
    model = {"path": str(random_model_dir), "family": "qwen2.5", "params_b": 0.02, "context_length": 4096}
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump({"models": [{"id": "gpu-pick", **model}, {"id": "cpu-pick", **model}],
                                    "routes": {"chat": {"default": "gpu-pick", "cpu_default": "cpu-pick"}}}))
    config = load_config(path, device="cpu", cache_dir=cache_dir)
    assert not config.demo and [s.id for s in config.registry.choices("chat")] == ["cpu-pick", "gpu-pick"]
    with pytest.raises(RegistryError, match="unknown model 'cpu-pik'"):
        path.write_text(yaml.safe_dump({"models": [{"id": "cpu-pick", **model}], "routes": {"chat": {"default": "cpu-pick", "cpu_default": "cpu-pik"}}}))
        load_config(path, device="cpu", cache_dir=cache_dir)


def test_a_model_named_by_anything_but_text_is_refused_clearly():
    registry = load_config(None).registry
    for odd in ({"x": 1}, ["qwen3-0.6b"], 7, None):
        with pytest.raises(RegistryError, match=f"named by text, not {type(odd).__name__}: choose one of qwen"):
            registry.get(odd)
