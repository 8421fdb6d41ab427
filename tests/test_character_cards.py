"""Character Card V1/V2/V3 and CHARX: export -> import reproduces every field, other tools' extensions survive a
round trip unchanged, and the files are read back with independent readers (pypng for PNG chunks, zipfile and json
for CHARX), not only with our own parser."""
from __future__ import annotations

import base64
import io
import json
import zipfile
import zlib

import numpy as np
import png  # pypng: an independent PNG reader
import pytest
from PIL import Image, PngImagePlugin

from services.creation.characters import NAMESPACE, AvatarChoice, CharacterError
from services.creation.text import TextToImageParams
from services.safety.output import Unchecked
from services.safety.uploads import InvalidUpload
from tests.test_characters import GOOD, PHOTO, figure_for, guest, upload, with_profile

FORMATS = ("png-v3", "png-v2", "json", "charx")


def raw_chunks(data: bytes) -> dict[str, tuple[bytes, bytes]]:
    """{keyword: (chunk type, text)} of the PNG's text chunks, read by pypng (zTXt inflated here)."""
    found = {}
    for kind, body in png.Reader(bytes=data).chunks():
        if kind in (b"tEXt", b"zTXt"):
            keyword, _, rest = body.partition(b"\x00")
            text = zlib.decompress(rest[1:]) if kind == b"zTXt" else rest
            found[keyword.decode("latin-1")] = (kind, text)
    return found


def card_in(path) -> dict:
    data = path.read_bytes() if hasattr(path, "read_bytes") else path
    if data.startswith(b"\x89PNG"):
        chunks = raw_chunks(data)
        return {k: json.loads(base64.b64decode(text)) for k, (_, text) in chunks.items() if k in ("chara", "ccv3")}
    if data.startswith(b"PK"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {"ccv3": json.loads(archive.read("card.json"))}
    return {"ccv3": json.loads(data)}


def rich_character(services, account):
    figure = figure_for(services, account)
    character = services.characters.create(account, with_profile(
        fields={"mes_example": "<START>\n{{user}}: Hi\n{{char}}: Hello.", "system_prompt": "Stay in character.",
                "post_history_instructions": "Keep replies short.", "creator_notes": "Made in the playground."},
        opening_messages=("Back again?", "The tide is late today."),
        chat_models=("Qwen/Qwen3-32B", "google/gemma-3-27b-it")), "unlisted", figure_id=figure.id)
    made = services.text.text_to_image(account, TextToImageParams("the cartographer at her desk", "sdxl-base", steps=2, seed=3, count=2))
    for index in (0, 1):
        services.characters.gallery_add(account, character.id, made.request_id, index)
    return services.characters.get(account, character.id), figure


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_then_import_reproduces_every_field(make_services, fmt):
    services = make_services()
    account = guest(services)
    original, figure = rich_character(services, account)
    exported = services.characters.export_card(account, original.id, fmt)
    first = card_in(exported)["ccv3" if fmt != "png-v2" else "chara"]
    imported = services.characters.import_card(account, str(exported))

    # a new character: the original (same name) is untouched
    assert imported.id != original.id and imported.name == original.name
    assert services.characters.get(account, original.id).profile == original.profile
    assert imported.profile == original.profile
    assert imported.visibility == original.visibility == "unlisted" and imported.figure_id == figure.id
    if fmt == "json":  # a JSON card carries no picture: on the importer's own figure, its canonical image
        assert imported.avatar["source"] == "figure" and imported.image == figure.canonical_path
    else:
        assert imported.avatar["source"] == "import" and imported.avatar["safety"] == "safe"
        with Image.open(imported.image) as got, Image.open(original.image) as want:
            assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(want.convert("RGB")))

    again = card_in(services.characters.export_card(account, imported.id, fmt))["ccv3" if fmt != "png-v2" else "chara"]
    # CHARX gallery assets are not imported into the gallery (a gallery holds only images generated here)
    skip = {"modification_date"} | ({"assets"} if fmt == "charx" else set())
    assert {k: v for k, v in again["data"].items() if k not in skip} == {k: v for k, v in first["data"].items() if k not in skip}
    assert imported.counts["image"] == 0
    if fmt != "png-v2":
        assert again["data"]["creation_date"] == first["data"]["creation_date"]  # kept from the first export
        assert isinstance(first["data"]["modification_date"], int) and first["data"]["modification_date"] < 10**11  # seconds


