"""Running app processes sharing one database, so reservations left by a dead one can be refunded.

Each process registers itself and refreshes a heartbeat; every live instance sweeps on each beat (jobs.recover), so
a reservation of one that died is refunded by another within `stale_after_s` plus one beat. An instance is dead when
it said it stopped, when its heartbeat is older than `stale_after_s`, or when it ran in this PID space (same host
name and same PID namespace: containers on one host with the host's name have their own) and its process is gone.

Times come from the database's clock on PostgreSQL, so instances on hosts whose clocks disagree still agree on
whose heartbeat is old (SQLite is one host's file: that host's clock).
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
from .tables import generations, instances

log = logging.getLogger(__name__)

FORGET_AFTER_S = 7 * 24 * 3600  # an instance dead this long, with no open reservation, leaves the registry


def _process_started(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def pid_space() -> str:
    """Where this process's pid means something: the host name and, on Linux, the PID namespace. Two containers that
    share the host's name (host networking) have separate PID namespaces: neither may judge the other by its pid.
    Stored in the registry's `hostname` column."""
    host = socket.gethostname()[:200]
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # e.g. "pid:[4026531836]"
    except OSError:
        return host
    return f"{host} {namespace}"[:255]


def check_heartbeat(heartbeat_s: float, stale_after_s: float) -> None:
    """Refuse a stale window a live instance could miss by one late beat (it would be taken for dead, its work refunded)."""
    if not heartbeat_s > 0 or stale_after_s <= 2 * heartbeat_s:
        raise ValueError(f"PLAYGROUND_INSTANCE_STALE_S ({stale_after_s:g} s) must be more than two heartbeats "
                         f"(PLAYGROUND_HEARTBEAT_S, {heartbeat_s:g} s, above 0), or live instances would be taken for dead ones")


class Instances:
    def __init__(self, db: Database, heartbeat_s: float = 30.0, stale_after_s: float = 180.0):
        check_heartbeat(heartbeat_s, stale_after_s)
        self.db = db
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.id = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.space = pid_space()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now(self, conn: sa.Connection) -> float:
        """Seconds since the epoch by the database's clock (PostgreSQL), else this host's."""
        if self.db.url.get_backend_name() == "postgresql":
            return float(conn.execute(sa.text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one())
        return time.time()

    def register(self) -> str:
        with self.db.begin() as conn:
            now = self.now(conn)
            conn.execute(
                instances.insert().values(
                    id=self.id,
                    hostname=self.space,
                    pid=os.getpid(),
                    process_started=_process_started(os.getpid()),
                    started_at=now,
                    heartbeat_at=now,
                )
            )
        return self.id

    def beat(self) -> None:
        with self.db.begin() as conn:
            found = conn.execute(sa.update(instances).where(instances.c.id == self.id).values(heartbeat_at=self.now(conn))).rowcount
        if not found:  # forgotten by another instance while this one could not beat: be known again
            log.warning("instance %s was missing from the registry; registering again", self.id)
            self.register()

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
            conn.execute(sa.update(instances).where(instances.c.id == self.id).values(stopped_at=self.now(conn)))

    def dead(self) -> set[str]:
        """Ids of instances whose open work can no longer finish."""
        with self.db.engine.connect() as conn:
            now = self.now(conn)
            rows = conn.execute(sa.select(instances).where(instances.c.id != self.id)).all()
        out = set()
        for row in rows:
            if row.stopped_at is not None or row.heartbeat_at < now - self.stale_after_s:
                out.add(row.id)
            elif row.hostname == self.space and abs(_process_started(row.pid) - row.process_started) > 1.0:
                out.add(row.id)  # same PID space, and that pid is gone (or now belongs to another process)
        return out

    def forget(self, older_than_s: float = FORGET_AFTER_S) -> int:
        """Drop instances dead for `older_than_s` that hold no open reservation (restarts would grow the registry
        forever); returns how many. One that comes back registers again at its next beat."""
        with self.db.begin() as conn:
            cutoff = self.now(conn) - older_than_s
            open_work = sa.select(generations.c.id).where(generations.c.instance_id == instances.c.id,
                                                         generations.c.status == "running")
            return conn.execute(
                sa.delete(instances).where(instances.c.id != self.id, sa.func.coalesce(instances.c.stopped_at, instances.c.heartbeat_at) < cutoff,
                                           ~open_work.exists())
            ).rowcount
