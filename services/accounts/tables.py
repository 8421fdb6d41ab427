"""The database schema as SQLAlchemy Core tables; migrations.py creates and evolves it.

Times are UNIX seconds (floats) so SQLite and PostgreSQL store them the same way. Credits are integers;
an account's `balance` always equals the sum of its ledger rows' `amount`.
"""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)

kv = sa.Table(
    "kv",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # visitor | hf | qa
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("display_name", sa.String(120), nullable=False, server_default=""),
    sa.Column("balance", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("age_confirmed_at", sa.Float, nullable=True),  # when the member confirmed being 18 or older
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.String(80), sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # grant | reserve | capture | refund | adjustment | transfer
    sa.Column("amount", sa.Integer, nullable=False),
    sa.Column("balance_after", sa.Integer, nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("note", sa.String(300), nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
)

generations = sa.Table(
    "generations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the request id
    sa.Column("account_id", sa.String(80), sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("idempotency_key", sa.String(128), nullable=False),
    sa.Column("params_hash", sa.String(64), nullable=False),
    sa.Column("task", sa.String(32), nullable=False),
    sa.Column("model", sa.String(80), nullable=False),
    sa.Column("request", sa.JSON, nullable=False),  # what was asked (for replays and "reuse prompt")
    sa.Column("parameters", sa.JSON, nullable=True),  # what ran (seeds, sizes, steps...)
    sa.Column("seeds", sa.JSON, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # running | done | failed | blocked | timeout | interrupted
    sa.Column("price", sa.Integer, nullable=False),
    sa.Column("charged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("safety", sa.String(32), nullable=False, server_default="pending"),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("preview", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("instance_id", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("stop_requested", sa.Boolean, nullable=False, server_default=sa.false()),  # Stop sent to another instance
    sa.UniqueConstraint("account_id", "idempotency_key", name="uq_generations_idempotency"),
)

generation_files = sa.Table(
    "generation_files",
    metadata,
    sa.Column("generation_id", sa.String(64), sa.ForeignKey("generations.id"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("path", sa.String(300), nullable=False),  # relative to the outputs dir
    sa.Column("media", sa.String(16), nullable=False),  # image | video
    sa.Column("seed", sa.BigInteger, nullable=True),
    sa.Column("safety", sa.String(32), nullable=False),
    sa.Column("poster", sa.String(300), nullable=True),  # for videos: a PNG of the first frame (migration 3)
)

output_identity = sa.Table(
    "output_identity",  # the identity monitor's index: one row per (output, figure) (migration 13, services/faces/monitor.py)
    metadata,
    sa.Column("generation_id", sa.String(64), sa.ForeignKey("generations.id"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("figure_id", sa.String(32), sa.ForeignKey("figures.id"), primary_key=True),
    sa.Column("account_id", sa.String(80), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("sim_ref", sa.Float, nullable=True),  # SimRef by the configured engine; null: no face (see note)
    sa.Column("sim_dlib", sa.Float, nullable=True),
    sa.Column("sim_arcface", sa.Float, nullable=True),
    sa.Column("engine", sa.String(40), nullable=False, server_default=""),
    sa.Column("note", sa.String(40), nullable=False, server_default=""),  # "no face", "several faces", ...
    sa.Column("copy_paste", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Float, nullable=False),
    # the figure page: a figure's outputs, lowest SimRef first
    sa.Index("ix_output_identity_figure", "figure_id", "sim_ref"),
)

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("public_id", sa.String(32), nullable=True, unique=True),  # what clients see (never the sequence number)
    sa.Column("generation_id", sa.String(64), sa.ForeignKey("generations.id"), nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("account_id", sa.String(80), sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("details", sa.String(500), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False, index=True),  # pending | approved | rejected
    sa.Column("refund", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("resolved_at", sa.Float, nullable=True),
    sa.Column("resolved_by", sa.String(80), nullable=True),
    sa.UniqueConstraint("generation_id", "idx", name="uq_reports_image"),
)

ip_grants = sa.Table(
    "ip_grants",
    metadata,
    sa.Column("ip_hash", sa.String(64), primary_key=True),
    sa.Column("window_start", sa.Float, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)

instances = sa.Table(
    "instances",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("process_started", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
    sa.Column("stopped_at", sa.Float, nullable=True),
)

figures = sa.Table(
    "figures",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("account_id", sa.String(80), sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # quick | custom
    sa.Column("spec", sa.JSON, nullable=False),  # picker choices, or the custom fields
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("negative_prompt", sa.Text, nullable=False, server_default=""),
    sa.Column("style", sa.String(32), nullable=False),
    sa.Column("model", sa.String(80), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),  # aspect ratio, resolution, steps, guidance
    sa.Column("canonical_take", sa.Integer, nullable=True),
    sa.Column("embedding", sa.JSON, nullable=True),  # face embedding of the canonical image
    sa.Column("embedding_model", sa.String(120), nullable=True),
    sa.Column("identity_note", sa.String(300), nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("deleted_at", sa.Float, nullable=True),
    # the picked Advanced reference (full body, front-facing): {"path", "generation_id", "idx"} (migration 9)
    sa.Column("reference_sheet", sa.JSON, nullable=True),
    sa.Column("reference_runs", sa.Integer, nullable=False, server_default="0"),  # sheets made so far (regenerations pay more)
)

figure_takes = sa.Table(
    "figure_takes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("public_id", sa.String(32), nullable=True, unique=True),  # what clients see (never the sequence number)
    sa.Column("figure_id", sa.String(32), sa.ForeignKey("figures.id"), nullable=False, index=True),
    sa.Column("generation_id", sa.String(64), sa.ForeignKey("generations.id"), nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("path", sa.String(300), nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

characters = sa.Table(
    "characters",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # random: also the character's link (unlisted ones)
    sa.Column("account_id", sa.String(80), sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("figure_id", sa.String(32), sa.ForeignKey("figures.id"), nullable=True),  # optional (migration 8)
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("profile", sa.JSON, nullable=False),  # card fields, intro, tags, greetings, chat models, personas, challenges
    sa.Column("visibility", sa.String(16), nullable=False, server_default="private"),  # public | unlisted | private
    sa.Column("review", sa.String(16), nullable=False, server_default="none"),  # none | pending | verified | rejected
    sa.Column("review_note", sa.String(500), nullable=False, server_default=""),
    sa.Column("reviewed_by", sa.String(80), nullable=True),
    sa.Column("reviewed_at", sa.Float, nullable=True),
    sa.Column("avatar", sa.JSON, nullable=True),  # the main image: {"source", "path", "safety", "generation_id", "idx"}
    sa.Column("card", sa.JSON, nullable=True),  # card memory: creation_date, other tools' extensions, kept fields
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("deleted_at", sa.Float, nullable=True),
    # every change the owner makes counts up; a moderator's verdict names the revision it was given (migration 10)
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
    sa.Column("name_key", sa.String(80), nullable=False, server_default=""),  # casefolded name: the catalogue's search
    # the optional cover image, shown in the catalogue: {"source", "path", "safety", ...} like the avatar (migration 11)
    sa.Column("cover", sa.JSON, nullable=True),
    # its creator lets members who confirmed their age chat 18+ with it (migration 14)
    sa.Column("chat_adult", sa.Boolean, nullable=False, server_default=sa.false()),
    # its creator lets others make Advanced and Group images of it (a figure with a picked reference sheet; migration 15)
    sa.Column("advanced_shared", sa.Boolean, nullable=False, server_default=sa.false()),
    # the catalogue's listing: verified public characters, newest change first
    sa.Index("ix_characters_listing", "visibility", "review", "updated_at"),
)

character_tags = sa.Table(
    "character_tags",  # a character's tags, casefolded, so the catalogue filters by tag in the database (migration 10)
    metadata,
    sa.Column("character_id", sa.String(32), sa.ForeignKey("characters.id"), primary_key=True),
    sa.Column("tag", sa.String(100), primary_key=True, index=True),
)

character_media = sa.Table(
    "character_media",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # gallery order
    sa.Column("public_id", sa.String(32), nullable=False, unique=True),
    sa.Column("character_id", sa.String(32), sa.ForeignKey("characters.id"), nullable=False, index=True),
    sa.Column("media", sa.String(16), nullable=False),  # image | video
    sa.Column("generation_id", sa.String(64), sa.ForeignKey("generations.id"), nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("path", sa.String(300), nullable=False),
    sa.Column("poster", sa.String(300), nullable=True),
    sa.Column("safety", sa.String(32), nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),  # generated | edit (an edit of the main image)
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("character_id", "generation_id", "idx", name="uq_character_media_file"),
)

character_albums = sa.Table(
    "character_albums",
    metadata,
    sa.Column("character_id", sa.String(32), sa.ForeignKey("characters.id"), primary_key=True),
    sa.Column("price", sa.Integer, nullable=False),
    sa.Column("items", sa.JSON, nullable=False),  # gallery public ids, in order
    sa.Column("offered_at", sa.Float, nullable=False),
    sa.Column("withdrawn_at", sa.Float, nullable=True),
)

album_unlocks = sa.Table(
    "album_unlocks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("character_id", sa.String(32), sa.ForeignKey("characters.id"), nullable=False),
    sa.Column("buyer_id", sa.String(80), sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("price", sa.Integer, nullable=False),
    sa.Column("creator_share", sa.Integer, nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("character_id", "buyer_id", name="uq_album_unlocks_buyer"),
)

# -- research (migration 12): grids of paid cells, arena battles and their append-only votes ----------------
grids = sa.Table(
    "grids",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("account_id", sa.String(80), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),  # the declared run: surface, prompts, models, seeds, axis, sizes
    sa.Column("surface", sa.String(16), nullable=False),  # text-to-image | remix | advanced (the arenas' pools filter on it)
    sa.Column("figure_id", sa.String(32), nullable=True),  # remix / advanced grids: the figure (the likeness arena's pool)
    sa.Column("status", sa.String(16), nullable=False),  # running | done | stopped
    sa.Column("cells_total", sa.Integer, nullable=False),
    sa.Column("quoted", sa.Integer, nullable=False),
    sa.Column("qa", sa.Boolean, nullable=False, server_default=sa.false()),  # made by a QA session: the arena's shared pool
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_grids_account", "account_id", "created_at"),
)

grid_cells = sa.Table(
    "grid_cells",
    metadata,
    sa.Column("grid_id", sa.String(32), sa.ForeignKey("grids.id"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),  # the run order (most expensive axis outermost)
    sa.Column("prompt_index", sa.Integer, nullable=False),
    sa.Column("model", sa.String(80), nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("value", sa.String(80), nullable=False, server_default=""),  # the settings axis' value (JSON), "" without one
    sa.Column("status", sa.String(16), nullable=False),  # pending | running | done | failed | stopped
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("file", sa.String(300), nullable=True),  # the output's stored name
    sa.Column("seconds", sa.Float, nullable=True),
    sa.Column("charged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("steps", sa.Integer, nullable=True),
    sa.Column("identity", sa.JSON, nullable=True),  # figure runs: the identity score of the output
    sa.Column("error", sa.String(500), nullable=False, server_default=""),
    sa.Index("ix_grid_cells_pool", "status", "prompt_index", "seed"),
)

battles = sa.Table(
    "battles",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # general | likeness
    sa.Column("voter", sa.String(64), nullable=False, index=True),  # the voter's account id, hashed
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),  # everything both outputs share, and each side's own settings
    sa.Column("left", sa.String(120), nullable=False),  # competitor keys: a model id, or "model|face path" (likeness)
    sa.Column("right", sa.String(120), nullable=False),
    sa.Column("left_file", sa.String(300), nullable=False),  # the stored outputs
    sa.Column("right_file", sa.String(300), nullable=False),
    sa.Column("figure_id", sa.String(32), nullable=True),
    sa.Column("source", sa.String(16), nullable=False),  # pool (grid cells) | generated (charged to the voter)
    sa.Column("qa", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revealed_at", sa.Float, nullable=True),  # when the identities were shown to the voter
)

votes = sa.Table(
    "votes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("battle_id", sa.String(32), sa.ForeignKey("battles.id"), nullable=False, unique=True),  # one vote per battle
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("voter", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(8), nullable=False),  # left | right | tie | bad
    sa.Column("qa", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_votes_voter", "voter", "created_at"),
    sa.Index("ix_votes_kind", "kind", "qa"),
)

# -- chat (migration 14): a visitor's conversations with characters, and their messages --------------------------------
conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # random
    sa.Column("account_id", sa.String(80), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("character_id", sa.String(32), sa.ForeignKey("characters.id"), nullable=False),
    sa.Column("title", sa.String(120), nullable=False),
    sa.Column("model", sa.String(80), nullable=False),  # the chat model's registry id
    sa.Column("persona", sa.Integer, nullable=True),  # the index of the character's persona card in use (None: none)
    sa.Column("seed", sa.BigInteger, nullable=False),  # picks the opener; turn n samples with seed + n
    sa.Column("opener", sa.Integer, nullable=True),  # the index of the opening message offered (None: the character has none)
    sa.Column("challenges", sa.JSON, nullable=False),  # per challenge mode: {"progress": 0-100, "unlocked_turn": n | null}
    sa.Column("turns", sa.Integer, nullable=False, server_default="0"),  # messages the visitor has sent (paid turns)
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_conversations_owner", "account_id", "character_id", "updated_at"),
)

chat_messages = sa.Table(
    "chat_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),  # order in the conversation; unique: two instances never interleave
    sa.Column("role", sa.String(16), nullable=False),  # assistant | user | notice | image
    sa.Column("content", sa.Text, nullable=False),  # the text (an image: the prompt it was made from)
    sa.Column("generation_id", sa.String(32), nullable=True),  # the paid run behind it (a reply, a picture)
    sa.Column("file", sa.String(300), nullable=True),  # an image message's stored file
    sa.Column("meta", sa.JSON, nullable=True),  # e.g. the judge's verdicts on a user turn, turns left out of the context
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("conversation_id", "idx", name="uq_chat_messages_order"),
)

# -- projects (migration 16): a small team's shared work: cards, directions, versions, refs, scenes ----------------------
from .project_tables import (project_members, project_cards, project_directions, project_refs, project_scene_shots,  # noqa: E402
                             project_scenes, project_versions, projects)
