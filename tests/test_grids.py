"""Research grids on the tiny models: the whole grid is quoted before it starts, every cell is its own paid request
through the runner (a failing cell is refunded alone), cells in a row share the seed, the grid reopens identically
after the services are rebuilt, and its PNGs hold their full settings."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from services.research.grids import GridError
from tests.test_identity_monitor import scripted  # noqa: F401 - a fixture

PROMPTS = ["a lighthouse keeper at dusk, portrait", "two hikers on a ridge at noon"]
MODELS = ["sdxl-base", "playground-v2.5", "flux.1-schnell"]


def visitor(services, credits: int = 0):
    account = services.identity.start().account
    if credits:
        with services.db.begin() as conn:
            services.ledger.adjust(conn, account.id, credits, "test", "grid test")
    return services.identity.account(account.id)


def ledger_kinds(services, account_id):
    return [row["kind"] for row in services.ledger.rows(account_id)] if hasattr(services.ledger, "rows") else []


def test_a_2x3x2_grid_is_12_paid_cells_quoted_whole_with_one_failure_refunded_alone(make_services, monkeypatch):
    services = make_services()
    account = visitor(services)
    spec = services.grids.declare(prompts=PROMPTS, models=MODELS, seeds=[11, 22])
    quote = services.grids.quote(account, spec)
    assert quote["cells"] == 12 and quote["total"] == sum(services.catalogue.quote(m, "text-to-image", "1:1", "1K").total * 4 for m in MODELS)
    before = services.ledger.balance(account.id)

    original = services.runtime.run
    calls = []

    def run(entry, task, request, *args, **kwargs):  # one injected failure: flux, the second prompt, seed 22
        calls.append((entry.id, request.prompt, request.seed))
        if entry.id == "flux.1-schnell" and request.prompt == PROMPTS[1] and request.seed == 22:
            raise RuntimeError("CUDA error: injected")
        return original(entry, task, request, *args, **kwargs)

    monkeypatch.setattr(services.runtime, "run", run)
    started = services.grids.start(account, spec)
    grid_id = started["grid_id"]
    services.background.wait(account.id, grid_id, 300)
    grid = services.grids.get(account, grid_id)

    assert grid["status"] == "done" and len(grid["cells"]) == 12
    failed = [c for c in grid["cells"] if c["status"] == "failed"]
    assert [(c["model"], c["prompt_index"], c["seed"]) for c in failed] == [("flux.1-schnell", 1, 22)]
    assert failed[0]["charged"] == 0 and "CUDA" not in failed[0]["error"]
    failed_price = services.catalogue.quote("flux.1-schnell", "text-to-image", "1:1", "1K").total
    assert grid["charged"] == quote["total"] - failed_price
    assert before - services.ledger.balance(account.id) == grid["charged"]  # exactly that cell was refunded
    # most expensive axis outermost: each model's cells run together, so each model is loaded once
    order = [model for model, _, _ in calls]
    assert [m for i, m in enumerate(order) if i == 0 or order[i - 1] != m] == sorted(set(order), key=order.index)
    assert len(set(order)) == 3
    # rows share their seed: the layout by prompt x model, stacked by seed, has the same seeds in every row
    table = services.grids.get(account, grid_id, rows="seed", cols="model")["layout"]
    assert table["row_labels"] == ["11", "22"]
    for seed, row in zip((11, 22), table["table"]):
        assert all(c["seed"] == seed for position in row for c in position)
    # a cell's PNG holds its full settings (read back with PIL, not the app's parser)
    done = next(c for c in grid["cells"] if c["status"] == "done")
    with Image.open(services.store.path(done["file"])) as png:
        text = " ".join(str(v) for v in png.text.values())
    assert PROMPTS[done["prompt_index"]] in text and str(done["seed"]) in text and done["model"] in text
    assert done["seconds"] > 0 and done["steps"]

    # a rebuild of the services (a restart) reopens the grid identically
    again = make_services()
    reopened = again.grids.get(again.identity.account(account.id), grid_id)
    assert reopened["cells"] == grid["cells"] and reopened["status"] == "done" and reopened["layout"] == grid["layout"]
    assert again.grids.listing(account)[0]["grid_id"] == grid_id


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"models": ["sdxl-base"]}, "2 to 8 different models"),
        ({"seeds": list(range(9))}, "at most 8 seeds"),
        ({"axis": "steps", "values": []}, "1 to 6 values"),
        ({"axis": "likeness", "values": [0.5]}, "may be steps or guidance"),
        ({"axis": "steps", "values": ["many"]}, "not a number"),
        ({"prompts": [" "]}, "at least one prompt"),
    ],
)
def test_a_malformed_grid_is_named_before_anything_runs(make_services, kwargs, match):
    services = make_services()
    with pytest.raises(GridError, match=match):
        services.grids.declare(**{"prompts": PROMPTS, "models": MODELS[:2], "seeds": [1], **kwargs})


def test_a_grid_over_the_cap_or_the_balance_is_refused_and_nothing_is_charged(make_services):
    services = make_services()
    account = visitor(services)
    before = services.ledger.balance(account.id)
    big = services.grids.declare(prompts=[f"a portrait number {i}" for i in range(20)], models=MODELS, seeds=[1, 2])
    with pytest.raises(GridError, match="120 cells; a grid may have at most 64"):
        services.grids.start(account, big)
    pricey = services.grids.declare(prompts=PROMPTS * 1, models=["flux.1-dev", "flux.2-dev"], seeds=[1, 2, 3, 4, 5, 6, 7])
    with pytest.raises(GridError, match="costs 112 credits .* your balance is 50"):
        services.grids.start(account, pricey)
    bad = services.grids.declare(prompts=["a nude child"], models=MODELS[:2], seeds=[1])
    with pytest.raises(GridError, match="Prompt 1:"):
        services.grids.start(account, bad)
    assert services.ledger.balance(account.id) == before
    assert services.grids.listing(account) == []


def test_a_settings_axis_runs_each_value_and_records_it(make_services):
    services = make_services()
    account = visitor(services)
    spec = services.grids.declare(prompts=PROMPTS[:1], models=MODELS[:2], seeds=[5], axis="steps", values=[2, 3])
    grid_id = services.grids.start(account, spec)["grid_id"]
    services.background.wait(account.id, grid_id, 300)
    grid = services.grids.get(account, grid_id, rows="value", cols="model")
    assert grid["status"] == "done" and grid["layout"]["row_labels"] == ["steps = 2", "steps = 3"]
    for cell in grid["cells"]:
        assert cell["steps"] == cell["value"]
        record = services.history.get(account.id, cell["request_id"])
        assert record.parameters["steps"] == cell["value"] and json.dumps(record.request["context"]["grid"])


def test_a_remix_grid_on_a_real_photo_figure_records_each_cells_identity(make_services, scripted):
    """Figure runs: each cell records the identity monitor's SimRef (dlib, default install) against the canonical face;
    a copied face is flagged, an output without a face says so."""
    from PIL import ImageOps

    from pipelines.types import Task
    from services.research.grids import identity_text, score_of
    from tests.test_identity_monitor import ASTRONAUT, real_figure

    services = make_services()
    account = visitor(services, credits=100)
    figure = real_figure(services, account, scripted)
    models = [e.id for e in services.remix.remix_models() if e.face_preservation == "reference"][:2]
    scripted(services, {(models[0], Task.REFERENCE): [ImageOps.mirror(ASTRONAUT)]})  # the second model keeps its noise
    spec = services.grids.declare(prompts=["reading in a library"], models=models, seeds=[4], surface="remix", figure_id=figure.id)
    grid_id = services.grids.start(account, spec)["grid_id"]
    assert services.background.wait(account.id, grid_id, 300)["state"] == "done"
    cells = {c["model"]: c for c in services.grids.get(account, grid_id)["cells"]}
    copied, noise = cells[models[0]]["identity"], cells[models[1]]["identity"]
    assert copied["engine"] == "dlib:resnet128" and score_of(copied) > 0.75 and copied["copy_paste"]
    assert "copy-paste" in identity_text(copied)
    assert score_of(noise) is None and identity_text(noise) == "no face"
