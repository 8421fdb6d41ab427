"""Research exports (services/research/export.py): a `datasets` dataset on disk, a Parquet file read back with
pyarrow alone, refused rows, and push_to_hub against tests/fake_hub.py (a stand-in Hub on 127.0.0.1)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, PngImagePlugin

from services.research import export
from tests.fake_hub import FakeHub

SETTINGS = [
    {"steps": 28, "guidance": 3.5, "scheduler": "euler", "lora": {"name": "ink", "scale": 0.8}, "size": [512, 768]},
    {"steps": 4, "guidance": 0.0, "negative": None, "prompt": "a fox, é ✓"},
    {},
]


@pytest.fixture()
def pngs(tmp_path) -> list[Path]:
    """Three real PNGs (RGB, RGBA, L) of different sizes, each with a text chunk."""
    rng = np.random.default_rng(0)
    out = []
    for i, (mode, shape) in enumerate([("RGB", (17, 23, 3)), ("RGBA", (8, 8, 4)), ("L", (5, 31))]):
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", json.dumps({"cell": i, "seed": 100 + i}))
        path = tmp_path / f"cell-{i}.png"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path, pnginfo=info)
        out.append(path)
    return out


@pytest.fixture()
def rows(pngs) -> list[dict]:
    return [
        {"image": str(pngs[0]), "model": "sdxl-base", "seed": 101, "cfg": 7, "score": 0.25, "ok": True,
         "note": None, "settings": SETTINGS[0]},
        {"image": pngs[1], "model": "flux-dev|instantid", "seed": 102, "cfg": 3.5, "score": None, "ok": False,
         "note": "second", "settings": SETTINGS[1]},
        {"image": pngs[2], "model": "z-image", "seed": -3, "cfg": 1.0, "score": 1e-9, "ok": True,
         "note": "", "settings": SETTINGS[2]},
        {"image": None, "model": "failed-cell", "seed": 0, "cfg": 0.0, "score": float("inf"), "ok": False,
         "note": "no image", "settings": None},
    ]


COLUMNS = ["image", "model", "seed", "cfg", "score", "ok", "note", "settings_json"]


def expected_scalars(row: dict) -> dict:
    out = {k: v for k, v in row.items() if k not in ("image", "settings")}
    out["cfg"] = float(out["cfg"])  # ints and floats in one column: float64
    out["settings_json"] = None if row["settings"] is None else json.dumps(row["settings"], sort_keys=True,
                                                                             ensure_ascii=False)
    return out


def pixels(source) -> np.ndarray:
    with Image.open(source) as image:
        return np.asarray(image)


def test_features_are_declared_explicitly(rows):
    features = export.features_for(rows)
    assert list(features) == COLUMNS
    kinds = {name: getattr(f, "dtype", type(f).__name__) for name, f in features.items()}
    assert kinds == {"image": "PIL.Image.Image", "model": "string", "seed": "int64", "cfg": "float64",
                     "score": "float64", "ok": "bool", "note": "string", "settings_json": "string"}
    pinned = export.features_for([{"maybe": None}, {}], types={"maybe": "int64", "later": "json"})
    assert pinned["maybe"].dtype == "int64" and pinned["later_json"].dtype == "string"
    assert export.features_for([{"x": None}])["x"].dtype == "string"  # all None: string unless pinned


def test_save_to_disk_round_trip(rows, pngs, tmp_path):
    from datasets import Image as ImageFeature
    from datasets import load_from_disk

    folder = export.save(rows, tmp_path / "grid")
    loaded = load_from_disk(str(folder))
    assert loaded.column_names == COLUMNS and len(loaded) == 4
    for i, row in enumerate(rows):
        got = {k: v for k, v in loaded[i].items() if k != "image"}
        assert got == expected_scalars(row)
        if row["settings"] is not None:
            assert json.loads(got["settings_json"]) == row["settings"]  # every setting survives
    for i, path in enumerate(pngs):
        image = loaded[i]["image"]
        assert np.array_equal(np.asarray(image), pixels(path)) and image.mode == Image.open(path).mode
        assert image.info["parameters"] == json.dumps({"cell": i, "seed": 100 + i})  # the text chunk survives
    assert loaded[3]["image"] is None
    raw = loaded.cast_column("image", ImageFeature(decode=False))
    for i, path in enumerate(pngs):
        assert raw[i]["image"] == {"bytes": path.read_bytes(), "path": path.name}  # the same bytes as on disk


def test_parquet_reads_back_with_pyarrow_alone(rows, pngs, tmp_path):
    path = export.to_parquet(rows, tmp_path / "out" / "grid.parquet")
    table = pq.read_table(path)
    assert table.column_names == COLUMNS
    assert [str(t) for t in table.schema.types[1:]] == ["string", "int64", "double", "double", "bool", "string",
                                                        "string"]
    records = table.to_pylist()
    for row, record in zip(rows, records):
        assert {k: v for k, v in record.items() if k != "image"} == expected_scalars(row)
    for path_png, record in zip(pngs, records):
        assert record["image"]["bytes"] == path_png.read_bytes() and record["image"]["path"] == path_png.name
        assert np.array_equal(pixels(io.BytesIO(record["image"]["bytes"])), pixels(path_png))
    assert records[3]["image"] is None
    assert b"huggingface" in table.schema.metadata  # datasets' features ride along for load_dataset


@pytest.mark.parametrize("bad_rows,types,message", [
    ([{"seed": 1}, {"seed": "2"}], None, r"row 1: field 'seed' holds a str \('2'\) where row 0 holds int64"),
    ([{"ok": True}, {"ok": 1}], None, r"row 1: field 'ok' holds a int"),
    ([{"cfg": 7.5}, {"cfg": "7.5"}], None, r"field 'cfg'"),
    ([{"settings": {"a": 1}}, {"settings": "a=1"}], None, r"field 'settings' holds a str"),
    ([{"seed": 1.5}], {"seed": "int64"}, r"row 0: field 'seed' is declared int64 but holds a float"),
    ([{"x": 1}], {"x": "decimal"}, r"types\['x'\] must be one of"),
    ([{"image": 3}], None, r"field 'image' must be an image file path or None"),
    ([{"image": "/nonexistent/cell.png"}], None, r"row 0: field 'image': no image file at"),
    ([{"blob": b"\x00"}], None, r"field 'blob': unsupported value of type bytes"),
    ([{"settings": {}, "settings_json": "{}"}], None, r"settings_json would appear twice"),
    (["not a dict"], None, r"row 0 is a str, not a dict"),
])
def test_mismatched_or_unsupported_rows_are_refused(bad_rows, types, message):
    with pytest.raises(ValueError, match=message):
        export.to_dataset(bad_rows, types=types)


def test_missing_fields_are_null_and_no_rows_is_an_empty_dataset():
    dataset = export.to_dataset([{"a": 1}, {"b": "x"}])
    assert dataset.to_list() == [{"a": 1, "b": None}, {"a": None, "b": "x"}]
    assert len(export.to_dataset([])) == 0


@pytest.fixture()
def online_to_loopback(monkeypatch, only_loopback):
    """huggingface_hub allowed to make requests (tests run with HF_HUB_OFFLINE=1); telemetry off; the session's
    guard still refuses anything but 127.0.0.1, and the test checks it refused nothing."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    before = len(only_loopback)
    yield constants
    assert len(only_loopback) == before, f"tried to leave 127.0.0.1: {only_loopback[before:]}"


