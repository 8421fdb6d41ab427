"""Figure presets (presets/figures.toml) and the prompt composer of Quick creation.

The composer turns picker choices into one prompt with a fixed order of parts, each chosen phrase exactly
once: subject (an adult of the archetype) -> face -> hair -> eyes -> skin -> body -> distinctive feature ->
outfit -> archetype cues -> style register. Changing one step changes only its part.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import UserError
from ..presets_io import PRESETS_DIR, load_validated

DEFAULT_FIGURES = PRESETS_DIR / "figures.toml"

# Picker steps in the order Quick creation walks them (hair has three pickers).
OPTION_KINDS = ("face", "hair_colour", "hair_length", "hair_style", "eyes", "skin", "body", "feature", "outfit")
# The order the chosen phrases take in the prompt (hair reads "<length> <colour> hair <style>").
PHRASE_ORDER = ("face", "hair_length", "hair_colour", "hair_style", "eyes", "skin", "body", "feature", "outfit")
STEPS = ("archetype", "face", "hair", "eyes_skin_body", "feature", "outfit", "style", "review")


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
