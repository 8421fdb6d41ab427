"""Photo albums: the owner of a figure-backed character offers some of its gallery images at a price within the
plans' range; another user unlocks the album once.

An unlock is one transaction: the unlock row (unique per buyer and album, so parallel attempts insert once) and
the ledger's sale rows (the buyer pays the price, the creator receives the plans' share), under one request id
that both sides see in their ledgers. The album's images are hidden from the public gallery until unlocked.
"""
from __future__ import annotations

import secrets
import time
from typing import Any

import sqlalchemy as sa

from ...accounts.db import Database
from ...accounts.identity import Account
from ...accounts.ledger import Ledger
from ...accounts.plans import AlbumTerms
from ...accounts.tables import album_unlocks, character_albums, character_media
from .profile import CharacterError
from .service import Characters


class Albums:
    def __init__(self, db: Database, ledger: Ledger, characters: Characters, terms: AlbumTerms):
        self.db = db
        self.ledger = ledger
        self.characters = characters
        self.terms = terms

    def offer(self, account: Account, character_id: str, price: int, media_ids: list[str] | None = None) -> dict[str, Any]:
        """Offer (or re-price) the album: `media_ids` picks gallery images ([] or None: every image in the gallery).
        Images once offered stay in it, since buyers may have unlocked them."""
        price = int(price)
        if not self.terms.min_price <= price <= self.terms.max_price:
            raise CharacterError(f"Album price must be {self.terms.min_price} to {self.terms.max_price} credits, not {price}.")
        with self.db.begin() as conn:
            row = self.characters._own(conn, account, character_id)
            if not row.figure_id:
                raise CharacterError("A photo album needs a character built on a figure (its images keep that identity).")
            images = [r.public_id for r in conn.execute(sa.select(character_media.c.public_id).where(
                character_media.c.character_id == row.id, character_media.c.media == "image").order_by(character_media.c.id))]
            chosen = list(dict.fromkeys(media_ids or images))
            unknown = [m for m in chosen if m not in images]
            if unknown:
                raise CharacterError(f"{unknown[0]!r} is not an image in this character's gallery.")
            if not chosen:
                raise CharacterError("Add images to the gallery first: an album offers some of them.")
            existing = conn.execute(sa.select(character_albums).where(character_albums.c.character_id == row.id)).first()
            if existing is None:
                conn.execute(character_albums.insert().values(character_id=row.id, price=price, items=chosen, offered_at=time.time()))
            else:
                items = list(dict.fromkeys([*existing.items, *chosen]))
                conn.execute(character_albums.update().where(character_albums.c.character_id == row.id).values(
                    price=price, items=items, withdrawn_at=None))
        return self.album(account, character_id)

    def withdraw(self, account: Account, character_id: str) -> dict[str, Any]:
        """No new unlocks; those who unlocked it keep it."""
        with self.db.begin() as conn:
            row = self.characters._own(conn, account, character_id)
            done = conn.execute(character_albums.update().where(character_albums.c.character_id == row.id).values(
                withdrawn_at=time.time())).rowcount
            if not done:
                raise CharacterError("This character has no album.")
        return self.album(account, character_id)

    def unlock(self, buyer: Account, character_id: str) -> dict[str, Any]:
        """Pay once and see the album; a second call (or a parallel one) charges nothing and says so."""
        request_id = f"album-{secrets.token_hex(8)}"
        with self.db.begin() as conn:
            row = self.characters._readable(conn, buyer, character_id)
            if row.account_id == buyer.id:
                raise CharacterError("This is your own album; you see it already.")
            album = conn.execute(sa.select(character_albums).where(character_albums.c.character_id == row.id)).first()
            if album is None or album.withdrawn_at is not None:
                raise CharacterError("This character offers no photo album.")
            price = 0 if buyer.unlimited else album.price
            share = self.terms.share_of(price)
            inserted = self.db.insert_ignore(conn, album_unlocks, {
                "character_id": row.id, "buyer_id": buyer.id, "price": price, "creator_share": share,
                "request_id": request_id, "created_at": time.time()})
            if inserted:
                note = f"Photo album of {row.name}" + (" (QA: waived)" if buyer.unlimited else "")
                self.ledger.sale(conn, buyer.id, row.account_id, price, share, request_id, note)
        result = self.album(buyer, character_id)
        result["charged"] = price if inserted else 0
        result["already_unlocked"] = not inserted
        return result

    def album(self, viewer: Account | None, character_id: str) -> dict[str, Any]:
        """The album's terms, and its images for the owner, QA sessions and those who unlocked it."""
        with self.db.engine.connect() as conn:
            row = self.characters._readable(conn, viewer, character_id)
            album = conn.execute(sa.select(character_albums).where(character_albums.c.character_id == row.id)).first()
            if album is None:
                raise CharacterError("This character offers no photo album.")
            unlocked = viewer is not None and (viewer.id == row.account_id or viewer.can("review") or conn.execute(
                sa.select(album_unlocks.c.id).where(album_unlocks.c.character_id == row.id,
                                                    album_unlocks.c.buyer_id == viewer.id)).first() is not None)
            items = []
            if unlocked:
                by_id = {i.public_id: i for i in conn.execute(sa.select(character_media).where(
                    character_media.c.public_id.in_(album.items)))}
                items = [self.characters._item(by_id[m]) for m in album.items if m in by_id]
            buyers = None
            if viewer is not None and viewer.id == row.account_id:
                buyers = int(conn.execute(sa.select(sa.func.count()).select_from(album_unlocks).where(
                    album_unlocks.c.character_id == row.id)).scalar())
        return {"character_id": row.id, "price": album.price, "images": len(album.items), "offered": album.withdrawn_at is None,
                "unlocked": unlocked, "items": items, "buyers": buyers,
                "creator_share": self.terms.creator_share}
