"""The identity monitor: SimRef, every figure output's similarity to the figure's canonical face, from each recogniser
this install has, with a copy-paste flag.

- Recognisers: dlib's ResNet (face-recognition-models, CC0; the default install) always where dlib is installed, and
  insightface ArcFace where a face pack is configured (then both are recorded). Scores of different engines are never
  compared with each other: each has its own calibration in presets/identity.toml.
- `sim_ref(faces, reference, image)` scores one picture against one reference; `group_sim_ref` scores a group picture
  against several figures (faces assigned by the best total match, services/faces/scores.py); `outputs` does either
  for a request's outputs (what Remix, Advanced, Group, Edit, video and grid cells record as parameters["sim_ref"]).
- `index_rows` turns recorded SimRefs into the rows of `output_identity`, the table the figure page reads (filtered
  and ordered in the database).

One SimRef: {"engine": the configured engine's name, "score": its number (None without one), "dlib": a number,
"no face" or "no reference face", "arcface": the same (only with a face pack), "faces": faces found, "copy_paste":
whether any engine's score reached its copy-paste line, "copy_paste_by": those engines}.
"""
from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import UserError
from ..presets_io import PRESETS_DIR, load_validated
from .engine import DlibFaceEngine
from .scores import NO_FACE as GROUP_NO_FACE, group_scores

DEFAULT_IDENTITY = PRESETS_DIR / "identity.toml"
ENGINES = ("dlib", "arcface")
NO_FACE = "no face"
NO_REFERENCE = "no reference face"
SEVERAL = "several faces"
DLIB_SIZE = 128  # dlib's descriptor; ArcFace embeddings are 512-d


class IdentityPresetsError(UserError, ValueError):
    pass


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1)
    same_person: float = Field(ge=-1, le=1)  # the engine's documented verification line
    same_person_typical: float = Field(ge=-1, le=1)  # what two real photos of one person typically score
    copy_paste: float = Field(ge=-1, le=1)  # at or above: flagged as a copy of the reference face

    @model_validator(mode="after")
    def _ordered(self) -> "Calibration":
        if not self.same_person <= self.same_person_typical < self.copy_paste:
            raise ValueError("needs same_person <= same_person_typical < copy_paste (the copy-paste line sits above "
                             "real same-person pairs)")
        return self


class IdentityPresets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    page_size: int = Field(ge=1, le=200)
    engines: dict[str, Calibration]

    @field_validator("engines")
    @classmethod
    def _both(cls, value: dict[str, Calibration]) -> dict[str, Calibration]:
        if set(value) != set(ENGINES):
            raise ValueError(f"calibrate exactly the engines {list(ENGINES)}, not {sorted(value)}")
        return value

    def public(self) -> dict[str, Any]:
        return {kind: c.model_dump() for kind, c in self.engines.items()}


@functools.lru_cache(maxsize=4)
def load_identity_presets(path: Path = DEFAULT_IDENTITY) -> IdentityPresets:
    return load_validated(path, IdentityPresets, IdentityPresetsError)


# -- engines -----------------------------------------------------------------------------------------------------
def kind_of(engine: Any) -> str:
    return "arcface" if getattr(engine, "arcface", False) else "dlib"


def _dlib_available() -> bool:
    try:
        return DlibFaceEngine.available()
    except (ImportError, ValueError):  # dlib made unimportable (tests simulate a bare install this way)
        return False


def engines(faces: Any) -> dict[str, Any]:
    """The recognisers SimRef uses: the configured engine, plus dlib beside ArcFace where dlib is installed."""
    if faces is None:
        return {}
    found = {kind_of(faces): faces}
    if "dlib" not in found and _dlib_available():
        found["dlib"] = DlibFaceEngine()
    return found


class Seen:
    """An engine whose detections are remembered per picture for the life of this object, so the identity score and
    SimRef of one output detect its faces once."""

    def __init__(self, engine: Any):
        self._engine = engine
        self._found: dict[int, tuple[Image.Image, list]] = {}

    def detect(self, image: Image.Image):
        key = id(image)
        if key not in self._found:
            self._found[key] = (image, self._engine.detect(image))  # keeps the picture alive while its id is a key
        return self._found[key][1]

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


# -- references --------------------------------------------------------------------------------------------------
_CACHE: OrderedDict[tuple, list[float] | None] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _embed(engine: Any, image: Image.Image | Path | str) -> list[float] | None:
    """An engine's embedding of a reference picture; stored files are cached (their names are their content)."""
    if isinstance(image, Image.Image):
        return engine.embed(image)
    path = Path(image)
    key = (engine.name, str(path), path.stat().st_mtime_ns)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    embedding = engine.embed_path(path)
    with _CACHE_LOCK:
        _CACHE[key] = embedding
        while len(_CACHE) > 256:
            _CACHE.popitem(last=False)
    return embedding


def kind_of_embedding(embedding: list[float]) -> str:
    return "dlib" if len(embedding) == DLIB_SIZE else "arcface"


def reference(faces: Any, image: Image.Image | Path | str | None = None, embedding: list[float] | None = None) -> dict[str, list[float] | None]:
    """Per engine, the canonical face's embedding: the figure's stored `embedding` for the engine that made it (told by
    its size), each other engine's own embedding of `image` (the canonical picture)."""
    out: dict[str, list[float] | None] = {}
    for kind, engine in engines(faces).items():
        if embedding is not None and kind_of_embedding(embedding) == kind:
            out[kind] = list(embedding)
        else:
            out[kind] = _embed(engine, image) if image is not None else None
    return out


