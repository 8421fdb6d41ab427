"""The SQL database: one engine, transactions that serialise writers, and migrations at start-up.

SQLite (the default, a file in the data dir) runs in WAL mode with a busy timeout, and every transaction
starts with BEGIN IMMEDIATE so two writers queue instead of failing on a lock upgrade. Any other
SQLAlchemy URL (PostgreSQL) works unchanged: balance changes are single conditional UPDATEs, which are
atomic under READ COMMITTED.
"""
from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from . import tables
from .migrations import MIGRATIONS, Migration

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
_PG_MIGRATION_LOCK = 724_310_001


INT64 = 2**63


def json_safe(value, path: str = ""):
    """(value, problems): a copy every JSON encoder accepts (non-finite floats and integers beyond 64 bits become
    None; other non-JSON types become their string), with where each change was made. Records store only this."""
    problems: list[str] = []

    def clean(v, where):
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, int):
            if -INT64 <= v < INT64:
                return v
            problems.append(where or "(value)")
            return None
        if isinstance(v, float):
            if math.isfinite(v):
                return v
            problems.append(where or "(value)")
            return None
        if isinstance(v, dict):
            return {str(k): clean(x, f"{where}.{k}" if where else str(k)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x, f"{where}[{i}]") for i, x in enumerate(v)]
        return str(v)

    return clean(value, path), problems


def row_dict(row) -> dict:
    """A result row as a plain dict (SQLAlchemy's keys are str subclasses that orjson refuses)."""
    return {str(key): value for key, value in row._mapping.items()}


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


class Database:
    def __init__(self, url: str, *, pool_size: int = 8):
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            database = self.url.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = sa.create_engine(
                self.url,
                connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
                pool_size=pool_size,
                max_overflow=pool_size * 2,
                pool_timeout=120,
            )
            sa.event.listen(self.engine, "connect", _sqlite_on_connect)
            sa.event.listen(self.engine, "begin", _sqlite_on_begin)
        else:
            self.engine = sa.create_engine(self.url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)

    @property
    def display_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    def insert_ignore(self, conn: sa.Connection, table: sa.Table, values: dict) -> int:
        """INSERT that does nothing when the primary/unique key exists; returns rows inserted."""
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert
        elif self.url.get_backend_name() == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:  # pragma: no cover - other backends: check then insert inside the caller's transaction
            keys = {c.name: values[c.name] for c in table.primary_key.columns}
            exists = conn.execute(sa.select(sa.literal(1)).select_from(table).filter_by(**keys)).first()
            return 0 if exists else conn.execute(table.insert().values(**values)).rowcount
        # rowcount is not reliable for INSERT on every driver (psycopg reports -1): ask for the key back.
        key = list(table.primary_key.columns)[0]
        return int(conn.execute(insert(table).values(**values).on_conflict_do_nothing().returning(key)).first() is not None)

    def migrate(self, migrations: list[Migration] = MIGRATIONS) -> list[int]:
        """Apply the migrations this database lacks, in order, in one transaction; returns their versions."""
        applied: list[int] = []
        with self.begin() as conn:
            if self.url.get_backend_name() == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            tables.schema_migrations.create(conn, checkfirst=True)
            done = set(conn.execute(sa.select(tables.schema_migrations.c.version)).scalars())
            for version, name, apply in migrations:
                if version in done:
                    continue
                log.info("applying migration %03d %s", version, name)
                apply(conn)
                conn.execute(tables.schema_migrations.insert().values(version=version, name=name, applied_at=time.time()))
                applied.append(version)
        return applied

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(tables.schema_migrations.c.version))).scalar() or 0

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE instead of pysqlite's implicit deferred BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(conn) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
