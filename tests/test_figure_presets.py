"""Quick creation's prompt composer and the figure presets' validation."""
from __future__ import annotations

import pytest

from services.creation.figure_presets import DEFAULT_FIGURES, PHRASE_ORDER, FigurePresetsError, load_figure_presets

PRESETS = load_figure_presets()

TABLE = [
    {"archetype": "explorer"},
    {"archetype": "artist", "face": "heart", "hair_colour": "auburn", "hair_length": "long", "hair_style": "braid"},
    {"archetype": "mentor", "eyes": "grey", "skin": "deep", "body": "broad", "feature": "glasses", "style": "painterly"},
    {"archetype": "stranger", "feature": "scar", "outfit": "hoodie", "style": "anime"},
    {"archetype": "custom", "face": "round", "hair_colour": "pink", "hair_style": "curls", "style": "stylised"},
]


def full(choices):
    return {**PRESETS.defaults_for(choices["archetype"]), **choices}


@pytest.mark.parametrize("choices", TABLE)
def test_each_chosen_phrase_appears_once_in_a_stable_order(choices):
    picked = full(choices)
    composed = PRESETS.compose(picked)
    prompt = composed.prompt
    phrases = [PRESETS.options[kind][picked[kind]].phrase for kind in PHRASE_ORDER]
    phrases = [p for p in phrases if p]
    style = PRESETS.styles[picked["style"]]
    for phrase in phrases + [style.positive]:
        assert prompt.count(phrase) == 1, phrase
    order = [prompt.index(p) for p in phrases]
    assert order == sorted(order), "parts must follow the picker order"
    assert prompt.startswith(f"portrait of an adult {PRESETS.archetypes[picked['archetype']].noun}")
    assert prompt.endswith(style.positive) and composed.negative == style.negative
    assert PRESETS.compose(picked) == composed  # deterministic


@pytest.mark.parametrize(
    "kind, value, part",
    [("face", "square", "face"), ("hair_colour", "silver", "hair"), ("eyes", "green", "eyes"),
     ("feature", "freckles", "feature"), ("outfit", "hoodie", "outfit"), ("style", "anime", "style")],
)
def test_changing_one_step_changes_only_its_part(kind, value, part):
    base = full({"archetype": "friend"})
    changed = dict(base, **{kind: value})
    assert base[kind] != value
    before, after = dict(PRESETS.compose(base).parts), dict(PRESETS.compose(changed).parts)
    assert before.keys() <= after.keys() | {"feature"}
    diff = {step for step in before.keys() | after.keys() if before.get(step) != after.get(step)}
    assert diff == {part}


def test_unknown_choice_names_the_step():
    with pytest.raises(FigurePresetsError, match="hair_colour: 'green-ish' is not one of"):
        PRESETS.compose(full({"archetype": "explorer", "hair_colour": "green-ish"}))


@pytest.mark.parametrize(
    "edit, message",
    [
        (('style = "painterly"\n', 'style = "cubist"\n'), "archetypes.artist.style: 'cubist' is not a style register"),
        (('defaults = { outfit = "linen-smock"', 'defaults = { outfit = "ballgown"'), "archetypes.artist.defaults.outfit"),
        (("[options.eyes.brown]", "[options.eye_colour.brown]"), "unknown option kinds \\['eye_colour'\\]"),
    ],
)
def test_bad_presets_name_the_field(tmp_path, edit, message):
    text = DEFAULT_FIGURES.read_text()
    assert edit[0] in text
    path = tmp_path / "figures.toml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(FigurePresetsError, match=rf"figures\.toml: .*{message}"):
        load_figure_presets(path)


def test_style_models_must_exist(registry):
    PRESETS.check_models(set(registry.ids()))
    with pytest.raises(FigurePresetsError, match="styles.photoreal.models"):
        PRESETS.check_models({"sdxl-base"})


def test_every_scene_has_a_thumbnail_drawn_from_its_palette():
    import numpy as np

    from services.creation.image_presets import load_image_presets, scene_thumbnail

    scenes = load_image_presets().scenes
    thumbs = {key: np.asarray(scene_thumbnail(scene)) for key, scene in scenes.items()}
    assert all(t.shape == (128, 192, 3) and t.std() > 10 for t in thumbs.values())
    sky = {key: tuple(int(v) for v in t[0, 96]) for key, t in thumbs.items()}
    assert len(set(sky.values())) == len(scenes)  # each scene's own palette
    beach = scenes["beach"].palette[0]
    assert sky["beach"] == tuple(int(beach[i:i + 2], 16) for i in (1, 3, 5))
