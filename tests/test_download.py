from qwen_playground.backends import download
from qwen_playground.core import availability
from qwen_playground.core.config import load_config


def test_download_progress_is_reported_as_a_line():
    lines = []
    bar = download._progress_bar(lines.append, "Qwen/Qwen3-0.6B")(total=2_000_000_000, unit="B")
    bar.update(500_000_000)
    bar.close()
    assert lines == ["Downloading Qwen/Qwen3-0.6B: 0.50 / 2.00 GB (25%)"]


def test_availability_offline(tmp_path, random_model_dir):
    registry = load_config(demo=True).registry
    assert availability.available(registry.get("demo-qwen3"))
    assert not availability.available(registry.get("qwen3-8b"))  # not cached, and the Hub is offline in tests
    spec = registry.get("demo-qwen3").model_copy(update={"demo": None, "path": str(random_model_dir)})
    assert availability.available(spec)
    assert not availability.available(spec.model_copy(update={"path": str(tmp_path)}))
