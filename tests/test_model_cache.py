import threading
import time

import pytest

from qwen_playground.backends.model_cache import ModelCache, ModelTooLarge


def loader(name, size, calls):
    def load():
        calls.append(name)
        time.sleep(0.05)
        return f"model-{name}", size
    return load


def test_least_recently_used_is_evicted_to_fit_the_budget():
    calls, evicted = [], []
    cache = ModelCache(100, on_evict=lambda key, value: evicted.append(key))
    cache.get("a", 40, loader("a", 40, calls))
    cache.get("b", 40, loader("b", 40, calls))
    cache.get("a", 40, loader("a", 40, calls))  # reuse: a is now most recent
    cache.get("c", 40, loader("c", 40, calls))
    assert evicted == ["b"] and cache.keys() == ["a", "c"] and calls == ["a", "b", "c"]
    assert cache.used_bytes == 80


def test_a_model_larger_than_the_budget_is_refused_clearly():
    cache = ModelCache(2**30)
    with pytest.raises(ModelTooLarge, match="needs about 2.0 GiB but the memory budget is 1.0 GiB"):
        cache.get("big", 2 * 2**30, loader("big", 1, []))


def test_an_underestimated_model_still_evicts_after_loading():
    evicted = []
    cache = ModelCache(100, on_evict=lambda key, value: evicted.append(key))
    cache.get("a", 50, loader("a", 50, []))
    cache.get("b", 10, loader("b", 90, []))
    assert evicted == ["a"] and cache.keys() == ["b"]


def test_concurrent_requests_load_once():
    calls = []
    cache = ModelCache(100)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("a", 10, loader("a", 10, calls)))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["a"] and results == ["model-a"] * 4
