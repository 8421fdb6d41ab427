"""Versions by generation and by upload. New Version starts the card's `count` versions at once, each its own paid run
through the one runner (a stage of the model the card's class names for the task its refs make: none -> text-to-image,
one -> reference, more -> multi-reference), in threads of their own; the runner's slots decide how many run at a time
(a version waits for its visitor's slot, uncharged, while another of theirs runs). A version row is written before its
run (status generating) and ends done (its file and paid run) or failed (refunded by the runner). At most
`max_generating` are generating on a card, counted in the database under the card's row lock, so several instances
sharing it cannot pass the limit together. An uploaded version is free: upload hygiene, the output check, no metadata.

Refs past a model's reference cap (the registry's `max_references`): presets/projects.toml `over_cap` = "refuse"
refuses naming the limit; "rank" keeps the fork's source image first, then refs saved from approved versions, then the
newest, passes the kept ones in the card's own order, and records the dropped ones with the version."""
from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from PIL import Image

from pipelines.registry import ModelEntry
from pipelines.types import Task

from ..accounts.identity import Account
from ..accounts.ledger import InsufficientCredits
from ..accounts.tables import (accounts, generation_files, generations, project_cards, project_directions, project_refs,
                               project_scene_shots, project_versions)
from ..creation.text import TextToImageParams
from ..errors import UserError
from ..runs.params import checked_seed
from ..runs.runner import PaidRun, PromptCheck, Stage
from ..runs.slots import TooManyRuns
from ..safety.policy import Surface
from ..safety.uploads import load_image
from .access import ProjectError, card_row, project_row, writable
from .refs import ref_view

log = logging.getLogger(__name__)

# a version waits this long for its visitor's run slot (uncharged) before it fails: the card's other versions may
# run one after another first (a visitor has one local slot by default), each up to the jobs' timeout
WAIT_S = 1800.0
WAIT_POLL_S = 0.25
STALE_S = WAIT_S + 120.0  # a generating version with no paid run after this long was lost in a restart


