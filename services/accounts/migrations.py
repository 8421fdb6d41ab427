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


def m005_repair_unserialisable_records(conn: sa.Connection) -> None:
    """Rows stored before the API checked its arguments may hold values no JSON encoder accepts (a seed of -2**64,
    guidance NaN): they broke every /history response of their owner. Replace those values with null.
    (It keeps its own copy of the cleaning rule rather than importing db.json_safe: a released migration never changes.)"""
    import json
    import math

    int64 = 2**63

    def clean(v):
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v, False
        if isinstance(v, int):
            return (v, False) if -int64 <= v < int64 else (None, True)
        if isinstance(v, float):
            return (v, False) if math.isfinite(v) else (None, True)
        if isinstance(v, dict):
            out, changed = {}, False
            for k, x in v.items():
                out[k], c = clean(x)
                changed |= c
            return out, changed
        if isinstance(v, list):
            pairs = [clean(x) for x in v]
            return [p[0] for p in pairs], any(p[1] for p in pairs)
        return v, False

    for table, key, columns in (("generations", "id", ("request", "parameters", "seeds")), ("figures", "id", ("settings", "spec"))):
        if table not in sa.inspect(conn).get_table_names():
            continue
        rows = conn.execute(sa.text(f"SELECT {key}, {', '.join(columns)} FROM {table}")).all()
        for row in rows:
            updates = {}
            for column, raw in zip(columns, row[1:]):
                if raw is None:
                    continue
                value = json.loads(raw) if isinstance(raw, str) else raw  # SQLite returns text, PostgreSQL parsed JSON
                fixed, changed = clean(value)
                if changed:
                    updates[column] = json.dumps(fixed)
            if updates:
                sets = ", ".join(f"{c} = :{c}" for c in updates)
                conn.execute(sa.text(f"UPDATE {table} SET {sets} WHERE {key} = :key"), {**updates, "key": row[0]})


def m006_age_confirmation(conn: sa.Connection) -> None:
    _add_column(conn, "accounts", "age_confirmed_at", "FLOAT")


def m007_public_ids(conn: sa.Connection) -> None:
    """Reports and figure takes get random public ids; their sequence numbers stay internal."""
    import secrets

    for table in ("reports", "figure_takes"):
        _add_column(conn, table, "public_id", "VARCHAR(32)")
        for (row_id,) in conn.execute(sa.text(f"SELECT id FROM {table} WHERE public_id IS NULL")).all():
            conn.execute(sa.text(f"UPDATE {table} SET public_id = :p WHERE id = :i"), {"p": secrets.token_hex(8), "i": row_id})
        names = {ix["name"] for ix in sa.inspect(conn).get_indexes(table)} | {
            uc["name"] for uc in sa.inspect(conn).get_unique_constraints(table)
        }
        if not any(n and "public_id" in n for n in names):
            conn.execute(sa.text(f"CREATE UNIQUE INDEX ix_{table}_public_id ON {table} (public_id)"))


def m008_character_catalogue(conn: sa.Connection) -> None:
    """Characters without figures, with visibility, review, a main image and card memory; galleries of any size in
    their own table (images and videos); photo albums and their unlocks.

    The old `gallery` JSON becomes character_media rows and `main` becomes the avatar. SQLite cannot drop NOT NULL
    from figure_id, so there the table is rebuilt; PostgreSQL alters it in place."""
    import json
    import secrets

    columns = {c["name"] for c in sa.inspect(conn).get_columns("characters")}
    if "visibility" not in columns:  # a database from before this release (a fresh one got the new table from m004)
        old = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM characters")).all()]
        if conn.dialect.name == "sqlite":
            conn.execute(sa.text("DROP INDEX IF EXISTS ix_characters_account_id"))
            conn.execute(sa.text("ALTER TABLE characters RENAME TO characters_before_8"))
            tables.characters.create(conn)
            conn.execute(sa.text(
                "INSERT INTO characters (id, account_id, figure_id, name, profile, created_at, updated_at, deleted_at) "
                "SELECT id, account_id, figure_id, name, profile, created_at, updated_at, deleted_at FROM characters_before_8"))
            conn.execute(sa.text("DROP TABLE characters_before_8"))
        else:
            conn.execute(sa.text("ALTER TABLE characters ALTER COLUMN figure_id DROP NOT NULL"))
            conn.execute(sa.text("ALTER TABLE characters DROP COLUMN gallery, DROP COLUMN main"))
            for column, ddl in (("visibility", "VARCHAR(16) NOT NULL DEFAULT 'private'"), ("review", "VARCHAR(16) NOT NULL DEFAULT 'none'"),
                                ("review_note", "VARCHAR(500) NOT NULL DEFAULT ''"), ("reviewed_by", "VARCHAR(80)"),
                                ("reviewed_at", "FLOAT"), ("avatar", "JSON"), ("card", "JSON")):
                _add_column(conn, "characters", column, ddl)
    tables.metadata.create_all(conn, tables=[tables.character_media, tables.character_albums, tables.album_unlocks])
    if "visibility" in columns:
        return
    for row in old:
        gallery = row["gallery"] if isinstance(row["gallery"], list) else json.loads(row["gallery"] or "[]")
        for n, item in enumerate(gallery):
            conn.execute(tables.character_media.insert().values(
                public_id=secrets.token_hex(8), character_id=row["id"], media="image", generation_id=item["request_id"],
                idx=int(item["index"]), path=item["path"], safety=item.get("safety", "unchecked"), origin="generated",
                created_at=row["updated_at"] + n * 1e-3))
        avatar = None
        if row["main"] is not None and 0 <= row["main"] < len(gallery):
            item = gallery[row["main"]]
            avatar = {"source": "gallery", "path": item["path"], "safety": item.get("safety", "unchecked"),
                      "generation_id": item["request_id"], "idx": int(item["index"])}
        else:  # the figure's canonical take, as the card showed it
            take = conn.execute(sa.text(
                "SELECT t.path, t.generation_id, t.idx, f.safety FROM figures g JOIN figure_takes t ON t.id = g.canonical_take "
                "JOIN generation_files f ON f.generation_id = t.generation_id AND f.idx = t.idx WHERE g.id = :f"),
                {"f": row["figure_id"]}).first()
            if take is not None:
                avatar = {"source": "figure", "path": take.path, "safety": take.safety, "generation_id": take.generation_id, "idx": take.idx}
        conn.execute(tables.characters.update().where(tables.characters.c.id == row["id"]).values(avatar=avatar, card={}))


