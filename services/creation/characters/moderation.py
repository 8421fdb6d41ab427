"""Moderation of public characters (QA sessions): the pending queue (light rows, never the card memory), the review
view (everything the character publishes, with its revision) and the verdict, which names the revision it was given.

A mixin of `Characters` (service.py): it uses that class's reads (`rows`, `_live`, `_view`, `_card_source`)."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ...accounts.identity import Account
from ...accounts.tables import characters
from . import cards
from .profile import CharacterError

if TYPE_CHECKING:  # the class these methods are mixed into
    from .service import Character


def rows():
    """A select of characters without the card column (every read but a card export and the review view)."""
    return sa.select(*(c for c in characters.c if c.key != "card"))


class Moderation:
    def _moderator(self, account: Account) -> None:
        if not account.can("review"):
            raise CharacterError("Only QA sessions moderate characters.")

    def review_queue(self, account: Account) -> list[Character]:
        """Pending public characters, oldest change first: what a moderator picks from (open one with review_view)."""
        self._moderator(account)
        with self.db.engine.connect() as conn:
            found = conn.execute(rows().where(characters.c.deleted_at.is_(None), characters.c.review == "pending")
                                 .order_by(characters.c.updated_at)).all()
            return [self._view(conn, account, r) for r in found]

    def review_view(self, account: Account, character_id: str) -> dict[str, Any]:
        """Everything the character publishes, as a moderator must see it before a verdict: the public profile (every
        card field, intro, tags, every greeting, persona cards, challenge modes, main image) and the card export's
        data (with the fields kept from an imported card), and the revision a verdict on it names. QA sessions see
        which figure the character is built on (figure_id, figure_name: they moderate, and are not its end users);
        the card data here is the one everyone else exports, without the figure."""
        self._moderator(account)
        with self.db.engine.connect() as conn:
            row = conn.execute(rows().where(self._live(character_id or ""))).first()
            if row is None:
                raise CharacterError(f"No character {character_id!r}.")
            character = self._view(conn, account, row)
            source, _ = self._card_source(conn, None, row, self._card_meta(conn, row.id))
        card = cards.card_data(source)
        card.get("extensions", {}).pop(cards.NAMESPACE, None)  # ours repeats the profile shown above
        return {"character": character.as_dict(), "card": card, "revision": row.revision}

    def review(self, account: Account, character_id: str, verify: bool, note: str = "", revision: int | None = None) -> Character:
        """A QA verdict on a pending public character: verified (listed) or rejected with a reason for the owner. It
        names the revision the moderator was shown (review_view); if the owner changed anything since, it is refused
        and the character stays pending with its new revision to review."""
        self._moderator(account)
        note = (note or "").strip()
        if not verify and not note:
            raise CharacterError("Say why the character is rejected; its owner sees the reason.")
        if len(note) > 500:
            raise CharacterError("The reason is limited to 500 characters.")
        if revision is None or isinstance(revision, bool) or not isinstance(revision, int):
            raise CharacterError("Name the revision you reviewed (the review view, /review_character_view, gives it), "
                                 "so a verdict never applies to changes you did not see.")
        with self.db.begin() as conn:
            row = conn.execute(rows().where(self._live(character_id or ""))).first()
            if row is None or row.review != "pending":
                raise CharacterError(f"No pending character {character_id!r}.")
            if verify:
                self._require_shown_image(row.visibility, row.avatar)
                self._require_shown_cover(row.visibility, row.cover)
            done = conn.execute(characters.update().where(
                characters.c.id == row.id, characters.c.review == "pending", characters.c.revision == revision,
            ).values(review="verified" if verify else "rejected", review_note="" if verify else note,
                     reviewed_by=account.id, reviewed_at=time.time())).rowcount
            if not done:
                raise CharacterError(f"The owner changed “{row.name}” after you opened it (you reviewed revision {revision}; "
                                     f"it is now revision {row.revision}). It stays pending: open it again and review the "
                                     "new version.")
        return self.get(account, character_id)
