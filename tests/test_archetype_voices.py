"""Archetype voices: every archetype with presets carries default voice patterns and traits (validated on load); a
character made on a Quick figure starts with its archetype's voice and traits as its personality (unless the creator
wrote one), in the profile and the exported card; the personality helper suggests from the archetype's traits; the
Characters form pre-fills the personality with a note; a Custom figure adds nothing."""
from __future__ import annotations

import json
import os
import tomllib

import pytest

from services.creation.characters import CharacterError, Profile, load_character_limits
from services.creation.characters.profile import personality_help
from services.creation.characters.voices import archetype_traits, figure_archetype
from services.creation.figure_presets import (DEFAULT_FIGURES, TRAIT_MAX, TRAITS, VOICE_LINE_MAX, VOICE_LINES,
                                              FigurePresetsError, load_figure_presets)
from services.safety.policy import Surface

FILE = tomllib.loads(DEFAULT_FIGURES.read_text(encoding="utf-8"))
VOICED = [name for name, arch in FILE["archetypes"].items() if arch.get("cues") or arch.get("defaults")]
BASE = Profile(fields={"name": "Wren Ashby", "first_mes": "You're late. Sit down."}, intro="A character for the voice tests.",
               tags=("drama",))


def own(**fields) -> Profile:
    return Profile(fields={**BASE.fields, **fields}, intro=BASE.intro, tags=BASE.tags)


def quick_figure(services, account, archetype: str, name: str = "Wren"):
    takes = services.figures.quick_takes(account, {"archetype": archetype}, model="sdxl-base", takes=1, steps=2)
    return services.figures.save(account, name, [takes.output.request_id], takes.output.request_id, 0)


def custom_figure(services, account, name: str = "Ash"):
    takes = services.figures.custom_takes(account, appearance="tall adult man, shaved head, amber eyes", model="sdxl-base",
                                          takes=1, steps=2)
    return services.figures.save(account, name, [takes.output.request_id], takes.output.request_id, 0)


# -- 1. every archetype has a voice and traits, validated on load ------------------------------------------
def test_every_archetype_has_a_voice_and_traits():
    assert len(VOICED) >= 6 and set(FILE["archetypes"]) - set(VOICED) == {"custom"}  # "Custom (no presets)" only
    presets, limits = load_figure_presets(), load_character_limits()
    for name in VOICED:
        arch = FILE["archetypes"][name]
        voice, traits = arch.get("voice", []), arch.get("traits", [])
        assert VOICE_LINES[0] <= len(voice) <= VOICE_LINES[1] and all(0 < len(v.strip()) <= VOICE_LINE_MAX for v in voice), name
        assert TRAITS[0] <= len(traits) <= TRAITS[1] and len(set(traits)) == len(traits), name
        assert all(0 < len(t) <= TRAIT_MAX for t in traits), name
        assert not set(traits) & set(limits.personality.generic), name  # the helper would warn on its own seed
        seed = presets.personality_seed(name)
        assert all(v in seed for v in voice) and all(t in seed for t in traits)
        assert len(seed) <= limits.spec("personality").max
    assert "voice" not in FILE["archetypes"]["custom"] and presets.personality_seed("custom") == ""
    presets.check_personality(limits.spec("personality").max, limits.personality.generic)


def test_seeds_fit_the_character_limits_and_pass_the_prompt_policy(make_services):
    services = make_services()
    account = services.identity.start(None, ip="10.31.0.1").account
    for name in VOICED:
        services.policy.check_text(services.figure_presets.personality_seed(name), account, Surface.CHARACTER)
    with pytest.raises(FigurePresetsError, match=r"archetypes\.\w+: its voice and traits make a personality of"):
        services.figure_presets.check_personality(100, ())
    with pytest.raises(FigurePresetsError, match=r"archetypes\.mentor: voice and traits use generic adjectives \['patient'\]"):
        services.figure_presets.check_personality(2000, ("patient",))


def _block(text: str, archetype: str, key: str) -> tuple[int, int]:
    """Where `key = [...]` of one archetype starts and ends in the file's text."""
    start = text.index(f"{key} = [", text.index(f"[archetypes.{archetype}]"))
    return start, text.index("]\n", start) + 2