def test_png_v3_carries_mirrored_ccv3_and_chara_chunks(make_services):
    services = make_services()
    account = guest(services)
    original, figure = rich_character(services, account)
    data = services.characters.export_card(account, original.id, "png-v3").read_bytes()
    chunks = raw_chunks(data)
    assert chunks["ccv3"][0] == b"tEXt" and chunks["chara"][0] == b"tEXt"
    v3, v2 = (json.loads(base64.b64decode(chunks[k][1])) for k in ("ccv3", "chara"))
    assert (v3["spec"], v3["spec_version"], v2["spec"], v2["spec_version"]) == ("chara_card_v3", "3.0", "chara_card_v2", "2.0")
    assert {k: v for k, v in v3["data"].items() if k in v2["data"]} == v2["data"]  # the V2 backfill mirrors V3
    assert not set(v2["data"]) & {"assets", "creation_date", "modification_date", "group_only_greetings", "nickname"}
    ours = v3["data"]["extensions"][NAMESPACE]
    assert ours["figure_id"] == figure.id and ours["visibility"] == "unlisted" and ours["intro"] == GOOD.intro
    assert ours["persona_cards"] == list(GOOD.persona_cards) and ours["challenge_modes"][0]["goal"].startswith("Get her")
    assert ours["chat_models"] == ["Qwen/Qwen3-32B", "google/gemma-3-27b-it"] and "random" in ours["opening_messages"]
    assert v3["data"]["alternate_greetings"] == ["Back again?", "The tide is late today."]
    assert v3["data"]["first_mes"] == GOOD.fields["first_mes"] and v3["data"]["description"] == GOOD.fields["description"]
    assert "ccv3" not in raw_chunks(services.characters.export_card(account, original.id, "png-v2").read_bytes())
    with Image.open(io.BytesIO(data)) as image:
        assert "parameters" not in image.text  # the generation's own settings chunk is not carried over


def test_charx_holds_card_json_and_embedded_assets(make_services):
    services = make_services()
    account = guest(services)
    original, _ = rich_character(services, account)
    data = services.characters.export_card(account, original.id, "charx").read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        card = json.loads(archive.read("card.json"))
        names = set(archive.namelist())
        assets = card["data"]["assets"]
        assert [a["type"] for a in assets] == ["icon", "other", "other"] and assets[0]["name"] == "main"
        for asset in assets:
            assert asset["uri"].startswith("embeded://") and asset["uri"][len("embeded://"):] in names
            with Image.open(io.BytesIO(archive.read(asset["uri"][len("embeded://"):]))) as image:
                image.verify()
    assert card["spec"] == "chara_card_v3"


def foreign_card() -> dict:
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": {
        "name": "Marrow", "description": "A lighthouse keeper.", "personality": "laconic", "scenario": "A storm.",
        "first_mes": "Door's open.", "mes_example": "", "creator_notes": "From another tool.", "system_prompt": "",
        "post_history_instructions": "", "alternate_greetings": ["Storm's coming."], "tags": ["sea"], "creator": "someone",
        "character_version": "7", "nickname": "Mar", "group_only_greetings": ["All of you, inside."],
        "character_book": {"name": "lore", "entries": [{"keys": ["lamp"], "content": "The lamp never goes out.",
                                                       "enabled": True, "insertion_order": 0, "use_regex": False}]},
        "source": ["https://example.org/marrow"], "creator_notes_multilingual": {"fr": "D'un autre outil."},
        "x_vendor_field": {"kept": [1, 2, 3]},
        "extensions": {"depth_prompt": {"prompt": "Speak softly.", "depth": 4}, "risuai": {"bias": [["a", 1]]},
                       "talkativeness": "0.5"},
        "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
        "creation_date": 1700000000, "modification_date": 1700000500}}


def test_unknown_extensions_and_fields_survive_import_and_re_export(make_services):
    services = make_services()
    account = guest(services)
    source = foreign_card()
    imported = services.characters.import_card(account, json.dumps(source).encode(), filename="marrow.json")
    assert imported.name == "Marrow" and imported.visibility == "private"  # the card names none: private
    assert imported.profile["intro"] == "A lighthouse keeper."  # from the description (the card has no intro)
    for fmt in ("json", "png-v3", "charx"):
        if fmt != "json":
            services.characters.set_main(account, imported.id, "upload", upload=str(PHOTO))
        data = card_in(services.characters.export_card(account, imported.id, fmt))["ccv3"]["data"]
        for key in ("character_book", "nickname", "source", "creator_notes_multilingual", "x_vendor_field",
                    "group_only_greetings", "character_version", "creation_date"):
            assert data[key] == source["data"][key], key
        assert {k: v for k, v in data["extensions"].items() if k != NAMESPACE} == source["data"]["extensions"]


