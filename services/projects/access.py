"""Who may see what: a project's rows are read only through its membership. A non-member gets the same answer for a
project that exists and one that does not ("No project ... among yours"), from every read and every action."""
from __future__ import annotations

import sqlalchemy as sa

from ..accounts.identity import Account
from ..accounts.tables import project_cards, project_directions, project_members, project_refs, project_scenes, project_versions, projects
from ..errors import UserError


class ProjectError(UserError, ValueError):
    """A project request the visitor can change (an unknown or foreign id, a stale draft, a limit)."""


def project_row(conn: sa.Connection, account: Account, project_id: str):
    """The project, if the account is one of its members."""
    row = conn.execute(
        sa.select(projects, project_members.c.role).join(project_members, project_members.c.project_id == projects.c.id)
        .where(projects.c.id == str(project_id or ""), project_members.c.account_id == account.id)).first()
    if row is None:
        raise ProjectError(f"No project {project_id!r} among yours.")
    return row


def _through_project(conn: sa.Connection, account: Account, table: sa.Table, row_id: str, what: str, project_column):
    row = conn.execute(
        sa.select(table).join(project_members, project_members.c.project_id == project_column)
        .where(table.c.id == str(row_id or ""), project_members.c.account_id == account.id)).first()
    if row is None:
        raise ProjectError(f"No {what} {row_id!r} in your projects.")
    return row


def card_row(conn: sa.Connection, account: Account, card_id: str):
    return _through_project(conn, account, project_cards, card_id, "card", project_cards.c.project_id)


def ref_row(conn: sa.Connection, account: Account, ref_id: str):
    return _through_project(conn, account, project_refs, ref_id, "ref", project_refs.c.project_id)


def scene_row(conn: sa.Connection, account: Account, scene_id: str):
    return _through_project(conn, account, project_scenes, scene_id, "scene", project_scenes.c.project_id)


def _through_card(conn: sa.Connection, account: Account, table: sa.Table, row_id: str, what: str):
    """A row of a card's (a version, a direction), with the card's project id as `project_id`, for a member only."""
    row = conn.execute(
        sa.select(table, project_cards.c.project_id)
        .join(project_cards, project_cards.c.id == table.c.card_id)
        .join(project_members, project_members.c.project_id == project_cards.c.project_id)
        .where(table.c.id == str(row_id or ""), project_members.c.account_id == account.id)).first()
    if row is None:
        raise ProjectError(f"No {what} {row_id!r} in your projects.")
    return row


def version_row(conn: sa.Connection, account: Account, version_id: str):
    return _through_card(conn, account, project_versions, version_id, "version")


def direction_row(conn: sa.Connection, account: Account, direction_id: str):
    return _through_card(conn, account, project_directions, direction_id, "direction")


def writable(row) -> None:
    """An archived project is read-only until it is restored."""
    if row.archived_at is not None:
        raise ProjectError(f"“{row.name}” is archived: restore it to change it.")
