"""Photo albums: the owner of a figure-backed character offers some of its gallery images at a price within the
plans' range; another user unlocks the album once.

Money is exact and visible. The buyer's unlock carries the price they were shown, and is refused (nothing moved)
when the album's price is no longer that. The creator's share is integer arithmetic on whole credits
(AlbumTerms.share_of). An unlock is one transaction: the unlock row (unique per buyer and album, so parallel attempts
insert once) and the ledger's sale rows (the buyer pays the price, the creator receives the share, the platform
account the rest), under one request id that every side sees in its ledger.

An offer names its images: each offer sets the album's images to exactly the ones it lists, so re-offering never adds
gallery images by itself, and an image leaves the album by offering the album without it. The album's images are
hidden from the public gallery until unlocked; whoever unlocked the album sees its current images.
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


def _whole(value: Any) -> int | None:
    """`value` as whole credits, or None when it is missing, zero or not a whole number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and number > 0 else None


class Albums:
    def __init__(self, db: Database, ledger: Ledger, characters: Characters, terms: AlbumTerms):
        self.db = db
        self.ledger = ledger
        self.characters = characters
        self.terms = terms

    def offer(self, account: Account, character_id: str, price: int, media_ids: list[str] | str | None) -> dict[str, Any]:
        """Offer (or re-price) the album of exactly the gallery images `media_ids` names, in that order.

        A re-offer replaces the list: images left out leave the album (and show in the public gallery again), and no
        gallery image ever joins it unless named. Whoever unlocked the album before sees its current images."""
        price = int(price)
        if not self.terms.min_price <= price <= self.terms.max_price:
            raise CharacterError(f"Album price must be {self.terms.min_price} to {self.terms.max_price} credits, not {price}.")
        if isinstance(media_ids, str):
            media_ids = [media_ids]
        chosen = list(dict.fromkeys(m for m in (media_ids or []) if m))
        with self.db.begin() as conn:
            row = self.characters._own(conn, account, character_id)
            if not row.figure_id:
                raise CharacterError("A photo album needs a character built on a figure (its images keep that identity).")
            images = [r.public_id for r in conn.execute(sa.select(character_media.c.public_id).where(
                character_media.c.character_id == row.id, character_media.c.media == "image").order_by(character_media.c.id))]
            if not images:
                raise CharacterError("Add images to the gallery first: an album offers some of them.")
            if not chosen:
                raise CharacterError("Name the album's images: media_ids lists one or more of this character's gallery "
                                     "image ids (an album holds only the images its offer names).")
            unknown = [m for m in chosen if m not in images]
            if unknown:
                raise CharacterError(f"{unknown[0]!r} is not an image in this character's gallery.")
            existing = conn.execute(sa.select(character_albums).where(character_albums.c.character_id == row.id)).first()
            before = list(existing.items) if existing is not None else []
            if existing is None:
                conn.execute(character_albums.insert().values(character_id=row.id, price=price, items=chosen, offered_at=time.time()))
            else:
                conn.execute(character_albums.update().where(character_albums.c.character_id == row.id).values(
                    price=price, items=chosen, withdrawn_at=None))
        result = self.album(account, character_id)
        result["added"] = [m for m in chosen if m not in before]
        result["left_album"] = [m for m in before if m not in chosen]
        return result

    def withdraw(self, account: Account, character_id: str) -> dict[str, Any]:
        """No new unlocks; those who unlocked it keep it."""
        with self.db.begin() as conn:
            row = self.characters._own(conn, account, character_id)
            done = conn.execute(character_albums.update().where(character_albums.c.character_id == row.id).values(
                withdrawn_at=time.time())).rowcount
            if not done:
                raise CharacterError("This character has no album.")
        return self.album(account, character_id)

    def unlock(self, buyer: Account, character_id: str, price: int | None) -> dict[str, Any]:
        """Pay once and see the album. `price` is the price the buyer was shown (/album's `price`): the unlock is refused,
        nothing moved, when it is missing or the album's price is no longer that. A second call (or a parallel one)
        charges nothing and says so."""
        request_id = f"album-{secrets.token_hex(8)}"
        with self.db.begin() as conn:
            row = self.characters._readable(conn, buyer, character_id)
            if row.account_id == buyer.id:
                raise CharacterError("This is your own album; you see it already.")
            album = conn.execute(sa.select(character_albums).where(character_albums.c.character_id == row.id)).first()
            if album is None or album.withdrawn_at is not None:
                raise CharacterError("This character offers no photo album.")
            known = conn.execute(sa.select(album_unlocks.c.id).where(
                album_unlocks.c.character_id == row.id, album_unlocks.c.buyer_id == buyer.id)).first()
            inserted, charge = 0, 0
            if known is None:
                shown = _whole(price)
                if shown is None:
                    raise CharacterError("Confirm the price: pass `price`, the credits /album shows for this album "
                                         f"(now {album.price}). Nothing was charged.")
                if shown != album.price:
                    raise CharacterError(f"The album's price changed from {shown} to {album.price} credits; look again and "
                                         "confirm. Nothing was charged.")
                charge = 0 if buyer.unlimited else album.price
                share = self.terms.share_of(charge)
                inserted = self.db.insert_ignore(conn, album_unlocks, {
                    "character_id": row.id, "buyer_id": buyer.id, "price": charge, "creator_share": share,
                    "request_id": request_id, "created_at": time.time()})
                if inserted:
                    note = f"Photo album of {row.name}" + (" (QA: waived)" if buyer.unlimited else "")
                    self.ledger.sale(conn, buyer.id, row.account_id, charge, share, request_id, note)
        result = self.album(buyer, character_id)
        result["charged"] = charge if inserted else 0
        result["already_unlocked"] = not inserted
        result["request_id"] = request_id if inserted else None
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
                insider = self.characters._insider(viewer, row)  # a buyer gets the files without their metadata
                items = [self.characters._item(by_id[m], insider) for m in album.items if m in by_id]
            buyers = None
            if viewer is not None and viewer.id == row.account_id:
                buyers = int(conn.execute(sa.select(sa.func.count()).select_from(album_unlocks).where(
                    album_unlocks.c.character_id == row.id)).scalar())
        return {"character_id": row.id, "price": album.price, "images": len(album.items), "offered": album.withdrawn_at is None,
                "unlocked": unlocked, "items": items, "buyers": buyers,
                # what each unlock at this price moves, in whole credits: the creator's share and the platform's part
                "creator_receives": self.terms.share_of(album.price), "platform_receives": self.terms.platform_part(album.price),
                "creator_share_percent": self.terms.creator_share_percent, "creator_share": self.terms.creator_share}
