"""Text mode's tag chips and preset libraries (presets/image_presets.toml), validated on load."""
from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..errors import UserError
from ..presets_io import PRESETS_DIR, load_validated

DEFAULT_IMAGE_PRESETS = PRESETS_DIR / "image_presets.toml"
LIBRARIES = ("outfits", "actions", "scenes")


class ImagePresetsError(UserError, ValueError):
    pass


class Fragment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1)
    fragment: str = Field(min_length=1)


class ImagePresets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: dict[str, list[str]] = Field(min_length=1)
    outfits: dict[str, Fragment] = Field(min_length=1)
    actions: dict[str, Fragment] = Field(min_length=1)
    scenes: dict[str, Fragment] = Field(min_length=1)

    def choices(self, library: str) -> list[tuple[str, str]]:
        return [(f.label, key) for key, f in getattr(self, library).items()]

    def fragment(self, library: str, key: str) -> str:
        table = getattr(self, library)
        if key not in table:
            raise ImagePresetsError(f"{library[:-1]} {key!r} is not one of {list(table)}")
        return table[key].fragment


def _parts(prompt: str) -> list[str]:
    return [p.strip() for p in re.split(r",\s*", prompt or "") if p.strip()]


def add_fragment(prompt: str, fragment: str) -> str:
    """Append a tag or fragment once (case-insensitive), comma-separated."""
    parts = _parts(prompt)
    if fragment.lower() not in (p.lower() for p in parts):
        parts.append(fragment)
    return ", ".join(parts)


def remove_fragment(prompt: str, fragment: str) -> str:
    return ", ".join(p for p in _parts(prompt) if p.lower() != fragment.lower())


def load_image_presets(path: Path = DEFAULT_IMAGE_PRESETS) -> ImagePresets:
    return load_validated(path, ImagePresets, ImagePresetsError)
