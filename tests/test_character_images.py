"""A character's pictures: a figure-backed character's generated and edited main image (and cover) keep the figure's
face and style (the real pipeline receives the canonical image and the register's words; the output's metadata records
both), and the optional cover image follows the main image's rules and is what the catalogue shows."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.types import Task
from services.creation.characters import AvatarChoice, CharacterError, CoverChoice
from services.media.png import read_png_metadata
from services.safety.output import Verdict
from services.safety.policy import PromptRefused
from tests.test_characters import GOOD, PHOTO, SKIMAGE, guest, qa, upload, with_profile
from tests.test_remix import make_figure, same_pixels, spy_calls  # noqa: F401  (fixture)

COFFEE, CHELSEA = SKIMAGE / "coffee.png", SKIMAGE / "chelsea.png"


def locked(register) -> dict:
    return {"style": "photoreal", "label": register.label, "locked": True, "fragments": register.positive,
            "negative": register.negative}


def same_image(a, b) -> bool:
    with Image.open(a) as x, Image.open(b) as y:
        return x.size == y.size and np.array_equal(np.asarray(x.convert("RGB")), np.asarray(y.convert("RGB")))


def test_a_figure_backed_main_image_is_generated_through_the_canonical_image_and_style(make_services, spy_calls):
    services = make_services()
    account = guest(services)
    figure = make_figure(services, account)
    register = services.figure_presets.styles[figure.style]
    assert figure.style == "photoreal"
    calls = spy_calls(services, "flux.1-kontext-dev", Task.REFERENCE)  # the default face-keeping model
    price = services.characters.quote_avatar(figure_backed=True).total
    before = services.ledger.balance(account.id)
    character = services.characters.create(account, GOOD, "private", figure_id=figure.id, avatar=AvatarChoice("generate", seed=4))
    assert len(calls) == 1 and services.ledger.balance(account.id) == before - price
    assert same_pixels(calls[0]["image"], figure.canonical_path, figure.takes[1]["file"]), "the pipeline gets the canonical image"
    assert calls[0]["prompt"].startswith("portrait of Iris Vale") and register.positive in calls[0]["prompt"]
    record = read_png_metadata(character.image.read_bytes())["record"]
    assert record["reference"] == "canonical" and record["style_register"] == locked(register)
    assert record["figure_ids"] == [figure.id]
    assert character.avatar["source"] == "generated" and character.avatar["reference"] == "canonical"
    assert character.avatar["style_register"] == locked(register)
    history = services.history.get(account.id, character.avatar["generation_id"])
    assert history.request["context"]["remix"]["figure_id"] == figure.id and history.request["context"]["remix"]["keep_style"]

    # a new main image: the same path, with the visitor's prompt
    changed = services.characters.set_main(account, character.id, "generate", prompt="in a lighthouse", seed=5)
    assert calls[-1]["prompt"] == f"in a lighthouse, {register.positive}"
    assert same_pixels(calls[-1]["image"], figure.canonical_path, figure.takes[1]["file"])
    assert read_png_metadata(changed.image.read_bytes())["record"]["style_register"] == locked(register)
    # another take set canonical changes what the main image keeps
    services.figures.set_canonical(account, figure.id, figure.takes[1]["id"])
    services.characters.set_main(account, character.id, "generate", seed=6)
    assert same_pixels(calls[-1]["image"], figure.takes[1]["file"], figure.canonical_path)

    # refused before paying: a model that does not keep the face, and an adult prompt (the SFW character surface)
    balance = services.ledger.balance(account.id)
    with pytest.raises(CharacterError, match="keep the figure's face"):
        services.characters.set_main(account, character.id, "generate", model="flux.1-schnell")
    with pytest.raises(PromptRefused, match="sfw_surface"):
        services.characters.set_main(account, character.id, "generate", prompt="topless on a beach")
    assert services.ledger.balance(account.id) == balance and len(calls) == 3
    # once the figure is deleted there is nothing left to keep: a plain generation, as an edit of its images is
    services.figures.delete(account, figure.id, True)
    plain = services.characters.set_main(account, character.id, "generate", seed=7)
    assert len(calls) == 3 and plain.avatar["source"] == "generated" and "style_register" not in plain.avatar


def test_a_figure_backed_edit_and_cover_keep_the_style(make_services, spy_calls):
    services = make_services()
    account = guest(services)
    figure = make_figure(services, account)
    register = services.figure_presets.styles[figure.style]
    character = services.characters.create(account, GOOD, "private", figure_id=figure.id)  # the canonical image
    edits = spy_calls(services, "qwen-image-edit", Task.EDIT)
    edited = services.characters.edit_main(account, character.id, "make it rain", "qwen-image-edit", seed=1)
    assert edits[-1]["prompt"] == f"make it rain; keep the photoreal style: {register.positive}"
    assert same_pixels(edits[-1]["image"], character.image)  # the main image is the edit's base
    item = services.characters.gallery(account, edited.id)["items"][-1]
    assert item["origin"] == "edit"
    assert read_png_metadata(Path(item["file"]).read_bytes())["record"]["style_register"] == locked(register)
    context = services.history.get(account.id, item["request_id"]).request["context"]
    assert context["edit_of"] == {"character_id": character.id, "main_image": character.avatar["path"], "figure_reference": "canonical"}
    assert context["keep_style"] is True
    # without a figure, an edit is a plain edit
    plain = services.characters.create(account, GOOD, "private", avatar=upload())
    services.characters.edit_main(account, plain.id, "make it rain", "qwen-image-edit", seed=1)
    assert edits[-1]["prompt"] == "make it rain"

    # a generated cover on a figure: the same path as the main image, wide
    calls = spy_calls(services, "flux.1-kontext-dev", Task.REFERENCE)
    price = services.characters.quote_avatar(figure_backed=True, kind="cover").total
    before = services.ledger.balance(account.id)
    covered = services.characters.update(account, character.id, GOOD, cover=CoverChoice("generate", seed=2))
    assert services.ledger.balance(account.id) == before - price and len(calls) == 1
    assert same_pixels(calls[0]["image"], figure.canonical_path) and register.positive in calls[0]["prompt"]
    assert calls[0]["prompt"].startswith("Iris Vale in their world. A rainy harbour town")
    assert covered.cover["source"] == "generated" and covered.cover["style_register"] == locked(register)
    with Image.open(covered.cover_image) as image:
        assert image.width > image.height  # 16:9
    assert covered.avatar == character.avatar  # the main image is untouched


class Picky:
    """An output check with fixed answers: the coffee photo is unchecked, the cat flagged, the rest safe."""

    name = "picky"

    def check_image(self, image):
        with Image.open(COFFEE) as coffee, Image.open(CHELSEA) as cat:
            if image.size == coffee.size:
                return Verdict(False, "unchecked")
            if image.size == cat.size:
                return Verdict(True, "flagged", "test: a cat")
        return Verdict(False, "safe")


def test_a_cover_follows_the_main_images_rules(make_services):
    services = make_services(safety=Picky())
    account = guest(services)
    with pytest.raises(CharacterError, match="The cover must be SFW, and the output check flagged this one"):
        services.characters.create(account, GOOD, "private", avatar=upload(), cover=CoverChoice("upload", upload=str(CHELSEA)))
    for visibility in ("public", "unlisted"):
        with pytest.raises(CharacterError, match=f"cannot be the cover of an? {visibility} character: the output check did not pass"):
            services.characters.create(account, GOOD, visibility, avatar=upload(), cover=CoverChoice("upload", upload=str(COFFEE)))
    with pytest.raises(CharacterError, match="Upload the cover"):
        services.characters.create(account, GOOD, "private", avatar=upload(), cover=CoverChoice("upload"))
    with pytest.raises(CharacterError, match="upload or generate"):
        services.characters.create(account, GOOD, "private", avatar=upload(), cover=CoverChoice("gallery"))
    assert services.characters.list(account) == []
    private = services.characters.create(account, GOOD, "private", avatar=upload(), cover=CoverChoice("upload", upload=str(COFFEE)))
    assert private.cover["source"] == "upload" and private.as_dict()["cover_check"] == "unchecked"
    assert same_image(private.cover_image, COFFEE) and not private.cover_image.read_bytes().count(b"tEXt")  # hygiene
    with pytest.raises(CharacterError, match="cannot be the cover of an unlisted character"):
        services.characters.update(account, private.id, GOOD, visibility="unlisted")
    with pytest.raises(CharacterError, match="cannot be the cover of an unlisted character"):  # a new unchecked one neither
        services.characters.update(account, private.id, GOOD, visibility="unlisted", cover=CoverChoice("upload", upload=str(COFFEE)))
    assert services.characters.get(account, private.id).visibility == "private"
    shown = services.characters.update(account, private.id, GOOD, visibility="unlisted", cover=CoverChoice("upload", upload=str(PHOTO)))
    assert shown.visibility == "unlisted" and shown.cover["safety"] == "safe" and same_image(shown.cover_image, PHOTO)
    kept = services.characters.update(account, private.id, with_profile(intro="Still here."))
    assert kept.cover == shown.cover  # "" keeps the cover
    removed = services.characters.update(account, private.id, GOOD, cover=CoverChoice("none"))
    assert removed.cover is None and removed.as_dict()["cover"] is None


def test_the_catalogue_shows_the_cover_or_else_the_main_image(make_services):
    services = make_services(admin_secret="qa-test-key-0123456789abcdefghijklmnop")
    owner, moderator = guest(services), qa(services)
    covered = services.characters.create(owner, with_profile(fields={"name": "Cora Vell"}), "public", avatar=upload(),
                                         cover=CoverChoice("upload", upload=str(COFFEE)))
    plain = services.characters.create(owner, with_profile(fields={"name": "Plain Pia"}), "public", avatar=upload())
    for character in (covered, plain):
        services.characters.review(moderator, character.id, True, revision=services.characters.review_view(moderator, character.id)["revision"])
    listed = {c["id"]: c for c in services.characters.catalogue()["characters"]}
    assert same_image(listed[covered.id]["cover"], COFFEE) and same_image(listed[covered.id]["image"], PHOTO)
    assert listed[plain.id]["cover"] == listed[plain.id]["image"] and same_image(listed[plain.id]["cover"], PHOTO)
    assert same_image(services.characters.get(None, covered.id).as_dict()["cover"], COFFEE)

    # a generated cover is paid through the one runner like the main image, and a change sends it back to moderation
    price = services.characters.quote_avatar(kind="cover").total
    before = services.ledger.balance(owner.id)
    changed = services.characters.update(owner, plain.id, with_profile(fields={"name": "Plain Pia"}),
                                         cover=CoverChoice("generate", seed=3))
    assert changed.cover["source"] == "generated" and services.ledger.balance(owner.id) == before - price
    record = services.history.get(owner.id, changed.cover["generation_id"])
    assert record.request["context"] == {"character_cover": True} and "Plain Pia in their world" in record.request["prompt"]
    assert changed.review == "pending" and plain.id not in [c["id"] for c in services.characters.catalogue()["characters"]]


def test_the_cover_through_the_api_and_the_form(app_server, client):
    import httpx
    from gradio_client import handle_file

    url, _ = app_server
    token = client.predict(api_name="/session_start")["token"]
    made = client.predict(token=token, name="Cora Vell", intro="A lamplighter.", tags=["mystery"], visibility="unlisted",
                          greeting="Mind the wick.", avatar_source="upload", avatar=handle_file(str(PHOTO)),
                          cover_source="upload", cover=handle_file(str(COFFEE)), api_name="/character_create")
    assert made["cover"] and made["cover_check"] == "safe"
    changed = client.predict(token=token, character_id=made["id"], cover_source="none", api_name="/character_update")
    assert changed["cover"] is None and changed["image"]
    config = httpx.get(f"{url}/config").json()
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {"character-cover-source", "character-cover-upload", "character-cover-prompt", "character-cover-image"} <= ids
