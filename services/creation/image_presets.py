"""Text mode's tag chips and preset libraries (presets/image_presets.toml), validated on load."""
from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


class Scene(Fragment):
    """A scene preset; also a recommended scene of Figure Remix, with a thumbnail."""

    palette: tuple[str, str] = ("#4a5a7a", "#c9b38a")  # sky, ground (#rrggbb)
    thumbnail: str | None = None  # an image file of your own, relative to presets/

    @field_validator("palette")
    @classmethod
    def _colours(cls, value: tuple[str, str]) -> tuple[str, str]:
        for colour in value:
            if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
                raise ValueError(f"palette colours are #rrggbb, not {colour!r}")
        return value


class ImagePresets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: dict[str, list[str]] = Field(min_length=1)
    outfits: dict[str, Fragment] = Field(min_length=1)
    actions: dict[str, Fragment] = Field(min_length=1)
    scenes: dict[str, Scene] = Field(min_length=1)

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


def scene_thumbnail(scene: Scene, size: tuple[int, int] = (192, 128)):
    """The scene's thumbnail: its own image file, or a card drawn from its palette (sky fading into ground, a
    horizon), so the offline app shows recommended scenes without shipping pictures."""
    from PIL import Image, ImageDraw

    if scene.thumbnail:
        with Image.open(PRESETS_DIR / scene.thumbnail) as opened:
            return opened.convert("RGB").resize(size)
    width, height = size
    sky, ground = (tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in scene.palette)
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    horizon = int(height * 0.62)
    for y in range(height):
        t = y / max(1, horizon) if y < horizon else 1.0
        colour = tuple(round(a + (b - a) * t * 0.8) for a, b in zip(sky, ground)) if y < horizon else ground
        draw.line([(0, y), (width, y)], fill=colour)
    draw.line([(0, horizon), (width, horizon)], fill=tuple(min(255, c + 40) for c in ground), width=2)
    return image  # the gallery captions it with the scene's label


def load_image_presets(path: Path = DEFAULT_IMAGE_PRESETS) -> ImagePresets:
    return load_validated(path, ImagePresets, ImagePresetsError)