PUSH_REGULAR = [("POST", "/api/repos/create"), ("POST", "/api/validate-yaml"),
                ("POST", "/api/datasets/tester/grid-export/preupload/main"),
                ("POST", "/api/datasets/tester/grid-export/commit/main")]
PUSH_LFS = PUSH_REGULAR[:3] + [("POST", "/datasets/tester/grid-export.git/info/lfs/objects/batch"),
                               ("PUT", "/__lfs/upload/{oid}"), ("POST", "/__lfs/verify"), PUSH_REGULAR[3]]


@pytest.mark.parametrize("lfs", [False, True], ids=["regular", "lfs"])
def test_push_to_hub_commits_a_parquet_file_that_reads_back(lfs, rows, pngs, online_to_loopback, monkeypatch):
    if lfs:  # with hf_xet installed, LFS files go through Xet, which the fake hub does not speak
        monkeypatch.setattr(online_to_loopback, "HF_HUB_DISABLE_XET", True)
    with FakeHub(token="hf_research_token", lfs=lfs) as hub:
        url = export.push_to_hub(rows, "tester/grid-export", "hf_research_token", endpoint=hub.endpoint)
        repo = hub.repos["tester/grid-export"]
        assert hub.unknown == []
        data = repo.files["data/train-00000-of-00001.parquet"]
        import hashlib

        expected = [(m, p.format(oid=hashlib.sha256(data).hexdigest())) for m, p in (PUSH_LFS if lfs else PUSH_REGULAR)]
        assert hub.requests == expected
        assert url == f"{hub.endpoint}/datasets/tester/grid-export/commit/{repo.commits[0]['oid']}"
        assert repo.type == "dataset" and repo.visibility == "private"
        assert repo.commits[0]["lfs"] == (["data/train-00000-of-00001.parquet"] if lfs else [])

        records = pq.read_table(io.BytesIO(data)).to_pylist()
        for row, record in zip(rows, records):
            assert {k: v for k, v in record.items() if k != "image"} == expected_scalars(row)
        for path, record in zip(pngs, records):
            assert record["image"]["bytes"] == path.read_bytes()
        card = repo.files["README.md"].decode()
        assert "path: data/train-*" in card and "dtype: image" in card and "num_examples: 4" in card

        # A second push reuses the repository (create_repo answers 409) and commits again.
        export.push_to_hub(rows[:1], "tester/grid-export", "hf_research_token", endpoint=hub.endpoint,
                           private=False)
        assert len(repo.commits) == 2 and repo.visibility == "private" and hub.unknown == []
        assert len(pq.read_table(io.BytesIO(repo.files["data/train-00000-of-00001.parquet"]))) == 1


def test_push_to_hub_with_a_wrong_token_is_refused(rows, online_to_loopback):
    from huggingface_hub.errors import HfHubHTTPError

    with FakeHub(token="hf_right") as hub:
        with pytest.raises(HfHubHTTPError):
            export.push_to_hub(rows, "tester/x", "hf_wrong", endpoint=hub.endpoint)
        assert hub.repos == {}
    with pytest.raises(ValueError, match="token"):
        export.push_to_hub(rows, "tester/x", "", endpoint="http://127.0.0.1:9")


def test_push_to_hub_honours_offline_mode(rows, monkeypatch):
    import huggingface_hub.constants as constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with FakeHub() as hub:
        with pytest.raises(OfflineModeIsEnabled):
            export.push_to_hub(rows, "tester/x", hub.token, endpoint=hub.endpoint)
        assert hub.requests == []
