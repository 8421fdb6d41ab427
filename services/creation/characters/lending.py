"""Advanced on other visitors' characters: the creator's switch, and Advanced and Group images of a character lent.

A creator enables Advanced for a figure-backed character whose figure has a picked reference sheet; then anyone who
may open the character (a verified public one, an unlisted one by its id: `_readable`) can make Advanced and Group
images of it, priced and run exactly as Advanced on their own figure (Remix's path on the figure's reference sheet,
its style register and pinned LoRAs), charged to them and kept in their history. The figure stays private: what they
get back (results, records, PNG metadata, SimRef, messages) names the character, never the figure (../lent.py).
Every use checks again: a switch turned off, a character made private, a figure deleted or a sheet cleared refuses
before anything is charged.

A mixin of `Characters` (service.py): it uses that class's reads (`_own`, `_readable`, `get`) and surfaces."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ...accounts.identity import Account
from ...accounts.tables import characters, figures as figures_table
from ..figures import FigureError
from ..lent import Lent, LentFigure, key_of
from ..text import ImageOutput
from .profile import CharacterError

if TYPE_CHECKING:  # the class these methods are mixed into
    from .service import Character

LISTED = 100  # the most Advanced-enabled characters a picker lists (an unlisted one is opened by its id)


@dataclass(frozen=True)
class Lender:
    """A character's creator, as Figures reads an account (by its id only), to load the figure the character lends."""

    id: str


class Lending:
    def set_advanced(self, account: Account, character_id: str, enabled: bool) -> "Character":
        """Let other visitors make Advanced and Group images of one of your characters (or stop them). Enabling needs a
        character built on a figure with a picked reference sheet; turning it off always works, at once."""
        with self.db.begin() as conn:
            row = self._own(conn, account, character_id)
            if enabled:
                self._require_lendable(conn, row)
            conn.execute(characters.update().where(characters.c.id == row.id).values(advanced_shared=bool(enabled)))
        return self.get(account, character_id)

    @staticmethod
    def _require_lendable(conn: sa.Connection, row) -> None:
        """The owner's view of why a character cannot be lent for Advanced (they may see their figure)."""
        if not row.figure_id:
            raise CharacterError(f"“{row.name}” is not built on a figure: Advanced keeps a figure's face, so only a "
                                 "character made on one of your figures can be opened to others for Advanced.")
        figure = conn.execute(sa.select(figures_table.c.name, figures_table.c.reference_sheet, figures_table.c.deleted_at)
                              .where(figures_table.c.id == row.figure_id)).first()
        if figure is None or figure.deleted_at is not None:
            raise CharacterError(f"The figure “{row.name}” is built on was deleted, so it cannot be opened for Advanced.")
        if not figure.reference_sheet:
            raise CharacterError(f"Pick a reference sheet for its figure “{figure.name}” first (All Figures > Advanced "
                                 "reference sheet): other visitors' Advanced and Group images keep the face through it.")

    def advanced_characters(self) -> list[dict[str, Any]]:
        """Verified public characters whose creators enabled Advanced, newest change first (id and name: the pickers)."""
        where = [characters.c.deleted_at.is_(None), characters.c.visibility == "public", characters.c.review == "verified",
                 characters.c.advanced_shared.is_(True)]
        with self.db.engine.connect() as conn:
            found = conn.execute(sa.select(characters.c.id, characters.c.name).where(*where)
                                 .order_by(characters.c.updated_at.desc(), characters.c.id).limit(LISTED)).all()
        return [{"id": r.id, "name": r.name} for r in found]

    def lend(self, viewer: Account, character_ids: list[str]) -> Lent:
        """The figures of characters the viewer may use in Advanced, keyed by character; CharacterError (in the
        visitor's words, never naming the figure) for one they cannot open or whose creator did not enable Advanced."""
        lent: dict[str, LentFigure] = {}
        for character_id in dict.fromkeys(str(c).strip() for c in character_ids or [] if str(c or "").strip()):
            with self.db.engine.connect() as conn:
                row = self._readable(conn, viewer, character_id)
                if not row.advanced_shared:
                    if viewer.id == row.account_id:
                        raise CharacterError(f"Enable Advanced in “{row.name}”'s settings first (My characters), or pick "
                                             "its figure. Nothing was charged.")
                    raise CharacterError(f"“{row.name}” is not open for Advanced: its creator has not enabled it. "
                                         "Nothing was charged.")
                unavailable = CharacterError(f"“{row.name}” cannot be used in Advanced right now: its creator changed "
                                             "its setup. Nothing was charged.")
                try:
                    self._require_lendable(conn, row)
                except CharacterError:
                    raise unavailable from None
            try:  # after the connection above is closed: on SQLite it holds the database lock, and Figures opens its own
                owner = Lender(row.account_id)
                advanced = self.figures.reference(owner, row.figure_id, purpose="advanced")
                canonical = self.figures.reference(owner, row.figure_id)
            except FigureError:
                raise unavailable from None
            if advanced.source != "sheet":
                raise unavailable
            key = key_of(row.id)
            lent[key] = LentFigure(row.id, replace(advanced, figure_id=key), replace(canonical, figure_id=key))
        return Lent(lent)

    def advanced_image(self, account: Account, *, character_id: str, **options: Any) -> ImageOutput:
        """Advanced (services.remix.advanced_image's options) of a character lent to the account."""
        if not (character_id or "").strip():
            raise CharacterError("Pick a character first: one whose creator enabled Advanced (its id).")
        lent = self.lend(account, [character_id])
        return self.remix.advanced_image(account, figure_id=lent.keys[0], lent=lent, **options)

    def group_image(self, account: Account, *, figure_ids: list[str], character_ids: list[str], **options: Any) -> ImageOutput:
        """A group shot of the account's figures and characters lent to it (2-3 in all), as Group prices and runs it."""
        lent = self.lend(account, character_ids)
        return self.remix.group_image(account, figure_ids=[*figure_ids, *lent.keys], lent=lent, **options)
