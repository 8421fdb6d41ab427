"""Figures through the service layer on tiny models: takes, save, canonical reference, library actions."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from services.creation.figures import FigureError
from services.safety.policy import PromptRefused


def guest(services, ip="10.2.0.1"):
    return services.identity.start(None, ip=ip).account


def test_quick_takes_save_and_reference(make_services):
    services = make_services()
    account = guest(services)
    takes = services.figures.quick_takes(account, {"archetype": "artist", "eyes": "green"}, model="sdxl-base", takes=3, steps=2)
    assert len(takes.output.files) == 3 and len(set(takes.output.seeds)) == 3
    assert "moss-green eyes" in takes.prompt and services.ledger.balance(account.id) == 47
    again = services.figures.quick_takes(account, {"archetype": "artist", "eyes": "green"}, model="sdxl-base", takes=1, steps=2)
    figure = services.figures.save(account, "Iris", [takes.output.request_id, again.output.request_id], takes.output.request_id, 2)
    assert len(figure.takes) == 4 and figure.canonical["seed"] == takes.output.seeds[2]
    assert figure.spec["choices"]["eyes"] == "green" and figure.kind == "quick" and figure.model == "sdxl-base"
    # the default dlib engine looked at the canonical take (the tiny model draws no face)
    assert "No face found in the canonical image" in figure.identity_note and not figure.has_embedding

    reference = services.figures.reference(account, figure.id)
    assert reference.image == takes.output.files[2]
    other = next(t for t in figure.takes if t["request_id"] == again.output.request_id)
    services.figures.set_canonical(account, figure.id, other["id"])
    assert services.figures.reference(account, figure.id).image == again.output.files[0]


def test_custom_takes_and_library_actions(make_services):
    services = make_services()
    account = guest(services)
    takes = services.figures.custom_takes(
        account, appearance="tall woman, copper braid, grey eyes", outfit="navy pea coat", style="painterly",
        negative_prompt="hat", model="sdxl-base", takes=2, steps=2, seed=100, aspect_ratio="3:4",
    )
    assert takes.output.seeds == [100, 101] and "navy pea coat" in takes.prompt and takes.negative_prompt.startswith("hat, ")
    figure = services.figures.save(account, "Wren", [takes.output.request_id], takes.output.request_id, 0)
    with Image.open(figure.canonical_path) as image:
        assert image.size == (896, 1152)
    copy = services.figures.duplicate(account, figure.id)
    assert copy.name == "Wren (copy)" and copy.canonical["seed"] == 100 and copy.id != figure.id
    assert [f.name for f in services.figures.list(account, "wren")] == ["Wren (copy)", "Wren"]
    assert services.figures.list(account, "pea coat")  # the prompt is searched too
    assert services.figures.list(account, "nobody") == []
    with pytest.raises(FigureError, match="needs confirmation"):
        services.figures.delete(account, copy.id, confirm=False)
    services.figures.delete(account, copy.id, confirm=True)
    assert [f.name for f in services.figures.list(account)] == ["Wren"]
    stranger = guest(services, ip="10.2.0.9")
    with pytest.raises(FigureError, match="No figure"):
        services.figures.get(stranger, figure.id)
    with pytest.raises(FigureError, match="not finished figure takes of yours"):
        services.figures.save(stranger, "Stolen", [takes.output.request_id], takes.output.request_id, 0)


def test_figures_are_adults_and_failed_takes_refund(make_services):
    services = make_services()
    account = guest(services)
    with pytest.raises(PromptRefused, match="rule: adult_figures"):
        services.figures.custom_takes(account, appearance="a shy teenager with braces", model="sdxl-base", takes=1)
    with pytest.raises(PromptRefused, match="rule: adult_figures"):
        services.figures.quick_takes(account, {"archetype": "friend"}, prompt="portrait of a 14 year old", model="sdxl-base", takes=1)

    def boom(done, total):
        raise RuntimeError("device lost")

    with pytest.raises(RuntimeError):
        services.figures.quick_takes(account, {"archetype": "friend"}, model="sdxl-base", takes=2, steps=2, on_step=boom)
    assert services.ledger.balance(account.id) == 50 == services.ledger.total(account.id)
    with pytest.raises(FigureError, match="Takes must be between 1 and 4"):
        services.figures.quick_takes(account, {"archetype": "friend"}, model="sdxl-base", takes=5)


def test_face_pack_stores_an_embedding(make_services, face_pack):
    services = make_services(face_pack=face_pack)
    account = guest(services)
    takes = services.figures.quick_takes(account, {"archetype": "mentor"}, model="sdxl-base", takes=2, steps=2)
    figure = services.figures.save(account, "Ada", [takes.output.request_id], takes.output.request_id, 0)
    assert figure.has_embedding and figure.identity_note == "" and figure.embedding_model == "insightface:tiny_faces"
    reference = services.figures.reference(account, figure.id)
    vector = np.asarray(reference.embedding)
    assert vector.shape == (512,) and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    # The embedding is of the canonical image: switching the canonical take changes it.
    services.figures.set_canonical(account, figure.id, figure.takes[1]["id"])
    assert not np.allclose(services.figures.reference(account, figure.id).embedding, vector)
