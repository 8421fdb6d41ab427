"""Character Card V1 / V2 / V3 and CHARX: building a card from a character and reading any of them back.

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
import binascii
import io
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, PngImagePlugin

from .profile import CARD_FIELDS, CharacterError

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


def card_data(source: CardSource, assets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The V3 card's `data`: the profile's fields, then the kept fields, our namespace and the dates."""
    p, f, meta = source.profile, source.profile["fields"], source.meta
    extra = dict(meta.get("extra", {}))
    ours = {
        "figure_id": source.figure_id, "visibility": source.visibility, "intro": p["intro"],
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


def card_charx(source: CardSource, icon: bytes | None, gallery: list[bytes]) -> bytes:
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
        archive.writestr("card.json", json.dumps(v3_card(card_data(source, assets)), ensure_ascii=False, indent=1))
        for path, content in files.items():
            archive.writestr(path, content, compress_type=zipfile.ZIP_STORED)  # PNGs are compressed already
    return buffer.getvalue()


# -- reading -------------------------------------------------------------------------------------------------
def _json(raw: bytes | str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CharacterError(f"{what} is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}).") from None
    if not isinstance(value, dict):
        raise CharacterError(f"{what} holds no card (a JSON object was expected).")
    return value


def png_text_chunks(data: bytes) -> dict[str, str]:
    """The PNG's text chunks (tEXt, zTXt, iTXt) by keyword, read from the chunk stream without decoding pixels
    (a card's picture is checked by upload hygiene separately). Cards are found before or after the image data."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise CharacterError("The file is not a PNG.")
    texts: dict[str, str] = {}
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8: pos + 8 + length]
        if len(body) < length:
            raise CharacterError("The PNG is truncated; export the card again.")
        pos += 12 + length
        if kind == b"IEND":
            break
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        keyword, _, rest = body.partition(b"\x00")
        try:
            if kind == b"tEXt":
                text = rest.decode("latin-1")
            elif kind == b"zTXt":
                text = _inflate(rest[1:]).decode("latin-1")
            else:  # iTXt: compression flag, method, language tag, translated keyword, text (UTF-8)
                flag, rest = rest[0], rest[2:]
                _, _, rest = rest.partition(b"\x00")
                _, _, rest = rest.partition(b"\x00")
                text = (_inflate(rest) if flag else rest).decode("utf-8")
        except (zlib.error, UnicodeDecodeError, IndexError):
            raise CharacterError(f"The PNG's {keyword.decode('latin-1', 'replace')!r} chunk is damaged.") from None
        texts.setdefault(keyword.decode("latin-1"), text)
    return texts


def _inflate(raw: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(raw, CARD_MAX_BYTES)
    if inflater.unconsumed_tail:
        raise CharacterError(f"A PNG text chunk inflates past {CARD_MAX_BYTES // 1_000_000} MB.")
    return out


def png_cards(data: bytes) -> dict[str, dict[str, Any]]:
    """The cards a PNG carries, by chunk name (`chara`, `ccv3`)."""
    text = png_text_chunks(data)
    cards = {}
    for key in ("chara", "ccv3"):
        if key in text:
            try:
                raw = base64.b64decode(text[key], validate=False)
            except (binascii.Error, ValueError):
                raise CharacterError(f"The PNG's {key!r} chunk is not base64.") from None
            cards[key] = _json(raw, f"The PNG's {key!r} chunk")
    return cards


def _lenient_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)


def _lenient_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return [_lenient_str(v) for v in value]
    return [_lenient_str(value)]


def _seconds(value: Any) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number / 1000) if number > 1e11 else int(number)  # some writers use milliseconds


def parse_card(card: dict[str, Any]) -> ImportedCard:
    """A V1, V2 or V3 card as profile keywords and card memory, keeping what this app does not edit."""
    spec = card.get("spec")
    if spec == V3_SPEC:
        version, data = "v3", card.get("data")
    elif spec == V2_SPEC:
        version, data = "v2", card.get("data")
    elif spec is None and "name" in card:
        version, data = "v1", card  # V1: the fields at the top level
    else:
        raise CharacterError(f"Unknown card spec {spec!r}; Character Card V1, V2 and V3 are read.")
    if not isinstance(data, dict):
        raise CharacterError("The card has no data object.")
    extensions = data.get("extensions") if isinstance(data.get("extensions"), dict) else {}
    ours = extensions.get(NAMESPACE) if isinstance(extensions.get(NAMESPACE), dict) else {}
    fields = {key: _lenient_str(data.get(key)) for key in CARD_FIELDS}
    profile = {
        "fields": fields,
        "intro": _lenient_str(ours.get("intro")),
        "tags": tuple(_lenient_list(data.get("tags"))),
        "opening_messages": tuple(_lenient_list(data.get("alternate_greetings")) if not isinstance(data.get("alternate_greetings"), str)
                                  else [data["alternate_greetings"]]),
        "chat_models": tuple(_lenient_list(ours.get("chat_models"))),
        "persona_cards": tuple(c for c in ours.get("persona_cards", []) if isinstance(c, dict)),
        "challenge_modes": tuple(c for c in ours.get("challenge_modes", []) if isinstance(c, dict)),
    }
    extra = {k: v for k, v in data.items() if k not in EDITED}
    meta = {
        "extensions": {k: v for k, v in extensions.items() if k != NAMESPACE},
        "extra": extra,
        "imported_spec": version,
    }
    created = _seconds(data.get("creation_date"))
    if created:
        meta["creation_date"] = created
    if version == "v1":
        meta["extra"] = {k: v for k, v in extra.items() if k not in ("spec", "spec_version")}
    figure = ours.get("figure_id")
    return ImportedCard(version, profile, _lenient_str(ours.get("visibility")), figure if isinstance(figure, str) else None, meta)


def sniff_card(head: bytes) -> str | None:
    """The card container the first bytes announce (PNG cards are images): JSON, CHARX (a zip) or None."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        return "JSON"
    if head.startswith(b"PK\x03\x04"):
        return "CHARX"
    return None


def read_card_file(content: bytes, filename: str = "") -> ImportedCard:
    """A card from a PNG, a JSON file or a CHARX zip, told apart by their bytes (not the file name)."""
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        cards = png_cards(content)
        chosen = cards.get("ccv3") or cards.get("chara")
        if chosen is None:
            raise CharacterError(f"{filename or 'The PNG'} carries no character card (no `ccv3` or `chara` chunk).")
        imported = parse_card(chosen)
        imported.avatar = content
        return imported
    if content.startswith(b"PK\x03\x04"):
        return _read_charx(content, filename)
    if len(content) > CARD_MAX_BYTES:
        raise CharacterError(f"{filename or 'The card'} is larger than {CARD_MAX_BYTES // 1_000_000} MB.")
    return parse_card(_json(content, filename or "The card"))


def _read_charx(content: bytes, filename: str) -> ImportedCard:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        raise CharacterError(f"{filename or 'The CHARX'} is not a readable zip.") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > CHARX_MAX_FILES or sum(i.file_size for i in infos) > CHARX_MAX_BYTES:
            raise CharacterError(f"{filename or 'The CHARX'} holds too much: at most {CHARX_MAX_FILES} files and "
                                 f"{CHARX_MAX_BYTES // 1_000_000} MB uncompressed.")
        names = {i.filename for i in infos}
        if "card.json" not in names:
            raise CharacterError(f"{filename or 'The CHARX'} has no card.json at its root.")
        raw = _json(archive.read("card.json"), "card.json")
        imported = parse_card(raw)
        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        data_assets = data.get("assets") if isinstance(data.get("assets"), list) else []
        icons = [a for a in data_assets if isinstance(a, dict) and a.get("type") == "icon"]
        icon = next((a for a in icons if a.get("name") == "main"), icons[0] if icons else None)
        uri = str((icon or {}).get("uri", ""))
        if uri.startswith("embeded://") and uri[len("embeded://"):] in names:
            imported.avatar = archive.read(uri[len("embeded://"):])
    return imported
