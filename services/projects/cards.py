"""Cards, their drafts and settings, directions (forks), and what a member does to a version: view it, restore its
prompt, approve / reject / favourite it, fork from it. Generation and uploads are in generation.py; refs in refs.py.

A card's draft carries a revision: a save names the revision it was written on, and a save on a stale revision is
refused with a message (two members never overwrite each other silently, whichever instance serves them)."""
from __future__ import annotations

import secrets
import time
from typing import Any

import sqlalchemy as sa

from ..accounts.identity import Account
from ..accounts.tables import project_cards, project_directions, project_refs, project_versions
from .access import ProjectError, card_row, direction_row, project_row, version_row, writable

TITLE_MAX = 120
DRAFT_MAX = 2000  # the prompt policy's natural limit
REVIEWS = ("approved", "rejected", "none")


def version_view(row, store=None) -> dict[str, Any]:
    """A version as every view shows it (thumbnails, badges, the exact lineage fields)."""
    return {"id": row.id, "card_id": row.card_id, "direction_id": row.direction_id, "parent_version_id": row.parent_version_id,
            "number": row.number, "prompt": row.prompt, "refined": row.refined, "settings": dict(row.settings or {}),
            "refs": list(row.refs or []), "status": row.status, "error": row.error, "generation_id": row.generation_id,
            "file": row.file, "review": row.review, "favourite": bool(row.favourite), "revision": row.revision,
            "created_by": row.created_by, "created_at": row.created_at, "uploaded": row.status == "uploaded"}


