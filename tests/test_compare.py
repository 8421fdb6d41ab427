"""Compare: one prompt and seed through several real tiny pipelines; every check before any credit moves;
one model failing is refunded while the others still show; drivable by gradio_client."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.creation.compare import CompareParams
from services.creation.text import InvalidRequest
from services.media.png import read_png_metadata
from services.safety.policy import PromptRefused

PROMPT = "a lighthouse keeper at dusk"


def visitor(services):
    return services.identity.start(None, ip="10.0.0.9").account


def ledger_kinds(services, account_id):
    return [e["kind"] for e in services.ledger.entries(account_id)]


def test_one_seed_through_each_model_each_charged_as_its_own_request(make_services):
    services = make_services()
    account = visitor(services)
    models = ("sdxl-base", "flux.1-schnell", "z-image-turbo")
    quotes = services.compare.quote(models, "1:1", "1K")
    out = services.compare.compare(account, CompareParams(PROMPT, models, seed=42))

    assert out.seed == 42 and [r.model for r in out.rows] == list(models)
    assert out.charged == out.quoted == sum(q.total for q in quotes)
    assert services.ledger.balance(account.id) == 50 - out.quoted
    pictures = []
    for row, quote in zip(out.rows, quotes):
        assert not row.error and row.charged == quote.total and len(row.files) == 1 and row.seconds > 0
        meta = read_png_metadata(str(row.files[0]))["parameters"]
        assert meta["seed"] == 42 and meta["prompt"] == PROMPT and meta["Model"] == row.model
        with Image.open(row.files[0]) as image:
            pictures.append(np.asarray(image.convert("RGB"), dtype=np.int16))
    assert all(p.shape == pictures[0].shape for p in pictures)  # same size for every model
    assert np.abs(pictures[0] - pictures[1]).max() > 0  # really different pipelines, not one image three times
    assert ledger_kinds(services, account.id).count("capture") == 3


@pytest.mark.parametrize(
    "models, ratio, tier, prompt, error, match",
    ids=["one model", "same model twice", "five models", "API-only model", "size not offered", "prompt too long",
         "balance short of the set"],
    argvalues=[
        (("sdxl-base",), "1:1", "1K", PROMPT, InvalidRequest, "Pick 2 to 4 different models"),
        (("sdxl-base", "sdxl-base"), "1:1", "1K", PROMPT, InvalidRequest, "you picked 1"),
        (("sdxl-base", "flux.1-schnell", "flux.1-dev", "z-image-turbo", "playground-v2.5"), "1:1", "1K", PROMPT,
         InvalidRequest, "you picked 5"),
        (("sdxl-base", "flux.2-pro"), "1:1", "1K", PROMPT, InvalidRequest, "API-only"),
        (("sdxl-base", "flux.1-schnell"), "1:1", "720p", PROMPT, InvalidRequest, "does not offer 1:1 at 720p"),
        (("sdxl-base", "flux.1-schnell"), "1:1", "1K", "x" * 2001, PromptRefused, "2,000"),
        (("flux.1-dev", "flux.2-dev"), "1:1", "1K", PROMPT, InvalidRequest, "costs 8 credits and you have 5 credits"),
    ],
)
def test_a_set_that_cannot_run_is_refused_before_any_credit_moves(make_services, models, ratio, tier, prompt, error, match):
    services = make_services()
    account = visitor(services)
    with services.db.begin() as conn:  # leave 5 credits: enough for one model, not for the set
        services.ledger.adjust(conn, account.id, -45, "test-drain", "test")
    before = ledger_kinds(services, account.id)
    with pytest.raises(error, match=match):
        services.compare.compare(account, CompareParams(prompt, models, aspect_ratio=ratio, resolution=tier, seed=1))
    assert services.ledger.balance(account.id) == 5 and ledger_kinds(services, account.id) == before
    assert services.history.list(account.id, include_failed=True) == []


def test_a_failing_model_is_refunded_and_the_others_still_show(make_services, monkeypatch):
    services = make_services()
    account = visitor(services)
    original = services.runtime.run

    def run(entry, task, request, *args, **kwargs):
        if entry.id == "flux.1-schnell":
            raise RuntimeError("CUDA error: an illegal memory access")  # internal detail: must not be shown
        return original(entry, task, request, *args, **kwargs)

    monkeypatch.setattr(services.runtime, "run", run)
    out = services.compare.compare(account, CompareParams(PROMPT, ("sdxl-base", "flux.1-schnell"), seed=5))
    ok, failed = out.rows
    assert ok.files and ok.charged == 1 and not ok.error
    assert failed.files == [] and failed.charged == 0
    assert failed.error == "failed (RuntimeError); not charged" and "CUDA" not in failed.error
    assert services.ledger.balance(account.id) == 49
    assert sorted(ledger_kinds(services, account.id)).count("refund") == 1


def test_compare_through_gradio_client(client, token):
    gallery, table, notice, bar = client.predict(
        prompt=PROMPT, models=["sdxl-base", "flux.1-schnell"], aspect_ratio="16:9", resolution="1K", seed=7,
        token=token, api_name="/compare",
    )
    assert len(gallery) == 2
    assert [c.split(" · ")[0] for c in (item["caption"] for item in gallery)] == ["SDXL base 1.0", "FLUX.1 [schnell]"]
    for item in gallery:
        with Image.open(Path(item["image"])) as image:
            assert image.size == (1344, 768)
        assert read_png_metadata(item["image"])["parameters"]["seed"] == 7
    assert table["headers"] == ["model", "seconds", "credits", "steps", "identity", "result"]
    assert [row[4:] for row in table["data"]] == [["—", "offline preview"]] * 2  # no figure picked: no identity score
    assert "Seed 7" in notice and "balance now **48 credits**" in notice and "48 credits" in bar
    with pytest.raises(Exception, match="Pick 2 to 4 different models"):
        client.predict(prompt=PROMPT, models=["sdxl-base"], token=token, api_name="/compare")
    assert client.predict(token, api_name="/balance")["balance"] == 48


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_with_a_figure_each_row_and_png_carries_its_identity_score(make_services, face_pack):
    from services.faces.engine import FaceEngine, similarity
    from tests.test_remix import make_figure
    from ui.compare import identity_cell

    services = make_services(face_pack=face_pack)
    account = visitor(services)
    figure = make_figure(services, account)
    models = ("sdxl-base", "z-image-turbo")
    out = services.compare.compare(account, CompareParams(PROMPT, models, seed=5, figure_id=figure.id))
    engine = FaceEngine(face_pack)
    reference = engine.embed_path(figure.canonical_path)
    for row in out.rows:
        with Image.open(row.files[0]) as image:
            expected = round(similarity(reference, engine.embed(image)), 4)  # the tiny detector finds one face
        assert row.identity == expected
        record = read_png_metadata(str(row.files[0]))["record"]
        assert record["identity_score"] == expected and record["figure_ids"] == [figure.id]
        assert identity_cell(row.identity) == f"{expected:+.3f}"
    assert out.rows[0].identity != out.rows[1].identity  # scored per image, not one number copied

    plain = services.compare.compare(account, CompareParams(PROMPT, models, seed=5))
    assert all(r.identity is None for r in plain.rows) and identity_cell(None) == "—"
    no_pack = make_services()
    other = no_pack.identity.start(None, ip="10.0.0.77").account
    theirs = make_figure(no_pack, other)
    off = no_pack.compare.compare(other, CompareParams(PROMPT, models, seed=5, figure_id=theirs.id))
    # no face pack: the default dlib engine finds no face in the tiny model's canonical take, and says so
    assert [r.identity for r in off.rows] == ["no face in the figure's image"] * 2
    stranger = no_pack.identity.start(None, ip="10.0.0.78").account
    before = no_pack.ledger.balance(stranger.id)
    with pytest.raises(Exception, match="igure"):  # another visitor's figure: refused before anything is reserved
        no_pack.compare.compare(stranger, CompareParams(PROMPT, models, seed=5, figure_id=theirs.id))
    assert no_pack.ledger.balance(stranger.id) == before
