"""Archetype voices: a character made on a Quick figure starts with its archetype's default voice patterns and
traits (presets/figures.toml) as its personality, unless the creator wrote one; the personality helper suggests
from the archetype's traits. A Custom figure (and the presets-free archetype) adds nothing.
"""
from __future__ import annotations

from dataclasses import replace

from ...accounts.identity import Account
from ..figure_presets import FigurePresets
from ..figures import FigureError, Figures
from .profile import CharacterError, CharacterLimits, Profile

FIELD = "personality"  # where a card's personality and speaking style go


def figure_archetype(figures: Figures, account: Account, figure_id: str) -> str:
    """The archetype one of the account's figures was made from ("" for a Custom figure); CharacterError otherwise."""
    try:
        figure = figures.get(account, figure_id)
    except FigureError as exc:
        raise CharacterError(str(exc)) from None
    return FigurePresets.archetype_of(figure.kind, figure.spec)


def seeded(limits: CharacterLimits, presets: FigurePresets, profile: Profile, archetype: str) -> Profile:
    """The profile with the archetype's voice and traits as its personality when the creator left it empty."""
    if FIELD not in {f.key for f in limits.fields} or str(profile.fields.get(FIELD) or "").strip():
        return profile
    seed = presets.personality_seed(archetype)
    return replace(profile, fields={**profile.fields, FIELD: seed}) if seed else profile


def seeded_on_figure(limits: CharacterLimits, figures: Figures, account: Account, profile: Profile,
                     figure_id: str) -> Profile:
    """`seeded` for a new character on `figure_id`; an unknown figure leaves the profile as it is (the create
    flow refuses it with its own message)."""
    if not figure_id or str(profile.fields.get(FIELD) or "").strip():
        return profile
    try:
        archetype = figure_archetype(figures, account, figure_id)
    except CharacterError:
        return profile
    return seeded(limits, figures.presets, profile, archetype)


def archetype_traits(presets: FigurePresets, archetype: str) -> tuple[str, ...]:
    """The traits the helper suggests from ("" and the presets-free archetype: none, so the preset list)."""
    archetype = (archetype or "").strip()
    if not archetype:
        return ()
    if archetype not in presets.archetypes:
        raise CharacterError(f"archetype: {archetype!r} is not one of {', '.join(presets.archetypes)}.")
    return presets.archetypes[archetype].traits
