"""Character Card V1 / V2 / V3 and CHARX: building a card from a character (reading one back: card_reading.py).

Written by the specs (github.com/kwaroran/character-card-spec-v3 and malfoyslastname/character-card-spec-v2):
- PNG: the card JSON, base64-encoded, in a `ccv3` tEXt chunk (V3) and a `chara` chunk (the V2 backfill) that
  mirror each other; a V2 export has `chara` only. Readers take `ccv3` over `chara`, tEXt or zTXt (or iTXt).
- JSON: the V3 card as a file.
- CHARX: a zip with `card.json` at its root and the images as assets, referenced as `embeded://<path in the zip>`
  (the spec's spelling).
What a card has no slot for lives under extensions["character_playground"]. Extensions of other tools, and
top-level fields this app does not edit (character_book, nickname, source ...), are kept and written back as
they came.
"""
from __future__ import annotations

import base64
import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, PngImagePlugin

from .profile import CARD_FIELDS

NAMESPACE = "character_playground"
V2_SPEC, V3_SPEC = "chara_card_v2", "chara_card_v3"
# Data keys the profile edits (the rest of a card's data is kept verbatim).
EDITED = set(CARD_FIELDS) | {"tags", "alternate_greetings", "extensions", "creation_date", "modification_date", "assets"}
V3_ONLY = ("assets", "nickname", "creator_notes_multilingual", "source", "group_only_greetings", "creation_date",
           "modification_date")
CARD_MAX_BYTES = 2_000_000  # a card's JSON
CHARX_MAX_BYTES = 60_000_000  # all of a CHARX's files, uncompressed
CHARX_MAX_FILES = 200
ICON_PATH = "assets/icon/image/main.png"


@dataclass
class CardSource:
    """What a card is made of: the stored profile and the character's card memory."""

    profile: dict[str, Any]
    figure_id: str | None
    visibility: str
    meta: dict[str, Any]  # creation_date, extensions (other tools'), extra (data keys kept verbatim)
    modified: float
    gallery: list[str] = field(default_factory=list)  # CHARX asset paths of gallery images


@dataclass
class ImportedCard:
    spec: str  # v1 | v2 | v3
    profile: dict[str, Any]  # the Profile's keyword arguments
    visibility: str
    figure_id: str | None
    meta: dict[str, Any]
    avatar: bytes | None = None


def card_data(source: CardSource, assets: list[dict[str, Any]] | None = None, include_figure: bool = False) -> dict[str, Any]:
    """The V3 card's `data`: the profile's fields, then the kept fields, our namespace and the dates.

    `include_figure`: the owner's own export keeps the figure's id (a re-import on their figures keeps it); the figure
    is private, so every other export leaves it out."""
    p, f, meta = source.profile, source.profile["fields"], source.meta
    extra = dict(meta.get("extra", {}))
    ours = {
        **({"figure_id": source.figure_id} if include_figure else {}), "visibility": source.visibility, "intro": p["intro"],
        "persona_cards": p["persona_cards"], "challenge_modes": p["challenge_modes"], "chat_models": p["chat_models"],
        "opening_messages": "one picked at random per conversation",
    }
    data: dict[str, Any] = {key: f.get(key, "") for key in CARD_FIELDS}
    data.update(
        alternate_greetings=list(p["alternate_greetings"]),
        tags=list(p["tags"]),
        character_version=extra.pop("character_version", "1.0"),
        nickname=extra.pop("nickname", ""),
        group_only_greetings=extra.pop("group_only_greetings", []),
        extensions={**meta.get("extensions", {}), NAMESPACE: ours},
        assets=assets if assets is not None else [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
        creation_date=int(meta.get("creation_date") or source.modified),
        modification_date=int(source.modified),
    )
    data.update(extra)
    return data


def v3_card(data: dict[str, Any]) -> dict[str, Any]:
    return {"spec": V3_SPEC, "spec_version": "3.0", "data": data}


def v2_card(data: dict[str, Any]) -> dict[str, Any]:
    """The V2 backfill of a V3 card's data: the same values without the V3-only fields."""
    return {"spec": V2_SPEC, "spec_version": "2.0", "data": {k: v for k, v in data.items() if k not in V3_ONLY}}


def _b64(card: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(card, ensure_ascii=False).encode("utf-8")).decode("ascii")


def card_png(image: Image.Image, data: dict[str, Any], version: str) -> bytes:
    """The picture with the card in tEXt chunks: `chara` (V2) always, `ccv3` for V3."""
    info = PngImagePlugin.PngInfo()
    info.add_text("chara", _b64(v2_card(data)))
    if version == "v3":
        info.add_text("ccv3", _b64(v3_card(data)))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG", pnginfo=info)  # the source's own text chunks stay behind
    return buffer.getvalue()


def card_charx(source: CardSource, icon: bytes | None, gallery: list[bytes], include_figure: bool = False) -> bytes:
    """A CHARX zip: card.json plus the main image and the gallery images as embedded assets."""
    assets, files = [], {}
    if icon is not None:
        assets.append({"type": "icon", "uri": f"embeded://{ICON_PATH}", "name": "main", "ext": "png"})
        files[ICON_PATH] = icon
    for n, picture in enumerate(gallery, 1):
        path = f"assets/other/image/gallery-{n}.png"
        assets.append({"type": "other", "uri": f"embeded://{path}", "name": f"gallery-{n}", "ext": "png"})
        files[path] = picture
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("card.json", json.dumps(v3_card(card_data(source, assets, include_figure)), ensure_ascii=False, indent=1))
        for path, content in files.items():
            archive.writestr(path, content, compress_type=zipfile.ZIP_STORED)  # PNGs are compressed already
    return buffer.getvalue()
