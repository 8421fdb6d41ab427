"""Characters on figures: profile limits and policy before anything is written, a gallery of the user's own
images, an SFW card image, and Character Card V2/V3 PNG exports that read back."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from services.creation.characters import CharacterError, CharactersFileError, Profile, load_character_limits, read_card
from services.creation.figures import FigureError
from services.creation.text import TextToImageParams
from services.safety.policy import PromptRefused

GOOD = Profile(
    fields={"name": "Iris Vale", "description": "A cartographer in her forties with ink-stained hands.",
            "personality": "patient, dry humour", "scenario": "A rainy harbour town.",
            "first_mes": "You found my map? Sit, tell me where.", "creator": "QA"},
    tags=("explorer", "mentor", "explorer"),
    alternate_greetings=("Back again?", ""),
)


def guest(services, ip="10.3.0.1"):
    return services.identity.start(None, ip=ip).account


def figure_for(services, account):
    takes = services.figures.quick_takes(account, {"archetype": "artist"}, model="sdxl-base", takes=1, steps=2)
    return services.figures.save(account, "Iris", [takes.output.request_id], takes.output.request_id, 0)


def test_create_edit_gallery_and_export_cards(make_services, tmp_path):
    services = make_services()
    account = guest(services)
    figure = figure_for(services, account)
    character = services.characters.create(account, figure.id, GOOD)
    assert character.name == "Iris Vale" and character.image == figure.canonical_path
    assert character.profile["tags"] == ["explorer", "mentor"]  # duplicates and blanks dropped
    assert character.profile["alternate_greetings"] == ["Back again?"]

    # a gallery of the user's own images; one becomes the card image
    made = services.text.text_to_image(account, TextToImageParams("the cartographer at her desk", "flux.1-schnell", steps=2, seed=3))
    character = services.characters.add_image(account, character.id, made.request_id, 0)
    with pytest.raises(CharacterError, match="already in the gallery"):
        services.characters.add_image(account, character.id, made.request_id, 0)
    character = services.characters.set_main(account, character.id, 0)
    assert character.image == made.files[0]

    edited = services.characters.update(account, character.id, Profile(fields=dict(GOOD.fields, personality="curious"), tags=("explorer",)))
    assert edited.profile["fields"]["personality"] == "curious" and edited.gallery == character.gallery

    for version in ("v2", "v3"):
        path = services.characters.export_card(account, character.id, version)
        assert path.name == f"iris-vale-{version}.png"
        cards = read_card(str(path))
        v2 = cards["chara"]
        assert v2["spec"] == "chara_card_v2" and v2["spec_version"] == "2.0"
        assert v2["data"]["name"] == "Iris Vale" and v2["data"]["personality"] == "curious"
        assert v2["data"]["tags"] == ["explorer"] and v2["data"]["first_mes"].startswith("You found my map")
        assert set(v2["data"]) >= {"description", "scenario", "mes_example", "creator_notes", "system_prompt",
                                   "post_history_instructions", "alternate_greetings", "creator", "character_version", "extensions"}
        if version == "v3":
            v3 = cards["ccv3"]
            assert v3["spec"] == "chara_card_v3" and v3["spec_version"] == "3.0"
            assert v3["data"]["assets"] == [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}]
            assert v3["data"]["group_only_greetings"] == [] and v3["data"]["creation_date"] > 0
        else:
            assert "ccv3" not in cards
        with Image.open(path) as card, Image.open(made.files[0]) as source:
            assert np.array_equal(np.asarray(card.convert("RGB")), np.asarray(source.convert("RGB")))  # the card image
            assert "parameters" not in card.text  # the generation's own settings chunk is not carried over

    # removing the card image falls back to the figure's canonical image
    character = services.characters.remove_image(account, character.id, 0)
    assert character.gallery == [] and character.main is None and character.image == figure.canonical_path
    assert [c.id for c in services.characters.list(account)] == [character.id]
    with pytest.raises(CharacterError, match="Tick"):
        services.characters.delete(account, character.id, confirm=False)
    services.characters.delete(account, character.id, confirm=True)
    assert services.characters.list(account) == []


@pytest.mark.parametrize(
    "profile, error, match",
    [
        (Profile(fields={"description": "no name"}), CharacterError, "Name is required"),
        (Profile(fields={"name": "x" * 65}), CharacterError, "Name is limited to 64 characters; it has 65"),
        (Profile(fields={"name": "Iris", "personality": "y" * 2001}), CharacterError, "Personality is limited to 2,000"),
        (Profile(fields={"name": "Iris"}, tags=tuple(f"t{i}" for i in range(21))), CharacterError, "At most 20 tags"),
        (Profile(fields={"name": "Iris"}, tags=("z" * 33,)), CharacterError, "Tags are limited to 32"),
        (Profile(fields={"name": "Iris"}, alternate_greetings=("hi",) * 6), CharacterError, "At most 5 alternate"),
        (Profile(fields={"name": "Iris", "nickname": "I"}), CharacterError, "Unknown profile field"),
        (Profile(fields={"name": "Iris", "description": "a 16 year old student"}), PromptRefused, "adults"),
        (Profile(fields={"name": "Iris", "scenario": "a nude beach"}), PromptRefused, "SFW-only"),
    ],
    ids=["no name", "long name", "long personality", "21 tags", "long tag", "6 greetings", "unknown field", "minor", "adult"],
)
def test_bad_profiles_are_refused_and_nothing_is_written(make_services, profile, error, match):
    services = make_services()
    account = guest(services)
    figure = figure_for(services, account)
    with pytest.raises(error, match=match):
        services.characters.create(account, figure.id, profile)
    assert services.characters.list(account) == []
    character = services.characters.create(account, figure.id, GOOD)
    with pytest.raises(error, match=match):
        services.characters.update(account, character.id, profile)
    assert services.characters.get(account, character.id).profile["fields"]["name"] == "Iris Vale"  # unchanged


def test_only_your_own_figures_images_and_characters(make_services, monkeypatch):
    services = make_services()
    owner, stranger = guest(services), guest(services, ip="10.3.0.2")
    figure = figure_for(services, owner)
    character = services.characters.create(owner, figure.id, GOOD)
    with pytest.raises(FigureError):
        services.characters.create(stranger, figure.id, GOOD)
    with pytest.raises(CharacterError, match="No character"):
        services.characters.get(stranger, character.id)
    theirs = services.text.text_to_image(stranger, TextToImageParams("a fox", "sdxl-base", steps=2, seed=1))
    with pytest.raises(CharacterError, match="not in your history"):
        services.characters.add_image(owner, character.id, theirs.request_id, 0)
    with pytest.raises(CharacterError, match="There is no image 1"):
        services.characters.set_main(owner, character.id, 0)

    # an image the output check flagged can sit in the (private) gallery but never be the card image
    mine = services.text.text_to_image(owner, TextToImageParams("a fox", "sdxl-base", steps=2, seed=2))
    character = services.characters.add_image(owner, character.id, mine.request_id, 0)
    with services.db.begin() as conn:
        from services.accounts.tables import characters

        gallery = [dict(g, safety="flagged") for g in character.gallery]
        conn.execute(characters.update().where(characters.c.id == character.id).values(gallery=[
            dict(g, path=services.store.relative(g["path"])) for g in gallery]))
    with pytest.raises(CharacterError, match="must be SFW"):
        services.characters.set_main(owner, character.id, 0)
    assert services.characters.get(owner, character.id).main is None


def test_the_limits_file_is_validated(tmp_path):
    bad = tmp_path / "characters.toml"
    bad.write_text('max_tags = 5\nmax_tag_length = 10\nmax_alternate_greetings = 1\nmax_gallery = 0\n'
                   '[[fields]]\nkey = "description"\nlabel = "D"\nmax = 10\n')
    with pytest.raises(CharactersFileError, match=r"characters.toml: max_gallery: .*greater than or equal to 1"):
        load_character_limits(bad)
    bad.write_text('max_tags = 5\nmax_tag_length = 10\nmax_alternate_greetings = 1\nmax_gallery = 3\n'
                   '[[fields]]\nkey = "description"\nlabel = "D"\nmax = 10\n')
    with pytest.raises(CharactersFileError, match="'name' is required"):
        load_character_limits(bad)
    assert load_character_limits().spec("name").max == 64


def test_characters_through_gradio_client(client, token):
    from gradio_client.exceptions import AppError

    _, info, _, _ = client.predict(archetype="artist", prompt="", model="sdxl-base", takes=1, seed=4, token=token,
                                   api_name="/figure_quick")
    figure = client.predict(token, "Iris", info["request_id"], 0, api_name="/figure_save")
    fields = {"name": "Iris Vale", "description": "A cartographer.", "first_mes": "Sit, tell me where."}
    with pytest.raises(AppError, match="Name is limited to 64 characters"):
        client.predict(token, figure["id"], "", dict(fields, name="x" * 65), [], [], api_name="/character_save")
    assert client.predict(token, api_name="/characters") == []
    character = client.predict(token, figure["id"], "", fields, ["explorer"], ["Back again?"], api_name="/character_save")
    assert character["image"] == figure["canonical_image"]

    _, made, _, _ = client.predict(prompt="the cartographer at her desk", model="flux.1-schnell", steps=2, seed=8,
                                   token=token, api_name="/text_to_image")
    client.predict(token, character["id"], made["request_id"], 0, api_name="/character_add_image")
    updated = client.predict(token, character["id"], 0, api_name="/character_set_card_image")
    assert updated["main"] == 0 and updated["image"] == made["files"][0]

    card = client.predict(character["id"], "v3", token, api_name="/character_export")
    assert card.endswith("iris-vale-v3.png")
    cards = read_card(card)
    assert cards["ccv3"]["data"]["name"] == "Iris Vale" and cards["chara"]["data"]["tags"] == ["explorer"]
    assert cards["ccv3"]["data"]["alternate_greetings"] == ["Back again?"]
    with pytest.raises(AppError, match="Save the character first"):
        client.predict("", "v3", token, api_name="/character_export")
