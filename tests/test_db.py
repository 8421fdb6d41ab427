"""Schema migrations and the plans preset."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from pipelines.types import Task
from services.accounts import tables
from services.accounts.db import Database
from services.accounts.migrations import MIGRATIONS
from services.accounts.plans import PlansError, load_plans


def test_migrations_build_the_declared_schema_once(db_url):
    db = Database(db_url)
    try:
        assert db.migrate() == [v for v, _, _ in MIGRATIONS]
        assert db.migrate() == []  # a restart applies nothing
        assert db.schema_version() == MIGRATIONS[-1][0]
        inspector = sa.inspect(db.engine)
        for table in tables.metadata.sorted_tables:
            live = {c["name"] for c in inspector.get_columns(table.name)}
            assert live == {c.name for c in table.columns}, table.name
        if db.is_sqlite:
            with db.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        db.dispose()


def test_a_later_migration_is_applied_to_an_existing_database(db_url):
    db = Database(db_url)
    try:
        db.migrate()

        def add_column(conn):
            conn.execute(sa.text("ALTER TABLE accounts ADD COLUMN nickname VARCHAR(40)"))

        assert db.migrate(MIGRATIONS + [(99, "nickname", add_column)]) == [99]
        assert "nickname" in {c["name"] for c in sa.inspect(db.engine).get_columns("accounts")}
    finally:
        db.dispose()


def test_prices_follow_the_plans_preset(registry):
    plans = load_plans()
    flux = registry.get("flux.1-dev")
    assert plans.quote(flux, Task.TEXT_TO_IMAGE, "1K", 2).total == 8
    assert plans.quote(flux, Task.TEXT_TO_IMAGE, "2K", 1).total == 4
    assert plans.quote(flux, Task.TEXT_TO_IMAGE, "4K", 2).total == 16
    assert plans.quote(registry.get("qwen-image-edit"), Task.EDIT, "1K", 1).total == 3  # the model's own edit price
    assert plans.quote(registry.get("flux.2-dev"), Task.MULTI_REFERENCE, "1K", 1, figures=3).total == 15
    assert plans.tier("guest").starting_grant == 50 and plans.tier("qa").unlimited


@pytest.mark.parametrize(
    "edit, message",
    [
        (("[prices]", "[prices]\nsurprise = 1"), "prices.surprise: Extra inputs"),
        (('"4K" = 2', '"4K" = 0'), "resolution_multiplier: Value error, multipliers must be at least 1"),
        (('"flux.2-dev" = { output = 4, edit = 4,', '"flux.2-dev" = { output = 4, sketch = 4,'), "unknown task 'sketch'"),
        (('"sdxl-base" = { output = 1 }', '"sdxl-base" = { edit = 1 }'), "give its price per output"),
        (("starting_grant = 50", "starting_grant = -5"), "tiers.guest.starting_grant"),
        (('unlocks = ["adult_prompts", "image_to_video", "video_prompt"]', 'unlocks = ["teleport"]'), "tiers.member.unlocks.0"),
        (("[tiers.qa]", "[tiers.qq]"), "tiers ['qa'] are required"),
    ],
)
def test_bad_plans_name_the_field(tmp_path, edit, message):
    from services.accounts.plans import DEFAULT_PLANS

    text = DEFAULT_PLANS.read_text()
    assert edit[0] in text
    path = tmp_path / "plans.toml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(PlansError, match=f"plans.toml: .*{message}".replace("[", r"\[").replace("]", r"\]")):
        load_plans(path)


def test_plans_must_name_registry_models(tmp_path, registry):
    from services.container import check_plans
    from services.accounts.plans import DEFAULT_PLANS

    path = tmp_path / "plans.toml"
    path.write_text(DEFAULT_PLANS.read_text().replace('"flux.2-dev" = {', '"flux.9" = {'))
    with pytest.raises(PlansError, match="flux.9"):
        check_plans(load_plans(path), registry)
    path.write_text(DEFAULT_PLANS.read_text().replace('"ltx-video" = { output = 8 }\n', ''))
    with pytest.raises(PlansError, match=r"no price for \['ltx-video'\]"):
        check_plans(load_plans(path), registry)
    path.write_text(DEFAULT_PLANS.read_text().replace('"sdxl-base" = { output = 1 }', '"sdxl-base" = { output = 1, edit = 1 }'))
    with pytest.raises(PlansError, match=r"'sdxl-base' for tasks it does not offer: \['edit'\]"):
        check_plans(load_plans(path), registry)


def test_plans_must_price_every_registry_tier(tmp_path, registry):
    from services.container import check_plans
    from services.accounts.plans import DEFAULT_PLANS

    path = tmp_path / "plans.toml"
    path.write_text(DEFAULT_PLANS.read_text().replace('"720p" = 2', '"1080p" = 3'))
    with pytest.raises(PlansError, match=r"no resolution_multiplier for the registry's tiers \['720p'\]"):
        check_plans(load_plans(path), registry)
    check_plans(load_plans(), registry)


def test_a_version_one_database_migrates_forward(tmp_path):
    """A database created by the first release (without later columns) reaches the current schema."""
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        with db.begin() as conn:  # what release 1 created: generation_files without `poster`
            old = sa.MetaData()
            for table in tables.metadata.sorted_tables:
                if table.name in ("figures", "figure_takes"):
                    continue
                columns = [c._copy() for c in table.columns if not (table.name == "generation_files" and c.name == "poster")]
                sa.Table(table.name, old, *columns)
            old.create_all(conn)
            conn.execute(tables.schema_migrations.insert().values(version=1, name="initial", applied_at=0.0))
        assert db.migrate() == [v for v, _, _ in MIGRATIONS if v > 1]
        live = {c["name"] for c in sa.inspect(db.engine).get_columns("generation_files")}
        assert "poster" in live
        assert {"figures", "figure_takes"} <= set(sa.inspect(db.engine).get_table_names())
    finally:
        db.dispose()


def test_characters_of_release_seven_move_to_the_catalogue_schema(db_url):
    """Migration 8: the old characters table (figure required, gallery as JSON, `main` as a position) becomes the
    new one; its gallery moves to character_media and its card image becomes the avatar, on SQLite and PostgreSQL."""
    db = Database(db_url)
    try:
        assert db.migrate(MIGRATIONS[:7]) == list(range(1, 8))
        with db.begin() as conn:
            conn.execute(sa.text("DROP TABLE characters"))
            old = sa.MetaData()
            sa.Table("accounts", old, sa.Column("id", sa.String(80), primary_key=True))
            sa.Table("figures", old, sa.Column("id", sa.String(32), primary_key=True))
            sa.Table(
                "characters", old,
                sa.Column("id", sa.String(32), primary_key=True),
                sa.Column("account_id", sa.String(80), sa.ForeignKey("accounts.id"), nullable=False, index=True),
                sa.Column("figure_id", sa.String(32), sa.ForeignKey("figures.id"), nullable=False),
                sa.Column("name", sa.String(80), nullable=False),
                sa.Column("profile", sa.JSON, nullable=False),
                sa.Column("gallery", sa.JSON, nullable=False),
                sa.Column("main", sa.Integer, nullable=True),
                sa.Column("created_at", sa.Float, nullable=False),
                sa.Column("updated_at", sa.Float, nullable=False),
                sa.Column("deleted_at", sa.Float, nullable=True),
            ).create(conn)
            conn.execute(tables.accounts.insert().values(id="a1", kind="visitor", tier="guest", created_at=0.0))
            for gid in ("g1", "g2"):
                conn.execute(tables.generations.insert().values(
                    id=gid, account_id="a1", idempotency_key=gid, params_hash="h", task="text-to-image", model="m", request={},
                    status="done", price=1, instance_id="i", created_at=0.0))
                conn.execute(tables.generation_files.insert().values(generation_id=gid, idx=0, path=f"{gid}.png", media="image", safety="safe"))
            conn.execute(tables.figures.insert().values(id="f1", account_id="a1", name="F", kind="quick", spec={}, prompt="p",
                                                        style="photoreal", model="m", settings={}, created_at=0.0, updated_at=0.0))
            take = conn.execute(tables.figure_takes.insert().values(figure_id="f1", generation_id="g2", idx=0, path="g2.png",
                                                                    created_at=0.0).returning(tables.figure_takes.c.id)).scalar()
            conn.execute(tables.figures.update().values(canonical_take=take))
            profile = {"fields": {"name": "Old"}, "tags": ["t"], "alternate_greetings": []}
            gallery = [{"request_id": "g1", "index": 0, "path": "g1.png", "safety": "safe"}]
            conn.execute(sa.text("INSERT INTO characters (id, account_id, figure_id, name, profile, gallery, main, created_at, updated_at) "
                                 "VALUES ('c1', 'a1', 'f1', 'Old', :p, :g, 0, 1.0, 2.0), ('c2', 'a1', 'f1', 'Two', :p, '[]', NULL, 1.0, 2.0)"),
                         {"p": json.dumps(profile), "g": json.dumps(gallery)})
        assert db.migrate() == [v for v, _, _ in MIGRATIONS if v >= 8]  # 8 and every later migration
        figure_columns = {c["name"] for c in sa.inspect(db.engine).get_columns("figures")}
        assert {"reference_sheet", "reference_runs"} <= figure_columns  # migration 9
        live = {c["name"]: c for c in sa.inspect(db.engine).get_columns("characters")}
        assert set(live) == {c.name for c in tables.characters.columns} and live["figure_id"]["nullable"]
        with db.engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(sa.select(tables.characters)).all()}
            media = conn.execute(sa.select(tables.character_media)).all()
        assert rows["c1"].avatar == {"source": "gallery", "path": "g1.png", "safety": "safe", "generation_id": "g1", "idx": 0}
        assert rows["c2"].avatar["source"] == "figure" and rows["c2"].avatar["path"] == "g2.png"
        assert rows["c1"].visibility == "private" and rows["c1"].review == "none" and rows["c1"].profile == profile
        assert [(m.character_id, m.generation_id, m.media, m.origin) for m in media] == [("c1", "g1", "image", "generated")]
        # migration 10: the catalogue's search columns are filled from the stored profiles, and revisions start at 0
        assert rows["c1"].name_key == "old" and rows["c2"].name_key == "two" and rows["c1"].revision == 0
        with db.engine.connect() as conn:
            assert sorted(conn.execute(sa.select(tables.character_tags.c.character_id, tables.character_tags.c.tag)).all()) == [
                ("c1", "t"), ("c2", "t")]
        with db.begin() as conn:  # a character without a figure can now be stored
            conn.execute(tables.characters.insert().values(id="c3", account_id="a1", figure_id=None, name="N", profile={},
                                                          created_at=0.0, updated_at=0.0))
    finally:
        db.dispose()


def test_figures_of_release_eight_get_reference_sheet_columns(db_url):
    """Migration 9 adds the Advanced reference and the sheet count to an existing figures table."""
    db = Database(db_url)
    try:
        assert db.migrate(MIGRATIONS[:8]) == list(range(1, 9))
        with db.begin() as conn:  # the baseline builds today's tables: take the columns away, as release 8 had them
            conn.execute(sa.text("ALTER TABLE figures DROP COLUMN reference_sheet"))
            conn.execute(sa.text("ALTER TABLE figures DROP COLUMN reference_runs"))
            conn.execute(tables.accounts.insert().values(id="a1", kind="visitor", tier="guest", created_at=0.0))
            conn.execute(sa.text("INSERT INTO figures (id, account_id, name, kind, spec, prompt, negative_prompt, style, model, "
                                 "settings, identity_note, created_at, updated_at) VALUES ('f1', 'a1', 'F', 'quick', '{}', 'p', '', "
                                 "'photoreal', 'm', '{}', '', 0, 0)"))
        assert db.migrate() == [v for v, _, _ in MIGRATIONS if v >= 9]
        with db.engine.connect() as conn:
            row = conn.execute(sa.select(tables.figures.c.reference_sheet, tables.figures.c.reference_runs)).one()
        assert row.reference_sheet is None and row.reference_runs == 0
    finally:
        db.dispose()


def test_characters_of_release_ten_get_a_cover_column(db_url):
    """Migration 11 adds the optional cover image to an existing characters table; stored characters have none."""
    db = Database(db_url)
    try:
        assert db.migrate(MIGRATIONS[:10]) == list(range(1, 11))
        with db.begin() as conn:  # the baseline builds today's tables: take the column away, as release 10 had it
            conn.execute(sa.text("ALTER TABLE characters DROP COLUMN cover"))
            conn.execute(tables.accounts.insert().values(id="a1", kind="visitor", tier="guest", created_at=0.0))
            conn.execute(sa.text("INSERT INTO characters (id, account_id, name, profile, created_at, updated_at) "
                                 "VALUES ('c1', 'a1', 'C', '{}', 0, 0)"))
        assert db.migrate() == [v for v, _, _ in MIGRATIONS if v >= 11]
        live = {c["name"] for c in sa.inspect(db.engine).get_columns("characters")}
        assert live == {c.name for c in tables.characters.columns}
        with db.engine.connect() as conn:
            assert conn.execute(sa.select(tables.characters.c.cover)).scalar() is None
    finally:
        db.dispose()
