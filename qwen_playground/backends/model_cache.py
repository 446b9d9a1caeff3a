"""Loaded models kept in memory under a byte budget, least recently used out first.

Knows sizes and recency, not transformers: `load` is any callable returning
an object and its size in bytes. A model being loaded is loaded once even
when several requests ask for it at the same moment.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)  # what names an entry (the local backend's CacheKey)
T = TypeVar("T")


class ModelTooLarge(MemoryError):
    pass


class ModelCache(Generic[K, T]):
    def __init__(self, budget_bytes: int, on_evict: Callable[[K, T], None] = lambda key, value: None):
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[K, tuple[T, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[K, threading.Lock] = {}
        self._on_evict = on_evict

    def get(self, key: K, estimate_bytes: int, load: Callable[[], tuple[T, int]]) -> T:
        """The cached object for `key`, loading it (after making room) if needed."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:  # one loader per key; the others wait and then hit the cache
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key][0]
                self._make_room(key, estimate_bytes)
            value, size = load()
            with self._lock:
                self._entries[key] = (value, size)
                self._make_room(key, 0)  # the estimate may have been low
            return value

    def _make_room(self, key: K, needed: int) -> None:
        if needed > self.budget_bytes:
            raise ModelTooLarge(
                f"'{key}' needs about {needed / 2**30:.1f} GiB but the memory budget is {self.budget_bytes / 2**30:.1f} GiB. "
                "Pick a smaller model or raise settings.memory_budget_gb."
            )
        evicted = False
        for victim in [k for k in self._entries if k != key]:  # oldest first
            if self.used_bytes + needed <= self.budget_bytes:
                break
            value, _ = self._entries.pop(victim)
            self._on_evict(victim, value)
            evicted = True
        if evicted:
            gc.collect()

    @property
    def used_bytes(self) -> int:
        return sum(size for _, size in self._entries.values())

    def keys(self) -> list[K]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    def values(self) -> dict[K, T]:
        """Cached values by key, without touching their order."""
        with self._lock:
            return {k: value for k, (value, _) in self._entries.items()}

    def sizes(self) -> dict[K, int]:
        with self._lock:
            return {k: size for k, (_, size) in self._entries.items()}
