"""Characters: profiles with a visibility, a main image that must be SFW, moderation of public ones, the public
catalogue, galleries of images and videos generated here, and card import and export.

Who sees what (every by-id read goes through `_readable`):
- the owner, and QA sessions (they moderate), always;
- anyone, signed in or not, a public character a QA session verified, and an unlisted one by its id;
- nobody else: a private character, or a public one that is pending or rejected, reads as "no such character".

The main image (avatar) of a public or unlisted character must be one the output check passed ("safe"): an image the
check flagged is never a main image, and one no check ran on ("unchecked") is allowed on private characters only.
A new public character, or a change to a public one, waits for a QA session's verdict before it is listed.
The optional cover image follows the main image's rules.

The figure stays private (a figure is never shown to end users): only the owner and QA sessions (they moderate what
is published) see which figure a character is built on; every other read (the character, the catalogue, galleries,
albums, card exports) names neither the figure nor its id, and its pictures are copies without metadata
(avatars.py). A figure-backed character's generated and edited pictures keep the figure's face and style register.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pipelines.types import StepCallback
from ...accounts.db import Database
from ...accounts.identity import Account
from ...accounts.tables import character_albums, character_media, character_tags, characters, figures as figures_table
from ...media.storage import OutputStore
from ...safety.output import SafetyChecker
from ...safety.policy import PromptPolicy, Surface, UploadLimits
from ..figures import FigureError, Figures
from ..remix import ReferenceImages
from ..text import TextImages
from .avatars import AvatarChoice, Avatars, CoverChoice
from .card_files import CARD_FORMATS, CardFiles
from .gallery import Galleries
from .lending import Lending
from .moderation import Moderation, rows
from .profile import (ENABLE_CHECK, SHOWN, CharacterError, CharacterLimits, Profile, article, check_visibility,
                      clean_profile, profile_texts, stored_profile)
from .voices import seeded_on_figure


@dataclass
class Character:
    id: str
    name: str
    figure_id: str | None
    figure_name: str
    visibility: str
    review: str
    review_note: str
    profile: dict[str, Any]
    avatar: dict[str, Any] | None
    image: Path | None
    owned: bool
    created_at: float
    updated_at: float
    album: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    revision: int = 0
    cover: dict[str, Any] | None = None
    cover_image: Path | None = None
    insider: bool = False  # the owner or a QA session: sees the figure (anyone else never does)
    advanced: bool = False  # its creator lets others make Advanced and Group images of it (lending.py)

    @property
    def listed(self) -> bool:
        return self.visibility == "public" and self.review == "verified"

    @property
    def status(self) -> str:
        """One line for the owner: where the character stands and why."""
        unchecked = self.avatar is not None and self.avatar.get("safety") != "safe"
        if self.visibility == "private":
            return "Private: only you see it." + (" Its main image is unchecked (no output check ran)." if unchecked else "")
        if self.visibility == "unlisted":
            return "Unlisted: anyone with its link (its id) can open it; it is not in the catalogue."
        return {
            "pending": "Public, pending: a moderator checks it before it appears in the catalogue.",
            "verified": "Public and verified: it is in the catalogue.",
            "rejected": f"Public, rejected by a moderator: {self.review_note or 'no reason given'}. Change it and save to ask again.",
        }.get(self.review, "Public.")

    def as_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id, "name": self.name,
            "visibility": self.visibility, "review": self.review, "profile": self.profile,
            "intro": self.profile["intro"], "tags": self.profile["tags"],
            "image": str(self.image) if self.image else None,
            "image_check": None if self.avatar is None else self.avatar.get("safety"),
            "avatar_source": None if self.avatar is None else self.avatar.get("source"),
            "cover": str(self.cover_image) if self.cover_image else None,
            "cover_check": None if self.cover is None else self.cover.get("safety"),
            "created_at": self.created_at, "updated_at": self.updated_at, "album": self.album, "counts": self.counts,
            "advanced": self.advanced}
        if self.insider:  # the figure is private: only its owner and QA sessions see which it is
            out.update(figure_id=self.figure_id, figure_name=self.figure_name)
        if self.owned:
            out.update(status=self.status, review_note=self.review_note)
        if self.owned or self.review_note or self.review == "pending":
            out["revision"] = self.revision
        return out


class Characters(Avatars, Galleries, CardFiles, Moderation, Lending):
    def __init__(self, db: Database, figures: Figures, store: OutputStore, policy: PromptPolicy, limits: CharacterLimits,
                 safety: SafetyChecker, uploads: UploadLimits, text: TextImages, remix: ReferenceImages):
        self.db = db
        self.figures = figures
        self.store = store
        self.policy = policy
        self.limits = limits
        self.safety = safety
        self.uploads = uploads
        self.text = text
        self.remix = remix

    @property
    def check_enabled(self) -> bool:
        return self.safety.name != "none"

    # -- checks --------------------------------------------------------------------------------------------
    def clean(self, account: Account, profile: Profile) -> dict[str, Any]:
        """The stored profile, or CharacterError / PromptRefused; characters are SFW adults in every text."""
        cleaned = clean_profile(self.limits, profile)
        for text in profile_texts(cleaned):
            self.policy.check_text(text, account, Surface.CHARACTER)
        return cleaned

    def _require_shown_image(self, visibility: str, avatar: dict[str, Any] | None, what: str = "main image") -> None:
        if visibility not in SHOWN:
            return
        if avatar is None:
            raise CharacterError(f"{article(visibility)} character needs a main image the output check passed: upload one, "
                                 "generate one, or build it on a figure. Or keep it private.")
        if avatar.get("safety") != "safe":
            reason = ("no output check is configured, so this image was never checked" if not self.check_enabled
                      else "the output check did not pass this image")
            raise CharacterError(f"This {what} cannot be the main image of {article(visibility).lower()} character: {reason}. "
                                 + (ENABLE_CHECK if not self.check_enabled else "Pick or make another image, or keep the character private."))

    def _require_shown_cover(self, visibility: str, cover: dict[str, Any] | None) -> None:
        """The cover is optional; when there is one, a public or unlisted character's must have passed the output check."""
        if visibility not in SHOWN or cover is None or cover.get("safety") == "safe":
            return
        reason = ("no output check is configured, so this image was never checked" if not self.check_enabled
                  else "the output check did not pass this image")
        raise CharacterError(f"This image cannot be the cover of {article(visibility).lower()} character: {reason}. "
                             + (ENABLE_CHECK if not self.check_enabled else "Pick or make another cover, remove it, or keep "
                                                                            "the character private."))

    # -- reading -------------------------------------------------------------------------------------------
    @staticmethod
    def _live(character_id: str):
        return sa.and_(characters.c.id == character_id, characters.c.deleted_at.is_(None))

    def _can_read(self, viewer: Account | None, row) -> bool:
        if viewer is not None and (viewer.id == row.account_id or viewer.can("review")):
            return True
        return row.visibility == "unlisted" or (row.visibility == "public" and row.review == "verified")

    def _readable(self, conn: sa.Connection, viewer: Account | None, character_id: str):
        row = conn.execute(rows().where(self._live(character_id or ""))).first()
        if row is None or not self._can_read(viewer, row):
            raise CharacterError(f"No character {character_id!r} that you can open.")
        return row

    def _own(self, conn: sa.Connection, account: Account, character_id: str):
        row = conn.execute(rows().where(self._live(character_id or ""), characters.c.account_id == account.id)).first()
        if row is None:
            raise CharacterError(f"No character {character_id!r} among yours.")
        return row

    @staticmethod
    def _insider(viewer: Account | None, row) -> bool:
        """The owner or a QA session: sees the figure, and the stored files with their metadata."""
        return viewer is not None and (viewer.id == row.account_id or viewer.can("review"))

    def _view(self, conn: sa.Connection, viewer: Account | None, row) -> Character:
        insider = self._insider(viewer, row)
        figure_id, figure_name = (row.figure_id, "") if insider else (None, "")
        if figure_id:
            name = conn.execute(sa.select(figures_table.c.name, figures_table.c.deleted_at).where(figures_table.c.id == row.figure_id)).first()
            figure_name = "(deleted figure)" if name is None or name.deleted_at else name.name
        avatar = dict(row.avatar) if row.avatar else None
        image = self._shown(avatar["path"], insider) if avatar else None
        cover = dict(row.cover) if row.cover else None
        counts = {m: int(conn.execute(sa.select(sa.func.count()).select_from(character_media).where(
            character_media.c.character_id == row.id, character_media.c.media == m)).scalar()) for m in ("image", "video")}
        owned = viewer is not None and viewer.id == row.account_id
        album = conn.execute(sa.select(character_albums).where(character_albums.c.character_id == row.id,
                                                                character_albums.c.withdrawn_at.is_(None))).first()
        album_info = None
        if album is not None:
            album_info = {"price": album.price, "images": len(album.items)}
        return Character(row.id, row.name, figure_id, figure_name, row.visibility, row.review,
                         row.review_note if insider else "",
                         stored_profile(row.profile), avatar, image, owned, row.created_at, row.updated_at, album_info, counts,
                         row.revision, cover, self._shown(cover["path"], insider) if cover else None, insider,
                         bool(row.advanced_shared))

    def get(self, viewer: Account | None, character_id: str) -> Character:
        with self.db.engine.connect() as conn:
            return self._view(conn, viewer, self._readable(conn, viewer, character_id))

    def mine(self, account: Account, character_id: str) -> Character:
        """One of the account's own characters (CharacterError otherwise, even when it may read it)."""
        with self.db.engine.connect() as conn:
            return self._view(conn, account, self._own(conn, account, character_id))

    def list(self, account: Account) -> list[Character]:
        """The account's own characters, most recently changed first."""
        with self.db.engine.connect() as conn:
            found = conn.execute(rows().where(characters.c.account_id == account.id, characters.c.deleted_at.is_(None))
                                 .order_by(characters.c.updated_at.desc())).all()
            return [self._view(conn, account, r) for r in found]

    def catalogue(self, query: str = "", tag: str = "", page: int = 1) -> dict[str, Any]:
        """Verified public characters, newest change first; search by name (substring, any case) and by tag (exact,
        any case). The filters and the page are done by the database (its listing index and the tags table)."""
        size = self.limits.catalogue_page_size
        q, t = (query or "").strip().casefold(), (tag or "").strip().casefold()
        where = [characters.c.deleted_at.is_(None), characters.c.visibility == "public", characters.c.review == "verified"]
        if q:
            where.append(characters.c.name_key.contains(q, autoescape=True))
        if t:
            where.append(characters.c.id.in_(sa.select(character_tags.c.character_id).where(character_tags.c.tag == t)))
        page = max(1, int(page or 1))
        with self.db.engine.connect() as conn:
            total = int(conn.execute(sa.select(sa.func.count()).select_from(characters).where(*where)).scalar())
            found = conn.execute(sa.select(characters.c.id, characters.c.name, characters.c.profile, characters.c.avatar,
                                           characters.c.cover, characters.c.advanced_shared)
                                 .where(*where).order_by(characters.c.updated_at.desc(), characters.c.id)
                                 .limit(size).offset((page - 1) * size)).all()
        shown = []
        for r in found:  # for everyone: never the figure, and pictures without their metadata
            profile = stored_profile(r.profile)
            image = self._shown(r.avatar["path"], False) if r.avatar else None
            cover = self._shown(r.cover["path"], False) if r.cover else image  # the main image stands in for a cover
            shown.append({"id": r.id, "name": r.name, "intro": profile["intro"], "tags": profile["tags"],
                          "image": str(image) if image else None, "cover": str(cover) if cover else None, "advanced": bool(r.advanced_shared)})
        return {"page": page, "pages": max(1, -(-total // size)), "total": total, "characters": shown}

    @staticmethod
    def _index(conn: sa.Connection, character_id: str, cleaned: dict[str, Any]) -> dict[str, Any]:
        """The catalogue's search columns for a saved profile: its tags rows (replaced), and the name key to store."""
        conn.execute(character_tags.delete().where(character_tags.c.character_id == character_id))
        tags = list(dict.fromkeys(str(t).casefold() for t in cleaned["tags"]))
        if tags:
            conn.execute(character_tags.insert(), [{"character_id": character_id, "tag": t} for t in tags])
        return {"name_key": cleaned["fields"]["name"].casefold()[:80]}

    # -- writing -------------------------------------------------------------------------------------------
    def create(self, account: Account, profile: Profile, visibility: str, figure_id: str = "",
               avatar: AvatarChoice = AvatarChoice(), idempotency_key: str | None = None,
               on_step: StepCallback | None = None, cover: CoverChoice = CoverChoice()) -> Character:
        """A new character. Every check runs before anything is written or paid; a generated main image (or cover) is
        paid like any generation (and refunded if it fails). On a figure, generated pictures keep its face and style;
        on a Quick figure, an empty personality starts with its archetype's voice and traits (voices.py)."""
        cleaned = self.clean(account, seeded_on_figure(self.limits, self.figures, account, profile, figure_id))
        visibility = check_visibility(visibility)
        source = avatar.source or ("figure" if figure_id else "upload" if avatar.upload else "generate")
        if source not in ("figure", "upload", "generate"):
            raise CharacterError(f"The main image comes from figure, upload or generate, not {source!r}.")
        if figure_id:
            try:
                self.figures.get(account, figure_id)
            except FigureError as exc:
                raise CharacterError(str(exc)) from None
        if source == "figure" and not figure_id:
            raise CharacterError("Pick the figure whose canonical image becomes the main image.")
        if visibility in SHOWN and not self.check_enabled:
            self._require_shown_image(visibility, {"safety": "unchecked"})
        covered = self._cover_from(account, cover)  # an upload: checked now; a generation: after the main image
        self._require_shown_cover(visibility, covered)
        with self.db.engine.connect() as conn:
            if source == "figure":
                chosen = self._avatar_from_figure(conn, account, figure_id)
            elif source == "upload":
                if not avatar.upload:
                    raise CharacterError("Upload the main image (PNG, JPEG or WEBP).")
                chosen = self._avatar_from_upload(avatar.upload)
            else:
                chosen = None
        if chosen is not None:
            self._require_shown_image(visibility, chosen)
        else:  # generated: everything else is checked; the image is checked by the run's output check
            chosen = self._generate_picture(account, cleaned, avatar, figure_id, "main", idempotency_key, on_step)
            self._require_shown_image(visibility, chosen)
        if cover.source == "generate":
            covered = self._generate_picture(account, cleaned, cover, figure_id, "cover",
                                             f"{idempotency_key}:cover" if idempotency_key else None, on_step)
            self._require_shown_cover(visibility, covered)
        return self._insert(account, cleaned, visibility, figure_id or None, chosen, {}, covered)

    def _insert(self, account: Account, cleaned: dict[str, Any], visibility: str, figure_id: str | None,
                avatar: dict[str, Any] | None, card: dict[str, Any], cover: dict[str, Any] | None = None) -> Character:
        now = time.time()
        character_id = secrets.token_hex(8)
        with self.db.begin() as conn:
            conn.execute(characters.insert().values(
                id=character_id, account_id=account.id, figure_id=figure_id, name=cleaned["fields"]["name"], profile=cleaned,
                visibility=visibility, review="pending" if visibility == "public" else "none", avatar=avatar, card=card, cover=cover,
                created_at=now, updated_at=now, name_key=cleaned["fields"]["name"].casefold()[:80],
            ))
            self._index(conn, character_id, cleaned)
        return self.get(account, character_id)

    def _changed(self, row, values: dict[str, Any]) -> dict[str, Any]:
        """A public character that changes goes back to pending (a verdict given on an earlier revision no longer
        applies); others need no review."""
        visibility = values.get("visibility", row.visibility)
        values["review"] = "pending" if visibility == "public" else "none"
        values["review_note"] = ""
        values["updated_at"] = time.time()
        values["revision"] = characters.c.revision + 1
        return values

    def update(self, account: Account, character_id: str, profile: Profile, visibility: str = "",
               cover: CoverChoice = CoverChoice(), idempotency_key: str | None = None,
               on_step: StepCallback | None = None) -> Character:
        """Change the profile (and visibility, and the cover: `cover.source` "" keeps it, "none" removes it) without
        touching the main image, the figure or the galleries. Everything is checked before a cover is paid for."""
        cleaned = self.clean(account, profile)
        with self.db.engine.connect() as conn:
            row = self._own(conn, account, character_id)
        visibility = check_visibility(visibility or row.visibility)
        self._require_shown_image(visibility, row.avatar)
        if cover.source == "generate" and visibility in SHOWN and not self.check_enabled:
            self._require_shown_cover(visibility, {"safety": "unchecked"})
        covered = self._cover_from(account, cover)
        if cover.source == "generate":
            with self.db.engine.connect() as conn:  # refused before paying when the rest cannot be saved
                if visibility in SHOWN:
                    self._require_shown_gallery(conn, row.id, visibility)
            covered = self._generate_picture(account, cleaned, cover, row.figure_id, "cover", idempotency_key, on_step)
        with self.db.begin() as conn:
            row = self._own(conn, account, character_id)
            new_cover = row.cover if cover.source == "" else covered
            self._require_shown_image(visibility, row.avatar)
            self._require_shown_cover(visibility, new_cover)
            if visibility in SHOWN:
                self._require_shown_gallery(conn, row.id, visibility)
            conn.execute(characters.update().where(characters.c.id == row.id).values(**self._changed(row, {
                "name": cleaned["fields"]["name"], "profile": cleaned, "visibility": visibility, "cover": new_cover,
                **self._index(conn, row.id, cleaned)})))
        return self.get(account, character_id)

    def set_main(self, account: Account, character_id: str, source: str, media_id: str = "", upload: str | bytes | None = None,
                 prompt: str = "", model: str = "", seed: int | None = None, idempotency_key: str | None = None,
                 on_step: StepCallback | None = None) -> Character:
        """A new main image: a gallery image (media_id), the figure's canonical image, an upload, or a generation
        (on a figure, through its canonical image and style register)."""
        with self.db.engine.connect() as conn:
            row = self._own(conn, account, character_id)
            if source == "gallery":
                item = conn.execute(sa.select(character_media).where(
                    character_media.c.public_id == (media_id or ""), character_media.c.character_id == row.id)).first()
                if item is None or item.media != "image":
                    raise CharacterError("Pick an image of this character's gallery.")
                chosen = {"source": "gallery", "path": item.path, "safety": item.safety, "generation_id": item.generation_id, "idx": item.idx}
            elif source == "figure":
                if not row.figure_id:
                    raise CharacterError("This character is not built on a figure.")
                chosen = self._avatar_from_figure(conn, account, row.figure_id)
            elif source == "upload":
                if not upload:
                    raise CharacterError("Upload the main image (PNG, JPEG or WEBP).")
                chosen = self._avatar_from_upload(upload)
            elif source == "generate":
                chosen = None
            else:
                raise CharacterError(f"Main image source must be gallery, figure, upload or generate, not {source!r}.")
        if chosen is None:
            if row.visibility in SHOWN and not self.check_enabled:
                self._require_shown_image(row.visibility, {"safety": "unchecked"})
            chosen = self._generate_picture(account, stored_profile(row.profile),
                                            AvatarChoice("generate", prompt=prompt, model=model, seed=seed), row.figure_id, "main",
                                            idempotency_key, on_step)
        self._require_shown_image(row.visibility, chosen)
        with self.db.begin() as conn:
            row = self._own(conn, account, character_id)
            conn.execute(characters.update().where(characters.c.id == row.id).values(**self._changed(row, {"avatar": chosen})))
        return self.get(account, character_id)

    def delete(self, account: Account, character_id: str, confirm: bool) -> None:
        if not confirm:
            raise CharacterError("Tick “yes, delete it” to delete a character.")
        with self.db.begin() as conn:
            row = self._own(conn, account, character_id)
            conn.execute(characters.update().where(characters.c.id == row.id).values(deleted_at=time.time()))


__all__ = ["AvatarChoice", "CARD_FORMATS", "Character", "Characters", "CoverChoice"]
