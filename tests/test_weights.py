from qwen_playground import weights
from qwen_playground.config import load_config


def test_download_progress_is_reported_as_a_line():
    lines = []
    bar = weights._progress_bar(lines.append, "Qwen/Qwen3-0.6B")(total=2_000_000_000, unit="B")
    bar.update(500_000_000)
    bar.close()
    assert lines == ["Downloading Qwen/Qwen3-0.6B: 0.50 / 2.00 GB (25%)"]


def test_availability_offline(tmp_path, random_model_dir):
    registry = load_config(demo=True).registry
    assert weights.available(registry.get("demo-qwen3"))
    assert not weights.available(registry.get("qwen3-8b"))  # not cached, and the Hub is offline in tests
    spec = registry.get("demo-qwen3").model_copy(update={"demo": None, "path": str(random_model_dir)})
    assert weights.available(spec)
    assert not weights.available(spec.model_copy(update={"path": str(tmp_path)}))
