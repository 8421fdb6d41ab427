"""Figure presets (presets/figures.toml) and the prompt composer of Quick creation.

The composer turns picker choices into one prompt with a fixed order of parts, each chosen phrase exactly
once: subject (an adult of the archetype) -> face -> hair -> eyes -> skin -> body -> distinctive feature ->
outfit -> archetype cues -> style register. Changing one step changes only its part.

An archetype also carries default voice patterns (`voice`, how they speak) and `traits`: a character made on a
Quick figure of that archetype starts with them as its personality (`personality_seed`), and the personality
helper suggests from its traits. The presets-free archetype (no cues, no defaults) has neither.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterable

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ..errors import UserError
from ..presets_io import PRESETS_DIR, load_validated

DEFAULT_FIGURES = PRESETS_DIR / "figures.toml"

# Picker steps in the order Quick creation walks them (hair has three pickers).
OPTION_KINDS = ("face", "hair_colour", "hair_length", "hair_style", "eyes", "skin", "body", "feature", "outfit")
# The order the chosen phrases take in the prompt (hair reads "<length> <colour> hair <style>").
PHRASE_ORDER = ("face", "hair_length", "hair_colour", "hair_style", "eyes", "skin", "body", "feature", "outfit")
STEPS = ("archetype", "face", "hair", "eyes_skin_body", "feature", "outfit", "style", "review")
# An archetype's voice: 2-4 short lines; its traits: 4-8 short ones. The personality they seed must also fit the
# character limits' personality field (presets/characters.toml; checked at start-up by `check_personality`).
VOICE_LINES, VOICE_LINE_MAX = (2, 4), 160
TRAITS, TRAIT_MAX = (4, 8), 32


class FigurePresetsError(UserError, ValueError):
    pass


class Option(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1)
    phrase: str


class Archetype(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str
    noun: str = Field(min_length=1)
    cues: str = ""
    style: str
    defaults: dict[str, str] = {}
    voice: tuple[Annotated[str, StringConstraints(strip_whitespace=True)], ...] = ()
    traits: tuple[Annotated[str, StringConstraints(strip_whitespace=True)], ...] = ()

    @property
    def presets_free(self) -> bool:
        return not self.cues and not self.defaults

    @model_validator(mode="after")
    def _voice(self) -> "Archetype":
        """Every archetype with presets has a voice (2-4 short lines) and 4-8 short traits; the presets-free one neither."""
        voice, traits = self.voice, self.traits
        if self.presets_free:
            if voice or traits:
                raise ValueError("a presets-free archetype (no cues, no defaults) has no voice and no traits")
            return self
        if not VOICE_LINES[0] <= len(voice) <= VOICE_LINES[1] or not all(voice):
            raise ValueError(f"voice needs {VOICE_LINES[0]}-{VOICE_LINES[1]} non-empty lines (how they speak); it has "
                             f"{sum(1 for v in voice if v)}")
        long = [v for v in voice if len(v) > VOICE_LINE_MAX]
        if long:
            raise ValueError(f"voice lines are limited to {VOICE_LINE_MAX} characters; {long[0][:40]!r}... has {len(long[0])}")
        if not TRAITS[0] <= len(traits) <= TRAITS[1] or not all(traits):
            raise ValueError(f"traits needs {TRAITS[0]}-{TRAITS[1]} non-empty traits; it has {sum(1 for t in traits if t)}")
        if len(set(traits)) != len(traits) or any(len(t) > TRAIT_MAX for t in traits):
            raise ValueError(f"traits must be distinct and at most {TRAIT_MAX} characters each")
        return self


class StyleRegister(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str
    positive: str = Field(min_length=1)
    negative: str = ""
    models: list[str] = Field(min_length=1)


class FigurePresets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    archetypes: dict[str, Archetype] = Field(min_length=1)
    options: dict[str, dict[str, Option]]
    styles: dict[str, StyleRegister] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> "FigurePresets":
        missing = [k for k in OPTION_KINDS if not self.options.get(k)]
        if missing:
            raise ValueError(f"options need at least one entry for {missing}")
        extra = sorted(set(self.options) - set(OPTION_KINDS))
        if extra:
            raise ValueError(f"unknown option kinds {extra}; kinds are {list(OPTION_KINDS)}")
        for name, arch in self.archetypes.items():
            if arch.style not in self.styles:
                raise ValueError(f"archetypes.{name}.style: {arch.style!r} is not a style register")
            for kind, key in arch.defaults.items():
                if kind not in OPTION_KINDS or key not in self.options[kind]:
                    raise ValueError(f"archetypes.{name}.defaults.{kind}: {key!r} is not an option")
        return self

    def check_models(self, known: set[str]) -> None:
        for name, style in self.styles.items():
            unknown = [m for m in style.models if m not in known]
            if unknown:
                raise FigurePresetsError(f"styles.{name}.models: {unknown} are not in the model registry")

    def check_personality(self, max_chars: int, generic: Iterable[str]) -> None:
        """Against the character limits: each archetype's seeded personality fits the personality field, and uses
        none of the generic adjectives the personality helper warns about."""
        for name, arch in self.archetypes.items():
            seed = self.personality_seed(name)
            if len(seed) > max_chars:
                raise FigurePresetsError(f"archetypes.{name}: its voice and traits make a personality of {len(seed):,} "
                                         f"characters; the personality field takes {max_chars:,}")
            found = [w for w in generic if re.search(rf"\b{re.escape(w)}\b", seed.lower())]
            if found:
                raise FigurePresetsError(f"archetypes.{name}: voice and traits use generic adjectives {found}; "
                                         "name a specific habit instead")

    def personality_seed(self, archetype: str) -> str:
        """The personality a character on a figure of this archetype starts with ("" for none)."""
        arch = self.archetypes.get(archetype or "")
        if arch is None or not arch.voice:
            return ""
        return "\n".join([f"Traits: {', '.join(arch.traits)}.", "Voice:", *(f"- {line}" for line in arch.voice)])

    def is_seed(self, text: str) -> bool:
        """Whether a personality is exactly one archetype's seed (an untouched pre-fill, safe to replace)."""
        text = (text or "").strip()
        return bool(text) and any(text == self.personality_seed(name) for name in self.archetypes)

    @staticmethod
    def archetype_of(kind: str, spec: dict[str, Any] | None) -> str:
        """The archetype a saved figure was made from: its Quick choices' archetype; "" for a Custom figure."""
        if kind != "quick":
            return ""
        return str(((spec or {}).get("choices") or {}).get("archetype") or "")

    def defaults_for(self, archetype: str) -> dict[str, str]:
        """A full set of choices: the archetype's defaults over the first option of each kind."""
        arch = self.archetypes[archetype]
        choices = {kind: next(iter(self.options[kind])) for kind in OPTION_KINDS}
        choices["feature"] = "none" if "none" in self.options["feature"] else choices["feature"]
        choices.update(arch.defaults)
        return {"archetype": archetype, **choices, "style": arch.style}

    def compose(self, choices: dict[str, str]) -> "Composition":
        """The prompt for a full set of choices; unknown keys raise with the step named."""
        archetype = self._pick("archetype", choices.get("archetype"), self.archetypes)
        picked = {kind: self._pick(kind, choices.get(kind), self.options[kind]) for kind in OPTION_KINDS}
        style = self._pick("style", choices.get("style"), self.styles)
        hair = f"{picked['hair_length'].phrase} {picked['hair_colour'].phrase} hair {picked['hair_style'].phrase}"
        parts = [
            ("archetype", f"portrait of an adult {archetype.noun}"),
            ("face", picked["face"].phrase),
            ("hair", hair),
            ("eyes", picked["eyes"].phrase),
            ("skin", picked["skin"].phrase),
            ("body", picked["body"].phrase),
            ("feature", picked["feature"].phrase),
            ("outfit", f"wearing {picked['outfit'].phrase}" if picked["outfit"].phrase else ""),
            ("cues", archetype.cues),
            ("style", style.positive),
        ]
        parts = [(step, text) for step, text in parts if text]
        return Composition(", ".join(text for _, text in parts), style.negative, tuple(parts))

    @staticmethod
    def _pick(step: str, key: str | None, table: dict):
        if key not in table:
            raise FigurePresetsError(f"{step}: {key!r} is not one of {list(table)}")
        return table[key]

    def choices_for(self, kind: str) -> list[tuple[str, str]]:
        """(label, key) pairs for a picker, with what each adds."""
        if kind == "archetype":
            return [(a.label, k) for k, a in self.archetypes.items()]
        if kind == "style":
            return [(s.label, k) for k, s in self.styles.items()]
        return [(o.label, k) for k, o in self.options[kind].items()]


@dataclass(frozen=True)
class Composition:
    prompt: str
    negative: str
    parts: tuple[tuple[str, str], ...]

    def part(self, step: str) -> str:
        return next((text for s, text in self.parts if s == step), "")


def load_figure_presets(path: Path = DEFAULT_FIGURES) -> FigurePresets:
    return load_validated(path, FigurePresets, FigurePresetsError)
