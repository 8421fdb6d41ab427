"""Comparison grids: a declared run whose every cell is a stored, reproducible paid request.

A grid is prompts x 2-8 models x seeds x (optionally) one settings axis, on one surface:

- `text-to-image`: Text mode's request; the axis may be `steps` or `guidance`;
- `remix` / `advanced`: Figure Remix or Advanced on one of your figures; the axis may be `likeness` or `face_path`,
  and every cell records its identity score against the figure's canonical face.

`plan` checks everything a cell could be refused for (prompt policy per prompt, each model's task, size and axis
values) and quotes the whole grid before anything is charged; a grid above plans.toml's [research] caps is refused.
Cells are ordered with the most expensive axis outermost: by model (each loaded once), then the settings value, then
prompt, then seed. Every cell of a row of the grid shares its seed: seeds are fixed when the grid is declared.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from pipelines.types import Task

from ..accounts.identity import Account
from ..accounts.tables import grid_cells, grids
from ..errors import UserError
from ..runs.params import checked_guidance, checked_seed, checked_steps

SURFACES = ("text-to-image", "remix", "advanced")
AXES = {"text-to-image": ("steps", "guidance"), "remix": ("likeness", "face_path"), "advanced": ("likeness", "face_path")}
MIN_MODELS, MAX_MODELS, MAX_SEEDS, MAX_VALUES = 2, 8, 8, 6
LAYOUT_AXES = ("prompt", "model", "seed", "value")


class GridError(UserError, ValueError):
    pass


@dataclass(frozen=True)
class GridSpec:
    prompts: tuple[str, ...]
    models: tuple[str, ...]
    seeds: tuple[int, ...]
    surface: str = "text-to-image"
    axis: str = ""  # "" or one of AXES[surface]
    values: tuple[Any, ...] = ()
    figure_id: str = ""
    aspect_ratio: str = "1:1"
    resolution: str = "1K"
    prompt_set: str = ""  # where the prompts came from (a set id, "upload" or "")

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GridSpec":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class Cell:
    idx: int
    prompt_index: int
    model: str
    seed: int
    value: Any = None  # the settings axis' value, None without an axis

    @property
    def value_text(self) -> str:
        return "" if self.value is None else json.dumps(self.value)


@dataclass
class GridPlan:
    spec: GridSpec
    cells: list[Cell]
    prices: dict[str, int]  # model -> credits per cell
    total: int
    breakdown: list[dict[str, Any]] = field(default_factory=list)

    def quote(self) -> dict[str, Any]:
        return {"cells": len(self.cells), "total": self.total, "per_model": self.breakdown,
                "models": list(self.spec.models), "prompts": len(self.spec.prompts), "seeds": list(self.spec.seeds),
                "axis": self.spec.axis, "values": list(self.spec.values)}


def declared(prompts: list[str], models: list[str], seeds: list[int], *, surface: str = "text-to-image", axis: str = "",
             values: list[Any] | None = None, figure_id: str = "", aspect_ratio: str = "1:1", resolution: str = "1K",
             prompt_set: str = "", max_prompts: int = 60) -> GridSpec:
    """A grid's declaration, checked for shape (not yet against the models): what the visitor can fix is named."""
    prompts = [" ".join(str(p).split()) for p in prompts if str(p).strip()]
    if not prompts:
        raise GridError("Give at least one prompt (or pick a prompt set).")
    if len(prompts) > max_prompts:
        raise GridError(f"A grid takes at most {max_prompts} prompts, not {len(prompts)}; pick fewer.")
    models = list(dict.fromkeys(m for m in models if m))
    if not MIN_MODELS <= len(models) <= MAX_MODELS:
        raise GridError(f"Pick {MIN_MODELS} to {MAX_MODELS} different models, not {len(models)}.")
    if surface not in SURFACES:
        raise GridError(f"The surface must be one of {', '.join(SURFACES)}, not {surface!r}.")
    seeds = [int(s) for s in seeds] or [-1]
    if len(seeds) > MAX_SEEDS:
        raise GridError(f"A grid takes at most {MAX_SEEDS} seeds, not {len(seeds)}.")
    seeds = [checked_seed(s) for s in seeds]  # -1 draws a random seed now: fixed for the grid, a row shares its seed
    if len(set(seeds)) != len(seeds):
        raise GridError("The seeds repeat; give different seeds.")
    values = list(values or [])
    if axis:
        if axis not in AXES[surface]:
            raise GridError(f"On {surface} the settings axis may be {' or '.join(AXES[surface])}, not {axis!r}.")
        if not 1 <= len(values) <= MAX_VALUES:
            raise GridError(f"Give 1 to {MAX_VALUES} values for {axis}, not {len(values)}.")
        values = [_axis_value(axis, v) for v in values]
    elif values:
        raise GridError("Values were given without a settings axis; pick the axis they are for.")
    if surface != "text-to-image" and not figure_id:
        raise GridError(f"A {surface} grid runs on one of your figures: pick a figure.")
    return GridSpec(tuple(prompts), tuple(models), tuple(seeds), surface, axis, tuple(values), figure_id or "",
                    aspect_ratio, resolution, prompt_set)


