"""The projects tables (migration 16), on the shared metadata: a project, its members, cards (a prompt draft with its
settings), directions (a card's forks), versions (every generation or upload, a node of the card's tree), refs and
scenes. Rows that several instances may change at once (a card's draft, a version's review) carry a revision."""
from __future__ import annotations

import sqlalchemy as sa

from .tables import metadata

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("owner_id", sa.String(80), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("invite", sa.String(32), nullable=False, unique=True),  # the secret in an invite link
    sa.Column("archived_at", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

project_members = sa.Table(
    "project_members",
    metadata,
    sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("account_id", sa.String(80), sa.ForeignKey("accounts.id"), primary_key=True, index=True),
    sa.Column("role", sa.String(16), nullable=False),  # owner | member
    sa.Column("joined_at", sa.Float, nullable=False),
)

project_cards = sa.Table(
    "project_cards",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id"), nullable=False, index=True),
    sa.Column("title", sa.String(120), nullable=False),
    sa.Column("draft", sa.Text, nullable=False, server_default=""),  # the prompt being written (saved drafts)
    sa.Column("settings", sa.JSON, nullable=False),  # resolution, aspect_ratio, model_class, count
    sa.Column("scene_id", sa.String(32), nullable=True),  # generate in this scene's context (its pool as refs)
    sa.Column("direction_id", sa.String(32), nullable=True),  # the direction the card shows
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),  # optimistic updates of the draft
    sa.Column("refine", sa.JSON, nullable=True),  # the refine chat's messages (services/projects/refiner.py), newest last
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

project_directions = sa.Table(
    "project_directions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("card_id", sa.String(32), sa.ForeignKey("project_cards.id"), nullable=False, index=True),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("parent_version_id", sa.String(32), nullable=True),  # the version it was forked from (None: the main one)
    sa.Column("refs", sa.JSON, nullable=False),  # ref ids, in order: a fork's first is its source image
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

project_versions = sa.Table(
    "project_versions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("card_id", sa.String(32), sa.ForeignKey("project_cards.id"), nullable=False),
    sa.Column("direction_id", sa.String(32), sa.ForeignKey("project_directions.id"), nullable=False),
    sa.Column("parent_version_id", sa.String(32), nullable=True),  # the version it followed in its direction
    sa.Column("number", sa.Integer, nullable=False),  # v1, v2, ... per card
    sa.Column("prompt", sa.Text, nullable=False),  # as typed
    sa.Column("refined", sa.Text, nullable=False, server_default=""),  # as the refiner left it (what ran)
    sa.Column("settings", sa.JSON, nullable=False),  # resolution, aspect_ratio, model_class, model, task
    sa.Column("refs", sa.JSON, nullable=False),  # the ref ids it was made with, in order (and any dropped: see settings)
    sa.Column("status", sa.String(16), nullable=False),  # generating | done | failed | uploaded
    sa.Column("error", sa.String(500), nullable=True),
    sa.Column("generation_id", sa.String(32), nullable=True),  # the paid run
    sa.Column("file", sa.String(300), nullable=True),  # the stored image
    sa.Column("review", sa.String(16), nullable=False, server_default="none"),  # none | approved | rejected
    sa.Column("favourite", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_project_versions_card", "card_id", "number", unique=True),
)

project_refs = sa.Table(
    "project_refs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # character | location | object
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("file", sa.String(300), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # upload | shot | figure
    sa.Column("version_id", sa.String(32), nullable=True),  # a saved shot: the version it came from
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

project_scenes = sa.Table(
    "project_scenes",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id"), nullable=False, index=True),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

project_scene_shots = sa.Table(
    "project_scene_shots",
    metadata,
    sa.Column("scene_id", sa.String(32), sa.ForeignKey("project_scenes.id"), primary_key=True),
    sa.Column("ref_id", sa.String(32), sa.ForeignKey("project_refs.id"), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
)
