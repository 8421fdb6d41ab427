"""Running grids: quote the whole grid, then each cell as its own paid request through the surfaces and the one runner.

A grid runs in the background as a job whose id is the grid id (services.runs.background): one progress bar over
all its cells, driven by each cell's step callback. Each cell's idempotency key is `<grid id>-<cell>`, so resuming a
grid after a restart never pays for a finished cell twice. A failed cell is refunded by the runner and recorded with
its message; the other cells go on. Stop (the visitor's /cancel) ends the running cell (refunded) and the grid.
"""
from __future__ import annotations

import time
from typing import Any

from ..accounts.identity import Account
from ..creation.text import TextToImageParams
from ..errors import Cancelled, UserError
from ..safety.policy import Surface
from .grids import (GridError, GridPlan, GridSpec, GridStore, Cell, cell_view, declared, identity_of, layout, new_grid_id,
                    order_cells, task_of)


class Grids:
    def __init__(self, services: Any):
        self.s = services
        self.store = GridStore(services.db)

    @property
    def terms(self):
        return self.s.plans.research

    def declare(self, **kwargs: Any) -> GridSpec:
        return declared(**kwargs, max_prompts=self.terms.grid_max_prompts)

    # -- before anything is charged -------------------------------------------------------------------------
    def plan(self, account: Account, spec: GridSpec) -> GridPlan:
        """Every check a cell could fail before running (policy per prompt, models, sizes, axis values), and the quote."""
        for number, prompt in enumerate(spec.prompts, 1):
            try:
                self.s.policy.check(prompt, account, Surface.IMAGE)
            except UserError as exc:
                raise GridError(f"Prompt {number}: {exc}") from exc
        prices: dict[str, int] = {}
        for model in spec.models:
            entry = self.s.catalogue.get(model)
            prices[model] = self._check_model(account, spec, entry)
        cells = order_cells(spec, prices)
        cap = self.terms.grid_max_cells
        if len(cells) > cap:
            raise GridError(f"This grid has {len(cells)} cells; a grid may have at most {cap}. Use fewer prompts, models, "
                            "seeds or values.")
        per_model = [{"model": m, "cells": sum(c.model == m for c in cells), "per_cell": prices[m],
                      "credits": prices[m] * sum(c.model == m for c in cells)} for m in spec.models]
        return GridPlan(spec, cells, prices, sum(p["credits"] for p in per_model), per_model)

    def _check_model(self, account: Account, spec: GridSpec, entry) -> int:
        if spec.surface == "text-to-image":
            total = 0
            for value in list(spec.values) or [None]:  # the runner's own checks, on the first prompt and seed
                run = self.s.text.describe(self._text_params(spec, entry.id, spec.prompts[0], spec.seeds[0], value))
                total = max(total, self.s.runner.prepare(account, run).total)
            return total
        self.s.figures.reference(account, spec.figure_id)  # one of the visitor's figures, with a canonical image
        allowed = self.s.remix.advanced_models() if spec.surface == "advanced" else self.s.remix.remix_models()
        if entry.id not in {e.id for e in allowed}:
            raise GridError(f"{entry.name} cannot keep a face on {spec.surface}; pick models marked “keeps the face”.")
        if spec.axis == "face_path":
            missing = [v for v in spec.values if v not in entry.offered_face_paths]
            if missing:
                raise GridError(f"{entry.name} has no face path {', '.join(map(str, missing))}; its face paths are: "
                                f"{', '.join(entry.offered_face_paths) or 'none (it keeps the face through the reference image)'}.")
        return self.s.catalogue.quote(entry.id, task_of(entry, spec.surface), spec.aspect_ratio, spec.resolution).total

    def quote(self, account: Account, spec: GridSpec) -> dict[str, Any]:
        quote = self.plan(account, spec).quote()
        quote.update(balance=account.balance, unlimited=account.unlimited,
                     affordable=account.unlimited or account.balance >= quote["total"])
        return quote

    # -- running ------------------------------------------------------------------------------------------
    def start(self, account: Account, spec: GridSpec) -> dict[str, Any]:
        """Quote, refuse what cannot run or be paid for, store the grid and start its cells in the background."""
        plan = self.plan(account, spec)
        account = self.s.identity.account(account.id)
        if not account.unlimited and account.balance < plan.total:
            raise GridError(f"This grid costs {plan.total} credits ({len(plan.cells)} cells) and your balance is "
                            f"{account.balance}; remove models, prompts or seeds, or add credits.")
        grid_id = new_grid_id()
        self.store.create(account, grid_id, plan)
        self._launch(account, grid_id, spec, plan.cells)
        return {"grid_id": grid_id, **plan.quote()}

    def resume(self, account: Account, grid_id: str) -> dict[str, Any]:
        """Run a stopped or interrupted grid's unfinished cells (finished ones are never paid twice)."""
        row = self.store.row(account.id, grid_id)
        if self._live(account, grid_id):
            raise GridError("This grid is still running.")
        spec = GridSpec.from_dict(row.spec)
        todo = [Cell(r.idx, r.prompt_index, r.model, r.seed, cell_view(r, spec)["value"]) for r in self.store.cells(grid_id)
                if r.status != "done"]
        if not todo:
            return {"grid_id": grid_id, "cells": 0, "note": "Every cell of this grid is done: nothing to run."}
        self.store.set_status(grid_id, "running")
        self._launch(account, grid_id, spec, todo)
        return {"grid_id": grid_id, "cells": len(todo)}

    def _live(self, account: Account, grid_id: str) -> bool:
        try:
            return self.s.background.get(account.id, grid_id)["state"] == "running"
        except UserError:
            return False

    def _launch(self, account: Account, grid_id: str, spec: GridSpec, cells: list[Cell]) -> None:
        def work(progress) -> dict[str, Any]:
            return self._run_cells(account, grid_id, spec, cells, progress)

        self.s.background.start(account.id, "grid", work, job_id=grid_id)

    def _run_cells(self, account: Account, grid_id: str, spec: GridSpec, cells: list[Cell], progress) -> dict[str, Any]:
        total = len(cells)
        done = failed = 0
        for number, cell in enumerate(cells):
            progress((number, total), desc=f"Cell {number + 1} of {total}: {cell.model}")
            self.store.update_cell(grid_id, cell.idx, status="running")
            started = time.perf_counter()

            def on_step(step: int, steps: int, number=number) -> None:
                progress((round(number + step / max(steps, 1), 3), total), desc=f"Cell {number + 1} of {total}: {cell.model}")

            try:
                output = self._run_cell(account, grid_id, spec, cell, on_step)
            except Cancelled as exc:
                self.store.update_cell(grid_id, cell.idx, status="failed", error=str(exc)[:500], seconds=time.perf_counter() - started)
                for rest in cells[number + 1:]:
                    self.store.update_cell(grid_id, rest.idx, status="stopped", error="stopped before it ran: nothing charged")
                self.store.set_status(grid_id, "stopped")
                return {"grid_id": grid_id, "done": done, "failed": failed + 1, "stopped": True}
            except Exception as exc:  # noqa: BLE001 - the runner refunded this cell; the grid goes on
                message = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: the cell failed and was refunded"
                self.store.update_cell(grid_id, cell.idx, status="failed", error=message[:500], seconds=time.perf_counter() - started)
                failed += 1
                continue
            self.store.update_cell(
                grid_id, cell.idx, status="done", request_id=output.request_id, charged=output.charged,
                file=self.s.store.relative(output.files[0]) if output.files else None, seconds=round(time.perf_counter() - started, 3),
                steps=output.parameters.get("steps") or output.parameters.get("num_inference_steps"),
                identity=identity_of(output.parameters),
            )
            done += 1
        progress((total, total), desc="Done")
        self.store.set_status(grid_id, "done")
        return {"grid_id": grid_id, "done": done, "failed": failed, "stopped": False}

    def _text_params(self, spec: GridSpec, model: str, prompt: str, seed: int, value: Any) -> TextToImageParams:
        extra = {spec.axis: value} if spec.axis and value is not None else {}
        return TextToImageParams(prompt=prompt, model=model, aspect_ratio=spec.aspect_ratio, resolution=spec.resolution,
                                 seed=seed, **extra)

    def _run_cell(self, account: Account, grid_id: str, spec: GridSpec, cell: Cell, on_step):
        key = f"{grid_id}-{cell.idx}"
        prompt = spec.prompts[cell.prompt_index]
        if spec.surface == "text-to-image":
            params = self._text_params(spec, cell.model, prompt, cell.seed, cell.value)
            return self.s.text.text_to_image(account, params, idempotency_key=key, on_step=on_step,
                                             context={"grid": {"id": grid_id, "cell": cell.idx, "axis": spec.axis}})
        options: dict[str, Any] = {}
        if spec.axis == "likeness":
            options["likeness"] = cell.value
        if spec.surface == "advanced":
            return self.s.remix.advanced_image(account, figure_id=spec.figure_id, description=prompt, model=cell.model,
                                               aspect_ratio=spec.aspect_ratio, resolution=spec.resolution, seed=cell.seed,
                                               idempotency_key=key, on_step=on_step, **options)
        if spec.axis == "face_path":
            options["face_path"] = cell.value
        return self.s.remix.figure_remix(account, prompt=prompt, model=cell.model, figure_id=spec.figure_id,
                                         aspect_ratio=spec.aspect_ratio, resolution=spec.resolution, seed=cell.seed,
                                         idempotency_key=key, on_step=on_step, **options)

    # -- reading ------------------------------------------------------------------------------------------
    def get(self, account: Account, grid_id: str, rows: str = "prompt", cols: str = "model") -> dict[str, Any]:
        """The grid as stored (reopens identically after a reload or restart), with its live progress while it runs."""
        row = self.store.row(account.id, grid_id)
        spec = GridSpec.from_dict(row.spec)
        cells = [cell_view(r, spec) for r in self.store.cells(grid_id)]
        status = row.status
        progress = None
        if status == "running":
            try:
                job = self.s.background.get(account.id, grid_id)
                progress = {"done": job["done"], "total": job["total"], "desc": job["progress"]}
            except UserError:
                status = "interrupted"  # the process that ran it stopped: resume runs the rest
        counted = {s: sum(c["status"] == s for c in cells) for s in ("done", "failed", "pending", "running", "stopped")}
        return {"grid_id": grid_id, "status": status, "progress": progress, "spec": spec.as_dict(), "quoted": row.quoted,
                "charged": sum(c["charged"] for c in cells), "counts": counted, "cells": cells,
                "layout": layout(cells, spec, rows, cols), "created_at": row.created_at}

    def listing(self, account: Account) -> list[dict[str, Any]]:
        return self.store.listing(account.id)