@pytest.mark.parametrize("archetype, key, replacement, message", [
    ("mentor", "voice", "voice = []\n", "voice needs 2-4 non-empty lines"),
    ("stranger", "voice", "", "voice needs 2-4 non-empty lines"),
    ("explorer", "voice", 'voice = ["  ", "Talks fast."]\n', "voice needs 2-4 non-empty lines"),
    ("artist", "voice", f'voice = ["Talks fast.", "{"so " * 60}"]\n', "voice lines are limited to 160 characters"),
    ("friend", "traits", "traits = []\n", "traits needs 4-8 non-empty traits; it has 0"),
    ("romantic", "traits", "traits = [" + ", ".join(f'"t{n}"' for n in range(9)) + "]\n", "traits needs 4-8"),
])
def test_a_malformed_voice_fails_to_load_naming_the_archetype(tmp_path, archetype, key, replacement, message):
    text = DEFAULT_FIGURES.read_text(encoding="utf-8")
    start, end = _block(text, archetype, key)
    path = tmp_path / "figures.toml"
    path.write_text(text[:start] + replacement + text[end:], encoding="utf-8")
    with pytest.raises(FigurePresetsError, match=rf"figures\.toml: archetypes\.{archetype}: .*{message}"):
        load_figure_presets(path)


# -- 2. a character on a Quick figure starts with its archetype's voice -------------------------------------
def test_a_character_on_a_quick_figure_starts_with_its_archetypes_voice(make_services):
    services = make_services()
    account = services.identity.start(None, ip="10.31.1.1").account
    presets = services.figure_presets
    for archetype in ("mentor", "stranger"):
        figure = quick_figure(services, account, archetype)
        assert figure_archetype(services.figures, account, figure.id) == archetype
        seed = presets.personality_seed(archetype)
        character = services.characters.create(account, BASE, "private", figure_id=figure.id)
        assert character.profile["fields"]["personality"] == seed
        assert all(line in seed for line in presets.archetypes[archetype].voice)
        card = json.loads(services.characters.export_card(account, character.id, "json").read_text(encoding="utf-8"))
        assert card["data"]["personality"] == seed  # the exported card, read back
        other = next(n for n in VOICED if n != archetype)
        assert not any(line in card["data"]["personality"] for line in presets.archetypes[other].voice)
        # editable afterwards like any field: emptied, it stays empty
        edited = services.characters.update(account, character.id, own(personality=""))
        assert edited.profile["fields"]["personality"] == ""
        edited = services.characters.update(account, character.id, own(personality="Only speaks in riddles."))
        assert edited.profile["fields"]["personality"] == "Only speaks in riddles."

    written = services.characters.create(account, own(personality="Talks like a weather report."), "private",
                                         figure_id=figure.id)
    assert written.profile["fields"]["personality"] == "Talks like a weather report."  # the creator's text is kept
    card = json.loads(services.characters.export_card(account, written.id, "json").read_text(encoding="utf-8"))
    assert card["data"]["personality"] == "Talks like a weather report."
    assert not any(line in json.dumps(card) for line in presets.archetypes["stranger"].voice)
    assert services.characters.create(account, BASE, "private").profile["fields"]["personality"] == ""  # no figure


def test_a_custom_figure_adds_nothing(make_services):
    services = make_services()
    account = services.identity.start(None, ip="10.31.2.1").account
    for figure in (custom_figure(services, account), quick_figure(services, account, "custom", "Plain")):
        assert figure_archetype(services.figures, account, figure.id) in ("", "custom")
        character = services.characters.create(account, BASE, "private", figure_id=figure.id)
        assert character.profile["fields"]["personality"] == ""
        card = json.loads(services.characters.export_card(account, character.id, "json").read_text(encoding="utf-8"))
        assert card["data"]["personality"] == ""
    stranger = services.identity.start(None, ip="10.31.2.2").account  # someone else's figure: refused as before
    with pytest.raises(CharacterError, match="among yours"):
        services.characters.create(stranger, BASE, "private", figure_id=figure.id)


