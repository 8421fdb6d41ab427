"""Stop across app instances: the Stop button reaches a request that another instance runs.

Behind a load balancer without sticky sessions (an API or MCP client), a visitor's Stop may land on an instance that
is not running their request. Stop then sets `stop_requested` on the visitor's running generation records of other
instances (one UPDATE); each instance, while it runs requests, reads that flag for its own running ids every
`poll_s` (one query by primary key, none while idle) and sets their cancel flags, so the request ends at its next
step and is refunded like any stopped request.

It also remembers when each visitor last pressed Stop here (`asked_since`), so work that waits for the visitor's run
slot before it is charged (a project's versions) can end instead of starting after the Stop.
"""
from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa

from .db import Database
from .tables import generations

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often an instance with running requests looks for Stops sent to another instance


class RemoteStops:
    def __init__(self, db: Database, instance_id: str, poll_s: float = POLL_S):
        self.db = db
        self.instance_id = instance_id
        self.poll_s = poll_s
        self._flags: dict[str, threading.Event] = {}  # request id -> its cancel flag, for requests running here
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._asked: dict[str, float] = {}  # account id -> when it last pressed Stop on this instance (monotonic)

    def note(self, account_id: str) -> None:
        """The account pressed Stop here now (before its running requests are stopped, so that work waiting for the
        slot they free sees the Stop first)."""
        with self._lock:
            self._asked[account_id] = time.monotonic()
            if len(self._asked) > 100_000:  # bounded memory: forget the oldest half
                for old in sorted(self._asked, key=self._asked.__getitem__)[:50_000]:
                    del self._asked[old]

    def ask(self, account_id: str) -> int:
        """Ask the other instances to stop the account's requests they run; how many were running there."""
        with self.db.begin() as conn:
            return conn.execute(
                sa.update(generations)
                .where(generations.c.account_id == account_id, generations.c.status == "running",
                       generations.c.instance_id != self.instance_id, generations.c.stop_requested == sa.false())
                .values(stop_requested=True)
            ).rowcount or 0

    def asked_since(self, account_id: str, since: float) -> bool:
        """Whether the account pressed Stop on this instance after `since` (a time.monotonic() reading)."""
        with self._lock:
            return self._asked.get(account_id, float("-inf")) > since

    def track(self, request_id: str, flag: threading.Event) -> None:
        """Watch a request that runs here until `untrack`; a watcher thread runs while anything is tracked."""
        with self._lock:
            self._flags[request_id] = flag
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="remote-stops", daemon=True)
                self._watcher.start()

    def untrack(self, request_id: str) -> None:
        with self._lock:
            self._flags.pop(request_id, None)

    def _watch(self) -> None:
        while True:
            with self._lock:
                if not self._flags:
                    self._watcher = None  # the next track() starts a new one
                    return
                ids = list(self._flags)
            try:
                with self.db.engine.connect() as conn:
                    stopped = conn.execute(sa.select(generations.c.id).where(
                        generations.c.id.in_(ids), generations.c.stop_requested == sa.true())).scalars().all()
            except sa.exc.SQLAlchemyError:  # the database is away for a moment: look again at the next poll
                log.warning("could not read Stops sent to other instances", exc_info=True)
                stopped = []
            with self._lock:
                flags = [self._flags[i] for i in stopped if i in self._flags]
            for flag in flags:
                flag.set()
            time.sleep(self.poll_s)