def _references(reference_embedding: dict | list | None) -> dict[str, list[float] | None]:
    if isinstance(reference_embedding, dict):
        return reference_embedding
    if reference_embedding is None:
        return {}
    return {kind_of_embedding(reference_embedding): list(reference_embedding)}


# -- scoring -----------------------------------------------------------------------------------------------------
def _finish(out: dict[str, Any], faces: Any, flagged: list[str]) -> dict[str, Any]:
    primary = out.get(kind_of(faces))
    out["score"] = primary if isinstance(primary, float) else None
    out["copy_paste"] = bool(flagged)
    if flagged:
        out["copy_paste_by"] = flagged
    return out


def sim_ref(faces: Any, reference_embedding: dict | list | None, image: Image.Image,
            presets: IdentityPresets | None = None) -> dict[str, Any] | None:
    """SimRef of one picture against one reference (an embedding of the configured engine, or {engine: embedding}
    from `reference`): the best-matching face per engine; None when identity features are off (no face engine)."""
    found_engines = engines(faces)
    if not found_engines:
        return None
    references = _references(reference_embedding)
    calibration = (presets or load_identity_presets()).engines
    out: dict[str, Any] = {"engine": faces.name}
    flagged: list[str] = []
    for kind, engine in found_engines.items():
        found = engine.detect(image)
        if kind == kind_of(faces):
            out["faces"] = len(found)
        ref = references.get(kind)
        if ref is None:
            out[kind] = NO_REFERENCE
        elif not found:
            out[kind] = NO_FACE
        else:
            out[kind] = max(round(float(engine.similarity(ref, emb)), 4) for _, emb in found)
            if out[kind] >= calibration[kind].copy_paste:
                flagged.append(kind)
    return _finish(out, faces, flagged)


def group_sim_ref(faces: Any, references: dict[str, dict | list | None], image: Image.Image,
                  presets: IdentityPresets | None = None) -> dict[str, Any] | None:
    """SimRef of a group picture: {"figures": {figure_id: SimRef}, "faces": n}, each engine assigning faces to
    figures by the best total match."""
    found_engines = engines(faces)
    if not found_engines:
        return None
    refs = {fid: _references(r) for fid, r in references.items()}
    calibration = (presets or load_identity_presets()).engines
    per_figure: dict[str, dict[str, Any]] = {fid: {"engine": faces.name} for fid in refs}
    flagged: dict[str, list[str]] = {fid: [] for fid in refs}
    faces_found = 0
    for kind, engine in found_engines.items():
        scored = group_scores(engine, {fid: r.get(kind) for fid, r in refs.items()}, image)
        if kind == kind_of(faces):
            faces_found = scored["faces"]
        for fid, value in scored["scores"].items():
            if isinstance(value, (int, float)):
                per_figure[fid][kind] = round(float(value), 4)
                if value >= calibration[kind].copy_paste:
                    flagged[fid].append(kind)
            else:
                per_figure[fid][kind] = NO_FACE if value == GROUP_NO_FACE else NO_REFERENCE
    for fid, out in per_figure.items():
        out["faces"] = faces_found
        _finish(out, faces, flagged[fid])
    return {"figures": per_figure, "faces": faces_found}


def outputs(faces: Any, references: dict[str, dict | list | None], images: list[Image.Image],
            presets: IdentityPresets | None = None) -> list[dict[str, Any]] | None:
    """One SimRef per output picture against the figures in `references` ({figure_id: reference}): a single figure's
    SimRef carries its "figure_id"; a group's is {"figures": {...}}. None when identity features are off."""
    if not references or not engines(faces):
        return None
    if len(references) == 1:
        ((figure_id, ref),) = references.items()
        return [dict(sim_ref(faces, ref, image, presets), figure_id=figure_id) for image in images]
    return [group_sim_ref(faces, references, image, presets) for image in images]


def first_frames(result: Any) -> list[Image.Image]:
    """The pictures a result is scored on: its images, or each video's first frame."""
    if getattr(result, "videos", None):
        return [frames[0] for frames in result.videos]
    return list(result.images)


# -- the index the figure page reads -------------------------------------------------------------------------------
def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def note_of(item: dict[str, Any]) -> str:
    """One word for what a SimRef without a number means, or "several faces"."""
    primary = item.get("dlib" if str(item.get("engine", "")).startswith("dlib") else "arcface")
    if isinstance(primary, str):
        return primary
    return SEVERAL if (item.get("faces") or 0) > 1 else ""


def index_rows(entries: list[Any] | None) -> list[dict[str, Any]]:
    """The output_identity rows of a request's recorded SimRefs: one per (output, figure)."""
    rows: list[dict[str, Any]] = []
    for idx, entry in enumerate(entries or []):
        if not isinstance(entry, dict):
            continue
        items = entry["figures"].items() if isinstance(entry.get("figures"), dict) else [(entry.get("figure_id"), entry)]
        for figure_id, item in items:
            if not figure_id or not isinstance(item, dict):
                continue
            rows.append({"idx": idx, "figure_id": str(figure_id), "sim_ref": _number(item.get("score")),
                         "sim_dlib": _number(item.get("dlib")), "sim_arcface": _number(item.get("arcface")),
                         "engine": str(item.get("engine") or "")[:40], "note": note_of(item)[:40],
                         "copy_paste": bool(item.get("copy_paste"))})
    return rows
