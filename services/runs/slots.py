"""Run slots per resource, so a slow provider never holds up a local generation and no visitor fills every slot.

Two pools: `local` (pipelines on this machine's device) and `remote` (requests to hosted providers, I/O-bound, so a
larger limit). A paid run is admitted to its pool before anything is reserved: a visitor who already has their share
of that pool running or waiting is refused at once (nothing charged) with a message saying what to do. Once
reserved, the run waits for a free slot of its pool; Stop and the deadline end the wait (and the run is refunded).
A thread that already holds a slot does not take a second one (a run inside a run waits for nothing).
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


class TooManyRuns(UserError):
    """The visitor already has their share of a pool's slots."""


@dataclass(frozen=True)
class SlotLimits:
    local: int = 1  # pipeline runs at once on this machine (one device)
    remote: int = 8  # provider requests at once
    visitor_local: int = 1  # of those, one visitor's (running or waiting)
    visitor_remote: int = 2

    def __post_init__(self) -> None:
        for name in ("local", "remote", "visitor_local", "visitor_remote"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"run slots: {name} must be at least 1, not {getattr(self, name)}")

    def total(self, kind: str) -> int:
        return self.local if kind == "local" else self.remote

    def share(self, kind: str) -> int:
        return self.visitor_local if kind == "local" else self.visitor_remote


class Slots:
    def __init__(self, limits: SlotLimits | None = None):
        self.limits = limits or SlotLimits()
        self._lock = threading.Condition()
        self._busy: Counter[str] = Counter()  # kind -> slots held
        self._admitted: Counter[tuple[str, str]] = Counter()  # (account, kind) -> runs admitted (waiting or running)
        self._held = threading.local()

    def busy(self, kind: str) -> int:
        with self._lock:
            return self._busy[kind]

    @contextmanager
    def admitted(self, account_id: str, kind: str) -> Iterator["Ticket"]:
        """Admit one run of `account_id` to pool `kind` (TooManyRuns, changing nothing, past the visitor's share)."""
        assert kind in KINDS, kind
        if getattr(self._held, "kind", None) is not None:  # a run inside a run: it uses the outer run's slot
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
            self._admitted[(account_id, kind)] += 1
        try:
            yield Ticket(self, kind)
        finally:
            with self._lock:
                self._admitted[(account_id, kind)] -= 1
                if not self._admitted[(account_id, kind)]:
                    del self._admitted[(account_id, kind)]

    def _take(self, kind: str, cancel: threading.Event | None) -> bool:
        """Wait for a slot of `kind`; False when this thread holds one already (nothing taken)."""
        if getattr(self._held, "kind", None) is not None:
            return False
        with self._lock:
            while self._busy[kind] >= self.limits.total(kind):
                if cancel is not None and cancel.is_set():
                    raise GenerationCancelled("stopped while waiting for a free slot")
                self._lock.wait(0.1)
            self._busy[kind] += 1
        self._held.kind = kind
        return True

    def _give(self, kind: str) -> None:
        self._held.kind = None
        with self._lock:
            self._busy[kind] -= 1
            self._lock.notify_all()


@dataclass
class Ticket:
    slots: Slots
    kind: str

    @contextmanager
    def held(self, cancel: threading.Event | None = None) -> Iterator[None]:
        """A slot of the ticket's pool for the block (waits for one; Stop or the deadline end the wait)."""
        taken = self.slots._take(self.kind, cancel)
        try:
            yield
        finally:
            if taken:
                self.slots._give(self.kind)
