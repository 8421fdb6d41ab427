"""Characters: every profile limit refused before anything is written, figures optional, SFW main images with the
real output check, visibility and moderation, galleries of generated files only, and the writing helpers."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from services.creation.characters import AvatarChoice, CharacterError, CharactersFileError, Profile, load_character_limits
from services.creation.characters.profile import backstory_help, personality_help
from services.creation.figures import FigureError
from services.creation.text import TextToImageParams
from services.safety.output import NudeNetChecker, Unchecked
from services.safety.policy import PromptRefused

SKIMAGE = Path(__import__("skimage").__file__).parent / "data"
PHOTO = SKIMAGE / "astronaut.png"  # a real, safe portrait (the output check passes it)
GOOD = Profile(
    fields={"name": "Iris Vale", "description": "A cartographer in her forties with ink-stained hands.",
            "personality": "patient, dry humour", "scenario": "A rainy harbour town.",
            "first_mes": "You found my map? Sit, tell me where.", "creator": "QA"},
    intro="A harbour cartographer who trades maps for stories.",
    tags=("explorer", "mentor", "explorer"),
    opening_messages=("Back again?", ""),
    chat_models=("Qwen/Qwen3-32B",),
    persona_cards=({"name": "Sailor", "description": "You crew a fishing boat."},),
    challenge_modes=({"goal": "Get her to share the secret map", "target": "She hands you the map", "hint": "Ask about her father"},),
)


def guest(services, ip="10.3.0.1"):
    return services.identity.start(None, ip=ip).account


def qa(services):
    return services.identity.start(None, ip="10.3.9.9", admin_key=services.settings.admin_secret).account


def figure_for(services, account, name="Iris"):
    takes = services.figures.quick_takes(account, {"archetype": "artist"}, model="sdxl-base", takes=1, steps=2)
    return services.figures.save(account, name, [takes.output.request_id], takes.output.request_id, 0)


def upload(**kwargs):
    return AvatarChoice("upload", upload=str(PHOTO), **kwargs)


def with_profile(**changes) -> Profile:
    fields = dict(GOOD.fields, **changes.pop("fields", {}))
    return Profile(**{**GOOD.__dict__, "fields": fields, **changes})


LIMITS = [
    (with_profile(opening_messages=tuple(f"hello {i}" for i in range(21))), CharacterError, "Opening messages: at most 20; there are 21"),
    (with_profile(chat_models=load_character_limits().chat_models[:4]), CharacterError, "Chat models: at most 3; there are 4"),
    (with_profile(persona_cards=tuple({"name": f"P{i}", "description": "d"} for i in range(6))), CharacterError, "Persona cards: at most 5; there are 6"),
    (with_profile(challenge_modes=tuple({"goal": f"g{i}"} for i in range(4))), CharacterError, "Challenge modes: none, or 1 to 3; there are 4"),
    (with_profile(challenge_modes=({"target": "t", "hint": "h"},)), CharacterError, "Challenge mode 1: the goal is required"),
    (with_profile(fields={"first_mes": " "}), CharacterError, "Greeting is required"),
    (with_profile(tags=()), CharacterError, "Tags: at least one is required"),
    (with_profile(intro="x" * 301), CharacterError, "Introduction is limited to 300 characters; it has 301"),
    (with_profile(intro=""), CharacterError, "Introduction is required"),
    (with_profile(fields={"name": "x" * 65}), CharacterError, "Name is limited to 64 characters; it has 65"),
    (with_profile(tags=tuple(f"t{i}" for i in range(21))), CharacterError, "Tags: at most 20; there are 21"),
    (with_profile(chat_models=("gpt-unknown",)), CharacterError, "'gpt-unknown' is not offered"),
    (with_profile(fields={"nickname": "I"}), CharacterError, "Unknown profile field"),
    (with_profile(fields={"description": "a 16 year old student"}), PromptRefused, "adults"),
    (with_profile(challenge_modes=({"goal": "get her to a nude beach"},)), PromptRefused, "SFW-only"),
]
LIMIT_IDS = ["21 openings", "4 chat models", "6 personas", "4 challenges", "challenge without goal", "no greeting", "no tags",
             "long intro", "no intro", "long name", "21 tags", "unknown chat model", "unknown field", "minor", "adult challenge"]


def test_each_limit_is_refused_and_nothing_is_saved(make_services):
    """Every case of LIMITS on one database (one service build per database keeps the suite fast): refused on create
    with nothing saved or paid, and refused on update with the profile unchanged."""
    services = make_services()
    for index, ((profile, error, match), case) in enumerate(zip(LIMITS, LIMIT_IDS)):
        account = guest(services, ip=f"10.77.{index}.1")  # a new visitor per case
        balance = services.ledger.balance(account.id)
        with pytest.raises(error, match=match):
            services.characters.create(account, profile, "private", avatar=AvatarChoice("generate"))
        assert services.characters.list(account) == [] and services.ledger.balance(account.id) == balance, case
        character = services.characters.create(account, GOOD, "private", avatar=upload())
        with pytest.raises(error, match=match):
            services.characters.update(account, character.id, profile)
        assert services.characters.get(account, character.id).profile == character.profile, case  # unchanged


@pytest.mark.parametrize("visibility, match", [("", "Visibility is required: public, unlisted, private"),
                                               ("friends", "Visibility must be one of public, unlisted, private")])
def test_visibility_is_required(make_services, visibility, match):
    services = make_services()
    account = guest(services)
    with pytest.raises(CharacterError, match=match):
        services.characters.create(account, GOOD, visibility, avatar=upload())
    assert services.characters.list(account) == []


def test_without_a_figure_from_an_upload_and_from_a_generated_image(make_services):
    services = make_services()
    account = guest(services)
    uploaded = services.characters.create(account, GOOD, "public", avatar=upload())
    assert uploaded.figure_id is None and uploaded.avatar["source"] == "upload" and uploaded.avatar["safety"] == "safe"
    with Image.open(uploaded.image) as stored, Image.open(PHOTO) as original:
        assert stored.size == original.size and not stored.info.get("exif")  # upload hygiene: pixels only
    assert uploaded.review == "pending" and "pending" in uploaded.status
    assert uploaded.profile["tags"] == ["explorer", "mentor"] and uploaded.profile["alternate_greetings"] == ["Back again?"]
    assert uploaded.profile["persona_cards"] == [{"name": "Sailor", "description": "You crew a fishing boat."}]

    before = services.ledger.balance(account.id)
    price = services.characters.quote_avatar().total
    generated = services.characters.create(account, GOOD, "private", avatar=AvatarChoice("generate", seed=5))
    assert generated.avatar["source"] == "generated" and generated.image.is_file()
    assert price > 0 and services.ledger.balance(account.id) == before - price
    record = services.history.get(account.id, generated.avatar["generation_id"])
    assert record.status == "done" and "portrait of Iris Vale" in record.request["prompt"]  # composed from the profile
    assert "ink-stained hands" in record.request["prompt"] and GOOD.intro.rstrip(".") in record.request["prompt"]
    custom = services.characters.create(account, GOOD, "private", avatar=AvatarChoice("generate", prompt="a lighthouse keeper", seed=6))
    assert services.history.get(account.id, custom.avatar["generation_id"]).request["prompt"] == "a lighthouse keeper"


def test_from_a_figure_the_canonical_image_is_the_default_avatar(make_services):
    services = make_services()
    account = guest(services)
    figure = figure_for(services, account)
    character = services.characters.create(account, GOOD, "private", figure_id=figure.id)
    assert character.figure_id == figure.id and character.avatar["source"] == "figure"
    assert character.image == figure.canonical_path and character.figure_name == "Iris"
    stranger = guest(services, ip="10.3.0.2")
    with pytest.raises(CharacterError, match="No figure"):
        services.characters.create(stranger, GOOD, "private", figure_id=figure.id)
    # the figure stays private: a stranger opening the character by its link never learns which figure it is
    shared = services.characters.create(account, GOOD, "unlisted", figure_id=figure.id)
    seen = services.characters.get(stranger, shared.id)
    assert seen.figure_id is None and "figure_id" not in seen.as_dict() and "figure_name" not in seen.as_dict()
    with Image.open(seen.image) as shown:
        assert seen.image != figure.canonical_path and "parameters" not in shown.info  # a copy without metadata
    # the profile changes later without touching the visual identity
    edited = services.characters.update(account, character.id, with_profile(fields={"personality": "curious"}))
    assert edited.profile["fields"]["personality"] == "curious" and edited.avatar == character.avatar
    assert edited.figure_id == figure.id


def test_an_unchecked_image_cannot_be_the_main_image_of_a_public_character(make_services):
    services = make_services(safety=Unchecked())
    account = guest(services)
    for visibility in ("public", "unlisted"):
        with pytest.raises(CharacterError, match="no output check is configured.*requirements.txt"):
            services.characters.create(account, GOOD, visibility, avatar=upload())
        balance = services.ledger.balance(account.id)
        with pytest.raises(CharacterError, match="no output check is configured"):  # refused before paying
            services.characters.create(account, GOOD, visibility, avatar=AvatarChoice("generate"))
        assert services.ledger.balance(account.id) == balance
    assert services.characters.list(account) == []
    private = services.characters.create(account, GOOD, "private", avatar=upload())
    assert private.avatar["safety"] == "unchecked" and "unchecked" in private.status
    with pytest.raises(CharacterError, match="cannot be the main image of a public character"):
        services.characters.update(account, private.id, GOOD, visibility="public")
    assert services.characters.get(account, private.id).visibility == "private"


def test_a_flagged_image_is_refused_as_main_image_by_the_real_detector(make_services):
    pytest.importorskip("nudenet", reason="the optional safety extra (requirements-safety.txt) is not installed")
    # The real NudeNet detector with a policy that flags faces: a real portrait is then "flagged" (no NSFW data needed).
    services = make_services(safety=NudeNetChecker({"FACE_FEMALE": 0.3, "FACE_MALE": 0.3}))
    account = guest(services)
    with pytest.raises(CharacterError, match="must be SFW, and the output check flagged this one"):
        services.characters.create(account, GOOD, "private", avatar=upload())
    assert services.characters.list(account) == []
    coffee = AvatarChoice("upload", upload=str(SKIMAGE / "coffee.png"))  # no face: passes
    character = services.characters.create(account, GOOD, "private", avatar=coffee)
    with pytest.raises(CharacterError, match="flagged"):
        services.characters.set_main(account, character.id, "upload", upload=str(PHOTO))
    assert services.characters.get(account, character.id).avatar == character.avatar


def test_visibility_through_every_read(make_services):
    services = make_services(admin_secret="qa-test-key-0123456789abcdefghijklmnop")
    owner, other, moderator = guest(services), guest(services, ip="10.3.0.2"), qa(services)
    made = services.text.text_to_image(owner, TextToImageParams("the cartographer at her desk", "sdxl-base", steps=2, seed=3))
    private = services.characters.create(owner, with_profile(fields={"name": "Private Pia"}), "private", avatar=upload())
    unlisted = services.characters.create(owner, with_profile(fields={"name": "Unlisted Uma"}), "unlisted", avatar=upload())
    public = services.characters.create(owner, with_profile(fields={"name": "Public Paz"}, tags=("pirate",)), "public", avatar=upload())
    rejected = services.characters.create(owner, with_profile(fields={"name": "Rejected Rue"}), "public", avatar=upload())
    for c in (private, unlisted, public):
        services.characters.gallery_add(owner, c.id, made.request_id, 0)

    assert services.characters.catalogue()["characters"] == []  # public ones wait for a moderator
    with pytest.raises(CharacterError, match="Only QA sessions"):
        services.characters.review(owner, public.id, True)
    assert {c.id for c in services.characters.review_queue(moderator)} == {public.id, rejected.id}
    shown = lambda c: services.characters.review_view(moderator, c.id)["revision"]  # noqa: E731
    services.characters.review(moderator, public.id, True, revision=shown(public))
    with pytest.raises(CharacterError, match="Say why"):
        services.characters.review(moderator, rejected.id, False, revision=shown(rejected))
    services.characters.review(moderator, rejected.id, False, "The intro names a real person.", revision=shown(rejected))
    assert "rejected by a moderator: The intro names a real person." in services.characters.get(owner, rejected.id).status

    for viewer in (other, None):  # another visitor, and nobody signed in
        listed = services.characters.catalogue()["characters"]
        assert [c["id"] for c in listed] == [public.id]
        assert listed[0]["intro"] == GOOD.intro and listed[0]["tags"] == ["pirate"] and listed[0]["image"]
        for hidden in (private, rejected):
            for read in (lambda c: services.characters.get(viewer, c.id), lambda c: services.characters.gallery(viewer, c.id),
                         lambda c: services.characters.gallery(viewer, c.id, "video"),
                         lambda c: services.characters.export_card(viewer, c.id, "json")):
                with pytest.raises(CharacterError, match="No character"):
                    read(hidden)
        assert services.characters.get(viewer, unlisted.id).name == "Unlisted Uma"  # by its link
        assert services.characters.gallery(viewer, unlisted.id)["total"] == 1
        assert services.characters.get(viewer, public.id).review_note == ""
        assert "status" not in services.characters.get(viewer, public.id).as_dict()
    # search by name and by tag
    assert services.characters.catalogue(query="paz")["total"] == 1 and services.characters.catalogue(query="uma")["total"] == 0
    assert services.characters.catalogue(tag="Pirate")["total"] == 1 and services.characters.catalogue(tag="mentor")["total"] == 0
    # only the owner changes it; a change sends a public character back to pending
    with pytest.raises(CharacterError, match="among yours"):
        services.characters.update(other, public.id, GOOD)
    services.characters.update(owner, public.id, with_profile(fields={"name": "Public Paz"}, intro="New intro."))
    assert services.characters.catalogue()["total"] == 0 and services.characters.get(owner, public.id).review == "pending"


def test_galleries_hold_only_your_generated_files_of_any_size(make_services):
    services = make_services()
    owner, other = guest(services), guest(services, ip="10.3.0.2")
    character = services.characters.create(owner, GOOD, "private", avatar=upload())
    theirs = services.text.text_to_image(other, TextToImageParams("a fox", "sdxl-base", steps=2, seed=1))
    with pytest.raises(CharacterError, match="not among your generations"):
        services.characters.gallery_add(owner, character.id, theirs.request_id, 0)
    with pytest.raises(CharacterError, match="not among your generations"):
        services.characters.gallery_add(owner, character.id, "upload-that-was-never-generated", 0)
    mine = services.text.text_to_image(owner, TextToImageParams("a fox", "sdxl-base", steps=2, seed=2, count=4))
    with pytest.raises(CharacterError, match="not among your generations"):
        services.characters.gallery_add(owner, character.id, mine.request_id, 9)
    limits = services.characters.limits
    for index in range(4):
        services.characters.gallery_add(owner, character.id, mine.request_id, index)
    with pytest.raises(CharacterError, match="already in the gallery"):
        services.characters.gallery_add(owner, character.id, mine.request_id, 0)
    with pytest.raises(CharacterError, match="among yours"):
        services.characters.gallery_add(other, character.id, theirs.request_id, 0)  # not their character
    page = services.characters.gallery(owner, character.id)
    assert page["total"] == 4 and len(page["items"]) == min(4, limits.gallery_page_size)
    # a main image from the gallery, then an edit of the main image joins the gallery
    character = services.characters.set_main(owner, character.id, "gallery", media_id=page["items"][1]["id"])
    assert character.avatar["generation_id"] == mine.request_id and character.avatar["idx"] == 1
    edited = services.characters.edit_main(owner, character.id, "make it night", "flux.1-kontext-dev", seed=1)
    items = services.characters.gallery(owner, character.id)["items"]
    assert edited.counts["image"] == 5 and items[-1]["origin"] == "edit"
    record = services.history.get(owner.id, items[-1]["request_id"])
    assert record.request["context"]["edit_of"]["character_id"] == character.id
    services.characters.gallery_remove(owner, character.id, items[0]["id"])
    with pytest.raises(CharacterError, match="not in this character's gallery"):
        services.characters.gallery_remove(owner, character.id, items[0]["id"])
    assert services.characters.gallery(owner, character.id)["total"] == 4


def test_the_video_gallery_takes_videos_generated_here(make_services):
    services = make_services()
    owner = guest(services)
    figure = figure_for(services, owner)
    character = services.characters.create(owner, GOOD, "private", figure_id=figure.id)
    video = services.video.figure_to_video(owner, figure.id, "wave", aspect_ratio="9:16", resolution="480p", seed=4)
    services.characters.gallery_add(owner, character.id, video.request_id, 0)
    page = services.characters.gallery(owner, character.id, "video")
    assert page["total"] == 1 and page["items"][0]["file"].endswith(".mp4") and page["items"][0]["poster"]
    assert services.characters.gallery(owner, character.id, "image")["total"] == 0


def test_the_writing_helpers_suggest_and_warn():
    limits = load_character_limits()
    helped = personality_help(limits, "She is nice and very kind.")
    assert 3 <= len(helped["traits"]) <= 5 and helped["quirk"] in limits.personality.quirks
    assert "nice, kind" in helped["warnings"][0]
    assert personality_help(limits, "blunt and meticulous")["warnings"] == []
    assert personality_help(limits, "x") == personality_help(limits, "x")  # stable for one draft
    assert backstory_help(limits, "word " * 301)["warnings"] and not backstory_help(limits, "word " * 200)["warnings"]
    assert backstory_help(limits, "")["guidance"][0] == "Where they come from"


def test_the_limits_file_is_validated(tmp_path):
    source = (Path(__file__).parent.parent / "presets" / "characters.toml").read_text()
    bad = tmp_path / "characters.toml"
    bad.write_text(source.replace("max_opening_messages = 20", "max_opening_messages = -1"))
    with pytest.raises(CharactersFileError, match=r"characters.toml: max_opening_messages: .*greater than or equal to 0"):
        load_character_limits(bad)
    bad.write_text(source.replace('key = "first_mes"', 'key = "first_mes"\nrequired = false', 1).replace(
        'max = 4000\nrequired = true', 'max = 4000', 1))
    with pytest.raises(CharactersFileError, match="'first_mes' must be listed and required"):
        load_character_limits(bad)
    assert load_character_limits().max_opening_messages == 20


def test_only_your_own_figures(make_services):
    services = make_services()
    owner, stranger = guest(services), guest(services, ip="10.3.0.2")
    figure = figure_for(services, owner)
    with pytest.raises((CharacterError, FigureError)):
        services.characters.create(stranger, GOOD, "private", figure_id=figure.id)
    assert services.characters.list(stranger) == []


def test_visibility_through_every_by_id_endpoint(client, token, app_server):
    """Through gradio_client: each endpoint that takes a character id refuses a private character to another
    visitor and to nobody-signed-in alike, with the same message as for an id that does not exist."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from tests.test_api_surface import readme_endpoints

    url, services = app_server
    anonymous = Client(url, verbose=False)
    base = {"intro": "A keeper of secrets.", "tags": ["mystery"], "greeting": "Shh.", "avatar_source": "upload"}
    from gradio_client import handle_file

    private = client.predict(token=token, name="Hidden Hal", visibility="private", avatar=handle_file(str(PHOTO)), **base,
                             api_name="/character_create")
    unlisted = client.predict(token=token, name="Linked Lia", visibility="unlisted", avatar=handle_file(str(PHOTO)), **base,
                              api_name="/character_create")
    other = client.predict(api_name="/session_start")["token"]
    fillers = {"request_id": "x", "media_id": "x", "instruction": "x", "price": 10, "source": "gallery", "confirm": True,
               "verify": True, "revision": 0, "media_ids": ["x"], "enabled": True}
    by_id = [name for name, required in readme_endpoints().items() if "character_id" in required]
    assert len(by_id) == 17, by_id  # a new by-id endpoint joins this test by being in README
    for name in by_id:
        kwargs = {a: fillers[a] for a in readme_endpoints()[name] if a not in ("token", "character_id")}
        for caller, tok in ((client, other), (anonymous, "")):
            with pytest.raises(AppError) as refused:
                caller.predict(token=tok, character_id=private["id"], **kwargs, api_name=name)
            text = str(refused.value)
            assert any(m in text for m in ("No character", "among yours", "Only QA sessions", "/session_start")), (name, text)
            assert "Hidden Hal" not in text
    # an unlisted one opens by its id, signed in or not, and is not listed
    for caller, tok in ((client, other), (anonymous, "")):
        assert caller.predict(character_id=unlisted["id"], token=tok, api_name="/character")["name"] == "Linked Lia"
        assert caller.predict(character_id=unlisted["id"], token=tok, api_name="/character_gallery")["total"] == 0
    listed = anonymous.predict(api_name="/catalogue")
    assert unlisted["id"] not in [c["id"] for c in listed["characters"]]
    assert private["id"] not in [c["id"] for c in listed["characters"]]
    assert "status" in client.predict(character_id=private["id"], token=token, api_name="/character")  # the owner
