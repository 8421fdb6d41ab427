"""Export rows of research results (grids, arena votes, identity scores, ...) as a Hugging Face `datasets` dataset:
on disk (`save`), as one Parquet file (`to_parquet`), or to a (private) dataset repository (`push_to_hub`).

Rows are plain dicts, generic on purpose (the callers build them):

- image fields (default: just "image") hold a file path (str or Path) or None. The column is an `Image()` feature
  holding the file's bytes exactly as they are on disk ({"bytes": ..., "path": file name}), so the pixels and any
  PNG text chunks survive unchanged;
- scalar fields (str, int, float, bool, None) become `Value` columns: string, int64, float64, bool. The types are
  inferred over all rows: ints and floats together make float64 (an int is a number where a float is expected);
  any other disagreement (a str and an int, a bool and an int, ...) is refused with a `ValueError` naming the field
  and the row. A field that is None (or missing) in every row is a string column unless `types` says otherwise;
- nested fields (dict or list, e.g. "settings") are stored as a JSON string column named `<field>_json` (e.g.
  `settings_json`, `json.dumps(..., sort_keys=True)`), so every setting survives whatever its shape;
- `types` pins a column's type (field name -> "string", "int64", "float64", "bool", "json" or "image"), for
  exports whose schema must not depend on the rows at hand.

Nothing here reaches the network except `push_to_hub`, which talks only to the `endpoint` it is given: `datasets`
is imported with HF_DATASETS_OFFLINE=1 (unless the environment says otherwise) and HF_HUB_DISABLE_TELEMETRY=1, and
the push goes through huggingface_hub's `HfApi(endpoint=...)` (create_repo, then one commit of the Parquet file and
a dataset card), never through `Dataset.push_to_hub`, which reads its endpoint from the process-wide HF_ENDPOINT.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    import datasets

KINDS = ("string", "int64", "float64", "bool", "json", "image")
JSON_SUFFIX = "_json"
DATA_FILE = "data/{split}-00000-of-00001.parquet"


def _datasets():
    """`datasets`, imported offline (its import is slow, and only exports need it)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import datasets

    return datasets


@contextmanager
def _quiet():
    """No progress bars on the server's stderr while exporting (those that were on are turned back on)."""
    ds = _datasets()
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    datasets_bars, hub_bars = ds.is_progress_bar_enabled(), not are_progress_bars_disabled()
    ds.disable_progress_bars()
    disable_progress_bars()
    try:
        yield
    finally:
        if datasets_bars:
            ds.enable_progress_bars()
        if hub_bars:
            enable_progress_bars()


