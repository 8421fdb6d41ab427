"""Reading Character Card V1 / V2 / V3 (PNG or JSON) and CHARX files, bounded before anything is decoded in full
(the formats are described in cards.py, which builds them)."""
from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
import struct
import zipfile
import zlib
from itertools import accumulate
from typing import Any

from .cards import (CARD_MAX_BYTES, CHARX_MAX_BYTES, CHARX_MAX_FILES, EDITED, NAMESPACE, V2_SPEC, V3_SPEC, ImportedCard)
from .profile import CARD_FIELDS, CharacterError

# -- reading -------------------------------------------------------------------------------------------------
# A card's JSON is held to CARD_MAX_BYTES on every path before it is decoded in full (a PNG chunk's base64 text
# by its length first), its nesting to MAX_DEPTH before json.loads recurses, and a CHARX by its end record and
# by what each member really unpacks to. Whatever a visitor's file gets wrong is a CharacterError naming it.
MAX_DEPTH = 64
MAX_NUMBER_CHARS = 100  # digits of one JSON number (a card's are dates and small counts)
B64_MAX_CHARS = CARD_MAX_BYTES * 4 // 3 + CARD_MAX_BYTES // 16  # a card's base64, with room for line breaks
CHARX_DIRECTORY_MAX = CHARX_MAX_FILES * 2048  # the zip's file list (central directory), in bytes
LAST_DATE = 253_402_300_799  # 9999-12-31 in seconds
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.S)  # linear: an unclosed string runs to the end
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_DEPTH = {"[": 1, "{": 1, "]": -1, "}": -1}
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, RuntimeError, OSError, struct.error,
               ValueError, KeyError, IndexError, OverflowError)  # a damaged, truncated or odd archive


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f}".rstrip("0").rstrip(".") + " MB"


def _too_large(what: str, size: int | str) -> CharacterError:
    size = f"{size:,} bytes" if isinstance(size, int) else size
    return CharacterError(f"{what} is {size}; a card's JSON is limited to {_mb(CARD_MAX_BYTES)}.")


def _json(raw: bytes, what: str) -> dict[str, Any]:
    if len(raw) > CARD_MAX_BYTES:
        raise _too_large(what, len(raw))
    try:
        text = raw.decode(json.detect_encoding(raw))
    except UnicodeDecodeError:
        raise CharacterError(f"{what} is not valid UTF-8 text; save the card as UTF-8 JSON.") from None
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))  # the brackets outside strings, in order
    if max(accumulate(map(_DEPTH.__getitem__, brackets)), default=0) > MAX_DEPTH:
        raise CharacterError(f"{what} nests its JSON more than {MAX_DEPTH} levels deep; a card is limited to {MAX_DEPTH}.")

    def constant(name: str):
        raise CharacterError(f"{what} holds {name}, which is not a number JSON allows.")

    def number(digits: str, kind=float):
        if len(digits) > MAX_NUMBER_CHARS:
            raise CharacterError(f"{what} holds a number {len(digits):,} characters long; numbers in a card are "
                                 f"limited to {MAX_NUMBER_CHARS}.")
        if not math.isfinite(value := kind(digits)):
            raise CharacterError(f"{what} holds the number {digits}, too large to read.")
        return value

    try:
        value = json.loads(text, parse_constant=constant, parse_float=number, parse_int=lambda d: number(d, int))
    except json.JSONDecodeError as exc:
        raise CharacterError(f"{what} is not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno}).") from None
    if not isinstance(value, dict):
        raise CharacterError(f"{what} holds no card (a JSON object was expected).")
    return value


