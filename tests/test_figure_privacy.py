"""The figure stays private (seed 000: "the selected figure will not be shown directly to end users"): no read of a
figure-backed character made for anyone but its owner (and QA sessions, who moderate it) names the figure or its id:
not the character, the catalogue, the galleries, the album, a card export, nor any file those reads hand out (a
generation's PNG metadata names its figure). The owner's own export keeps the figure's id for a re-import.

Checked through the services and through gradio_client on the launched app, for nobody signed in and for another
signed-in visitor."""
from __future__ import annotations

import io
import json
import secrets
import zipfile
from pathlib import Path

import httpx
from gradio_client import Client, handle_file

from services.creation.characters import CoverChoice
from services.media.png import read_png_metadata
from tests.conftest import ADMIN_KEY
from tests.test_characters import PHOTO, SKIMAGE, guest, qa, with_profile

FORMATS = ("json", "png-v3", "png-v2", "charx")


def marker_name() -> str:
    """A figure name that appears nowhere else (the figure's id is random already)."""
    return f"Quillon Marrowgate {secrets.token_hex(4)}"


def blobs(data: bytes) -> list[bytes]:
    """The bytes to search: the file itself, and each member of a zip (CHARX) decompressed."""
    found = [data]
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            found += [archive.read(name) for name in archive.namelist()]
    return found


def leaks(secrets_: tuple[str, ...], value, fetch) -> list[str]:
    """Where any secret appears: in the result's JSON, or in a file it names (`fetch` reads a file reference, or
    returns None for a string that is not one)."""
    found = [f"result names {s!r}" for s in secrets_ if s in json.dumps(value, default=str)]

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, (str, Path)):
            data = fetch(str(v))
            if data is None:
                return
            for blob in blobs(data):
                found.extend(f"file {v} holds {s!r}" for s in secrets_ if s.encode() in blob)

    walk(value)
    return found


def local_file(value: str) -> bytes | None:
    path = Path(value)
    return path.read_bytes() if value.startswith("/") and path.is_file() else None


def figure_named(services, account, name):
    takes = services.figures.quick_takes(account, {"archetype": "artist"}, model="sdxl-base", takes=1, steps=2)
    return services.figures.save(account, name, [takes.output.request_id], takes.output.request_id, 0)


def test_no_read_for_others_names_the_figure_and_the_owner_keeps_it(make_services):
    services = make_services(admin_secret="qa-test-key-0123456789abcdefghijklmnop")
    owner, other, moderator = guest(services), guest(services, ip="10.3.0.2"), qa(services)
    with services.db.begin() as conn:  # a figure, a remix, a video and a character: more than the starting grant
        services.ledger.grant(conn, owner.id, 100, "test-top-up", "figure privacy test")
    figure = figure_named(services, owner, marker_name())
    hidden = (figure.id, figure.name)
    remix = services.remix.figure_remix(owner, prompt="at the harbour", model="qwen-image-edit", figure_id=figure.id, seed=2, count=2)
    video = services.video.figure_to_video(owner, figure.id, "wave", model="ltx-video", aspect_ratio="1:1", seed=3)
    name = f"Pell Avery {secrets.token_hex(3)}"
    character = services.characters.create(owner, with_profile(fields={"name": name}), "public", figure_id=figure.id,
                                           cover=CoverChoice("upload", upload=str(SKIMAGE / "coffee.png")))
    for index in (0, 1):
        services.characters.gallery_add(owner, character.id, remix.request_id, index)
    services.characters.gallery_add(owner, character.id, video.request_id, 0)
    items = services.characters.gallery(owner, character.id)["items"]
    # the control: the files the owner gets name the figure in their metadata (so the copies others get must not)
    assert read_png_metadata(Path(items[0]["file"]).read_bytes())["record"]["figure_ids"] == [figure.id]
    services.albums.offer(owner, character.id, services.plans.albums.min_price, [items[0]["id"]])
    shown = services.characters.review_view(moderator, character.id)
    # QA sessions moderate what is published: they see the figure (README: "The figure stays private")
    assert shown["character"]["figure_id"] == figure.id and shown["character"]["figure_name"] == figure.name
    assert not leaks(hidden, shown["card"], local_file)  # the card data everyone else exports
    services.characters.review(moderator, character.id, True, revision=shown["revision"])

    def reads(viewer):
        out = {"character": services.characters.get(viewer, character.id).as_dict(),
               "catalogue": services.characters.catalogue(query=name),
               "gallery": services.characters.gallery(viewer, character.id),
               "videos": services.characters.gallery(viewer, character.id, "video"),
               "album": services.albums.album(viewer, character.id)}
        out.update({f"export {fmt}": str(services.characters.export_card(viewer, character.id, fmt)) for fmt in FORMATS})
        return out

    for viewer in (None, other):
        got = reads(viewer)
        assert [c["id"] for c in got["catalogue"]["characters"]] == [character.id]
        assert got["gallery"]["total"] == 1 and got["videos"]["total"] == 1  # the album's image stays hidden
        assert "figure_id" not in got["character"] and "figure_name" not in got["character"]
        assert got["catalogue"]["characters"][0]["cover"] == got["character"]["cover"]
        for read, value in got.items():
            assert not leaks(hidden, value, local_file), (viewer and "another visitor", read, leaks(hidden, value, local_file))
    # a buyer sees the album's images, still without the figure
    unlocked = services.albums.unlock(other, character.id, services.plans.albums.min_price)
    assert len(unlocked["items"]) == 1
    after = reads(other)
    assert after["gallery"]["total"] == 2
    for read, value in (("unlock", unlocked), *after.items()):
        assert not leaks(hidden, value, local_file), (read, leaks(hidden, value, local_file))

    # the owner sees the figure, and the owner's own export keeps its id (a re-import keeps the figure)
    mine = services.characters.get(owner, character.id).as_dict()
    assert mine["figure_id"] == figure.id and mine["figure_name"] == figure.name
    card = json.loads(services.characters.export_card(owner, character.id, "json").read_text())
    assert card["data"]["extensions"]["character_playground"]["figure_id"] == figure.id
    assert services.characters.import_card(owner, str(services.characters.export_card(owner, character.id, "charx"))).figure_id == figure.id
    assert services.characters.gallery(owner, character.id)["items"][0]["file"] == items[0]["file"]  # the stored file
    # a stranger's export imports without a figure, and theirs never names it
    copy = services.characters.import_card(other, str(services.characters.export_card(other, character.id, "png-v3")))
    assert copy.figure_id is None and "figure_id" in copy.as_dict() and copy.as_dict()["figure_id"] is None