def _key(account: Account, card_id: str, key: str, index: int) -> str:
    """A version id derived from the click's idempotency key: a retried click finds the versions it started."""
    return hashlib.sha256(f"{account.id}\n{card_id}\n{key}\n{index}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """What one New Version click on a card runs: the model, the task, the refs kept and dropped, the settings."""

    entry: ModelEntry
    task: Task
    kept: tuple[Any, ...]  # project_refs rows, in the card's order
    dropped: tuple[Any, ...]
    cap: int | None
    settings: dict[str, Any]  # resolution, aspect_ratio, model_class, count (the card's)
    direction_id: str
    scene_id: str | None


class Generation:
    # -- what a click will run ------------------------------------------------------------------------------
    def _plan(self, conn: sa.Connection, card) -> Plan:
        direction = conn.execute(sa.select(project_directions).where(project_directions.c.id == card.direction_id)).first()
        ids = list(direction.refs or [])
        if card.scene_id:  # generating in a scene: its pool's shots are references too
            ids += conn.execute(sa.select(project_scene_shots.c.ref_id).where(project_scene_shots.c.scene_id == card.scene_id)
                                .order_by(project_scene_shots.c.position)).scalars().all()
        ids = list(dict.fromkeys(ids))
        approved = project_versions.c.review == "approved"
        rows = {r.id: r for r in conn.execute(
            sa.select(project_refs, approved.label("approved"))
            .outerjoin(project_versions, project_versions.c.id == project_refs.c.version_id)
            .where(project_refs.c.id.in_(ids), project_refs.c.project_id == card.project_id)).all()} if ids else {}
        refs = [rows[i] for i in ids if i in rows]
        settings = dict(card.settings)
        klass = self.settings.model_classes[settings["model_class"]]
        task = Task.TEXT_TO_IMAGE if not refs else Task.REFERENCE if len(refs) == 1 else Task.MULTI_REFERENCE
        entry = self.catalogue.get(klass.model_for(task))
        cap, dropped = entry.max_references, []
        if cap is not None and len(refs) > cap:
            if self.settings.over_cap == "refuse":
                raise ProjectError(f"{entry.name} takes at most {cap} reference image{'s' if cap > 1 else ''}, and this card "
                                   f"would use {len(refs)} (its direction's refs{' and its scene' if card.scene_id else ''}). "
                                   "Detach some refs, or pick another model class. Nothing was charged.")
            order = {r.id: i for i, r in enumerate(refs)}
            ranked = sorted(refs, key=lambda r: (r.version_id is None or r.version_id != direction.parent_version_id,
                                                 not r.approved, -r.created_at, order[r.id]))
            keep = {r.id for r in ranked[:cap]}
            refs, dropped = [r for r in refs if r.id in keep], [r for r in refs if r.id not in keep]
        return Plan(entry, task, tuple(refs), tuple(dropped), cap, settings, direction.id, card.scene_id)

    def _describe(self, plan: Plan, prompt: str, refined: str, images: list[Image.Image], seed: int | None,
                  version_id: str) -> PaidRun:
        ratio, resolution = plan.settings["aspect_ratio"], plan.settings["resolution"]
        params = TextToImageParams(prompt=refined, model=plan.entry.id, aspect_ratio=ratio, resolution=resolution, count=1,
                                   seed=seed)
        entry, request = self.text.build_request(params, plan.task)
        request = replace(request, reference_images=tuple(images))
        if resolution == "4K" and not entry.is_remote:  # a 2K generation, then the 2x upscale, at the 4K price
            stages = self.text.four_k(entry, plan.task, request, ratio)
        else:
            stages = (Stage("generate", entry, plan.task, request, resolution),)
        refs = [r.id for r in plan.kept]
        context = {"project_version": version_id, "refs": refs, "dropped_refs": [r.id for r in plan.dropped]}
        checks = (PromptCheck(refined),) + ((PromptCheck(prompt),) if prompt != refined else ())
        return PaidRun(stages=stages, surface=Surface.IMAGE, prompts=checks,
                       replay={"prompt": refined, "typed_prompt": prompt, "model": entry.id, "task": plan.task.value,
                               "aspect_ratio": ratio, "resolution": resolution, "count": 1, "seed": request.seed,
                               "context": context},
                       record={"aspect_ratio": ratio, "resolution": resolution, **context})

    def _images(self, refs) -> list[Image.Image]:
        images = []
        for ref in refs:
            try:
                with Image.open(self.store.path(ref.file)) as opened:
                    images.append(opened.convert("RGB"))
            except (OSError, ValueError):
                raise ProjectError(f"The image of ref “{ref.name}” is missing; detach it and add it again.") from None
        return images

    def _quote_view(self, plan: Plan, per_version: int) -> dict[str, Any]:
        count = int(plan.settings["count"])
        return {"model": plan.entry.id, "model_name": plan.entry.name, "task": plan.task.value,
                "model_class": plan.settings["model_class"], "resolution": plan.settings["resolution"],
                "aspect_ratio": plan.settings["aspect_ratio"], "count": count, "per_version": per_version,
                "total": per_version * count, "cap": plan.cap, "over_cap": self.settings.over_cap,
                "refs": [ref_view(r) for r in plan.kept], "dropped": [ref_view(r) for r in plan.dropped],
                "text": (f"{count} version{'s' if count > 1 else ''} × {per_version} credit{'s' if per_version != 1 else ''} = "
                         f"{per_version * count} on {plan.entry.name}"
                         + (f"; {len(plan.dropped)} ref(s) left out: {plan.entry.name} takes {plan.cap}" if plan.dropped else ""))}

    def quote_version(self, account: Account, card_id: str) -> dict[str, Any]:
        """The price of one New Version click, shown before it: per version and in total for the card's count, the model
        and task the refs lead to, the refs it will use and any it leaves out (or the refusal, past a cap)."""
        with self.db.engine.connect() as conn:
            plan = self._plan(conn, card_row(conn, account, card_id))
        quote = self.catalogue.quote(plan.entry.id, plan.task, plan.settings["aspect_ratio"], plan.settings["resolution"])
        return self._quote_view(plan, quote.total)

    # -- New Version --------------------------------------------------------------------------------------
    def new_versions(self, account: Account, card_id: str, prompt: str | None = None, refined: str | None = None,
                     idempotency_key: str | None = None) -> dict[str, Any]:
        """Start the card's `count` versions (each its own paid run) and return their ids at once; `card()` shows them
        finish. `prompt`: as typed (default: the card's saved draft); `refined`: what runs (default: the prompt)."""
        with self.db.engine.connect() as conn:
            card = card_row(conn, account, card_id)
            writable(project_row(conn, account, card.project_id))
            plan = self._plan(conn, card)
        prompt = self._checked_draft(card.draft if prompt is None else prompt)
        refined = self._checked_draft(refined or "") or prompt
        images = self._images(plan.kept)
        count = int(plan.settings["count"])
        sample = self._describe(plan, prompt, refined, images, None, "")
        quote = self.runner.prepare(account, sample)  # the policy on both prompts, the request, the price: nothing charged
        if not account.unlimited:
            with self.db.engine.connect() as conn:
                balance = int(conn.execute(sa.select(accounts.c.balance).where(accounts.c.id == account.id)).scalar() or 0)
            if balance < quote.total * count:
                raise InsufficientCredits(quote.total * count, balance, self.runner.cheaper(sample, balance))
        key = (idempotency_key or "").strip()
        ids = [_key(account, card.id, key, i) if key else secrets.token_hex(8) for i in range(count)]
        for attempt in range(3):
            try:
                started = self._insert_generating(account, card.id, plan, prompt, refined, ids)
                break
            except sa.exc.IntegrityError:  # a number taken meanwhile (the lock makes it rare): count again
                if attempt == 2:
                    raise
        if started:
            for version_id, seed in started:
                run = self._describe(plan, prompt, refined, images, seed, version_id)
                threading.Thread(target=self._generate, args=(account, version_id, run), daemon=True,
                                 name=f"version-{version_id}").start()
        return {"version_ids": ids, "replayed": not started, "quote": self._quote_view(plan, quote.total)}

    def _insert_generating(self, account: Account, card_id: str, plan: Plan, prompt: str, refined: str,
                           ids: list[str]) -> list[tuple[str, int]]:
        """The versions' rows, under the card's row lock: the limit is counted and the numbers taken in one transaction.
        Returns (id, seed) per version started; [] when these ids exist already (a retried click)."""
        with self.db.begin() as conn:
            conn.execute(sa.select(project_cards.c.id).where(project_cards.c.id == card_id).with_for_update())
            if conn.execute(sa.select(project_versions.c.id).where(project_versions.c.id == ids[0])).first() is not None:
                return []
            self._settle(conn, card_id)
            busy = int(conn.execute(sa.select(sa.func.count()).select_from(project_versions).where(
                project_versions.c.card_id == card_id, project_versions.c.status == "generating")).scalar())
            limit = self.settings.max_generating
            if busy + len(ids) > limit:
                raise ProjectError(f"At most {limit} versions can be generating at once on a card; {busy} are now, and this "
                                   f"click would start {len(ids)}. Wait for some to finish, or lower the count. "
                                   "Nothing was charged.")
            number, parent = self._next_number(conn, card_id, plan.direction_id)
            now, started = time.time(), []
            for i, version_id in enumerate(ids):
                seed = checked_seed(None)
                settings = {"resolution": plan.settings["resolution"], "aspect_ratio": plan.settings["aspect_ratio"],
                            "model_class": plan.settings["model_class"], "model": plan.entry.id, "task": plan.task.value,
                            "seed": seed, "scene_id": plan.scene_id, "dropped_refs": [r.id for r in plan.dropped]}
                conn.execute(project_versions.insert().values(
                    id=version_id, card_id=card_id, direction_id=plan.direction_id, parent_version_id=parent,
                    number=number + i, prompt=prompt, refined=refined, settings=settings, refs=[r.id for r in plan.kept],
                    status="generating", created_by=account.id, created_at=now))
                started.append((version_id, seed))
            conn.execute(project_cards.update().where(project_cards.c.id == card_id).values(updated_at=now))
        return started

    @staticmethod
    def _next_number(conn: sa.Connection, card_id: str, direction_id: str) -> tuple[int, str | None]:
        """The card's next version number, and the parent of a version started now in the direction: its latest
        version that has not failed, or (a fork's first) the version the direction was forked from."""
        top = conn.execute(sa.select(sa.func.max(project_versions.c.number)).where(project_versions.c.card_id == card_id)).scalar()
        parent = conn.execute(sa.select(project_versions.c.id).where(
            project_versions.c.direction_id == direction_id, project_versions.c.status != "failed")
            .order_by(project_versions.c.number.desc()).limit(1)).scalar()
        if parent is None:
            parent = conn.execute(sa.select(project_directions.c.parent_version_id)
                                  .where(project_directions.c.id == direction_id)).scalar()
        return int(top or 0) + 1, parent

    def _generate(self, account: Account, version_id: str, run: PaidRun) -> None:
        """One version's paid run (a thread): waits for the visitor's run slot (uncharged; Stop ends the wait), then runs;
        the runner refunds whatever fails after its reservation."""
        began = time.monotonic()
        deadline = began + WAIT_S
        while True:
            if self.runner.stopped_since(account, began):  # Stop reaches versions still waiting too
                return self._finish(version_id, error="Stopped before it started. Nothing was charged.")
            try:
                output = self.runner.run(account, run, idempotency_key=f"project-{version_id}")
            except TooManyRuns as exc:
                if time.monotonic() < deadline:
                    time.sleep(WAIT_POLL_S)
                    continue
                return self._finish(version_id, error=f"{exc}")
            except UserError as exc:
                return self._finish(version_id, error=str(exc))
            except Exception as exc:  # noqa: BLE001 - a pipeline's failure: the runner refunded it; the log keeps the detail
                log.exception("version %s failed", version_id)
                return self._finish(version_id, error=f"The generation failed ({type(exc).__name__}); it was refunded. "
                                                      "Try again, or pick another model class.")
            break
        if not output.files:
            return self._finish(version_id, error="The output check blocked the image; it was refunded.")
        if output.safety and output.safety[0] == "flagged":  # kept privately in the member's History, never in a project
            return self._finish(version_id, error="The output check flagged the image: projects keep SFW images only. It is "
                                                  "in your History (private), not in the project.")
        self._finish(version_id, file=self.store.relative(output.files[0]), generation_id=output.request_id)

    def _finish(self, version_id: str, file: str | None = None, generation_id: str | None = None, error: str = "") -> None:
        values = ({"status": "done", "file": file, "generation_id": generation_id} if file else
                  {"status": "failed", "error": error[:500], "generation_id": generation_id})
        with self.db.begin() as conn:
            conn.execute(project_versions.update().where(project_versions.c.id == version_id,
                                                         project_versions.c.status == "generating").values(**values))

    def _settle(self, conn: sa.Connection, card_id: str) -> None:
        """Versions left generating by an instance that stopped: their paid run's outcome (the jobs recovery refunds
        runs of a dead instance), or failed uncharged when no run ever started."""
        rows = conn.execute(sa.select(project_versions.c.id, project_versions.c.created_by, project_versions.c.created_at)
                            .where(project_versions.c.card_id == card_id, project_versions.c.status == "generating")).all()
        for row in rows:
            run = conn.execute(sa.select(generations.c.id, generations.c.status, generations.c.error).where(
                generations.c.account_id == row.created_by, generations.c.idempotency_key == f"project-{row.id}")).first()
            if run is None and time.time() - row.created_at > STALE_S:
                values = {"status": "failed", "error": "It stopped before its run started (a restart); nothing was charged."}
            elif run is not None and run.status == "done":
                path = conn.execute(sa.select(generation_files.c.path).where(generation_files.c.generation_id == run.id)
                                    .order_by(generation_files.c.idx).limit(1)).scalar()
                values = {"status": "done", "file": path, "generation_id": run.id} if path else \
                    {"status": "failed", "error": "The output check blocked the image; it was refunded.", "generation_id": run.id}
            elif run is not None and run.status != "running":
                values = {"status": "failed", "error": f"It ended as {run.status}; it was refunded.", "generation_id": run.id}
            else:
                continue
            conn.execute(project_versions.update().where(project_versions.c.id == row.id,
                                                         project_versions.c.status == "generating").values(**values))

    # -- Upload your own version ----------------------------------------------------------------------------
    def upload_version(self, account: Account, card_id: str, upload, prompt: str = "") -> dict[str, Any]:
        """An image edited elsewhere as the card's next version, marked uploaded (free): upload hygiene, then the
        output check; stored without its metadata."""
        with self.db.engine.connect() as conn:
            card = card_row(conn, account, card_id)
            writable(project_row(conn, account, card.project_id))
        prompt = self._checked_draft(prompt)
        image = load_image(upload, self.uploads).convert("RGB")
        file = self._stored_image(image)
        version_id = secrets.token_hex(8)
        with self.db.begin() as conn:
            conn.execute(sa.select(project_cards.c.id).where(project_cards.c.id == card.id).with_for_update())
            direction_id = conn.execute(sa.select(project_cards.c.direction_id).where(project_cards.c.id == card.id)).scalar()
            number, parent = self._next_number(conn, card.id, direction_id)
            conn.execute(project_versions.insert().values(
                id=version_id, card_id=card.id, direction_id=direction_id, parent_version_id=parent, number=number,
                prompt=prompt, refined=prompt, settings={"source": "upload", "width": image.width, "height": image.height},
                refs=[], status="uploaded", file=file, created_by=account.id, created_at=time.time()))
            conn.execute(project_cards.update().where(project_cards.c.id == card.id).values(updated_at=time.time()))
        return self.version(account, version_id)