def m009_reference_sheets(conn: sa.Connection) -> None:
    """Figures get an Advanced reference (the picked full-body option) and a count of the sheets made for them."""
    _add_column(conn, "figures", "reference_sheet", "JSON")
    _add_column(conn, "figures", "reference_runs", "INTEGER NOT NULL DEFAULT 0")


def m010_character_reads(conn: sa.Connection) -> None:
    """Catalogue filters in the database (a casefolded name column, a tags table, a listing index) and a revision
    that moderation verdicts bind to."""
    import json

    _add_column(conn, "characters", "revision", "INTEGER NOT NULL DEFAULT 0")
    _add_column(conn, "characters", "name_key", "VARCHAR(80) NOT NULL DEFAULT ''")
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_characters_listing ON characters (visibility, review, updated_at)"))
    tables.metadata.create_all(conn, tables=[tables.character_tags])
    rows = conn.execute(sa.text("SELECT id, name, profile FROM characters")).all()
    for row in rows:
        profile = row.profile if isinstance(row.profile, dict) else json.loads(row.profile or "{}")
        conn.execute(sa.text("UPDATE characters SET name_key = :k WHERE id = :i"), {"k": (row.name or "").casefold()[:80], "i": row.id})
        for tag in dict.fromkeys(str(t).casefold()[:100] for t in profile.get("tags", []) if str(t).strip()):
            conn.execute(sa.text("INSERT INTO character_tags (character_id, tag) VALUES (:i, :t)"), {"i": row.id, "t": tag})


def m011_character_covers(conn: sa.Connection) -> None:
    """Characters get an optional cover image beside the main image (shown in the catalogue)."""
    _add_column(conn, "characters", "cover", "JSON")


def m012_research(conn: sa.Connection) -> None:
    """Research: grids and their cells, arena battles and append-only votes."""
    tables.metadata.create_all(conn, tables=[tables.grids, tables.grid_cells, tables.battles, tables.votes])


def m013_identity_monitor(conn: sa.Connection) -> None:
    """The identity monitor's index: each figure output's SimRef, listed per figure lowest first in the database."""
    tables.metadata.create_all(conn, tables=[tables.output_identity])


def m014_chat(conn: sa.Connection) -> None:
    """Chat: conversations with characters and their messages; a character's 18+ chat switch."""
    tables.metadata.create_all(conn, tables=[tables.conversations, tables.chat_messages])
    _add_column(conn, "characters", "chat_adult", "BOOLEAN NOT NULL DEFAULT FALSE")


def m015_shared_advanced(conn: sa.Connection) -> None:
    """Characters get the creator's switch that opens Advanced (and Group) on them to other visitors."""
    _add_column(conn, "characters", "advanced_shared", "BOOLEAN NOT NULL DEFAULT FALSE")


def m016_projects(conn: sa.Connection) -> None:
    """Projects: members, cards, directions, versions, refs, scenes (services/projects)."""
    tables.metadata.create_all(conn, tables=[tables.projects, tables.project_members, tables.project_cards,
                                             tables.project_directions, tables.project_versions, tables.project_refs,
                                             tables.project_scenes, tables.project_scene_shots])


def m017_stop_across_instances(conn: sa.Connection) -> None:
    """Generations get the flag a Stop sent to another instance sets (services/accounts/stops.py)."""
    _add_column(conn, "generations", "stop_requested", "BOOLEAN NOT NULL DEFAULT FALSE")


MIGRATIONS: list[Migration] = [
    (1, "initial", m001_initial),
    (2, "figures", m002_figures),
    (3, "video posters", m003_video_posters),
    (4, "characters", m004_characters),
    (5, "repair unserialisable records", m005_repair_unserialisable_records),
    (6, "age confirmation", m006_age_confirmation),
    (7, "public ids", m007_public_ids),
    (8, "character catalogue", m008_character_catalogue),
    (9, "reference sheets", m009_reference_sheets),
    (10, "character reads", m010_character_reads),
    (11, "character covers", m011_character_covers),
    (12, "research", m012_research),
    (13, "identity monitor", m013_identity_monitor),
    (14, "chat", m014_chat),
    (15, "shared advanced", m015_shared_advanced),
    (16, "projects", m016_projects),
    (17, "stop across instances", m017_stop_across_instances),
]
