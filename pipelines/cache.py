"""The one object that owns loaded pipelines: LRU under a memory budget, one load per key, shared task views."""
from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import torch

log = logging.getLogger(__name__)


ATTACHED_PREFIX = "_playground_"  # a dict attribute of a component holding modules a loader attached to it


def attached_modules(component: Any) -> list[torch.nn.Module]:
    """Modules a loader hung on a component at run time (e.g. a face adapter's image encoder or ControlNet, kept in
    a `_playground_*` dict on the UNet), so the cache counts what a pipeline really holds."""
    found = []
    for name, value in vars(component).items():
        if name.startswith(ATTACHED_PREFIX) and isinstance(value, dict):
            found += [v for v in value.values() if isinstance(v, torch.nn.Module)]
    return found


def pipeline_bytes(pipe: Any) -> int:
    """Bytes held by the parameters and buffers of a pipeline's torch modules and the modules attached to them
    (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    components = getattr(pipe, "components", None) or {}
    modules = [c for c in components.values() if isinstance(c, torch.nn.Module)]
    for module in list(modules):
        modules += attached_modules(module)
    for component in modules:
        for tensor in list(component.parameters()) + list(component.buffers()):
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


@dataclass
class _Slot:
    pipe: Any
    size: int
    # task views made with from_pipe: they share every component with `pipe`, so they cost no budget.
    views: dict[str, Any] = field(default_factory=dict)


class PipelineCache:
    """Thread-safe LRU of loaded pipelines; `budget_bytes=None` means unlimited."""

    def __init__(self, budget_bytes: int | None = None, measure: Callable[[Any], int] = pipeline_bytes):
        self.budget_bytes = budget_bytes
        self._measure = measure
        self._slots: OrderedDict[Hashable, _Slot] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.loads = 0
        self.evictions = 0

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._slots

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._slots)

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(s.size for s in self._slots.values())

    def _hit(self, key: Hashable) -> _Slot | None:
        slot = self._slots.get(key)
        if slot is not None:
            self._slots.move_to_end(key)
        return slot

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """The pipeline for `key`, loading it once even when many threads ask at the same time."""
        with self._lock:
            slot = self._hit(key)
            if slot is not None:
                return slot.pipe
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                slot = self._hit(key)
                if slot is not None:
                    return slot.pipe
            pipe = load()
            size = self._measure(pipe)
            with self._lock:
                self.loads += 1
                self._slots[key] = _Slot(pipe, size)
                self._evict(keep=key)
            return pipe

    def view(self, key: Hashable, name: str, base: Any, make: Callable[[Any], Any]) -> Any:
        """A task view of a cached pipeline (e.g. img2img via from_pipe), made once per key."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None and slot.pipe is base and name in slot.views:
                return slot.views[name]
        view = make(base)
        with self._lock:
            slot = self._slots.get(key)
            if slot is None or slot.pipe is not base:
                return view  # evicted meanwhile: serve it uncached
            return slot.views.setdefault(name, view)

    def remeasure(self, key: Hashable) -> None:
        """Measure a cached pipeline again after something was loaded into it (a face adapter, LoRAs), evicting the
        least recently used others when it no longer fits the budget."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                return
        size = self._measure(slot.pipe)
        with self._lock:
            if self._slots.get(key) is slot and size != slot.size:
                slot.size = size
                self._evict(keep=key)

    def _evict(self, keep: Hashable) -> None:
        if self.budget_bytes is None:
            return
        evicted = False
        while sum(s.size for s in self._slots.values()) > self.budget_bytes:
            victim = next((k for k in self._slots if k != keep), None)
            if victim is None:
                break  # the newest pipeline alone exceeds the budget; keep it rather than thrash
            del self._slots[victim]
            self.evictions += 1
            evicted = True
            log.info("evicted %s from the pipeline cache", victim)
        if evicted:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def drop(self, key: Hashable) -> None:
        """Forget one pipeline (and its views) now, whatever the budget."""
        with self._lock:
            dropped = self._slots.pop(key, None)
        if dropped is not None:
            del dropped
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()
        gc.collect()
