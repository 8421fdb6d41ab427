"""Per-user history of generations, and reports of bad images with their review."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pipelines.types import Task

from ..errors import UserError
from .db import Database, row_dict
from .identity import Account
from .jobs import Jobs
from ..media.storage import OutputStore
from .tables import generation_files, generations, reports

REPORT_REASONS = {
    "broken": "Broken or corrupted image",
    "wrong_face": "Face does not match the figure",
    "wrong_prompt": "Ignores the prompt",
    "anatomy": "Bad anatomy or artefacts",
    "unsafe": "Unsafe or inappropriate",
    "other": "Something else",
}
MAX_DETAILS = 500


class ReportError(UserError, ValueError):
    """The report cannot be filed or reviewed as asked; the message says why."""


@dataclass(frozen=True)
class Record:
    id: str
    task: str
    model: str
    status: str
    request: dict[str, Any]
    parameters: dict[str, Any]
    seeds: list[int]
    files: list[Path]
    price: int
    charged: int
    safety: str
    preview: bool
    error: str | None
    created_at: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "model": self.model,
            "status": self.status,
            "request": self.request,
            "parameters": self.parameters,
            "seeds": self.seeds,
            "files": [str(p) for p in self.files],
            "price": self.price,
            "charged": self.charged,
            "safety": self.safety,
            "preview": self.preview,
            "error": self.error,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class ImageRef:
    request_id: str
    index: int
    path: Path
    model: str
    prompt: str = ""
    created_at: float = 0.0
    model_name: str = ""

    @property
    def caption(self) -> str:
        """What a picker shows for it: the prompt's start, the model's name and the time (never an id)."""
        prompt = " ".join(self.prompt.split())
        prompt = prompt if len(prompt) <= 40 else prompt[:39].rstrip() + "…"
        when = time.strftime("%d %b %H:%M", time.gmtime(self.created_at)) if self.created_at else ""
        return " · ".join(p for p in (prompt or "(no prompt)", self.model_name or self.model, when) if p)


def _report(row) -> dict[str, Any]:
    """A report as clients see it: its public id, never the table's sequence number."""
    item = row_dict(row)
    item["id"] = item.pop("public_id")
    return item


