"""Figures lent through characters: another visitor's character whose creator enabled Advanced, used in Advanced and
Group as if it were one of the visitor's figures, without the figure ever being named to them.

The characters service checks who may borrow what (characters/lending.py) and hands Remix a `Lent`: for each borrowed
character, its figure's References under the key "character:<character id>" (never the figure's id). Remix resolves
that key through the `Lent` only, so a key typed into any other request is just an unknown figure. What a run records
names the character: "character_id" (Advanced) or "character_ids" (Group) in the request, `record["character_ids"]`
in the output's metadata, and the identity monitor's SimRef under "character_id" / "characters" (kept out of the
figure pages' index, which lists the visitor's own figures).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .figures import Reference

PREFIX = "character:"


def key_of(character_id: str) -> str:
    return PREFIX + character_id


def character_of(key: str | None) -> str | None:
    """The character id a key stands for; None for a figure id."""
    return key[len(PREFIX):] if isinstance(key, str) and key.startswith(PREFIX) else None


@dataclass(frozen=True)
class LentFigure:
    character_id: str
    advanced: Reference  # the figure's picked reference sheet, keyed by the character
    canonical: Reference  # what SimRef compares with (never the sheet)


@dataclass(frozen=True)
class Lent:
    figures: dict[str, LentFigure] = field(default_factory=dict)  # key -> the lent figure

    def __contains__(self, key: object) -> bool:
        return key in self.figures

    @property
    def keys(self) -> list[str]:
        return list(self.figures)

    def reference(self, key: str, purpose: str) -> Reference:
        lent = self.figures[key]
        return lent.advanced if purpose == "advanced" else lent.canonical


def subject(figure_id: str | None) -> dict[str, Any]:
    """How a request records whom it is of: one of the visitor's figures, or a borrowed character."""
    character = character_of(figure_id)
    return {"character_id": character} if character else {"figure_id": figure_id}


def group_subjects(ids: list[str]) -> dict[str, Any]:
    """A group's members as recorded: the visitor's figures, then the borrowed characters (in the order asked)."""
    characters = [c for c in map(character_of, ids) if c]
    return {"figure_ids": [i for i in ids if not character_of(i)], **({"character_ids": characters} if characters else {})}


def unindexed(simrefs: list[Any] | None) -> list[Any] | None:
    """SimRefs with borrowed characters named by character id and moved out of the figure index (a single output's
    "figure_id" becomes "character_id"; a group's borrowed members move from "figures" to "characters")."""
    for entry in simrefs or []:
        if not isinstance(entry, dict):
            continue
        character = character_of(entry.get("figure_id"))
        if character:
            entry.pop("figure_id")
            entry["character_id"] = character
        members = entry.get("figures")
        if isinstance(members, dict):
            borrowed = {k: v for k, v in members.items() if character_of(k)}
            if borrowed:
                entry["figures"] = {k: v for k, v in members.items() if k not in borrowed}
                entry["characters"] = {character_of(k): v for k, v in borrowed.items()}
    return simrefs