def test_through_the_api_for_nobody_and_for_another_visitor(app_server, client):
    url, services = app_server
    owner = client.predict(api_name="/session_start")["token"]
    account = services.identity.resolve(owner)
    with services.db.begin() as conn:
        services.ledger.grant(conn, account.id, 100, "test-top-up", "figure privacy test")
    takes = client.predict(token=owner, takes=1, api_name="/figure_quick")[1]["request_id"]
    figure = client.predict(token=owner, name=marker_name(), request_id=takes, api_name="/figure_save")
    hidden = (figure["id"], figure["name"])
    remix = client.predict(figure_id=figure["id"], prompt="at the harbour", model="qwen-image-edit", count=2, token=owner,
                           api_name="/figure_remix")[1]["request_id"]
    name = f"Pell Avery {secrets.token_hex(3)}"
    character = client.predict(token=owner, name=name, intro="A keeper of tide tables.", tags=["mystery"], visibility="public",
                               greeting="The tide turns at six.", figure_id=figure["id"], cover_source="upload",
                               cover=handle_file(str(PHOTO)), api_name="/character_create")
    assert character["figure_id"] == figure["id"] and character["cover_check"] == "safe"  # the owner sees it
    client.predict(token=owner, character_id=character["id"], request_id=remix, api_name="/character_gallery_add")
    raw = Client(url, verbose=False, download_files=False)
    media = raw.predict(character_id=character["id"], token=owner, api_name="/character_gallery")["items"]
    client.predict(token=owner, character_id=character["id"], price=services.plans.albums.min_price,
                   media_ids=[media[0]["id"]], api_name="/album_offer")
    client.predict(token=owner, character_id=character["id"], request_id=remix, index=1, api_name="/character_gallery_add")
    qa_token = client.predict(admin_key=ADMIN_KEY, api_name="/session_start")["token"]
    view = client.predict(token=qa_token, character_id=character["id"], api_name="/review_character_view")
    assert view["character"]["figure_id"] == figure["id"]  # QA sessions see it (they moderate)
    client.predict(token=qa_token, character_id=character["id"], verify=True, revision=view["revision"], api_name="/review_character")

    def fetch(value: str) -> bytes | None:
        if value.startswith("/outputs/"):
            answer = httpx.get(url + value)
            assert answer.status_code == 200, value
            return answer.content
        return local_file(value)  # an export the downloading client fetched

    # the control: the owner's own gallery files name the figure in their metadata
    assert leaks(hidden, raw.predict(character_id=character["id"], token=owner, api_name="/character_gallery"), fetch)
    other = client.predict(api_name="/session_start")["token"]
    for tok in ("", other):  # nobody signed in, and another signed-in visitor
        reads = {
            "/character": raw.predict(character_id=character["id"], token=tok, api_name="/character"),
            "/catalogue": raw.predict(query=name, api_name="/catalogue"),
            "/character_gallery": raw.predict(character_id=character["id"], token=tok, api_name="/character_gallery"),
            "/album": raw.predict(character_id=character["id"], token=tok, api_name="/album"),
        }
        for fmt in FORMATS:
            reads[f"/character_export {fmt}"] = client.predict(character_id=character["id"], format=fmt, token=tok,
                                                               api_name="/character_export")
        assert [c["id"] for c in reads["/catalogue"]["characters"]] == [character["id"]]
        assert reads["/catalogue"]["characters"][0]["cover"].startswith("/outputs/")  # the cover, shown
        assert reads["/character_gallery"]["total"] == 1
        for endpoint, value in reads.items():
            assert not leaks(hidden, value, fetch), (tok and "another visitor", endpoint, leaks(hidden, value, fetch))
    unlocked = raw.predict(token=other, character_id=character["id"], price=services.plans.albums.min_price, api_name="/album_unlock")
    assert len(unlocked["items"]) == 1 and not leaks(hidden, unlocked, fetch)
    # the owner's own export keeps the figure's id
    mine = json.loads(Path(client.predict(character_id=character["id"], format="json", token=owner,
                                          api_name="/character_export")).read_text())
    assert mine["data"]["extensions"]["character_playground"]["figure_id"] == figure["id"]