def _axis_value(axis: str, value: Any) -> Any:
    try:
        if axis == "steps":
            return checked_steps(int(value), 1)
        if axis == "guidance":
            return checked_guidance(float(value), 0.0)
        if axis == "likeness":
            number = float(value)
            if not 0.0 <= number <= 1.0:
                raise GridError(f"Likeness values must be between 0 and 1, not {number}.")
            return number
    except (TypeError, ValueError) as exc:
        if isinstance(exc, UserError):
            raise
        raise GridError(f"{value!r} is not a number for {axis}.") from exc
    return str(value)  # a face path, checked per model by plan()


def order_cells(spec: GridSpec, prices: dict[str, int]) -> list[Cell]:
    """Most expensive axis outermost: models (priciest first; each loaded once), then values, prompts, seeds."""
    models = sorted(spec.models, key=lambda m: (-prices[m], spec.models.index(m)))
    values = list(spec.values) if spec.axis else [None]
    cells = []
    for model in models:
        for value in values:
            for p in range(len(spec.prompts)):
                for seed in spec.seeds:
                    cells.append(Cell(len(cells), p, model, seed, value))
    return cells


def identity_of(parameters: dict[str, Any]) -> Any:
    """A figure output's identity: its SimRef (the identity monitor: score, each recogniser, copy-paste flag), else the
    older identity score; None for outputs not made from a figure."""
    sims = parameters.get("sim_ref")
    if sims:
        return sims[0]
    scores = parameters.get("identity_scores")
    return scores[0] if scores else None


def score_of(identity: Any) -> float | None:
    """The number an identity stands for (None for "no face" and the like)."""
    if isinstance(identity, dict):
        identity = identity.get("score")
    return float(identity) if isinstance(identity, (int, float)) and not isinstance(identity, bool) else None


def identity_text(identity: Any) -> str:
    """How a grid cell or a leaderboard shows an identity: the score (flagged when the face looks copied) or why none."""
    score = score_of(identity)
    if score is None:
        if isinstance(identity, dict):
            return next((str(v) for k, v in identity.items() if k in ("dlib", "arcface") and isinstance(v, str)), "no score")
        return str(identity) if identity else ""
    copied = isinstance(identity, dict) and identity.get("copy_paste")
    return f"{score:.2f}" + (" (copy-paste?)" if copied else "")


def new_grid_id() -> str:
    return "g" + secrets.token_hex(8)


def task_of(entry, surface: str) -> Task:
    if surface == "text-to-image":
        return Task.TEXT_TO_IMAGE
    return Task.REFERENCE if entry.face_preservation == "reference" else Task.TEXT_TO_IMAGE


