"""Characters' card files: export as PNG (V3 with V2 inside, or V2), JSON or CHARX, and import of V1/V2/V3 and
CHARX as a new character (the picture through upload hygiene and the output check).

A mixin of `Characters` (service.py): the card formats themselves are in cards.py."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from PIL import Image

from ...accounts.identity import Account
from ...accounts.tables import character_media, characters
from ..figures import FigureError
from . import card_reading, cards
from .profile import SHOWN, CharacterError, Profile, check_visibility, stored_profile

CARD_FORMATS = ("png-v3", "png-v2", "json", "charx")
EXPORTS = "cards"  # the exports' folder in the outputs folder
EXPORT_KEEP_S = 3600.0  # an export stays downloadable this long; older ones are swept at the next export


if TYPE_CHECKING:  # the class these methods are mixed into
    from .service import Character


class CardFiles:
    # -- cards ---------------------------------------------------------------------------------------------
    def _card_meta(self, conn: sa.Connection, character_id: str) -> dict[str, Any]:
        """The card memory (the one read of the card column: exports and the moderator's view)."""
        return dict(conn.execute(sa.select(characters.c.card).where(characters.c.id == character_id)).scalar() or {})

    def _card_source(self, conn: sa.Connection, viewer: Account | None, row, meta: dict[str, Any]) -> tuple[cards.CardSource, list[str]]:
        """The card's source and the stored names of the gallery images the viewer may export."""
        hidden = self._album_hidden(conn, viewer, row)
        items = conn.execute(sa.select(character_media).where(character_media.c.character_id == row.id, character_media.c.media == "image")
                             .order_by(character_media.c.id)).all()
        gallery = [i.path for i in items if i.public_id not in hidden]
        return cards.CardSource(stored_profile(row.profile), row.figure_id, row.visibility, meta, row.updated_at), gallery

    def export_card(self, viewer: Account | None, character_id: str, format: str = "png-v3") -> Path:
        """The character as png-v3 (ccv3 + chara), png-v2 (chara), json (V3) or charx (zip with the images).

        One file per content: exports live under cards/<content digest>/<name> in the outputs folder (no second
        content-addressed copy), and exports older than EXPORT_KEEP_S are swept, since any can be made again.

        The figure is private: only the owner's export names it (extensions.character_playground.figure_id, so a
        re-import on their figures keeps it) and carries the stored images; anyone else's has neither the figure's id
        nor images with metadata."""
        if format not in CARD_FORMATS:
            raise CharacterError(f"Card format must be one of {', '.join(CARD_FORMATS)}, not {format!r}.")
        with self.db.begin() as conn:
            row = self._readable(conn, viewer, character_id)
            meta = self._card_meta(conn, row.id)
            if not meta.get("creation_date"):  # kept from the first export (or the import)
                meta["creation_date"] = int(time.time())
                conn.execute(characters.update().where(characters.c.id == row.id).values(card=meta))
            source, gallery = self._card_source(conn, viewer, row, meta)
        owner = viewer is not None and viewer.id == row.account_id  # any other export: images without metadata (it names the figure)
        avatar = self._shown(row.avatar["path"], owner) if row.avatar else None
        if format == "json":
            content, suffix = _json_bytes(cards.v3_card(cards.card_data(source, include_figure=owner))), ".json"
        elif format == "charx":
            icon = avatar.read_bytes() if avatar else None
            pictures = [self._shown(name, owner).read_bytes() for name in gallery]
            content, suffix = cards.card_charx(source, icon, pictures, include_figure=owner), ".charx"
        else:
            if avatar is None:
                raise CharacterError("A PNG card needs a main image; export as json, or give the character one.")
            with Image.open(avatar) as opened:
                content, suffix = cards.card_png(opened, cards.card_data(source, include_figure=owner), format[-2:]), ".png"
        exports = self.store.root / EXPORTS
        _sweep(exports, EXPORT_KEEP_S)
        # A readable download name, in a folder named by the content (a changed card never reuses a stale file).
        named = exports / hashlib.sha256(content).hexdigest()[:16] / f"{_slug(row.name)}-{format}{suffix}"
        if not named.exists():
            named.parent.mkdir(parents=True, exist_ok=True)
            partial = named.with_name(named.name + ".part")
            partial.write_bytes(content)
            os.replace(partial, named)
        return named

    def _with_import_defaults(self, profile: dict[str, Any]) -> Profile:
        """Cards from other tools have no intro and may have no tags: the intro becomes the description's first
        sentence and the tag "imported", so the card imports and its owner can edit them."""
        fields = profile["fields"]
        intro = profile["intro"]
        if not intro.strip():
            first = (fields.get("description") or fields.get("creator_notes") or "").strip().split("\n")[0]
            sentence = first.split(". ")[0].strip()
            intro = (sentence if len(sentence) <= self.limits.max_intro else sentence[: self.limits.max_intro - 1] + "…") or "Imported character."
        tags = profile["tags"] or ("imported",)
        return Profile(**dict(profile, intro=intro, tags=tags))

    def import_card(self, account: Account, upload: str | bytes, visibility: str = "", filename: str = "") -> Character:
        """A new character from a V1/V2/V3 card (PNG, JSON) or a CHARX. It never replaces one of yours: a card with
        the name of an existing character becomes a second character. `visibility` "" keeps the card's own
        (private when it names none). The picture goes through upload hygiene and the output check."""
        if isinstance(upload, (str, Path)):
            path = Path(upload)
            if not path.is_file():
                raise CharacterError("The card file is missing; upload it again.")
            if path.stat().st_size > cards.CHARX_MAX_BYTES:
                raise CharacterError(f"{path.name} is larger than {cards.CHARX_MAX_BYTES // 1_000_000} MB.")
            content, filename = path.read_bytes(), filename or path.name
        else:
            content = bytes(upload)
            if len(content) > cards.CHARX_MAX_BYTES:
                raise CharacterError(f"The card is larger than {cards.CHARX_MAX_BYTES // 1_000_000} MB.")
        # Everything is read and checked before anything is stored: the card (bounded, cards.py), the profile,
        # the visibility and, for a shown character, that the output check can pass its picture at all.
        imported = card_reading.read_card_file(content, filename, max_picture=self.uploads.max_bytes)
        cleaned = self.clean(account, self._with_import_defaults(imported.profile))
        visibility = check_visibility(visibility or imported.visibility or "private")
        if imported.avatar is not None and visibility in SHOWN and not self.check_enabled:
            self._require_shown_image(visibility, {"safety": "unchecked"}, "card's picture")
        figure_id = None
        if imported.figure_id:  # the figure is kept only when it is the importer's own
            try:
                figure_id = self.figures.get(account, imported.figure_id).id
            except FigureError:
                figure_id = None
        avatar = None
        if imported.avatar is not None:
            avatar = self._avatar_from_upload(imported.avatar)
            avatar["source"] = "import"
        elif figure_id:  # a card without a picture (JSON) on one of your figures: its canonical image
            with self.db.engine.connect() as conn:
                avatar = self._avatar_from_figure(conn, account, figure_id)
        self._require_shown_image(visibility, avatar, "card's picture")
        meta = dict(imported.meta)
        meta.setdefault("creation_date", int(time.time()))
        return self._insert(account, cleaned, visibility, figure_id, avatar, meta)


def _json_bytes(card: dict[str, Any]) -> bytes:
    return json.dumps(card, ensure_ascii=False, indent=1).encode("utf-8")


def _sweep(folder: Path, keep_s: float) -> None:
    """Remove export folders older than keep_s (every export can be made again)."""
    if not folder.is_dir():
        return
    cutoff = time.time() - keep_s
    for entry in folder.iterdir():
        try:
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        except OSError:  # another export swept it first
            continue


def _slug(name: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return "-".join(part for part in slug.split("-") if part)[:40] or "character"

