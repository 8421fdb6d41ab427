"""What the Research surfaces export as `datasets` datasets (services/research/export.py writes them): a finished
grid's cells, an arena's votes, and a figure's identity scores. Each row holds the image(s) as stored and every
setting, seed, model id and revision, timing, charge, score and vote.

Forms: `parquet` (one Parquet file), `dataset` (`save_to_disk`, zipped for download), or a push to a dataset
repository on the Hub (private) when the visitor gives a repo id and a token; the Hub's address is
PLAYGROUND_HUB_ENDPOINT (default https://huggingface.co).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..accounts.identity import Account
from ..accounts.tables import battles, votes
from ..errors import UserError
from . import export
from .grids import identity_text, score_of

FORMS = ("parquet", "dataset")
GRID_TYPES = {"model_revision": "string", "steps": "int64", "seconds": "float64", "identity": "float64",
              "identity_note": "string", "value": "string", "axis": "string", "copy_paste": "bool"}
VOTE_TYPES = {"figure_id": "string", "left_identity": "float64", "right_identity": "float64"}
MAX_VOTES = 20_000  # rows one export holds (newest first)


class ExportError(UserError, ValueError):
    pass


def hub_endpoint() -> str:
    return os.environ.get("PLAYGROUND_HUB_ENDPOINT", "https://huggingface.co").rstrip("/")


def grid_rows(services: Any, account: Account, grid_id: str) -> list[dict[str, Any]]:
    shown = services.grids.get(account, grid_id)
    rows = []
    for cell in shown["cells"]:
        if cell["status"] != "done" or not cell["file"]:
            continue
        record = services.history.get(account.id, cell["request_id"])
        entry = services.catalogue.get(cell["model"])
        identity = cell["identity"]
        rows.append({
            "image": str(services.store.path(cell["file"])), "grid_id": grid_id, "cell": cell["idx"], "prompt": cell["prompt"],
            "prompt_index": cell["prompt_index"], "model": cell["model"],
            "model_revision": getattr(entry.source, "revision", None) if entry.source else None,
            "seed": int(cell["seed"]), "axis": shown["spec"]["axis"], "value": None if cell["value"] is None else str(cell["value"]),
            "steps": cell["steps"], "seconds": cell["seconds"], "credits": cell["charged"],
            "identity": score_of(identity), "identity_note": identity_text(identity) if score_of(identity) is None else None,
            "copy_paste": bool(isinstance(identity, dict) and identity.get("copy_paste")),
            "request_id": cell["request_id"], "settings": record.parameters,
        })
    if not rows:
        raise ExportError("This grid has no finished cells to export yet.")
    return rows


def vote_rows(services: Any, account: Account, kind: str = "general") -> list[dict[str, Any]]:
    """An arena's votes with both images: a QA session exports every vote, anyone else their own."""
    b = battles.c
    query = (sa.select(votes.c.battle_id, votes.c.outcome, votes.c.created_at.label("voted_at"), votes.c.qa, b.prompt, b.seed,
                       b.left, b.right, b.left_file, b.right_file, b.voter, b.source, b.figure_id, b.settings)
             .select_from(votes.join(battles, battles.c.id == votes.c.battle_id)).where(votes.c.kind == kind))
    if account.kind != "qa":
        query = query.where(votes.c.voter == services.arena.voter(account))
    with services.db.engine.connect() as conn:
        found = conn.execute(query.order_by(votes.c.id.desc()).limit(MAX_VOTES)).all()
    if not found:
        raise ExportError("There are no votes to export yet: vote in the arena first.")
    rows = []
    for r in found:
        left, right = r.settings["left"], r.settings["right"]
        rows.append({
            "left_image": str(services.store.path(r.left_file)), "right_image": str(services.store.path(r.right_file)),
            "battle_id": r.battle_id,
            "kind": kind, "prompt": r.prompt, "seed": int(r.seed), "left": r.left, "right": r.right, "outcome": r.outcome,
            "voter": r.voter, "voted_at": r.voted_at, "source": r.source, "qa": bool(r.qa), "figure_id": r.figure_id,
            "left_identity": score_of(left.get("identity")), "right_identity": score_of(right.get("identity")),
            "settings": r.settings,
        })
    return rows


IDENTITY_TYPES = {"sim_ref": "float64", "dlib": "float64", "arcface": "float64", "note": "string", "engine": "string"}
MAX_IDENTITY_PAGES = 100  # pages of the figure's identity listing one export reads


def identity_rows(services: Any, account: Account, figure_id: str) -> list[dict[str, Any]]:
    """The identity monitor's scores of one of your figures' outputs (lowest SimRef first), each with its image."""
    rows, page = [], 1
    while page <= MAX_IDENTITY_PAGES:
        listed = services.monitor.figure_outputs(account, figure_id, page)
        for out in listed["outputs"]:
            rows.append({"image": out["file"], "figure_id": figure_id, "request_id": out["request_id"], "index": out["index"],
                         "surface": out["surface"], "model": out["model"], "sim_ref": out["sim_ref"], "dlib": out["dlib"],
                         "arcface": out["arcface"], "engine": out["engine"], "note": out["note"] or None,
                         "copy_paste": out["copy_paste"], "created_at": out["created_at"]})
        if page >= listed["pages"]:
            break
        page += 1
    if not rows:
        raise ExportError("This figure has no scored outputs yet: remix, edit or animate it first.")
    return rows


def write(rows: list[dict[str, Any]], folder: Path, name: str, form: str, *, images: tuple[str, ...] = ("image",),
          types: dict[str, str] | None = None) -> Path:
    """The rows as a Parquet file or a zipped `save_to_disk` folder under `folder` (exports older than a day are swept)."""
    if form not in FORMS:
        raise ExportError(f"Export as parquet or dataset, not {form!r}.")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.stat().st_mtime < time.time() - 86400:
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
    if form == "parquet":
        return export.to_parquet(rows, folder / f"{name}.parquet", images=images, types=types or {})
    saved = export.save(rows, folder / name, images=images, types=types or {})
    archive = shutil.make_archive(str(folder / name), "zip", root_dir=saved)
    shutil.rmtree(saved, ignore_errors=True)
    return Path(archive)


def push(rows: list[dict[str, Any]], repo_id: str, token: str, *, images: tuple[str, ...] = ("image",),
         types: dict[str, str] | None = None, description: str = "") -> str:
    """Push to a private dataset repository; the commit URL. A refusal by the Hub is the visitor's message."""
    if not repo_id or "/" not in repo_id or not token:
        raise ExportError("To push to the Hub, give a dataset repo id (user/name) and a write token.")
    try:
        return export.push_to_hub(rows, repo_id, token, endpoint=hub_endpoint(), images=images, types=types or {},
                                  description=description)
    except Exception as exc:  # noqa: BLE001 - the Hub's answer, in the visitor's words
        status = getattr(getattr(exc, "response", None), "status_code", None)
        raise ExportError(f"The Hub refused the push ({status or type(exc).__name__}): check the repo id and that the "
                          "token may write to it. Nothing else was changed.") from exc
