"""Running app processes sharing one database, so reservations left by a dead one can be refunded.

Each process registers itself (host, pid, process start time) and refreshes a heartbeat. An instance is
dead when it said it stopped, when it ran on this host and its process is gone, or when its heartbeat is
older than `stale_after_s` (another host that died without a word).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

import psutil
import sqlalchemy as sa

from .db import Database
from .tables import instances

log = logging.getLogger(__name__)


def _process_started(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


class Instances:
    def __init__(self, db: Database, heartbeat_s: float = 30.0, stale_after_s: float = 180.0):
        self.db = db
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.id = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self) -> str:
        now = time.time()
        with self.db.begin() as conn:
            conn.execute(
                instances.insert().values(
                    id=self.id,
                    hostname=socket.gethostname()[:255],
                    pid=os.getpid(),
                    process_started=_process_started(os.getpid()),
                    started_at=now,
                    heartbeat_at=now,
                )
            )
        return self.id

    def beat(self) -> None:
        with self.db.begin() as conn:
            conn.execute(sa.update(instances).where(instances.c.id == self.id).values(heartbeat_at=time.time()))

    def start_heartbeat(self, on_beat=None) -> None:
        def loop() -> None:
            while not self._stop.wait(self.heartbeat_s):
                try:
                    self.beat()
                    if on_beat is not None:
                        on_beat()
                except Exception:  # the database may be briefly unavailable; try again next beat
                    log.exception("heartbeat failed")

        self._thread = threading.Thread(target=loop, name="instance-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.db.begin() as conn:
            conn.execute(sa.update(instances).where(instances.c.id == self.id).values(stopped_at=time.time()))

    def dead(self) -> set[str]:
        """Ids of instances whose open work can no longer finish."""
        now, host = time.time(), socket.gethostname()[:255]
        with self.db.engine.connect() as conn:
            rows = conn.execute(sa.select(instances).where(instances.c.id != self.id)).all()
        out = set()
        for row in rows:
            if row.stopped_at is not None or row.heartbeat_at < now - self.stale_after_s:
                out.add(row.id)
            elif row.hostname == host and abs(_process_started(row.pid) - row.process_started) > 1.0:
                out.add(row.id)  # same host, and that pid is gone (or now belongs to another process)
        return out