def png_text_chunks(data: bytes, keys: tuple[str, ...] | None = None) -> dict[str, str]:
    """The PNG's text chunks (tEXt, zTXt, iTXt) by keyword (only `keys` when given; the first of a keyword wins),
    read from the chunk stream without decoding pixels (a card's picture is checked by upload hygiene separately).
    Cards are found before or after the image data. A text is held to a card's base64 length before decoding."""
    if not data.startswith(PNG_SIGNATURE):
        raise CharacterError("The file is not a PNG.")
    texts: dict[str, str] = {}
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        start, pos = pos + 8, pos + 12 + length
        if start + length > len(data):
            raise CharacterError("The PNG is truncated; export the card again.")
        if kind == b"IEND":
            break
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        name = data[start:start + min(length, 80)].partition(b"\x00")[0].decode("latin-1")
        if name in texts or (keys is not None and name not in keys):
            continue
        what = f"The PNG's {name!r} chunk"
        if kind == b"tEXt" and length > B64_MAX_CHARS + 80:
            raise _too_large(what, length)
        rest = data[start:start + length].partition(b"\x00")[2]
        try:
            if kind == b"tEXt":
                text = rest.decode("latin-1")
            elif kind == b"zTXt":
                text = _inflate(rest[1:], what).decode("latin-1")
            else:  # iTXt: compression flag, method, language tag, translated keyword, text (UTF-8)
                flag, rest = rest[0], rest[2:]
                rest = rest.partition(b"\x00")[2].partition(b"\x00")[2]
                text = (_inflate(rest, what) if flag else rest).decode("utf-8")
        except (zlib.error, UnicodeDecodeError, IndexError):
            raise CharacterError(f"{what} is damaged.") from None
        if len(text) > B64_MAX_CHARS:
            raise _too_large(what, len(text))
        texts[name] = text
    return texts


def _picture_only(data: bytes) -> bytes:
    """The PNG without its text chunks: the card is read already, and the picture alone goes through upload hygiene
    (which need not inflate a card's chunk again, nor refuse one past its own text limit)."""
    parts, pos = [data[:8]], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            parts.append(data[pos:pos + 12 + length])
        pos += 12 + length
        if kind == b"IEND":
            break
    return b"".join(parts)


def _inflate(raw: bytes, what: str) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(raw, B64_MAX_CHARS + 1)
    if len(out) > B64_MAX_CHARS:
        raise _too_large(what, f"more than {_mb(B64_MAX_CHARS)} unpacked")
    return out


def _png_card(text: str, key: str) -> dict[str, Any]:
    what = f"The PNG's {key!r} chunk"
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CharacterError(f"{what} is not valid base64; export the card again.") from None
    return _json(raw, what)


def png_cards(data: bytes) -> dict[str, dict[str, Any]]:
    """The cards a PNG carries, by chunk name (`chara`, `ccv3`)."""
    return {key: _png_card(text, key) for key, text in png_text_chunks(data, ("chara", "ccv3")).items()}


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "true/false", str: "text"}.get(type(value), "a number")


def _text(value: Any, label: str) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise CharacterError(f"The card's {label} must be text, not {_kind(value)}.")


def _texts(value: Any, label: str, split: bool = True) -> list[str]:
    """A list of texts; a single text is split at commas (or, `split` False, taken whole)."""
    if value is None or isinstance(value, str):
        return [] if value is None else [p.strip() for p in value.split(",") if p.strip()] if split else [value]
    if isinstance(value, list):
        return [_text(v, f"{label} (item {n})") for n, v in enumerate(value, 1)]
    raise CharacterError(f"The card's {label} must be a list of text, not {_kind(value)}.")


def _object(value: Any, label: str) -> dict[str, Any]:
    if value is None or isinstance(value, dict):
        return value or {}
    raise CharacterError(f"The card's {label} must be an object, not {_kind(value)}.")


