"""The identity monitor's reads: a figure's outputs with their SimRef, lowest first (filtered, ordered and paged in the
database, from the `output_identity` index; never the large record columns), and the chain of an edit back to the
figure's canonical image with SimRef per step. Scoring lives in services/faces/monitor.py; every surface that makes an
output from a figure records it (parameters["sim_ref"], one per output, and the PNG's JSON chunk)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from PIL import Image

from ..accounts.db import Database
from ..accounts.history import History, Record
from ..accounts.identity import Account
from ..accounts.tables import figure_takes, figures, generation_files, generations, output_identity
from ..errors import UserError
from ..faces import monitor
from ..media.storage import OutputStore
from .figures import Figures

MAX_CHAIN = 50  # steps followed back from an edit (a loop or a very long chain stops there)
SURFACES = {"reference": "Remix", "text-to-image": "Remix", "edit": "Edit", "multi-reference": "Group",
            "image-to-video": "Video"}


class IdentityError(UserError, ValueError):
    pass


def figures_of(db: Database, account_id: str, record: Record) -> list[str]:
    """The figures an output was made of: the recorded figure_ids (Remix, Advanced, Group, a character's main image,
    and edits of any of them), else the figure whose take it is (the oldest such figure of the account)."""
    recorded = [str(f) for f in (record.parameters.get("figure_ids") or []) if f]
    if recorded:
        return recorded
    if "figure" not in ((record.request or {}).get("context") or {}):
        return []
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(figure_takes.c.figure_id, figures.c.created_at).join(figures, figures.c.id == figure_takes.c.figure_id)
            .where(figure_takes.c.generation_id == record.id, figures.c.account_id == account_id, figures.c.deleted_at.is_(None))
            .order_by(figures.c.created_at)
        ).all()
    return list(dict.fromkeys(r.figure_id for r in rows))[:1]


def simref_of(record: Record, index: int, figure_id: str) -> dict[str, Any] | None:
    """One output's recorded SimRef against one figure, or None."""
    entries = record.parameters.get("sim_ref") or []
    entry = entries[index] if 0 <= index < len(entries) else None
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("figures"), dict):
        return entry["figures"].get(figure_id)
    return entry if entry.get("figure_id") in (None, figure_id) else None


