"""Schema migrations: an ordered list, each applied once and recorded in `schema_migrations`.

Rule: a released migration never changes. To change the schema, edit tables.py AND append a migration
that brings an existing database to it. The baseline (m001) and table-creating migrations build tables
from tables.py, so column-adding migrations check first (`_add_column`). tests/test_db.py checks that a
fresh, fully migrated database matches tables.py column for column, and that a database created at an
older version migrates forward.
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


def _add_column(conn: sa.Connection, table: str, column: str, ddl_type: str) -> None:
    # The baseline builds tables from tables.py, so a fresh database may already have the column.
    if column not in {c["name"] for c in sa.inspect(conn).get_columns(table)}:
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {ddl_type}"))


def m003_video_posters(conn: sa.Connection) -> None:
    _add_column(conn, "generation_files", "poster", "VARCHAR(300)")


def m004_characters(conn: sa.Connection) -> None:
    tables.metadata.create_all(conn, tables=[tables.characters])


MIGRATIONS: list[Migration] = [
    (1, "initial", m001_initial),
    (2, "figures", m002_figures),
    (3, "video posters", m003_video_posters),
    (4, "characters", m004_characters),
]
