"""Advanced reference sheets: full-body, front-facing options of a figure made from its canonical image through a
reference model (presets/plans.toml [reference_sheets]); the visitor picks one, and Advanced, Group and
Figure-to-Video take it in place of the canonical image. A figure's first sheet costs `first` image prices, every
later one `regenerate`."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from PIL import Image

from pipelines.types import StepCallback, Task

from ..accounts.identity import Account
from ..accounts.plans import Plans, Quote
from ..accounts.tables import figures as figures_table
from ..catalogue import Catalogue
from ..errors import InvalidRequest
from ..runs.runner import PaidRun, PromptCheck, Runner, Stage
from ..safety.policy import Surface
from .figures import Figures
from .text import ImageOutput, TextImages, TextToImageParams
from ..accounts.history import History

SHEET_PROMPT = ("the same person, full body from head to shoes, standing upright and facing the camera, arms relaxed "
                "at the sides, neutral expression, plain light grey studio background, even soft light")
SHEET_RATIO = "3:4"


class SheetError(InvalidRequest):
    pass


class ReferenceSheets:
    def __init__(self, catalogue: Catalogue, plans: Plans, text: TextImages, runner: Runner, figures: Figures, history: History):
        self.catalogue, self.plans, self.text, self.runner, self.figures, self.history = catalogue, plans, text, runner, figures, history

    def _runs(self, figure_id: str) -> int:
        with self.figures.db.engine.connect() as conn:
            return int(conn.execute(sa.select(figures_table.c.reference_runs).where(figures_table.c.id == figure_id)).scalar() or 0)

    def quote(self, account: Account, figure_id: str) -> Quote:
        """The price of the figure's next sheet: its first, or a regeneration."""
        self.figures.get(account, figure_id)
        entry = self.catalogue.get(self.plans.reference_sheets.model)
        return self.plans.sheet_quote(entry, regenerate=self._runs(figure_id) > 0)

    def generate(self, account: Account, figure_id: str, *, seed: int | None = None, keep_style: bool = True,
                 idempotency_key: str | None = None, on_step: StepCallback | None = None) -> ImageOutput:
        """Make a sheet of options (full body, front-facing) from the figure's canonical image; pick one with `pick`."""
        ref = self.figures.reference(account, figure_id, purpose="canonical")
        terms = self.plans.reference_sheets
        entry = self.catalogue.require(terms.model, Task.REFERENCE)
        lock = self.figures.style_lock(ref, keep_style)
        prompt = lock.prompt(SHEET_PROMPT) if lock is not None else SHEET_PROMPT
        params = TextToImageParams(prompt=prompt, model=entry.id, aspect_ratio=SHEET_RATIO, resolution="1K", count=terms.options, seed=seed)
        _, request = self.text.build_request(params, Task.REFERENCE)
        with Image.open(ref.image) as opened:
            request = replace(request, reference_images=(opened.convert("RGB"),))
        quote = self.plans.sheet_quote(entry, regenerate=self._runs(figure_id) > 0)
        context = {"reference_sheet": {"figure_id": figure_id, "keep_style": bool(keep_style)}}
        run = PaidRun(
            stages=(Stage("sheet", entry, Task.REFERENCE, request, "1K"),),
            surface=Surface.FIGURE,
            replay={"model": entry.id, "seed": request.seed, "context": context, "runs": self._runs(figure_id)},
            prompts=(PromptCheck(prompt),),
            record={"aspect_ratio": SHEET_RATIO, "resolution": "1K", "figure_ids": [figure_id], "reference_sheet": True,
                    **({"style_register": lock.record()} if lock is not None else {})},
            price=quote,
        )
        output = ImageOutput.from_job(self.runner.run(account, run, idempotency_key, on_step))
        if not output.replayed:
            with self.figures.db.begin() as conn:
                conn.execute(sa.update(figures_table).where(figures_table.c.id == figure_id)
                             .values(reference_runs=figures_table.c.reference_runs + 1, updated_at=time.time()))
        return output

    def pick(self, account: Account, figure_id: str, request_id: str, index: int) -> dict[str, Any]:
        """Make one option of one of this figure's sheets its Advanced reference."""
        self.figures.get(account, figure_id)
        record = self.history.get(account.id, request_id)
        context = (record.request or {}).get("context") or {}
        if (context.get("reference_sheet") or {}).get("figure_id") != figure_id:
            raise SheetError(f"{request_id} is not a reference sheet of this figure; make one first.")
        files = self.history.image_files(account.id, request_id)
        if not 0 <= int(index) < len(files):
            raise SheetError(f"Pick one of the sheet's {len(files)} options (0-{len(files) - 1}), not {index}.")
        sheet = {"path": self.figures.store.relative(files[int(index)]), "generation_id": request_id, "idx": int(index)}
        with self.figures.db.begin() as conn:
            conn.execute(sa.update(figures_table).where(figures_table.c.id == figure_id)
                         .values(reference_sheet=sheet, updated_at=time.time()))
        return {"figure_id": figure_id, "reference_sheet": sheet}

    def clear(self, account: Account, figure_id: str) -> None:
        self.figures.get(account, figure_id)
        with self.figures.db.begin() as conn:
            conn.execute(sa.update(figures_table).where(figures_table.c.id == figure_id).values(reference_sheet=None))
