"""Issue 25, item 1: a character card is bounded on every path before anything is decoded in full.

The card's JSON is held to CARD_MAX_BYTES whether it comes as a file, a PNG chunk or a CHARX member (by the size
the zip declares and by what the member really unpacks to), its nesting to MAX_DEPTH before json.loads recurses,
and every way a visitor's file can be wrong is a CharacterError naming it: nothing stored, no traceback logged, and
the UI wrapper shows the message itself (not the generic "failed" line it gives bugs)."""
from __future__ import annotations

import base64
import io
import json
import logging
import random
import struct
import time
import tracemalloc
import zipfile

import gradio as gr
import pytest
import sqlalchemy as sa
from PIL import Image, PngImagePlugin

from services.accounts.tables import characters
from services.creation.characters import CharacterError
from services.creation.characters.card_reading import CARD_MAX_BYTES, CHARX_MAX_FILES, MAX_DEPTH, read_card_file
from tests.test_characters import guest
from ui.errors import user_errors

MB = 1_000_000
DEEP = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


# -- building bad files --------------------------------------------------------------------------------------
def card(**data) -> dict:
    base = {"name": "Marrow", "first_mes": "Door's open.", "description": "A lighthouse keeper.", "tags": ["sea"]}
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": {**base, **data}}


def card_bytes(**data) -> bytes:
    return json.dumps(card(**data)).encode()


