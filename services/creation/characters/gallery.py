"""Characters' galleries: images and videos generated here (never uploads), paged, with the album's images hidden
from those who have not unlocked it; and the edit of the main image, which joins the gallery (on a figure-backed
character, with the figure's style register locked, as Edit does for an image of a figure). Anyone but the owner and
QA sessions gets the files without their metadata (avatars.py `_shown`), which would name the figure.

A mixin of `Characters` (service.py): it uses that class's reads (`_own`, `_readable`) and its stores."""
from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from PIL import Image

from pipelines.types import StepCallback
from ...accounts.identity import Account
from ...accounts.tables import album_unlocks, character_albums, character_media, characters
from ..figures import FigureError
from .profile import ENABLE_CHECK, SHOWN, CharacterError, article

VIDEO_TASKS = ("image-to-video", "text-to-video")


if TYPE_CHECKING:  # the class these methods are mixed into
    from .service import Character


class Galleries:
    # -- galleries -----------------------------------------------------------------------------------------
    def _require_shown_gallery(self, conn: sa.Connection, character_id: str, visibility: str) -> None:
        unchecked = int(conn.execute(sa.select(sa.func.count()).select_from(character_media).where(
            character_media.c.character_id == character_id, character_media.c.safety != "safe")).scalar())
        if unchecked:
            raise CharacterError(f"{article(visibility)} character's gallery shows only images the output check passed, and "
                                 f"{unchecked} of this one's were not checked; remove them first. "
                                 + (ENABLE_CHECK if not self.check_enabled else ""))

    def gallery(self, viewer: Account | None, character_id: str, media: str = "image", page: int = 1) -> dict[str, Any]:
        """One page of the character's image or video gallery, oldest first (album images only for those who unlocked it)."""
        if media not in ("image", "video"):
            raise CharacterError("A gallery is of images or videos.")
        size = self.limits.gallery_page_size
        page = max(1, int(page or 1))
        with self.db.engine.connect() as conn:
            row = self._readable(conn, viewer, character_id)
            hidden = self._album_hidden(conn, viewer, row)
            query = sa.select(character_media).where(character_media.c.character_id == row.id, character_media.c.media == media)
            if hidden:
                query = query.where(character_media.c.public_id.notin_(hidden))
            total = int(conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar())
            items = conn.execute(query.order_by(character_media.c.id).limit(size).offset((page - 1) * size)).all()
        insider = self._insider(viewer, row)
        return {"page": page, "pages": max(1, -(-total // size)), "total": total, "media": media,
                "items": [self._item(i, insider) for i in items]}

    def _item(self, item, insider: bool = False) -> dict[str, Any]:
        """One gallery file as a viewer gets it (`insider`: the owner or a QA session gets the stored file)."""
        return {"id": item.public_id, "media": item.media, "file": str(self._shown(item.path, insider)),
                "poster": str(self._shown(item.poster, insider)) if item.poster else None, "safety": item.safety,
                "origin": item.origin, "request_id": item.generation_id, "index": item.idx}

    def _album_hidden(self, conn: sa.Connection, viewer: Account | None, row) -> list[str]:
        """The album's images, for a viewer who may not see them yet (not the owner, QA or a buyer)."""
        album = conn.execute(sa.select(character_albums).where(character_albums.c.character_id == row.id)).first()
        if album is None or (viewer is not None and (viewer.id == row.account_id or viewer.can("review"))):
            return []
        if viewer is not None and conn.execute(sa.select(album_unlocks.c.id).where(
                album_unlocks.c.character_id == row.id, album_unlocks.c.buyer_id == viewer.id)).first():
            return []
        return list(album.items)

    def gallery_add(self, account: Account, character_id: str, request_id: str, index: int = 0, origin: str = "generated") -> Character:
        """Add one of your generated images or videos (never an upload, never another user's) to the gallery."""
        with self.db.begin() as conn:
            row = self._own(conn, account, character_id)
            item = self._file(conn, account.id, request_id, index)
            if item is None:
                raise CharacterError("That file is not among your generations; a gallery holds only images and videos generated here.")
            if item.media == "video" and item.task not in VIDEO_TASKS:
                raise CharacterError("That video was not made by Figure to Video or Image to Video.")
            if item.safety == "flagged":
                raise CharacterError("A gallery is SFW, and the output check flagged that file.")
            if row.visibility in SHOWN and item.safety != "safe":
                raise CharacterError(f"{article(row.visibility)} character's gallery shows only files the output check passed; "
                                     "this one was not checked. " + (ENABLE_CHECK if not self.check_enabled else ""))
            exists = conn.execute(sa.select(character_media.c.id).where(
                character_media.c.character_id == row.id, character_media.c.generation_id == request_id,
                character_media.c.idx == int(index))).first()
            if exists:
                raise CharacterError("That file is already in the gallery.")
            conn.execute(character_media.insert().values(
                public_id=secrets.token_hex(8), character_id=row.id, media=item.media, generation_id=request_id, idx=int(index),
                path=item.path, poster=item.poster, safety=item.safety, origin=origin, created_at=time.time()))
            conn.execute(characters.update().where(characters.c.id == row.id).values(updated_at=time.time()))
        return self.get(account, character_id)

    def gallery_remove(self, account: Account, character_id: str, media_id: str) -> Character:
        with self.db.begin() as conn:
            row = self._own(conn, account, character_id)
            album = conn.execute(sa.select(character_albums).where(character_albums.c.character_id == row.id)).first()
            if album is not None and media_id in album.items:
                raise CharacterError("That image is in the photo album; offer the album without it first, then remove it.")
            gone = conn.execute(character_media.delete().where(character_media.c.public_id == (media_id or ""),
                                                               character_media.c.character_id == row.id)).rowcount
            if not gone:
                raise CharacterError("That file is not in this character's gallery.")
        return self.get(account, character_id)

    def edit_main(self, account: Account, character_id: str, instruction: str, model: str, seed: int | None = None,
                  idempotency_key: str | None = None, on_step: StepCallback | None = None) -> Character:
        """The edit path with the main image as its base (SFW); the result joins the gallery. On a figure-backed
        character the edit keeps the figure's style register (the output's metadata records it, `style_register`),
        and the request records the figure's reference the main image keeps (`edit_of.figure_reference`)."""
        with self.db.engine.connect() as conn:
            row = self._own(conn, account, character_id)
        if not row.avatar:
            raise CharacterError("This character has no main image to edit yet.")
        with Image.open(self.store.path(row.avatar["path"])) as opened:
            base = opened.convert("RGB")
        context: dict[str, Any] = {"edit_of": {"character_id": row.id, "main_image": row.avatar["path"]}}
        lock = None
        if row.figure_id:
            try:
                reference = self.figures.reference(account, row.figure_id)
            except FigureError:  # the figure was deleted: a plain edit
                reference = None
            if reference is not None:
                lock = self.figures.style_lock(reference, True)
                context["edit_of"]["figure_reference"] = reference.source
                context["keep_style"] = True
        output = self.remix.edit_picture(account, base, instruction=instruction, model=model, seed=seed, context=context,
                                         idempotency_key=idempotency_key, on_step=on_step, lock=lock,
                                         figure_ids=[row.figure_id] if "figure_reference" in context["edit_of"] else [])
        return self.gallery_add(account, character_id, output.request_id, 0, origin="edit")
