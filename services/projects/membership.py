"""Projects and their members: create, rename, archive / restore, invite by a link (a secret code) or by a member's
account id, join, leave, remove. The owner cannot leave (they archive instead); only the owner removes, renames and
archives."""
from __future__ import annotations

import secrets
import time
from typing import Any

import sqlalchemy as sa

from ..accounts.identity import Account
from ..accounts.tables import accounts, project_members, projects
from .access import ProjectError, project_row

NAME_MAX = 80


def _name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX:
        raise ProjectError(f"A project's name is 1 to {NAME_MAX} characters.")
    return name


class Membership:
    def create_project(self, account: Account, name: str) -> dict[str, Any]:
        name = _name(name)
        project_id, now = secrets.token_hex(8), time.time()
        with self.db.begin() as conn:
            conn.execute(projects.insert().values(id=project_id, name=name, owner_id=account.id, invite=secrets.token_urlsafe(12),
                                                  created_at=now, updated_at=now))
            conn.execute(project_members.insert().values(project_id=project_id, account_id=account.id, role="owner", joined_at=now))
        return self.project(account, project_id)

    def projects(self, account: Account, archived: bool = False) -> list[dict[str, Any]]:
        """The account's projects (the selector), newest change first; archived ones only when asked."""
        query = (sa.select(projects.c.id, projects.c.name, projects.c.archived_at, project_members.c.role)
                 .join(project_members, project_members.c.project_id == projects.c.id)
                 .where(project_members.c.account_id == account.id))
        if not archived:
            query = query.where(projects.c.archived_at.is_(None))
        with self.db.engine.connect() as conn:
            rows = conn.execute(query.order_by(projects.c.updated_at.desc(), projects.c.id)).all()
        return [{"id": r.id, "name": r.name, "role": r.role, "archived": r.archived_at is not None} for r in rows]

    def project(self, account: Account, project_id: str) -> dict[str, Any]:
        with self.db.engine.connect() as conn:
            row = project_row(conn, account, project_id)
            members = conn.execute(sa.select(project_members.c.account_id, project_members.c.role, accounts.c.display_name)
                                   .join(accounts, accounts.c.id == project_members.c.account_id)
                                   .where(project_members.c.project_id == row.id).order_by(project_members.c.joined_at)).all()
        out = {"id": row.id, "name": row.name, "role": row.role, "archived": row.archived_at is not None,
               "members": [{"account_id": m.account_id, "name": m.display_name or m.account_id, "role": m.role} for m in members]}
        if row.role == "owner":
            out["invite"] = row.invite  # the link's secret: the owner shares it
        return out

    def _owned(self, conn: sa.Connection, account: Account, project_id: str):
        row = project_row(conn, account, project_id)
        if row.role != "owner":
            raise ProjectError(f"Only the owner of “{row.name}” can do that.")
        return row

    def rename_project(self, account: Account, project_id: str, name: str) -> dict[str, Any]:
        name = _name(name)
        with self.db.begin() as conn:
            row = self._owned(conn, account, project_id)
            conn.execute(projects.update().where(projects.c.id == row.id).values(name=name, updated_at=time.time()))
        return self.project(account, project_id)

    def archive_project(self, account: Account, project_id: str, archived: bool = True) -> dict[str, Any]:
        with self.db.begin() as conn:
            row = self._owned(conn, account, project_id)
            conn.execute(projects.update().where(projects.c.id == row.id).values(
                archived_at=time.time() if archived else None, updated_at=time.time()))
        return self.project(account, project_id)

    def join_project(self, account: Account, invite: str) -> dict[str, Any]:
        """Join through an invite link's code."""
        with self.db.begin() as conn:
            row = conn.execute(sa.select(projects).where(projects.c.invite == str(invite or "").strip())).first()
            if row is None:
                raise ProjectError("This invite link is not valid (any more): ask the project's owner for a new one.")
            self._add(conn, row.id, account.id)
        return self.project(account, row.id)

    def add_member(self, account: Account, project_id: str, member_id: str) -> dict[str, Any]:
        """The owner adds a member by their account id (each visitor sees theirs in the Projects tab's members panel)."""
        with self.db.begin() as conn:
            row = self._owned(conn, account, project_id)
            if conn.execute(sa.select(accounts.c.id).where(accounts.c.id == str(member_id or "").strip())).first() is None:
                raise ProjectError(f"No account {member_id!r}: ask them for the member id their Projects tab shows.")
            self._add(conn, row.id, str(member_id).strip())
        return self.project(account, project_id)

    @staticmethod
    def _add(conn: sa.Connection, project_id: str, account_id: str) -> None:
        exists = conn.execute(sa.select(project_members.c.role).where(project_members.c.project_id == project_id,
                                                                      project_members.c.account_id == account_id)).first()
        if exists is None:
            conn.execute(project_members.insert().values(project_id=project_id, account_id=account_id, role="member",
                                                         joined_at=time.time()))

    def leave_project(self, account: Account, project_id: str) -> dict[str, Any]:
        with self.db.begin() as conn:
            row = project_row(conn, account, project_id)
            if row.role == "owner":
                raise ProjectError("The owner cannot leave their project: archive it instead.")
            conn.execute(project_members.delete().where(project_members.c.project_id == row.id,
                                                        project_members.c.account_id == account.id))
        return {"left": project_id}

    def remove_member(self, account: Account, project_id: str, member_id: str) -> dict[str, Any]:
        """The owner removes a member: they lose access at once (every read checks membership)."""
        with self.db.begin() as conn:
            row = self._owned(conn, account, project_id)
            if member_id == account.id:
                raise ProjectError("The owner cannot remove themselves: archive the project instead.")
            gone = conn.execute(project_members.delete().where(project_members.c.project_id == row.id,
                                                               project_members.c.account_id == str(member_id))).rowcount
            if not gone:
                raise ProjectError(f"{member_id!r} is not a member of “{row.name}”.")
        return self.project(account, project_id)
