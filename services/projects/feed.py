"""The project's feed and showcase: finished versions, newest first, filtered in the database (Approved, Mine, a
prompt search of at least `search_min` characters), in two views over the same rows: Cards (the full card: title,
prompt, status) and Gallery (compact: image, version badge, status dot)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..accounts.identity import Account
from ..accounts.tables import project_cards, project_versions
from .access import ProjectError, project_row

VIEWS = ("cards", "gallery")


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class Feed:
    def feed(self, account: Account, project_id: str, approved: bool = False, mine: bool = False, search: str = "",
             view: str = "cards", page: int = 1) -> dict[str, Any]:
        if view not in VIEWS:
            raise ProjectError(f"A feed view is one of {', '.join(VIEWS)}.")
        search = (search or "").strip()
        if search and len(search) < self.settings.search_min:
            raise ProjectError(f"Search needs at least {self.settings.search_min} characters.")
        size = self.settings.feed_page
        page = max(1, int(page or 1))
        where = [project_cards.c.project_id == project_id, project_versions.c.status.in_(("done", "uploaded"))]
        if approved:
            where.append(project_versions.c.review == "approved")
        if mine:
            where.append(project_versions.c.created_by == account.id)
        if search:
            pattern = _like(search.casefold())
            where.append(sa.or_(sa.func.lower(project_versions.c.prompt).like(pattern, escape="\\"),
                                sa.func.lower(project_versions.c.refined).like(pattern, escape="\\")))
        columns = [project_versions.c.id, project_versions.c.card_id, project_versions.c.number, project_versions.c.file,
                   project_versions.c.review, project_versions.c.favourite, project_versions.c.status,
                   project_versions.c.created_by, project_versions.c.created_at]
        if view == "cards":
            columns += [project_versions.c.prompt, project_versions.c.refined, project_cards.c.title]
        with self.db.engine.connect() as conn:
            project_row(conn, account, project_id)
            base = sa.select(*columns).join(project_cards, project_cards.c.id == project_versions.c.card_id).where(*where)
            total = int(conn.execute(sa.select(sa.func.count()).select_from(base.subquery())).scalar())
            rows = conn.execute(base.order_by(project_versions.c.created_at.desc(), project_versions.c.id)
                                .limit(size).offset((page - 1) * size)).all()
        items = []
        for r in rows:
            item = {"id": r.id, "card_id": r.card_id, "number": r.number, "file": r.file, "review": r.review,
                    "favourite": bool(r.favourite), "uploaded": r.status == "uploaded", "mine": r.created_by == account.id}
            if view == "cards":
                item.update(title=r.title, prompt=r.prompt, refined=r.refined)
            items.append(item)
        return {"view": view, "page": page, "pages": max(1, -(-total // size)), "total": total, "items": items,
                "filters": {"approved": bool(approved), "mine": bool(mine), "search": search}}

    def showcase(self, account: Account, project_id: str, view: str = "gallery", page: int = 1) -> dict[str, Any]:
        """The project's shared showcase: its approved versions."""
        return self.feed(account, project_id, approved=True, view=view, page=page)
