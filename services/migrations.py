"""Schema migrations: an ordered list, each applied once and recorded in `schema_migrations`.

Rule: a released migration never changes. To change the schema, edit tables.py AND append a migration
that brings an existing database to it (tests/test_db.py checks that a fresh, fully migrated database
matches tables.py column for column).
"""
from __future__ import annotations

from typing import Callable

import sqlalchemy as sa

from . import tables

Migration = tuple[int, str, Callable[[sa.Connection], None]]


def m001_initial(conn: sa.Connection) -> None:
    # The baseline: every table as first released.
    baseline = [
        tables.kv,
        tables.accounts,
        tables.ledger,
        tables.generations,
        tables.generation_files,
        tables.reports,
        tables.ip_grants,
        tables.instances,
    ]
    tables.metadata.create_all(conn, tables=baseline)


def m002_figures(conn: sa.Connection) -> None:
    tables.metadata.create_all(conn, tables=[tables.figures, tables.figure_takes])


MIGRATIONS: list[Migration] = [
    (1, "initial", m001_initial),
    (2, "figures", m002_figures),
]