def png(text: str | bytes, key: str = "ccv3", compressed: bool = False, comment: str = "") -> bytes:
    """A small picture with `text` (or base64 of the bytes) as its card chunk (and a zTXt comment when given)."""
    info = PngImagePlugin.PngInfo()
    if comment:
        info.add_text("Comment", comment, zip=True)
    info.add_text(key, base64.b64encode(text).decode() if isinstance(text, bytes) else text, zip=compressed)
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (90, 120, 160)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def charx(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytearray:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return bytearray(buffer.getvalue())


def central(data: bytearray, name: bytes) -> int:
    """The offset of `name`'s central directory entry."""
    at = data.find(b"PK\x01\x02")
    while data[at + 46:at + 46 + struct.unpack_from("<H", data, at + 28)[0]] != name:
        at = data.find(b"PK\x01\x02", at + 4)
    return at


def declare(data: bytearray, name: bytes, size: int) -> bytes:
    """The zip with `name`'s uncompressed size declared as `size`, in its central entry and its local header."""
    entry = central(data, name)
    struct.pack_into("<I", data, entry + 24, size)
    struct.pack_into("<I", data, struct.unpack_from("<I", data, entry + 42)[0] + 22, size)
    return bytes(data)


def patched(data: bytearray, name: bytes, offset: int, fmt: str, value: int) -> bytes:
    struct.pack_into(fmt, data, central(data, name) + offset, value)
    return bytes(data)


def charx_bomb(lie: bool) -> bytes:
    """A ~57 KB CHARX whose card.json inflates to ~58 MB (written streamed: the 58 MB are never held at once)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        head, tail = card_bytes(description="@@").split(b"@@")
        with archive.open("card.json", "w") as out:
            out.write(head)
            for _ in range(58):
                out.write(b"A" * MB)
            out.write(tail)
    data = bytearray(buffer.getvalue())
    assert len(data) < 100_000 and zipfile.ZipFile(io.BytesIO(data)).infolist()[0].file_size > 58 * MB
    return declare(data, b"card.json", 1000) if lie else bytes(data)


def nine_mb_png() -> bytes:
    data = png(card_bytes(description="A" * 6_750_000))
    assert 9 * MB <= len(data) < 9.2 * MB
    return data


# -- the checks ----------------------------------------------------------------------------------------------
def stored(services) -> tuple[int, int]:
    """Files under the store root and rows in the characters table."""
    root = services.characters.store.root
    files = sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0
    with services.db.engine.connect() as conn:
        return files, conn.execute(sa.select(sa.func.count()).select_from(characters)).scalar()


def refused(services, caplog, content, match: str, filename: str = "") -> tuple[str, float, int]:
    """Import `content` through the real service: CharacterError matching `match`, nothing stored, no traceback
    logged, and the UI wrapper shows the same message. (message, seconds, peak bytes allocated during the call)."""
    account = guest(services)
    before = stored(services)
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        tracemalloc.start()
        start = time.perf_counter()
        try:
            with pytest.raises(CharacterError, match=match) as raised:
                services.characters.import_card(account, content, filename=filename)
        finally:
            seconds = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        with pytest.raises(gr.Error) as shown:
            user_errors(services.characters.import_card)(account, content, filename=filename)
    assert shown.value.message == str(raised.value)
    assert stored(services) == before
    assert not [r for r in caplog.records if r.exc_info], "a visitor's bad file logged a traceback"
    return str(raised.value), seconds, peak


BIG = {
    "charx inflating to 58 MB": (lambda: charx_bomb(lie=False), r"card\.json in bomb\.charx declares 58,.* the limit is 2 MB"),
    "charx whose header says 1,000 bytes": (lambda: charx_bomb(lie=True), r"unpacks to more than 2 MB.*the limit is 2 MB"),
    "png with a 9 MB ccv3 chunk": (nine_mb_png, r"'ccv3' chunk is 9,.*bytes; a card's JSON is limited to 2 MB"),
    "json 10^5 deep": (lambda: DEEP, rf"more than {MAX_DEPTH} levels deep"),
    "png chunk 10^5 deep": (lambda: png(DEEP, "chara"), rf"more than {MAX_DEPTH} levels deep"),
    "charx card.json 10^5 deep": (lambda: bytes(charx({"card.json": DEEP})), rf"more than {MAX_DEPTH} levels deep"),
}


@pytest.mark.parametrize("build, match", BIG.values(), ids=BIG.keys())
def test_bombs_are_refused_fast_in_little_memory_naming_the_limit(make_services, caplog, build, match):
    services = make_services()
    content = build()
    message, seconds, peak = refused(services, caplog, content, match, filename="bomb.charx")
    assert seconds < 2, f"{seconds:.1f} s: {message}"
    assert peak < 100 * MB, f"{peak / MB:.0f} MB allocated: {message}"


def bad_png_chunk() -> bytes:
    data = bytearray(png(card_bytes(), "chara", compressed=True))
    at = data.find(b"zTXtchara\x00\x00") + 11
    data[at + 2:at + 6] = b"\xff\xff\xff\xff"  # the zlib stream is damaged
    return bytes(data)


CASES = {
    # JSON: depth, types, numbers, encoding
    "deep data": (card_bytes(description=[[[]]], x=json.loads("[" * 70 + "]" * 70)), rf"more than {MAX_DEPTH} levels"),
    "unclosed brackets": (b"[" * 100_000, rf"more than {MAX_DEPTH} levels"),
    "data is a list": (json.dumps({"spec": "chara_card_v2", "data": [1, 2]}).encode(), "data must be an object, not a list"),
    "name is an object": (card_bytes(name={"first": "Marrow"}), "name must be text, not an object"),
    "description is a list": (card_bytes(description=["a"]), "description must be text, not a list"),
    "tags is a number": (card_bytes(tags=5), "tags must be a list of text, not a number"),
    "a tag is an object": (card_bytes(tags=["sea", {"t": 1}]), r"tags \(item 2\) must be text, not an object"),
    "greetings is an object": (card_bytes(alternate_greetings={"a": 1}), "alternate_greetings must be a list of text"),
    "extensions is a list": (card_bytes(extensions=[1]), "extensions must be an object, not a list"),
    "our namespace is text": (card_bytes(extensions={"character_playground": "x"}), "character_playground must be an object"),
    "persona_cards not a list": (card_bytes(extensions={"character_playground": {"persona_cards": 7}}),
                                 "persona_cards must be a list of objects, not a number"),
    "persona card not an object": (card_bytes(extensions={"character_playground": {"persona_cards": ["Ann"]}}),
                                   r"persona_cards \(item 1\) must be an object, not text"),
    "persona name an object": (card_bytes(extensions={"character_playground": {"persona_cards": [{"name": {}}]}}),
                               r"persona_cards \(item 1\) name must be text"),
    "challenge_modes text": (card_bytes(extensions={"character_playground": {"challenge_modes": "win"}}),
                             "challenge_modes must be a list of objects"),
    "chat_models a number": (card_bytes(extensions={"character_playground": {"chat_models": 3}}), "chat_models must be a list"),
    "visibility an object": (card_bytes(extensions={"character_playground": {"visibility": {}}}), "visibility must be text"),
    "NaN date": (card_bytes()[:-2] + b', "creation_date": NaN}}', "holds NaN, which is not a number JSON allows"),
    "Infinity date": (card_bytes()[:-2] + b', "creation_date": Infinity}}', "holds Infinity"),
    "-Infinity date": (card_bytes()[:-2] + b', "modification_date": -Infinity}}', "holds -Infinity"),
    "1e400 date": (card_bytes()[:-2] + b', "creation_date": 1e400}}', "the number 1e400, too large to read"),
    "5000-digit date": (card_bytes()[:-2] + b', "creation_date": 1' + b"0" * 5000 + b"}}", "limited to 100"),
    "date 1e300": (card_bytes(creation_date=1e300), r"creation_date \(1e\+300\) is not a date"),
    "date text inf": (card_bytes(creation_date="inf"), r"creation_date \(inf\) is not a date"),
    "date text nan": (card_bytes(creation_date="nan"), r"creation_date \(nan\) is not a date"),
    "negative date": (card_bytes(modification_date=-5), r"modification_date \(-5\) is not a date"),
    "bad UTF-8": (card_bytes(description="X").replace(b'"X"', b'"\xff\xfe\xfa"'), "not valid UTF-8"),
    "not JSON": (b"{ this is not json", "not valid JSON"),
    "a JSON list": (b"[1, 2]", "a JSON object was expected"),
    "over 2 MB": (card_bytes(description="A" * (2 * MB)), r"is 2,000,.* bytes; a card's JSON is limited to 2 MB"),
    "unknown spec object": (json.dumps({"spec": {"x": "y" * 500}, "data": {}}).encode(), "Unknown card spec"),
    # PNG
    "png bad base64": (png("not base64 at all!"), "'ccv3' chunk is not valid base64"),
    "png non-ASCII base64": (png("Y2FyZA==\u00e9", "chara"), "'chara' chunk is not valid base64"),
    "png base64 of bad UTF-8": (png(b"\xff\xfe\xfa{}"), "'ccv3' chunk is not valid UTF-8"),
    "png damaged zTXt": (bad_png_chunk(), "'chara' chunk is damaged"),
    "png zTXt inflating past the limit": (png("A" * 3 * MB, "chara", compressed=True), "'chara' chunk is more than 2.8 MB unpacked"),
    "png truncated": (png(card_bytes())[:-40], "truncated"),
    "png with no card": (png("hello", "Comment"), "carries no character card"),
    "png card with NaN": (png(card_bytes()[:-2] + b', "creation_date": NaN}}'), "holds NaN"),
    # CHARX
    "charx corrupt": (b"PK\x03\x04" + b"\x00" * 200, "not a readable zip"),
    "charx truncated": (bytes(charx({"card.json": card_bytes()}))[:-30], "not a readable zip"),
    "charx damaged deflate": (lambda: damaged_deflate(), "not a readable zip"),
    "charx sizes lie (declared smaller)": (lambda: declare(charx({"card.json": card_bytes()}), b"card.json", 20),
                                           "does not match the size or checksum its zip declares"),
    "charx sizes lie (declared larger)": (lambda: declare(charx({"card.json": card_bytes()}), b"card.json", 3000),
                                          "does not match the size or checksum"),
    "charx CRC wrong": (lambda: patched(charx({"card.json": card_bytes()}), b"card.json", 16, "<I", 1234), "checksum"),
    "charx unsupported compression": (lambda: patched(charx({"card.json": card_bytes()}), b"card.json", 10, "<H", 99),
                                      "uses a compression this app does not read"),
    "charx encrypted": (lambda: patched(charx({"card.json": card_bytes()}), b"card.json", 8, "<H", 1), "is encrypted"),
    "charx too many files": (lambda: bytes(charx({f"f{n}": b"" for n in range(CHARX_MAX_FILES + 1)})), "at most 200 files"),
    "charx end record claims 65,000 files": (lambda: end_record_claims(64_999), "at most 200 files"),
    "charx declares 61 MB": (lambda: declare(charx({"card.json": card_bytes()}), b"card.json", 61 * MB), "60 MB uncompressed"),
    "charx no card.json": (lambda: bytes(charx({"other.json": card_bytes()})), "no card.json"),
    "charx card.json bad UTF-8": (lambda: bytes(charx({"card.json": b'{"spec": "\xff"}'})), "not valid UTF-8"),
    "charx card.json types": (lambda: bytes(charx({"card.json": card_bytes(tags={"a": 1})})), "tags must be a list of text"),
    "charx icon declared past the upload limit": (lambda: icon_charx(declared=11 * MB), r"main image in .* declares 11,000,000 bytes; the limit is 10 MB"),
    "charx icon inflating past the upload limit": (lambda: icon_charx(declared=100), r"main image in .* unpacks to more than 10 MB"),
}


def damaged_deflate() -> bytes:
    data = charx({"card.json": card_bytes()})
    data[30 + len(b"card.json")] = 0xFF  # the first deflate block: reserved type 3
    return bytes(data)


def end_record_claims(files: int) -> bytes:
    data = charx({"card.json": card_bytes()})
    struct.pack_into("<HH", data, len(data) - 22 + 8, files, files)
    return bytes(data)


def icon_charx(declared: int) -> bytes:
    uri = "embeded://assets/icon/image/main.png"
    members = {"card.json": card_bytes(assets=[{"type": "icon", "uri": uri, "name": "main", "ext": "png"}]),
               "assets/icon/image/main.png": b"\x00" * (12 * MB)}
    return declare(charx(members), b"assets/icon/image/main.png", declared)


@pytest.mark.parametrize("content, match", CASES.values(), ids=CASES.keys())
def test_every_parser_failure_is_a_character_error_naming_it(make_services, caplog, content, match):
    services = make_services()
    refused(services, caplog, content() if callable(content) else content, match)


def test_a_refused_file_upload_shows_its_message(make_services, caplog, tmp_path):
    """The API passes the uploaded file's path: the refusal names the file and the limit."""
    path = tmp_path / "deep.json"
    path.write_bytes(DEEP)
    message, _, _ = refused(make_services(), caplog, str(path), "deep.json nests its JSON more than 64 levels")
    assert "64" in message


def test_a_shown_card_without_an_output_check_stores_no_picture(make_services, caplog):
    """Refused before the picture is stored (before, the picture was written and then the import refused)."""
    from services.safety.output import Unchecked

    public = png(card_bytes(extensions={"character_playground": {"visibility": "public", "intro": "Keeper."}}))
    refused(make_services(safety=Unchecked()), caplog, public, "no output check is configured")


def test_good_cards_still_import_from_every_container(make_services):
    """The bounds refuse nothing a real card holds: 1.9 MB of JSON, 60 levels, millisecond dates, wrapped base64."""
    services = make_services()
    account = guest(services)
    nested = json.loads("[" * 55 + "]" * 55)
    big = card(x_notes="n" * 1_900_000, x_vendor={"deep": nested}, creation_date=1_700_000_000_000)
    raw = json.dumps(big).encode()
    assert 1.9 * MB < len(raw) <= CARD_MAX_BYTES
    encoded = base64.b64encode(raw).decode()
    wrapped = "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))  # as some writers wrap it
    # (PIL itself refuses a zTXt chunk inflating past 1 MB: the picture goes to upload hygiene without its chunks)
    pngs = png(wrapped), png(wrapped, "chara", compressed=True), png(raw, comment="c" * 1_500_000)
    for content in (raw, *pngs, bytes(charx({"card.json": raw}))):
        imported = services.characters.import_card(account, content, visibility="private")
        assert imported.name == "Marrow"
    kept = services.characters.export_card(account, imported.id, "json").read_bytes()
    assert json.loads(kept)["data"]["x_vendor"]["deep"] == nested and json.loads(kept)["data"]["creation_date"] == 1_700_000_000


def test_random_damage_is_only_ever_a_character_error():
    """Flipped, cut and inserted bytes in a PNG, a JSON and a CHARX card: read or refused, never another exception."""
    rng = random.Random(25)
    good = card_bytes(extensions={"character_playground": {"persona_cards": [{"name": "Ann", "description": "x"}]}})
    sources = [good, png(good), png(good, "chara", compressed=True), bytes(charx({"card.json": good})),
               bytes(charx({"card.json": good}, zipfile.ZIP_STORED))]
    for n in range(1500):
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            action = rng.random()
            if action < 0.6:
                data[at] = rng.randrange(256)
            elif action < 0.8:
                del data[at:at + rng.randint(1, 40)]
            else:
                data[at:at] = bytes(rng.choice([b"[", b"{", b'"', b"\\", b"\x00", b"\xff", b"NaN"]) * rng.randint(1, 200))
        try:
            read_card_file(bytes(data))
        except CharacterError:
            pass


@pytest.mark.parametrize("name, build, match", [
    ("deep.json", lambda: DEEP, f"more than {MAX_DEPTH} levels deep"),
    ("bomb.charx", lambda: charx_bomb(lie=True), "unpacks to more than 2 MB"),
    ("big.png", nine_mb_png, "a card's JSON is limited to 2 MB"),
], ids=["deep json", "lying charx", "9 MB png"])
def test_the_import_endpoint_answers_with_the_message(client, token, caplog, tmp_path, name, build, match):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    path = tmp_path / name
    path.write_bytes(build())
    with caplog.at_level(logging.DEBUG), pytest.raises(AppError) as refused:
        client.predict(card=handle_file(str(path)), token=token, api_name="/character_import")
    assert match in str(refused.value) and "failed (" not in str(refused.value)
    assert not [r for r in caplog.records if r.exc_info], "a visitor's bad file logged a traceback"