class Cards:
    # -- cards ------------------------------------------------------------------------------------------------
    def create_card(self, account: Account, project_id: str, title: str = "", prompt: str = "",
                    settings: dict[str, Any] | None = None) -> dict[str, Any]:
        card_id, direction_id, now = secrets.token_hex(8), secrets.token_hex(8), time.time()
        chosen = self._checked_settings(dict(self.settings.default_settings(), **(settings or {})))
        prompt = self._checked_draft(prompt)
        with self.db.begin() as conn:
            project = project_row(conn, account, project_id)
            writable(project)
            title = (title or "").strip() or f"Card {1 + self._card_count(conn, project.id)}"
            if len(title) > TITLE_MAX:
                raise ProjectError(f"A card's title is at most {TITLE_MAX} characters.")
            conn.execute(project_cards.insert().values(
                id=card_id, project_id=project.id, title=title, draft=prompt, settings=chosen, direction_id=direction_id,
                revision=0, created_by=account.id, created_at=now, updated_at=now))
            conn.execute(project_directions.insert().values(id=direction_id, card_id=card_id, name="Main", refs=[],
                                                            created_by=account.id, created_at=now))
        return self.card(account, card_id)

    @staticmethod
    def _card_count(conn: sa.Connection, project_id: str) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(project_cards)
                                .where(project_cards.c.project_id == project_id)).scalar())

    def cards(self, account: Account, project_id: str) -> list[dict[str, Any]]:
        with self.db.engine.connect() as conn:
            project = project_row(conn, account, project_id)
            rows = conn.execute(sa.select(project_cards.c.id, project_cards.c.title, project_cards.c.updated_at)
                                .where(project_cards.c.project_id == project.id)
                                .order_by(project_cards.c.updated_at.desc(), project_cards.c.id)).all()
        return [{"id": r.id, "title": r.title} for r in rows]

    def card(self, account: Account, card_id: str, version_id: str = "") -> dict[str, Any]:
        """The card as its page shows it: the draft and its revision, settings, refs of the shown direction, the
        direction strip, the direction's versions (thumbnails), and the version viewed (latest when none is named)."""
        with self.db.engine.connect() as conn:
            row = card_row(conn, account, card_id)
            directions = conn.execute(sa.select(project_directions).where(project_directions.c.card_id == row.id)
                                      .order_by(project_directions.c.created_at, project_directions.c.id)).all()
            versions = conn.execute(sa.select(project_versions).where(project_versions.c.card_id == row.id)
                                    .order_by(project_versions.c.number)).all()
            current = next((d for d in directions if d.id == row.direction_id), directions[0])
            ref_ids = list(current.refs or [])
            refs = {r.id: r for r in conn.execute(sa.select(project_refs).where(project_refs.c.id.in_(ref_ids))).all()} if ref_ids else {}
        shown = [version_view(v) for v in versions if v.direction_id == current.id]
        latest = shown[-1]["id"] if shown else None
        viewed = next((v for v in (version_view(v) for v in versions) if v["id"] == version_id), None) if version_id else None
        if version_id and viewed is None:
            raise ProjectError(f"No version {version_id!r} on this card.")
        viewed = viewed or (shown[-1] if shown else None)
        return {
            "id": row.id, "project_id": row.project_id, "title": row.title, "draft": row.draft, "revision": row.revision,
            "settings": dict(row.settings), "scene_id": row.scene_id,
            "direction": {"id": current.id, "name": current.name, "parent_version_id": current.parent_version_id},
            "directions": [{"id": d.id, "name": d.name, "parent_version_id": d.parent_version_id} for d in directions],
            "refs": [{"id": i, "kind": refs[i].kind, "name": refs[i].name, "file": refs[i].file} for i in ref_ids if i in refs],
            "versions": shown, "latest": latest, "viewing": viewed,
            "banner": (f"Viewing v{viewed['number']} in “{next(d.name for d in directions if d.id == viewed['direction_id'])}”"
                       + ("" if viewed["id"] == latest else " (not the latest)")) if viewed else "No versions yet",
            "generating": sum(1 for v in versions if v.status == "generating"),
        }

    def rename_card(self, account: Account, card_id: str, title: str) -> dict[str, Any]:
        title = (title or "").strip()
        if not title or len(title) > TITLE_MAX:
            raise ProjectError(f"A card's title is 1 to {TITLE_MAX} characters.")
        with self.db.begin() as conn:
            row = card_row(conn, account, card_id)
            writable(project_row(conn, account, row.project_id))
            conn.execute(project_cards.update().where(project_cards.c.id == row.id).values(title=title, updated_at=time.time()))
        return self.card(account, card_id)

    # -- drafts and settings ----------------------------------------------------------------------------------
    @staticmethod
    def _checked_draft(text: str) -> str:
        text = (text or "").strip()
        if len(text) > DRAFT_MAX:
            raise ProjectError(f"A prompt is at most {DRAFT_MAX:,} characters; this one has {len(text):,}.")
        return text

    def save_draft(self, account: Account, card_id: str, draft: str, revision: int) -> dict[str, Any]:
        """Save the prompt being written. `revision` is the one the text was written on: if someone saved since, this
        save is refused (nothing is lost: the caller keeps the text) and says so."""
        draft = self._checked_draft(draft)
        with self.db.begin() as conn:
            row = card_row(conn, account, card_id)
            writable(project_row(conn, account, row.project_id))
            changed = conn.execute(project_cards.update().where(project_cards.c.id == row.id, project_cards.c.revision == int(revision))
                                   .values(draft=draft, revision=project_cards.c.revision + 1, updated_at=time.time())).rowcount
        if not changed:
            raise ProjectError(f"Someone saved this card's prompt since you opened it (it is at revision {row.revision}, yours "
                               f"was {int(revision)}): your text was not saved. Copy it, reload the card, and save again.")
        return self.card(account, card_id)

    def _checked_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        chosen = {"resolution": str(settings.get("resolution")), "aspect_ratio": str(settings.get("aspect_ratio")),
                  "model_class": str(settings.get("model_class")), "count": settings.get("count")}
        if chosen["resolution"] not in s.resolutions:
            raise ProjectError(f"Resolution is one of {', '.join(s.resolutions)}.")
        if chosen["aspect_ratio"] not in s.aspect_ratios:
            raise ProjectError(f"Aspect ratio is one of {', '.join(s.aspect_ratios)}.")
        if chosen["model_class"] not in s.model_classes:
            raise ProjectError(f"Model class is one of {', '.join(s.model_classes)}.")
        try:
            chosen["count"] = int(chosen["count"])
        except (TypeError, ValueError):
            chosen["count"] = 0
        if chosen["count"] not in s.counts:
            raise ProjectError(f"Count is one of {', '.join(map(str, s.counts))}.")
        return chosen

    def card_settings(self, account: Account, card_id: str, **changes: Any) -> dict[str, Any]:
        with self.db.begin() as conn:
            row = card_row(conn, account, card_id)
            writable(project_row(conn, account, row.project_id))
            chosen = self._checked_settings(dict(row.settings, **{k: v for k, v in changes.items() if v not in (None, "")}))
            conn.execute(project_cards.update().where(project_cards.c.id == row.id).values(settings=chosen, updated_at=time.time()))
        return self.card(account, card_id)

    # -- directions -------------------------------------------------------------------------------------------
    def switch_direction(self, account: Account, card_id: str, direction_id: str) -> dict[str, Any]:
        with self.db.begin() as conn:
            row = card_row(conn, account, card_id)
            direction = direction_row(conn, account, direction_id)
            if direction.card_id != row.id:
                raise ProjectError(f"No direction {direction_id!r} on this card.")
            conn.execute(project_cards.update().where(project_cards.c.id == row.id).values(direction_id=direction.id))
        return self.card(account, card_id)

    def rename_direction(self, account: Account, direction_id: str, name: str) -> dict[str, Any]:
        name = (name or "").strip()
        if not name or len(name) > 80:
            raise ProjectError("A direction's name is 1 to 80 characters.")
        with self.db.begin() as conn:
            direction = direction_row(conn, account, direction_id)
            conn.execute(project_directions.update().where(project_directions.c.id == direction.id).values(name=name))
        return self.card(account, direction.card_id)

    def fork(self, account: Account, version_id: str, name: str = "") -> dict[str, Any]:
        """A new direction from a version: its first ref is the version's image (saved as a ref), the card switches to it."""
        with self.db.engine.connect() as conn:
            version = version_row(conn, account, version_id)
        if not version.file:
            raise ProjectError(f"v{version.number} has no image yet (it is {version.status}): fork from a finished version.")
        name = (name or "").strip() or f"Fork of v{version.number}"
        ref = self.save_shot(account, version_id, name=f"v{version.number}", kind="object")
        direction_id, now = secrets.token_hex(8), time.time()
        with self.db.begin() as conn:
            card = card_row(conn, account, version.card_id)
            writable(project_row(conn, account, card.project_id))
            conn.execute(project_directions.insert().values(id=direction_id, card_id=card.id, name=name[:80],
                                                            parent_version_id=version.id, refs=[ref["id"]],
                                                            created_by=account.id, created_at=now))
            conn.execute(project_cards.update().where(project_cards.c.id == card.id).values(direction_id=direction_id, updated_at=now))
        return self.card(account, version.card_id)

    # -- a version --------------------------------------------------------------------------------------------
    def version(self, account: Account, version_id: str) -> dict[str, Any]:
        """One version with its lineage: every parent up to the card's first version, and the direction it is in."""
        with self.db.engine.connect() as conn:
            row = version_row(conn, account, version_id)
            direction = conn.execute(sa.select(project_directions).where(project_directions.c.id == row.direction_id)).first()
            chain, parent = [], row.parent_version_id
            while parent:
                up = conn.execute(sa.select(project_versions.c.id, project_versions.c.number, project_versions.c.parent_version_id)
                                  .where(project_versions.c.id == parent)).first()
                if up is None or len(chain) > 1000:
                    break
                chain.append({"id": up.id, "number": up.number})
                parent = up.parent_version_id
        return dict(version_view(row), project_id=row.project_id, lineage=chain,
                    direction={"id": direction.id, "name": direction.name, "parent_version_id": direction.parent_version_id})

    def restore(self, account: Account, version_id: str) -> dict[str, Any]:
        """Put the version's prompt (as typed) back in the card's editor (a new draft revision)."""
        with self.db.begin() as conn:
            row = version_row(conn, account, version_id)
            writable(project_row(conn, account, row.project_id))
            conn.execute(project_cards.update().where(project_cards.c.id == row.card_id).values(
                draft=row.prompt, revision=project_cards.c.revision + 1, direction_id=row.direction_id, updated_at=time.time()))
        return self.card(account, row.card_id, version_id)

    def review_version(self, account: Account, version_id: str, review: str) -> dict[str, Any]:
        """Approve (into the showcase), reject, or clear: this version only."""
        if review not in REVIEWS:
            raise ProjectError(f"A review is one of {', '.join(REVIEWS)}.")
        with self.db.begin() as conn:
            row = version_row(conn, account, version_id)
            writable(project_row(conn, account, row.project_id))
            if review == "approved" and row.status not in ("done", "uploaded"):
                raise ProjectError(f"v{row.number} is {row.status}: only a finished version can be approved.")
            conn.execute(project_versions.update().where(project_versions.c.id == row.id).values(
                review=review, revision=project_versions.c.revision + 1))
        return self.version(account, version_id)

    def favourite(self, account: Account, version_id: str, on: bool = True) -> dict[str, Any]:
        with self.db.begin() as conn:
            row = version_row(conn, account, version_id)
            conn.execute(project_versions.update().where(project_versions.c.id == row.id).values(
                favourite=bool(on), revision=project_versions.c.revision + 1))
        return self.version(account, version_id)
