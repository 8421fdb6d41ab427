"""A finished grid and an arena's votes exported through `datasets`: load_from_disk and the Parquet file (read with
pyarrow alone) give the record's parameters and pixel-identical images to the stored PNGs; a push goes to a stand-in
Hub on 127.0.0.1 (tests/fake_hub.py)."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from services.research import exports
from tests.fake_hub import FakeHub
from tests.test_grids import visitor
from tests.test_identity_monitor import scripted  # noqa: F401 - a fixture


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture
def finished(make_services):
    services = make_services()
    account = visitor(services)
    spec = services.grids.declare(prompts=["a lighthouse keeper, portrait"], models=["sdxl-base", "flux.1-schnell"], seeds=[7, 8])
    grid_id = services.grids.start(account, spec)["grid_id"]
    assert services.background.wait(account.id, grid_id, 300)["state"] == "done"
    return services, account, grid_id


def test_parquet_and_save_to_disk_give_the_stored_pngs_and_settings(finished, tmp_path):
    import datasets

    services, account, grid_id = finished
    rows = exports.grid_rows(services, account, grid_id)
    cells = {c["idx"]: c for c in services.grids.get(account, grid_id)["cells"]}
    parquet = exports.write(rows, tmp_path / "out", grid_id, "parquet", types=exports.GRID_TYPES)
    table = pq.read_table(parquet).to_pylist()  # pyarrow alone
    archive = exports.write(rows, tmp_path / "out", grid_id, "dataset", types=exports.GRID_TYPES)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp_path / "disk")
    loaded = datasets.load_from_disk(str(tmp_path / "disk"))
    assert len(table) == len(loaded) == 4
    for record, from_disk in zip(table, loaded):
        cell = cells[record["cell"]]
        stored = services.store.path(cell["file"]).read_bytes()
        assert record["image"]["bytes"] == stored  # the PNG as stored, text chunks included
        assert np.array_equal(pixels(record["image"]["bytes"]), pixels(stored))
        assert np.array_equal(np.asarray(from_disk["image"].convert("RGB")), pixels(stored))
        settings = services.history.get(account.id, cell["request_id"]).parameters
        assert json.loads(record["settings_json"]) == json.loads(json.dumps(settings)) == json.loads(from_disk["settings_json"])
        assert (record["seed"], record["model"], record["credits"]) == (cell["seed"], cell["model"], cell["charged"])
        assert record["seconds"] == pytest.approx(cell["seconds"]) and record["steps"] == cell["steps"]
        assert {k: from_disk[k] for k in ("seed", "model", "prompt", "cell")} == {k: record[k] for k in ("seed", "model", "prompt", "cell")}


def test_votes_export_and_a_push_to_a_stand_in_hub(finished, tmp_path, monkeypatch, only_loopback):
    import huggingface_hub.constants as constants

    services, account, grid_id = finished
    battle = services.arena.round(account)
    services.arena.vote(account, battle["battle_id"], "tie")
    rows = exports.vote_rows(services, account)
    assert len(rows) == 1 and rows[0]["outcome"] == "tie" and {rows[0]["left"], rows[0]["right"]} == {"sdxl-base", "flux.1-schnell"}
    table = pq.read_table(exports.write(rows, tmp_path, "votes", "parquet", images=("left_image", "right_image"),
                                        types=exports.VOTE_TYPES)).to_pylist()
    assert table[0]["left_image"]["bytes"] == services.store.path(battle["left"]).read_bytes()
    other = visitor(services)
    with pytest.raises(exports.ExportError, match="no votes"):
        exports.vote_rows(services, other)  # another visitor sees only their own votes

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with FakeHub(token="hf_grid", lfs=False) as hub:
        monkeypatch.setenv("PLAYGROUND_HUB_ENDPOINT", hub.endpoint)
        url = exports.push(exports.grid_rows(services, account, grid_id), "tester/my-grid", "hf_grid", types=exports.GRID_TYPES)
        assert url.startswith(hub.endpoint) and hub.unknown == []
        pushed = pq.read_table(io.BytesIO(hub.repos["tester/my-grid"].files["data/train-00000-of-00001.parquet"])).to_pylist()
        assert len(pushed) == 4 and hub.repos["tester/my-grid"].visibility == "private"
        with pytest.raises(exports.ExportError, match="refused the push"):
            exports.push(exports.grid_rows(services, account, grid_id), "tester/my-grid", "hf_wrong")


def test_identity_scores_export_with_their_images(make_services, scripted, tmp_path):
    from PIL import ImageOps

    from pipelines.types import Task
    from tests.test_identity_monitor import ASTRONAUT, real_figure

    services = make_services()
    account = visitor(services, credits=100)
    figure = real_figure(services, account, scripted)
    model = next(e.id for e in services.remix.remix_models() if e.face_preservation == "reference")
    scripted(services, {(model, Task.REFERENCE): [ImageOps.mirror(ASTRONAUT), None]})
    for prompt in ("in a library", "on a beach"):
        services.remix.figure_remix(account, prompt=prompt, model=model, figure_id=figure.id, seed=3)
    rows = exports.identity_rows(services, account, figure.id)
    listed = services.monitor.figure_outputs(account, figure.id)["outputs"]
    table = pq.read_table(exports.write(rows, tmp_path, "identity", "parquet", types=exports.IDENTITY_TYPES)).to_pylist()
    assert [(r["request_id"], r["sim_ref"], r["copy_paste"]) for r in table] == [(o["request_id"], o["sim_ref"], o["copy_paste"]) for o in listed]
    assert any(r["copy_paste"] for r in table) and any(r["note"] == "no face" for r in table)
    for record, out in zip(table, listed):
        assert record["image"]["bytes"] == open(out["file"], "rb").read()