class GridStore:
    """Grids and their cells in the database: written as cells finish, read back in one query each."""

    def __init__(self, db):
        self.db = db

    def create(self, account: Account, grid_id: str, plan: GridPlan) -> None:
        now = time.time()
        with self.db.begin() as conn:
            conn.execute(grids.insert().values(id=grid_id, account_id=account.id, spec=plan.spec.as_dict(), status="running",
                                               surface=plan.spec.surface, figure_id=plan.spec.figure_id or None,
                                               cells_total=len(plan.cells), quoted=plan.total, qa=account.kind == "qa",
                                               created_at=now, updated_at=now))
            conn.execute(grid_cells.insert(), [{"grid_id": grid_id, "idx": c.idx, "prompt_index": c.prompt_index, "model": c.model,
                                                "seed": c.seed, "value": c.value_text, "status": "pending"} for c in plan.cells])

    def update_cell(self, grid_id: str, idx: int, **values: Any) -> None:
        with self.db.begin() as conn:
            conn.execute(grid_cells.update().where(grid_cells.c.grid_id == grid_id, grid_cells.c.idx == idx).values(**values))
            conn.execute(grids.update().where(grids.c.id == grid_id).values(updated_at=time.time()))

    def set_status(self, grid_id: str, status: str) -> None:
        with self.db.begin() as conn:
            conn.execute(grids.update().where(grids.c.id == grid_id).values(status=status, updated_at=time.time()))

    def row(self, account_id: str, grid_id: str):
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(grids).where(grids.c.id == grid_id, grids.c.account_id == account_id)).first()
        if row is None:
            raise GridError(f"No grid {grid_id!r} in your research history.")
        return row

    def cells(self, grid_id: str) -> list[Any]:
        with self.db.engine.connect() as conn:
            return conn.execute(sa.select(grid_cells).where(grid_cells.c.grid_id == grid_id).order_by(grid_cells.c.idx)).all()

    def listing(self, account_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The account's grids, newest first, with their cells counted by status in the database."""
        counts = (sa.select(grid_cells.c.grid_id, grid_cells.c.status, sa.func.count().label("n"), sa.func.sum(grid_cells.c.charged).label("charged"))
                  .group_by(grid_cells.c.grid_id, grid_cells.c.status).subquery())
        with self.db.engine.connect() as conn:
            rows = conn.execute(sa.select(grids.c.id, grids.c.status, grids.c.cells_total, grids.c.quoted, grids.c.created_at,
                                          grids.c.spec).where(grids.c.account_id == account_id)
                                .order_by(grids.c.created_at.desc()).limit(limit)).all()
            ids = [r.id for r in rows]
            tallies: dict[str, dict[str, int]] = {i: {} for i in ids}
            charged: dict[str, int] = {i: 0 for i in ids}
            if ids:
                for t in conn.execute(sa.select(counts).where(counts.c.grid_id.in_(ids))):
                    tallies[t.grid_id][t.status] = int(t.n)
                    charged[t.grid_id] += int(t.charged or 0)
        return [{"grid_id": r.id, "status": r.status, "cells": r.cells_total, "done": tallies[r.id].get("done", 0),
                 "failed": tallies[r.id].get("failed", 0), "quoted": r.quoted, "charged": charged[r.id], "created_at": r.created_at,
                 "surface": r.spec.get("surface"), "models": r.spec.get("models"), "prompts": len(r.spec.get("prompts", []))}
                for r in rows]


def cell_view(row, spec: GridSpec) -> dict[str, Any]:
    return {"idx": row.idx, "prompt_index": row.prompt_index, "prompt": spec.prompts[row.prompt_index], "model": row.model,
            "seed": row.seed, "value": json.loads(row.value) if row.value else None, "status": row.status,
            "request_id": row.request_id, "file": row.file, "seconds": row.seconds, "charged": row.charged, "steps": row.steps,
            "identity": row.identity, "error": row.error}


def layout(cells: list[dict[str, Any]], spec: GridSpec, rows: str = "prompt", cols: str = "model") -> dict[str, Any]:
    """Any two axes as rows and columns; the other axes' cells stack inside each grid position."""
    for name in (rows, cols):
        if name not in LAYOUT_AXES:
            raise GridError(f"Lay a grid out by {', '.join(LAYOUT_AXES)}, not {name!r}.")
    if rows == cols:
        raise GridError("Pick two different axes for the rows and the columns.")
    keys = {"prompt": ("prompt_index", list(range(len(spec.prompts)))), "model": ("model", list(spec.models)),
            "seed": ("seed", list(spec.seeds)), "value": ("value", list(spec.values) or [None])}
    (rk, rvals), (ck, cvals) = keys[rows], keys[cols]
    table = [[[c for c in cells if c[rk] == rv and c[ck] == cv] for cv in cvals] for rv in rvals]
    label = {"prompt": lambda i: spec.prompts[i], "model": str, "seed": str, "value": lambda v: f"{spec.axis} = {v}" if spec.axis else "-"}
    return {"rows": rows, "cols": cols, "row_labels": [label[rows](v) for v in rvals],
            "col_labels": [label[cols](v) for v in cvals], "table": table}

