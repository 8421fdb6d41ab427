"""The pipeline cache: hits, LRU eviction under a budget, one load under concurrency."""
from __future__ import annotations

import threading
import time

from pipelines.cache import PipelineCache


class Thing:
    def __init__(self, size: int):
        self.size = size


def sized(thing: Thing) -> int:
    return thing.size


def test_second_get_returns_same_object():
    cache = PipelineCache(measure=sized)
    first = cache.get("a", lambda: Thing(1))
    assert cache.get("a", lambda: Thing(1)) is first
    assert cache.loads == 1


def test_small_budget_evicts_least_recently_used():
    cache = PipelineCache(budget_bytes=25, measure=sized)
    a = cache.get("a", lambda: Thing(10))
    cache.get("b", lambda: Thing(10))
    assert cache.get("a", lambda: Thing(10)) is a  # a is now the most recent
    cache.get("c", lambda: Thing(10))  # 30 > 25: evict b, the least recently used
    assert cache.keys() == ["a", "c"]
    assert cache.evictions == 1
    assert cache.used_bytes == 20
    cache.get("b", lambda: Thing(10))  # reload b: evicts a
    assert cache.keys() == ["c", "b"]
    assert cache.loads == 4


def test_one_oversize_pipeline_is_kept_alone():
    cache = PipelineCache(budget_bytes=5, measure=sized)
    cache.get("a", lambda: Thing(3))
    cache.get("big", lambda: Thing(50))
    assert cache.keys() == ["big"]


def test_four_threads_load_once():
    cache = PipelineCache(measure=sized)
    calls = []
    barrier = threading.Barrier(4)
    results = []

    def load():
        calls.append(1)
        time.sleep(0.2)
        return Thing(1)

    def worker():
        barrier.wait()
        results.append(cache.get("model", load))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 4 and all(r is results[0] for r in results)


def test_views_are_made_once_and_dropped_with_their_base():
    cache = PipelineCache(budget_bytes=15, measure=sized)
    base = cache.get("a", lambda: Thing(10))
    made = []

    def make(b):
        made.append(b)
        return ("view-of", b)

    v1 = cache.view("a", "img2img", base, make)
    assert cache.view("a", "img2img", base, make) is v1
    assert len(made) == 1
    cache.get("b", lambda: Thing(10))  # evicts a and its views
    assert "a" not in cache


def test_remeasure_counts_attached_modules_and_evicts_to_fit():
    import torch

    from pipelines.cache import PipelineCache, pipeline_bytes

    class Pipe:
        def __init__(self):
            self.unet = torch.nn.Linear(100, 100)  # 40,400 bytes in float32

        @property
        def components(self):
            return {"unet": self.unet}

    first, second = Pipe(), Pipe()
    size = pipeline_bytes(first)
    cache = PipelineCache(budget_bytes=3 * size)
    cache.get("a", lambda: first)
    cache.get("b", lambda: second)
    assert cache.used_bytes == 2 * size
    second.unet._playground_adapter = {"controlnet": torch.nn.Linear(100, 200), "note": "not a module"}
    cache.remeasure("b")  # b now holds 3 sizes: a (least recently used) must go
    assert pipeline_bytes(second) == size + 80_800 and cache.keys() == ["b"] and cache.evictions == 1