class IdentityMonitor:
    def __init__(self, db: Database, store: OutputStore, figures: Figures, history: History, faces: Any):
        self.db = db
        self.store = store
        self.figures = figures
        self.history = history
        self.faces = faces

    @property
    def presets(self) -> monitor.IdentityPresets:
        return monitor.load_identity_presets()

    def calibration(self) -> dict[str, Any]:
        """The engines that score here, and each engine's calibration (presets/identity.toml)."""
        kinds = list(monitor.engines(self.faces))
        return {"engine": self.faces.name if self.faces else None, "engines": kinds,
                "calibration": {k: v for k, v in self.presets.public().items() if k in kinds}}

    # -- the figure page -------------------------------------------------------------------------------------------
    def figure_outputs(self, account: Account, figure_id: str, page: int = 1) -> dict[str, Any]:
        """A page of the figure's outputs with their SimRef, lowest first; outputs with no face come last."""
        figure = self.figures.get(account, figure_id)  # refuses another account's or a deleted figure
        size = self.presets.page_size
        page = max(1, int(page or 1))
        mine = sa.and_(output_identity.c.figure_id == figure.id, output_identity.c.account_id == account.id)
        columns = [output_identity.c.generation_id, output_identity.c.idx, output_identity.c.sim_ref, output_identity.c.sim_dlib,
                   output_identity.c.sim_arcface, output_identity.c.engine, output_identity.c.note, output_identity.c.copy_paste,
                   output_identity.c.created_at, generation_files.c.path, generation_files.c.poster, generation_files.c.media,
                   generations.c.task, generations.c.model]
        query = (
            sa.select(*columns)
            .join(generation_files, sa.and_(generation_files.c.generation_id == output_identity.c.generation_id,
                                            generation_files.c.idx == output_identity.c.idx))
            .join(generations, generations.c.id == output_identity.c.generation_id)
            .where(mine)
            .order_by(output_identity.c.sim_ref.is_(None), output_identity.c.sim_ref.asc(), output_identity.c.created_at.desc(),
                      output_identity.c.generation_id, output_identity.c.idx)
            .limit(size).offset((page - 1) * size)
        )
        counts = sa.select(sa.func.count(), sa.func.count(output_identity.c.sim_ref),
                           sa.func.sum(sa.case((output_identity.c.copy_paste, 1), else_=0))).where(mine)
        with self.db.engine.connect() as conn:
            total, scored, copied = conn.execute(counts).one()
            rows = conn.execute(query).all()
        return {
            "figure_id": figure.id, "name": figure.name,
            "canonical_image": str(figure.canonical_path) if figure.canonical_path else None,
            "page": page, "pages": max(1, -(-int(total) // size)), "total": int(total), "no_face": int(total) - int(scored),
            "copy_paste": int(copied or 0), **self.calibration(),
            "outputs": [self._listed(r) for r in rows],
        }

    def _listed(self, row) -> dict[str, Any]:
        file = self.store.path(row.poster or row.path)
        return {"request_id": row.generation_id, "index": row.idx, "file": str(file), "media": row.media,
                "surface": SURFACES.get(row.task, row.task), "model": row.model, "sim_ref": row.sim_ref, "dlib": row.sim_dlib,
                "arcface": row.sim_arcface, "engine": row.engine, "note": row.note, "copy_paste": bool(row.copy_paste),
                "created_at": row.created_at}

    # -- edit chains -----------------------------------------------------------------------------------------------
    def chain(self, account: Account, request_id: str, index: int = 0) -> dict[str, Any]:
        """An output back to its figure's canonical image: each step (canonical first, the asked output last) with its
        SimRef against the canonical face, its drift (1 - SimRef: dlib's distance, ArcFace's cosine distance) and the
        change from the step before. A re-anchored edit's chain starts again at the canonical image."""
        index = int(index)
        latest = self.history.get(account.id, request_id)
        figure_ids = figures_of(self.db, account.id, latest)
        if not figure_ids:
            raise IdentityError("This image was not made from one of your figures (Remix, Advanced, Group, a take or an edit "
                                "of one), so it has no chain to a canonical image.")
        figure = self.figures.get(account, figure_ids[0])
        take = figure.canonical
        canonical_key = (take["request_id"], take["index"]) if take else None
        steps: list[dict[str, Any]] = []
        record, position, seen = latest, index, set()
        while record is not None and (record.id, position) not in seen and len(steps) < MAX_CHAIN:
            seen.add((record.id, position))
            if (record.id, position) == canonical_key:
                break  # the chain reached the canonical image itself
            context = (record.request or {}).get("context") or {}
            steps.append(self._step(record, position, figure, context))
            source = context.get("reanchor") or context.get("edit_of") or {}
            if "request_id" not in source:
                break  # not an edit of one of the account's images: the chain's first made output
            position = int(source.get("index", 0))
            record = self._record(account, source["request_id"])
        steps.append(self._canonical_step(figure))
        steps.reverse()
        previous = None
        for step in steps:
            score = step["sim_ref"]["score"] if step["sim_ref"] else None
            step["drift"] = None if score is None else round(1.0 - score, 4)
            step["change"] = None if score is None or previous is None else round(score - previous, 4)
            previous = score if score is not None else previous
        return {"figure_id": figure.id, "name": figure.name, "request_id": latest.id, "index": index,
                "steps": steps, **self.calibration()}

    def _record(self, account: Account, request_id: str) -> Record | None:
        try:
            return self.history.get(account.id, request_id)
        except UserError:
            return None

    def _step(self, record: Record, position: int, figure, context: dict[str, Any]) -> dict[str, Any]:
        files = [p for p in record.files if p.suffix == ".png"]
        sim = simref_of(record, position, figure.id)
        measured = "recorded"
        if sim is None and 0 <= position < len(files):  # an output made before the monitor, or a take: scored now
            sim = self._score_now(figure, files[position])
            measured = "now"
        kind = "edit" if "edit_of" in context else ("take" if "figure" in context else SURFACES.get(record.task, record.task))
        return {"kind": kind, "request_id": record.id, "index": position,
                "file": str(files[position]) if 0 <= position < len(files) else None,
                "prompt": str(record.request.get("prompt") or ""), "reanchored": "reanchor" in context,
                "sim_ref": sim, "measured": measured if sim else None}

    def _score_now(self, figure, path: Path) -> dict[str, Any] | None:
        embedding, canonical = self._reference(figure)
        if canonical is None:
            return None
        with Image.open(path) as opened:
            picture = opened.convert("RGB")
        return monitor.sim_ref(self.faces, monitor.reference(self.faces, canonical, embedding), picture)

    def _reference(self, figure) -> tuple[list[float] | None, Path | None]:
        with self.db.engine.connect() as conn:
            embedding = conn.execute(sa.select(figures.c.embedding).where(figures.c.id == figure.id)).scalar()
        return embedding, figure.canonical_path

    def _canonical_step(self, figure) -> dict[str, Any]:
        take = figure.canonical or {}
        embedding, _ = self._reference(figure)
        sim = None
        if embedding is not None and self.faces is not None:
            sim = {"engine": self.faces.name, "score": 1.0, "note": "the reference"}
        return {"kind": "canonical", "request_id": take.get("request_id"), "index": take.get("index"),
                "file": str(figure.canonical_path) if figure.canonical_path else None, "prompt": figure.prompt,
                "reanchored": False, "sim_ref": sim, "measured": "reference" if sim else None}