def v2_png(card: dict, compressed: bool) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("chara", base64.b64encode(json.dumps(card).encode()).decode(), zip=compressed)
    buffer = io.BytesIO()
    with Image.open(PHOTO) as photo:
        photo.convert("RGB").resize((256, 256)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


@pytest.mark.parametrize("compressed", [False, True], ids=["tEXt", "zTXt"])
def test_a_v2_only_png_imports(make_services, compressed):
    services = make_services()
    account = guest(services)
    v2 = {"spec": "chara_card_v2", "spec_version": "2.0", "data": dict(
        {k: v for k, v in foreign_card()["data"].items() if k in ("name", "description", "personality", "scenario",
         "first_mes", "mes_example", "creator_notes", "system_prompt", "post_history_instructions", "alternate_greetings",
         "tags", "creator", "character_version", "extensions", "character_book")})}
    data = v2_png(v2, compressed)
    assert raw_chunks(data)["chara"][0] == (b"zTXt" if compressed else b"tEXt")
    imported = services.characters.import_card(account, data, filename="marrow.png")
    assert imported.name == "Marrow" and imported.profile["alternate_greetings"] == ["Storm's coming."]
    assert imported.avatar["source"] == "import" and imported.image.is_file()


def test_ccv3_is_preferred_over_chara(make_services):
    services = make_services()
    account = guest(services)
    info = PngImagePlugin.PngInfo()
    v3 = foreign_card()
    v2 = {"spec": "chara_card_v2", "spec_version": "2.0", "data": dict(v3["data"], name="Old Name")}
    info.add_text("chara", base64.b64encode(json.dumps(v2).encode()).decode())
    info.add_text("ccv3", base64.b64encode(json.dumps(v3).encode()).decode())
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 160)).save(buffer, format="PNG", pnginfo=info)
    assert services.characters.import_card(account, buffer.getvalue()).name == "Marrow"


def test_a_v1_json_imports(make_services):
    services = make_services()
    account = guest(services)
    v1 = {"name": "Old Tom", "description": "A ferryman. He knows every current.", "personality": "gruff",
          "scenario": "The river at dusk.", "first_mes": "Fare's a story.", "mes_example": "", "avatar": "none",
          "chat": "Old Tom - 2023-5-1", "create_date": "2023-5-1"}
    imported = services.characters.import_card(account, json.dumps(v1).encode())
    assert imported.profile["fields"]["first_mes"] == "Fare's a story." and imported.profile["tags"] == ["imported"]
    data = card_in(services.characters.export_card(account, imported.id, "json"))["ccv3"]["data"]
    assert data["chat"] == "Old Tom - 2023-5-1" and data["avatar"] == "none"  # non-standard fields are kept


@pytest.mark.parametrize("content, match", [
    (b"not a card", "not valid JSON"),
    (json.dumps({"spec": "chara_card_v9", "data": {}}).encode(), "Unknown card spec"),
    (json.dumps({"spec": "chara_card_v2", "data": {"name": "No Greeting"}}).encode(), "Greeting is required"),
    (b"PK\x03\x04 broken", "not a readable zip"),
], ids=["garbage", "unknown spec", "no greeting", "broken zip"])
def test_bad_cards_are_refused_and_nothing_is_written(make_services, content, match):
    services = make_services()
    account = guest(services)
    with pytest.raises(CharacterError, match=match):
        services.characters.import_card(account, content)
    assert services.characters.list(account) == []


def test_an_imported_picture_goes_through_upload_hygiene_and_the_check(make_services, tmp_path):
    services = make_services(safety=Unchecked())
    account = guest(services)
    public = dict(foreign_card())
    public["data"] = dict(public["data"], extensions={NAMESPACE: {"visibility": "public", "intro": "Keeper."}})
    with pytest.raises(CharacterError, match="no output check is configured"):
        services.characters.import_card(account, v2_png({"spec": "chara_card_v2", "data": public["data"]}, False))
    private = services.characters.import_card(account, v2_png({"spec": "chara_card_v2", "data": public["data"]}, False),
                                              visibility="private")
    assert private.avatar["safety"] == "unchecked" and private.visibility == "private"
    # a card whose picture declares 400 megapixels: refused from its header by upload hygiene
    bomb = bytearray(v2_png({"spec": "chara_card_v2", "data": public["data"]}, False))
    bomb[16:24] = (20000).to_bytes(4, "big") + (20000).to_bytes(4, "big")
    bomb[29:33] = zlib.crc32(bytes(bomb[12:29])).to_bytes(4, "big")
    with pytest.raises(InvalidUpload, match="declares 400 megapixels"):
        services.characters.import_card(account, bytes(bomb), visibility="private")
    assert len(services.characters.list(account)) == 1
