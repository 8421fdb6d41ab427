"""Refs: photos of characters, locations and objects that guide generation. Each has a kind and a name, and comes
from an upload (upload hygiene: bounded in bytes and pixels before decoding, then the output check), a version's
image ("save shot as ref"), or one of your figures' canonical images. A card's refs belong to the direction it
shows: a fork starts with its source image, and refs added later go to the direction in view."""
from __future__ import annotations

import secrets
import time
from typing import Any

import sqlalchemy as sa
from PIL import Image

from ..accounts.identity import Account
from ..accounts.tables import project_cards, project_directions, project_refs
from ..media.png import encode_png
from ..safety.output import check_all
from ..safety.uploads import load_image
from .access import ProjectError, card_row, project_row, ref_row, version_row, writable

NAME_MAX = 80


def ref_view(row) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "name": row.name, "file": row.file, "source": row.source,
            "version_id": row.version_id, "created_by": row.created_by}


class Refs:
    def _ref_fields(self, kind: str, name: str) -> tuple[str, str]:
        if kind not in self.settings.ref_kinds:
            raise ProjectError(f"A ref's kind is one of {', '.join(self.settings.ref_kinds)}.")
        name = (name or "").strip()
        if not name or len(name) > NAME_MAX:
            raise ProjectError(f"A ref's name is 1 to {NAME_MAX} characters.")
        return kind, name

    def _insert_ref(self, account: Account, project_id: str, kind: str, name: str, file: str, source: str,
                    version_id: str | None = None) -> dict[str, Any]:
        ref_id = secrets.token_hex(8)
        with self.db.begin() as conn:
            writable(project_row(conn, account, project_id))
            conn.execute(project_refs.insert().values(id=ref_id, project_id=project_id, kind=kind, name=name, file=file,
                                                      source=source, version_id=version_id, created_by=account.id,
                                                      created_at=time.time()))
            return ref_view(conn.execute(sa.select(project_refs).where(project_refs.c.id == ref_id)).first())

    def _stored_image(self, image: Image.Image) -> str:
        """A checked picture stored as a PNG without any metadata (what a ref or an uploaded version keeps)."""
        verdict = check_all(self.safety, [image])[0]
        if verdict.flagged:
            raise ProjectError(f"The output check flagged this image ({verdict.reason}); projects keep SFW images only. "
                               "Nothing was saved.")
        return self.store.relative(self.store.put(encode_png(image), ".png"))

    def add_ref(self, account: Account, project_id: str, kind: str, name: str, upload) -> dict[str, Any]:
        """An uploaded photo as a ref (bounded before decoding, checked, stored without its metadata)."""
        kind, name = self._ref_fields(kind, name)
        with self.db.engine.connect() as conn:
            writable(project_row(conn, account, project_id))
        image = load_image(upload, self.uploads).convert("RGB")
        return self._insert_ref(account, project_id, kind, name, self._stored_image(image), "upload")

    def save_shot(self, account: Account, version_id: str, name: str = "", kind: str = "object") -> dict[str, Any]:
        """A version's image as a ref of its project ("save shot as ref"): the same stored file, no copy."""
        with self.db.engine.connect() as conn:
            version = version_row(conn, account, version_id)
        if not version.file:
            raise ProjectError(f"v{version.number} has no image yet ({version.status}).")
        kind, name = self._ref_fields(kind, name or f"v{version.number}")
        return self._insert_ref(account, version.project_id, kind, name, version.file, "shot", version.id)

    def ref_from_figure(self, account: Account, project_id: str, figure_id: str, name: str = "") -> dict[str, Any]:
        """One of your figures' canonical images as a character ref (a copy without the generation's settings)."""
        with self.db.engine.connect() as conn:  # the project first: a non-member learns nothing of it or the figure
            writable(project_row(conn, account, project_id))
        figure = self.figures.get(account, figure_id)
        if figure.canonical_path is None:
            raise ProjectError(f"{figure.name} has no canonical image yet: pick one in All Figures.")
        with Image.open(figure.canonical_path) as opened:
            image = opened.convert("RGB")
        kind, name = self._ref_fields("character", name or figure.name)
        return self._insert_ref(account, project_id, kind, name, self.store.relative(self.store.put(encode_png(image), ".png")),
                                "figure")

    def refs(self, account: Account, project_id: str) -> list[dict[str, Any]]:
        with self.db.engine.connect() as conn:
            project_row(conn, account, project_id)
            rows = conn.execute(sa.select(project_refs).where(project_refs.c.project_id == project_id)
                                .order_by(project_refs.c.created_at.desc(), project_refs.c.id)).all()
        return [ref_view(r) for r in rows]

    def attach_ref(self, account: Account, card_id: str, ref_id: str, attached: bool = True) -> dict[str, Any]:
        """Add a project ref to (or take it off) the direction the card shows."""
        with self.db.begin() as conn:
            card = card_row(conn, account, card_id)
            writable(project_row(conn, account, card.project_id))
            ref = ref_row(conn, account, ref_id)
            if ref.project_id != card.project_id:
                raise ProjectError(f"No ref {ref_id!r} in this card's project.")
            direction = conn.execute(sa.select(project_directions).where(project_directions.c.id == card.direction_id)).first()
            refs = [r for r in (direction.refs or []) if r != ref.id]
            if attached:
                refs.append(ref.id)
            conn.execute(project_directions.update().where(project_directions.c.id == direction.id).values(refs=refs))
            conn.execute(project_cards.update().where(project_cards.c.id == card.id).values(updated_at=time.time()))
        return self.card(account, card_id)