def _kind(value: Any) -> str | None:
    """The column kind of one value (None for None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (dict, list, tuple)):
        return "json"
    raise ValueError(f"unsupported value of type {type(value).__name__}: {value!r:.80}")


def _column_kinds(rows: list[Mapping], images: tuple[str, ...], types: Mapping[str, str]) -> dict[str, str]:
    """Field -> kind, in order of first appearance; refuses rows whose types disagree."""
    for field, kind in types.items():
        if kind not in KINDS:
            raise ValueError(f"types[{field!r}] must be one of {', '.join(KINDS)}, not {kind!r}")
    kinds: dict[str, str | None] = {}
    seen_at: dict[str, int] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"row {index} is a {type(row).__name__}, not a dict")
        for field, value in row.items():
            if not isinstance(field, str) or not field:
                raise ValueError(f"row {index} has a field name that is not a non-empty string: {field!r}")
            if field in images or types.get(field) == "image":
                kinds.setdefault(field, "image")
                if value is not None and not isinstance(value, (str, os.PathLike)):
                    raise ValueError(f"row {index}: field {field!r} must be an image file path or None, "
                                     f"not {type(value).__name__}")
                continue
            try:
                kind = _kind(value)
            except ValueError as error:
                raise ValueError(f"row {index}: field {field!r}: {error}") from None
            declared = types.get(field)
            if declared is not None:
                if kind is not None and kind != declared and not (declared == "float64" and kind == "int64"):
                    raise ValueError(f"row {index}: field {field!r} is declared {declared} but holds a "
                                     f"{type(value).__name__} ({value!r:.80})")
                kinds[field] = declared
                continue
            current = kinds.get(field)
            if field not in kinds or current is None:
                kinds[field] = kind
                if kind is not None:
                    seen_at[field] = index
            elif kind is not None and kind != current:
                if {kind, current} == {"int64", "float64"}:
                    kinds[field] = "float64"
                else:
                    raise ValueError(f"row {index}: field {field!r} holds a {type(value).__name__} "
                                     f"({value!r:.80}) where row {seen_at[field]} holds {current}; "
                                     "every row must use one type per field")
    for field, kind in types.items():
        kinds.setdefault(field, kind)
    resolved = {field: kind or "string" for field, kind in kinds.items()}
    names = [f"{f}{JSON_SUFFIX}" if k == "json" else f for f, k in resolved.items()]
    clash = {n for n in names if names.count(n) > 1}
    if clash:
        raise ValueError(f"column name(s) {', '.join(sorted(clash))} would appear twice (a nested field is stored "
                         f"as <field>{JSON_SUFFIX})")
    return resolved


def _image_cell(value: Any, index: int, field: str) -> dict | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"row {index}: field {field!r}: no image file at {path}")
    return {"bytes": path.read_bytes(), "path": path.name}


def features_for(rows: Iterable[Mapping], *, images: Iterable[str] = ("image",),
                 types: Mapping[str, str] | None = None) -> "datasets.Features":
    """The `datasets.Features` `to_dataset` declares for these rows (nested fields under `<field>_json`)."""
    ds = _datasets()
    kinds = _column_kinds(list(rows), tuple(images), dict(types or {}))
    return ds.Features({(f"{field}{JSON_SUFFIX}" if kind == "json" else field):
                        (ds.Image() if kind == "image" else ds.Value("string" if kind == "json" else kind))
                        for field, kind in kinds.items()})


def to_dataset(rows: Iterable[Mapping], *, images: Iterable[str] = ("image",),
               types: Mapping[str, str] | None = None) -> "datasets.Dataset":
    """A `datasets.Dataset` with one example per row and explicitly declared features (see the module docstring).
    Raises ValueError for rows whose field types disagree, unsupported values, or missing image files."""
    import pyarrow as pa

    ds = _datasets()
    rows = list(rows)
    kinds = _column_kinds(rows, tuple(images), dict(types or {}))
    features, columns = {}, {}
    for field, kind in kinds.items():
        values = [row.get(field) for row in rows]
        if kind == "image":
            feature = ds.Image()
            cells = [_image_cell(v, i, field) for i, v in enumerate(values)]
            columns[field] = pa.array(cells, type=feature.pa_type)
            features[field] = feature
        elif kind == "json":
            name = f"{field}{JSON_SUFFIX}"
            cells = [None if v is None else json.dumps(v, sort_keys=True, ensure_ascii=False) for v in values]
            columns[name] = pa.array(cells, type=pa.string())
            features[name] = ds.Value("string")
        else:
            if kind == "float64":
                values = [None if v is None else float(v) for v in values]
            columns[field] = pa.array(values, type=ds.Value(kind).pa_type)
            features[field] = ds.Value(kind)
    if not rows:
        return ds.Dataset.from_dict({name: [] for name in columns} if columns else {},
                                    features=ds.Features(features) if features else None)
    return ds.Dataset.from_dict(columns, features=ds.Features(features))


def save(rows: Iterable[Mapping], folder: str | Path, **options) -> Path:
    """`to_dataset(rows).save_to_disk(folder)`; read back with `datasets.load_from_disk(folder)`."""
    folder = Path(folder)
    dataset = to_dataset(rows, **options)
    with _quiet():
        dataset.save_to_disk(str(folder))
    return folder


def to_parquet(rows: Iterable[Mapping], path: str | Path, **options) -> Path:
    """One Parquet file (images as struct<bytes, path>; the features are kept in the schema's metadata)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset = to_dataset(rows, **options)
    with _quiet():
        dataset.to_parquet(str(path))
    return path


def dataset_card(dataset: "datasets.Dataset", *, split: str = "train", description: str = "") -> str:
    """README.md for the repository: the `configs` block that points at the Parquet file, and the features."""
    import yaml

    ds = _datasets()
    info = ds.DatasetInfo(features=dataset.features)._to_yaml_dict()
    header = {
        "configs": [{"config_name": "default", "data_files": [{"split": split, "path": f"data/{split}-*"}]}],
        "dataset_info": {**info, "splits": [{"name": split, "num_examples": len(dataset)}]},
    }
    body = description.strip() or "Research results exported from the Character Playground."
    return f"---\n{yaml.safe_dump(header, sort_keys=False)}---\n\n{body}\n"


def push_to_hub(rows: Iterable[Mapping], repo_id: str, token: str, *, endpoint: str, private: bool = True,
                split: str = "train", commit_message: str = "Export research results", description: str = "",
                revision: str | None = None, **options) -> str:
    """Create (or reuse) the dataset repository `repo_id` at `endpoint` (private by default) and commit the rows as
    `data/<split>-00000-of-00001.parquet` with a dataset card, in one commit. Returns the commit's URL.

    Goes through `huggingface_hub.HfApi(endpoint=endpoint, token=token)`: create_repo (POST /api/repos/create),
    then create_commit (validate-yaml for the card, preupload, the upload of LFS/Xet files, commit). It honours
    HF_HUB_OFFLINE (an offline process refuses, with huggingface_hub's OfflineModeIsEnabled)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    if not token:
        raise ValueError("pushing to the Hub needs a token with write access")
    dataset = to_dataset(rows, **options)
    api = HfApi(endpoint=endpoint.rstrip("/"), token=token, library_name="character-playground")
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="research-export-") as tmp, _quiet():
        parquet = Path(tmp) / "data.parquet"
        dataset.to_parquet(str(parquet))
        card = dataset_card(dataset, split=split, description=description)
        operations = [
            CommitOperationAdd(path_in_repo=DATA_FILE.format(split=split), path_or_fileobj=str(parquet)),
            CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode()),
        ]
        info = api.create_commit(repo_id, operations, commit_message=commit_message, repo_type="dataset",
                                 revision=revision)
    return info.commit_url