# -- 3. the personality helper suggests from the archetype's traits -------------------------------------------
def test_the_helper_suggests_only_the_archetypes_traits():
    presets, limits = load_figure_presets(), load_character_limits()
    for archetype in VOICED:
        pool = archetype_traits(presets, archetype)
        seen = set()
        for seed in ("", "x", "quiet", "She keeps a notebook.", "blunt", "nice and kind", "a long personality " * 5):
            traits = personality_help(limits, seed, traits=pool)["traits"]
            assert 3 <= len(traits) <= 5 and set(traits) <= set(pool), (archetype, seed, traits)
            seen |= set(traits)
        assert len(seen) > 3  # the pick varies with the text
    assert archetype_traits(presets, "") == () and archetype_traits(presets, "custom") == ()
    with pytest.raises(CharacterError, match="archetype: 'pirate' is not one of explorer"):
        archetype_traits(presets, "pirate")


def test_character_help_api_takes_an_archetype_or_a_figure(app_server, client):
    _, services = app_server
    presets = services.figure_presets
    for archetype in ("explorer", "romantic"):
        for personality in ("", "dry", "She hums.", "Keeps her promises."):
            result = client.predict(personality=personality, backstory="", archetype=archetype, api_name="/character_help")
            assert set(result["personality"]["traits"]) <= set(presets.archetypes[archetype].traits), result
    general = client.predict(personality="dry", backstory="", api_name="/character_help")["personality"]["traits"]
    assert set(general) <= set(services.characters.limits.personality.traits)
    session = services.identity.start(None, ip="10.31.3.1")
    figure = quick_figure(services, session.account, "artist")
    for personality in ("", "moody", "Paints at night."):
        result = client.predict(personality=personality, backstory="", archetype="mentor", figure_id=figure.id,
                                token=session.token, api_name="/character_help")  # the figure's archetype wins
        assert set(result["personality"]["traits"]) <= set(presets.archetypes["artist"].traits), result


# -- 4. the Characters form pre-fills the personality with a note ---------------------------------------------
def test_the_form_prefills_the_archetypes_voice_with_a_note(tmp_path, tiny_root):
    import app as app_module
    from services.config import AppSettings

    os.environ["PLAYGROUND_TINY_DIR"] = str(tiny_root)
    demo, _, services = app_module.create(AppSettings.from_env(data_dir=tmp_path, preview="force", device="cpu"))
    try:
        on_voice = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_voice")
        session = services.identity.start(None, ip="10.31.4.1")
        mentor, plain = quick_figure(services, session.account, "mentor"), custom_figure(services, session.account)
        seed = services.figure_presets.personality_seed("mentor")
        value, prefilled = on_voice("", mentor.id, "", session.token)
        assert value == seed and prefilled == "Pre-filled from the Academic / mentor archetype: edit it freely."
        kept, note = on_voice("", mentor.id, "Speaks only in questions.", session.token)
        assert kept == {"__type__": "update"} and note == ""  # what the creator typed stays
        other = services.figure_presets.personality_seed("friend")
        assert on_voice("", mentor.id, other, session.token)[0] == seed  # an untouched pre-fill follows the figure
        assert on_voice("", plain.id, seed, session.token) == ("", "")  # a Custom figure: the pre-fill goes
        assert on_voice("", "", "", session.token) == ({"__type__": "update"}, "")  # no figure: nothing written
        assert on_voice("", mentor.id, seed, session.token) == ({"__type__": "update"}, prefilled)  # already there
        on_suggest = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_suggest")
        tried = on_suggest("Paces while thinking.", mentor.id, session.token).split("**")[1].split(", ")
        assert set(tried) <= set(services.figure_presets.archetypes["mentor"].traits), tried  # Suggest traits too
        character = services.characters.create(session.account, BASE, "private", figure_id=plain.id)
        assert on_voice(character.id, mentor.id, "", session.token) == ({"__type__": "update"}, "")  # editing: untouched
    finally:
        demo.close()
        services.close()