class History:
    def __init__(self, db: Database, jobs: Jobs, store: OutputStore):
        self.db = db
        self.jobs = jobs
        self.store = store

    def _records(self, conn: sa.Connection, rows) -> list[Record]:
        ids = [r.id for r in rows]
        files: dict[str, list[Path]] = {i: [] for i in ids}
        if ids:
            for f in conn.execute(
                sa.select(generation_files).where(generation_files.c.generation_id.in_(ids)).order_by(generation_files.c.idx)
            ):
                files[f.generation_id].append(self.store.path(f.path))
        return [
            Record(
                r.id, r.task, r.model, r.status, dict(r.request or {}), dict(r.parameters or {}), list(r.seeds or []),
                files[r.id], r.price, r.charged, r.safety, bool(r.preview), r.error, r.created_at,
            )
            for r in rows
        ]

    def list(self, account_id: str, limit: int = 50, include_failed: bool = False, media_only: bool = False) -> list[Record]:
        """The account's generations, newest first; `media_only`: only those that make files (not chat replies)."""
        query = sa.select(generations).where(generations.c.account_id == account_id)
        if media_only:
            query = query.where(generations.c.task != Task.CHAT.value)
        if not include_failed:
            query = query.where(generations.c.status == "done")
        query = query.order_by(generations.c.created_at.desc()).limit(max(1, min(int(limit), 500)))
        with self.db.engine.connect() as conn:
            return self._records(conn, conn.execute(query).all())

    def get(self, account_id: str, generation_id: str) -> Record:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(generations).where(generations.c.id == generation_id, generations.c.account_id == account_id)
            ).all()
            if not rows:
                raise ReportError(f"No generation {generation_id!r} in your history.")
            return self._records(conn, rows)[0]

    def by_key(self, account_id: str, key: str) -> Record | None:
        """The account's paid run recorded under an idempotency key (a background job's id), or None."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(generations).where(generations.c.account_id == account_id, generations.c.idempotency_key == key)
            ).all()
            return self._records(conn, rows)[0] if rows else None

    def image_files(self, account_id: str, generation_id: str) -> list[Path]:
        """The still images (PNGs) of one of the account's generations (videos have none)."""
        return [p for p in self.get(account_id, generation_id).files if p.suffix == ".png"]

    def images(self, account_id: str, limit: int = 60) -> list[ImageRef]:
        """The account's still images, newest first, for pickers that start from one of them."""
        return [
            ImageRef(record.id, index, path, record.model, str(record.request.get("prompt") or record.parameters.get("prompt") or ""),
                     record.created_at, str(record.parameters.get("model_name") or ""))
            for record in self.list(account_id, limit=limit, media_only=True)
            for index, path in enumerate(p for p in record.files if p.suffix == ".png")
        ]

    # -- reports ---------------------------------------------------------------------------------------
    def report(self, account: Account, generation_id: str, index: int, reason: str, details: str = "") -> dict[str, Any]:
        """File one report for one of the account's images; QA sessions' reports are approved at once."""
        if reason not in REPORT_REASONS:
            raise ReportError(f"Pick a reason: one of {', '.join(REPORT_REASONS)}.")
        details = (details or "").strip()
        if len(details) > MAX_DETAILS:
            raise ReportError(f"Details are {len(details)} characters; keep them to {MAX_DETAILS}.")
        record = self.get(account.id, generation_id)
        index = int(index)
        if not 0 <= index < len(record.files):
            raise ReportError(f"That generation has {len(record.files)} image(s); index {index} is not one of them.")
        refund = record.charged // max(1, len(record.files))
        with self.db.begin() as conn:
            try:
                with conn.begin_nested():
                    report_id = conn.execute(
                        reports.insert().values(
                            public_id=secrets.token_hex(8), generation_id=generation_id, idx=index, account_id=account.id,
                            reason=reason, details=details, status="pending", refund=refund, created_at=time.time(),
                        )
                    ).inserted_primary_key[0]
            except sa.exc.IntegrityError:
                raise ReportError("This image was already reported; each image can be reported once.") from None
            if account.kind == "qa":
                self._resolve(conn, report_id, account.id, approve=True)
            row = conn.execute(sa.select(reports).where(reports.c.id == report_id)).one()
        return _report(row)

    def reports(self, status: str | None = "pending", limit: int = 200) -> list[dict[str, Any]]:
        query = sa.select(reports, generation_files.c.path).join(
            generation_files, sa.and_(generation_files.c.generation_id == reports.c.generation_id, generation_files.c.idx == reports.c.idx)
        )
        if status:
            query = query.where(reports.c.status == status)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query.order_by(reports.c.id).limit(limit)).all()
        out = []
        for r in rows:
            item = _report(r)
            item["file"] = str(self.store.path(item.pop("path")))
            out.append(item)
        return out

    def reports_by(self, account_id: str) -> list[dict[str, Any]]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(sa.select(reports).where(reports.c.account_id == account_id).order_by(reports.c.id.desc())).all()
        return [_report(r) for r in rows]

    def review(self, admin: Account, report_id: str, approve: bool) -> dict[str, Any]:
        """Approve (refund) or reject a pending report, by the id clients see."""
        if not admin.can("review"):
            raise ReportError("Only QA/admin sessions can review reports.")
        with self.db.begin() as conn:
            found = conn.execute(sa.select(reports.c.id).where(reports.c.public_id == str(report_id))).scalar()
            if found is None or not self._resolve(conn, found, admin.id, approve):
                raise ReportError(f"Report {report_id} does not exist or was already reviewed.")
            return _report(conn.execute(sa.select(reports).where(reports.c.id == found)).one())

    def _resolve(self, conn: sa.Connection, report_id: int, reviewer: str, approve: bool) -> bool:
        changed = conn.execute(
            sa.update(reports)
            .where(reports.c.id == report_id, reports.c.status == "pending")
            .values(status="approved" if approve else "rejected", resolved_at=time.time(), resolved_by=reviewer)
        ).rowcount
        if not changed:
            return False
        if approve:
            row = conn.execute(sa.select(reports).where(reports.c.id == report_id)).one()
            self.jobs.refund_reported(conn, row.account_id, row.refund, row.generation_id, f"report {row.public_id} approved ({row.reason})")
        return True