def _objects(value: Any, label: str, keys: tuple[str, ...]) -> tuple[dict[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CharacterError(f"The card's {label} must be a list of objects, not {_kind(value)}.")
    items = [_object(item, f"{label} (item {n})") for n, item in enumerate(value, 1)]
    return tuple({k: _text(item.get(k), f"{label} (item {n}) {k}") for k in keys} for n, item in enumerate(items, 1))


def _seconds(value: Any, label: str) -> int | None:
    """A card's date as seconds; None for what is no number (some tools write date text: the import sets one)."""
    if value is None or isinstance(value, (bool, dict, list)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    except OverflowError:
        number = math.inf
    if number > 1e11:
        number /= 1000  # some writers use milliseconds
    if not (math.isfinite(number) and 0 <= number <= LAST_DATE):
        raise CharacterError(f"The card's {label} ({str(value)[:30]}) is not a date: seconds or milliseconds since "
                             "1970, before the year 10000, were expected.")
    return int(number)


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
        raise CharacterError(f"Unknown card spec {str(spec)[:40]!r}; Character Card V1, V2 and V3 are read.")
    if not isinstance(data, dict):
        raise CharacterError(f"The card's data must be an object, not {'missing' if data is None else _kind(data)}.")
    extensions = _object(data.get("extensions"), "extensions")
    ours = _object(extensions.get(NAMESPACE), f"extensions.{NAMESPACE}")
    greetings = data.get("alternate_greetings")
    profile = {
        "fields": {key: _text(data.get(key), key) for key in CARD_FIELDS},
        "intro": _text(ours.get("intro"), "intro"),
        "tags": tuple(_texts(data.get("tags"), "tags")),
        "opening_messages": tuple(_texts(greetings, "alternate_greetings", split=False)),
        "chat_models": tuple(_texts(ours.get("chat_models"), "chat_models")),
        "persona_cards": _objects(ours.get("persona_cards"), "persona_cards", ("name", "description")),
        "challenge_modes": _objects(ours.get("challenge_modes"), "challenge_modes", ("goal", "target", "hint")),
    }
    extra = {k: v for k, v in data.items() if k not in EDITED}
    meta = {"extensions": {k: v for k, v in extensions.items() if k != NAMESPACE}, "extra": extra, "imported_spec": version}
    created = _seconds(data.get("creation_date"), "creation_date")
    _seconds(data.get("modification_date"), "modification_date")  # not kept, but a card with a broken one is refused
    if created:
        meta["creation_date"] = created
    if version == "v1":
        meta["extra"] = {k: v for k, v in extra.items() if k not in ("spec", "spec_version")}
    figure = ours.get("figure_id")
    return ImportedCard(version, profile, _text(ours.get("visibility"), "visibility"), figure if isinstance(figure, str) else None, meta)


def sniff_card(head: bytes) -> str | None:
    """The card container the first bytes announce (PNG cards are images): JSON, CHARX (a zip) or None."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        return "JSON"
    if head.startswith(b"PK\x03\x04"):
        return "CHARX"
    return None


def read_card_file(content: bytes, filename: str = "", max_picture: int = CHARX_MAX_BYTES) -> ImportedCard:
    """A card from a PNG, a JSON file or a CHARX zip, told apart by their bytes (not the file name). `max_picture`
    bounds the picture a CHARX carries (the upload limit)."""
    if content.startswith(PNG_SIGNATURE):
        texts = png_text_chunks(content, ("chara", "ccv3"))
        key = "ccv3" if "ccv3" in texts else "chara" if "chara" in texts else None
        if key is None:
            raise CharacterError(f"{filename or 'The PNG'} carries no character card (no `ccv3` or `chara` chunk).")
        imported = parse_card(_png_card(texts[key], key))
        imported.avatar = _picture_only(content)
        return imported
    if content.startswith(b"PK\x03\x04"):
        return _read_charx(content, filename or "The CHARX", max_picture)
    return parse_card(_json(content, filename or "The card"))


def _zip_directory(content: bytes) -> tuple[int, int]:
    """(files, central directory bytes) from the zip's end record, read before zipfile builds its file list."""
    end = len(content) - 22
    if content[end:end + 4] != b"PK\x05\x06":  # a zip comment follows the end record
        end = content.rfind(b"PK\x05\x06", max(0, len(content) - 22 - 65535))
    if end < 0:
        raise zipfile.BadZipFile("no end of central directory")
    files, size = struct.unpack("<HI", content[end + 10:end + 16])
    if end >= 76 and content[end - 20:end - 16] == b"PK\x06\x07":  # zip64: its end record holds the real counts
        files, size = struct.unpack("<QQ", content[end - 44:end - 28])
    return files, size


def _member(content: bytes, info: zipfile.ZipInfo, limit: int, what: str) -> bytes:
    """A member's bytes, unpacked from its raw data to at most limit + 1 bytes: a declared size that lies can neither
    inflate it past the limit nor cut it short unnoticed (the unpacked size and CRC must match what the zip says)."""
    if info.file_size > limit:
        raise CharacterError(f"{what} declares {info.file_size:,} bytes; the limit is {_mb(limit)}.")
    if info.flag_bits & 0x1:
        raise CharacterError(f"{what} is encrypted; export the card again without a password.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CharacterError(f"{what} uses a compression this app does not read; export it with deflate (the usual zip).")
    header = content[info.header_offset:info.header_offset + 30]
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local header")
    begin = info.header_offset + 30 + sum(struct.unpack("<HH", header[26:30]))
    raw = memoryview(content)[begin:begin + info.compress_size]
    if info.compress_type == zipfile.ZIP_STORED:
        out = bytes(raw[:limit + 1])
    else:
        inflater, parts, size = zlib.decompressobj(-zlib.MAX_WBITS), [], 0
        for at in range(0, len(raw), 1 << 16):
            parts.append(inflater.decompress(raw[at:at + (1 << 16)], limit + 1 - size))
            size += len(parts[-1])
            if size > limit or inflater.unconsumed_tail or inflater.eof:
                break
        out = b"".join(parts)
        if size <= limit and not inflater.eof:
            raise zipfile.BadZipFile("truncated deflate stream")
    if len(out) > limit:
        raise CharacterError(f"{what} unpacks to more than {_mb(limit)}, though its zip declares {info.file_size:,} "
                             f"bytes; the limit is {_mb(limit)}.")
    if len(out) != info.file_size or zlib.crc32(out) != info.CRC:
        raise CharacterError(f"{what} does not match the size or checksum its zip declares; export the card again.")
    return out


def _read_charx(content: bytes, name: str, max_picture: int) -> ImportedCard:
    too_much = CharacterError(f"{name} holds too much: at most {CHARX_MAX_FILES} files and {_mb(CHARX_MAX_BYTES)} "
                              "uncompressed.")
    try:
        files, directory = _zip_directory(content)
        if files > CHARX_MAX_FILES or directory > CHARX_DIRECTORY_MAX:
            raise too_much
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            listed = archive.infolist()
        if len(listed) > CHARX_MAX_FILES or sum(i.file_size for i in listed) > CHARX_MAX_BYTES:
            raise too_much
        infos = {i.filename: i for i in listed}
        if "card.json" not in infos:
            raise CharacterError(f"{name} has no card.json at its root.")
        raw = _json(_member(content, infos["card.json"], CARD_MAX_BYTES, f"card.json in {name}"), "card.json")
        imported = parse_card(raw)
        data_assets = raw["data"].get("assets") if isinstance(raw.get("data"), dict) else None
        icons = [a for a in data_assets if isinstance(a, dict) and a.get("type") == "icon"] if isinstance(data_assets, list) else []
        icon = next((a for a in icons if a.get("name") == "main"), icons[0] if icons else None)
        uri = _text((icon or {}).get("uri"), "icon uri")
        if uri.startswith("embeded://") and uri[len("embeded://"):] in infos:
            imported.avatar = _member(content, infos[uri[len("embeded://"):]], max_picture, f"The main image in {name}")
    except CharacterError:
        raise
    except _ZIP_ERRORS:
        raise CharacterError(f"{name} is not a readable zip (it is damaged or truncated); export the card again.") from None
    return imported
