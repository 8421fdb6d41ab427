"""Run slots per resource, so a slow provider never holds up a local generation and no visitor fills every slot.

Pools, each with its own limit (SlotLimits; settings in services/config.py):

    device:<name>   pipeline runs on one device (this process's GPU, or the CPU)            `local`, default 1
    model:<id>      runs of one local model (its loaded pipeline runs one request at once)  `model`, default 1
    remote          requests to hosted providers (I/O-bound, so a larger limit)             `remote`, default 8

A local stage takes a slot of its device and one of its model together (never one while waiting for the other: a
request for a busy model does not hold the device that another model could use); a provider stage takes a remote slot.
Slots are held per stage, so a run whose stages use different resources holds each only while it uses it.

A paid run is admitted before anything is reserved: a visitor who already has their share of runs of that kind
(local or remote) running or waiting is refused at once (nothing charged) with a message saying what to do, and so is
any run past its kind's queue (`local_queue` / `remote_queue`: the runs of that kind admitted at once, running or
waiting). The queues keep the kinds apart in front of the slots too: gradio lets an endpoint run as many calls at once
as both queues hold (services/config.py, event_concurrency), so local runs waiting for the one GPU can never fill an
endpoint and hold a provider request back behind them, nor the other way round. Once
reserved, each stage waits for its slots; Stop and the deadline end the wait (and the run is refunded). A thread that
already holds a slot takes none (a run inside a run waits for nothing). Limits and shares are per app instance.
"""
from __future__ import annotations

import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from pipelines.types import GenerationCancelled

from ..errors import UserError

KINDS = ("local", "remote")
QUEUE = 16  # the least default queue of each kind


class TooManyRuns(UserError):
    """The visitor already has their share of a pool's slots."""


class Busy(TooManyRuns):
    """The instance's queue for that kind of run is full (every visitor's runs together)."""


@dataclass(frozen=True)
class SlotLimits:
    local: int = 1  # pipeline runs at once per device
    remote: int = 8  # provider requests at once
    visitor_local: int = 1  # of those, one visitor's runs (running or waiting)
    visitor_remote: int = 2
    model: int = 1  # runs of one local model at once (within its device's)
    local_queue: int | None = None  # local runs admitted at once, running or waiting (default: QUEUE or 2 x local)
    remote_queue: int | None = None  # provider requests admitted at once, running or waiting (QUEUE or 2 x remote)

    def __post_init__(self) -> None:
        for kind in KINDS:
            if getattr(self, f"{kind}_queue") is None:
                object.__setattr__(self, f"{kind}_queue", max(QUEUE, 2 * self.total(kind)))
        for name in ("local", "remote", "visitor_local", "visitor_remote", "model", "local_queue", "remote_queue"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"run slots: {name} must be at least 1, not {getattr(self, name)}")
        for kind in KINDS:
            if self.queue(kind) < self.total(kind):
                raise ValueError(f"run slots: {kind}_queue ({self.queue(kind)}) must be at least the {kind} slots "
                                 f"({self.total(kind)}): it counts the runs that hold a slot too")

    def total(self, kind: str) -> int:
        return self.local if kind == "local" else self.remote

    def queue(self, kind: str) -> int:
        return self.local_queue if kind == "local" else self.remote_queue

    def share(self, kind: str) -> int:
        return self.visitor_local if kind == "local" else self.visitor_remote

    def of(self, pool: str) -> int:
        """The limit of a pool named as in the module docstring."""
        if pool == "remote":
            return self.remote
        if pool.startswith("model:"):
            return self.model
        return self.local


class Slots:
    def __init__(self, limits: SlotLimits | None = None):
        self.limits = limits or SlotLimits()
        self._lock = threading.Condition()
        self._busy: Counter[str] = Counter()  # pool -> slots held
        self._admitted: Counter[tuple[str, str]] = Counter()  # (account, kind) -> runs admitted (waiting or running)
        self._queued: Counter[str] = Counter()  # kind -> runs admitted, every visitor's
        self._held = threading.local()

    def busy(self, pool: str) -> int:
        """Slots held in a pool ("remote", "device:cpu", "model:sdxl-base"), or by every local run ("local")."""
        with self._lock:
            if pool == "local":
                return sum(n for name, n in self._busy.items() if name.startswith("device:"))
            return self._busy[pool]

    def queued(self, kind: str) -> int:
        """Runs of `kind` admitted now (running or waiting), every visitor's."""
        with self._lock:
            return self._queued[kind]

    @contextmanager
    def admitted(self, account_id: str, kind: str) -> Iterator["Ticket"]:
        """Admit one run of `account_id` to pool `kind`; TooManyRuns past the visitor's share and Busy past the kind's
        queue, both changing nothing."""
        assert kind in KINDS, kind
        if getattr(self._held, "pools", None):  # a run inside a stage's run: it uses the outer run's slots
            yield Ticket(self, kind)
            return
        share = self.limits.share(kind)
        with self._lock:
            if self._admitted[(account_id, kind)] >= share:
                plural = "s" if share > 1 else ""
                what = f"generation{plural} running on this machine" if kind == "local" else f"request{plural} running at a provider"
                raise TooManyRuns(f"You already have {share} {what}; wait for "
                                  f"{'it' if share == 1 else 'one'} to finish (or press Stop) before starting another. "
                                  "Nothing was charged.")
            queue = self.limits.queue(kind)
            if self._queued[kind] >= queue:
                what = "generations are running or waiting on this machine" if kind == "local" else \
                    "requests to providers are running or waiting here"
                raise Busy(f"Busy: {queue} {what}. Try again in a minute. Nothing was charged.")
            self._admitted[(account_id, kind)] += 1
            self._queued[kind] += 1
        try:
            yield Ticket(self, kind)
        finally:
            with self._lock:
                self._queued[kind] -= 1
                self._admitted[(account_id, kind)] -= 1
                if not self._admitted[(account_id, kind)]:
                    del self._admitted[(account_id, kind)]

    def _take(self, pools: tuple[str, ...], cancel: threading.Event | None) -> bool:
        """Wait until every pool has a free slot and take them together; False when this thread holds slots already."""
        if getattr(self._held, "pools", None):
            return False
        with self._lock:
            while any(self._busy[pool] >= self.limits.of(pool) for pool in pools):
                if cancel is not None and cancel.is_set():
                    raise GenerationCancelled("stopped while waiting for a free slot")
                self._lock.wait(0.1)
            for pool in pools:
                self._busy[pool] += 1
        self._held.pools = pools
        return True

    def _give(self, pools: tuple[str, ...]) -> None:
        self._held.pools = None
        with self._lock:
            for pool in pools:
                self._busy[pool] -= 1
            self._lock.notify_all()


@dataclass
class Ticket:
    slots: Slots
    kind: str

    @staticmethod
    def pools(remote: bool, model: str | None = None, device: str | None = None) -> tuple[str, ...]:
        if remote:
            return ("remote",)
        return (f"device:{device or 'local'}",) + ((f"model:{model}",) if model else ())

    @contextmanager
    def held(self, cancel: threading.Event | None = None, *, model: str | None = None, device: str | None = None,
             remote: bool | None = None) -> Iterator[None]:
        """The slots of one stage for the block: a remote slot, or a slot of `device` and one of `model` (waits for
        them; Stop or the deadline end the wait). `remote` defaults to the ticket's kind."""
        pools = self.pools(self.kind == "remote" if remote is None else remote, model, device)
        taken = self.slots._take(pools, cancel)
        try:
            yield
        finally:
            if taken:
                self.slots._give(pools)
