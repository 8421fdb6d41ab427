"""Compare: one prompt and one seed through 2-4 text-to-image models, side by side.

Everything is checked before the first credit moves: the models (distinct, local, offering the size), the
prompt policy, the figure when one is given, and the balance for the whole set. Each model then runs as its own paid request (reserve -> run
-> safety -> store -> capture), so one model failing refunds that model only and the others still show.

With one of the visitor's figures picked, every output gets an identity score against that figure's canonical face
(services/faces/scores.py): a column of the table and `identity_score` in each PNG's record.
"""
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from pipelines.types import GenerationResult, Task

from ..accounts.identity import Account, Identity
from ..accounts.plans import Quote
from ..catalogue import Catalogue
from ..errors import Cancelled, InvalidRequest, UserError
from ..runs.params import random_seed
from ..runs.runner import Runner
from ..faces.engine import FaceEngine
from ..safety.policy import Surface
from .figures import Figures
from .remix import identity_scores
from .text import ImageOutput, TextImages, TextToImageParams

log = logging.getLogger(__name__)

MIN_MODELS, MAX_MODELS = 2, 4
ModelStart = Callable[[int, int, str], None]  # (index, how many, model name)


@dataclass(frozen=True)
class CompareParams:
    prompt: str
    models: tuple[str, ...]
    aspect_ratio: str = "1:1"
    resolution: str = "1K"
    seed: int | None = None  # None or negative: one random seed, shared by every model
    negative_prompt: str = ""
    prompt_style: str = "natural"
    figure_id: str | None = None  # one of the visitor's figures: score every output against its canonical face


IDENTITY_OFF = "off (no face engine)"


@dataclass
class CompareRow:
    model: str
    name: str
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    charged: int = 0
    steps: int | None = None
    preview: bool = False
    error: str = ""
    request_id: str = ""
    identity: Any = None  # with a figure: a cosine, "no face found", a "several faces" match, or IDENTITY_OFF

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "name": self.name, "files": [str(p) for p in self.files],
            "seconds": round(self.seconds, 3), "charged": self.charged, "steps": self.steps,
            "preview": self.preview, "error": self.error, "request_id": self.request_id, "identity": self.identity,
        }


@dataclass
class CompareOutput:
    seed: int
    rows: list[CompareRow]
    quoted: int

    @property
    def charged(self) -> int:
        return sum(r.charged for r in self.rows)


class CompareService:
    def __init__(self, catalogue: Catalogue, text: TextImages, runner: Runner, identity: Identity,
                 figures: Figures | None = None, faces: FaceEngine | None = None):
        self.catalogue = catalogue
        self.text = text
        self.runner = runner
        self.identity = identity
        self.figures = figures
        self.faces = faces

    def choices(self) -> list[str]:
        """The models a comparison can use: local text-to-image entries, in registry order."""
        return [e.id for e in self.catalogue.entries(Task.TEXT_TO_IMAGE, local=True)]

    def quote(self, models: list[str] | tuple[str, ...], aspect_ratio: str, resolution: str) -> list[Quote]:
        """One quote per model, after checking the set can run (raises InvalidRequest naming what to change)."""
        models = tuple(dict.fromkeys(m for m in models if m))
        if not MIN_MODELS <= len(models) <= MAX_MODELS:
            raise InvalidRequest(f"Pick {MIN_MODELS} to {MAX_MODELS} different models to compare (you picked {len(models)}).")
        quotes = []
        for model in models:
            entry = self.catalogue.require(model, Task.TEXT_TO_IMAGE)
            if entry.is_remote:
                raise InvalidRequest(f"{entry.name} is API-only and not available yet; pick a local model.")
            if not self.catalogue.offers(entry, aspect_ratio, resolution):
                offered = ", ".join(self.catalogue.tiers(entry, aspect_ratio)) or "nothing"
                raise InvalidRequest(
                    f"{entry.name} does not offer {aspect_ratio} at {resolution} (it offers {offered} at {aspect_ratio}); "
                    "pick another resolution or drop that model."
                )
            quotes.append(self.catalogue.quote(entry.id, Task.TEXT_TO_IMAGE, aspect_ratio, resolution, 1))
        return quotes

    def compare(
        self,
        account: Account,
        params: CompareParams,
        on_model: ModelStart | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> CompareOutput:
        quotes = self.quote(params.models, params.aspect_ratio, params.resolution)
        models = tuple(q.model for q in quotes)  # deduplicated and checked by quote()
        seed = params.seed if params.seed is not None and params.seed >= 0 else random_seed()
        group = secrets.token_hex(6)
        runs = [
            self.text.describe(
                TextToImageParams(
                    prompt=params.prompt, model=model, negative_prompt=params.negative_prompt,
                    aspect_ratio=params.aspect_ratio, resolution=params.resolution, count=1, seed=seed,
                    prompt_style=params.prompt_style,
                ),
                Surface.IMAGE,
                context={"compare": group},
            )
            for model in models
        ]
        if params.figure_id:
            runs = [self._scored(account, run, params.figure_id) for run in runs]
        total = sum(self.runner.prepare(account, run).total for run in runs)  # policy and validation, nothing reserved
        account = self.identity.account(account.id)
        if not account.unlimited and account.balance < total:
            raise InvalidRequest(
                f"Comparing these {len(models)} models costs {total} credits and you have {account.balance_text()}; "
                "pick fewer or cheaper models, or a lower resolution."
            )
        rows: list[CompareRow] = []
        for i, (model, run) in enumerate(zip(models, runs)):
            entry = run.final.entry
            row = CompareRow(model, entry.name)
            rows.append(row)
            if on_model:
                on_model(i, len(models), entry.name)
            started = time.perf_counter()
            try:  # each model is its own paid request: a failure refunds that model only and the others still run
                output = ImageOutput.from_job(self.runner.run(account, run, on_step=on_step))
            except Cancelled:
                raise  # Stop ends the whole comparison (the running model is refunded, the rest never start)
            except Exception as exc:
                explained = isinstance(exc, UserError) and str(exc)
                row.error = (str(exc) if explained else f"failed ({type(exc).__name__})") + "; not charged"
                log.log(logging.INFO if explained else logging.ERROR, "compare: %s failed", model, exc_info=not explained)
            else:
                row.files, row.charged, row.preview = output.files, output.charged, output.preview
                row.steps, row.request_id = output.parameters.get("steps"), output.request_id
                if params.figure_id:
                    scores = output.parameters.get("identity_scores")
                    row.identity = IDENTITY_OFF if scores is None else scores[0]
            row.seconds = time.perf_counter() - started
        return CompareOutput(seed, rows, total)

    def _scored(self, account: Account, run, figure_id: str):
        """The run with the figure recorded and every output scored against its canonical face (the figure is checked
        to be the visitor's before anything is reserved)."""
        if self.figures is None:
            raise InvalidRequest("Identity scores in Compare need the figures service.")
        reference = self.figures.reference(account, figure_id)

        def annotate(result: GenerationResult) -> None:
            scores = identity_scores(self.faces, reference.embedding, result.images)
            if scores is not None:
                result.parameters["identity_scores"] = scores
                result.parameters["identity_engine"] = self.faces.name  # dlib or ArcFace: scores of one engine compare

        return replace(run, record={**run.record, "figure_ids": [reference.figure_id]}, annotate=annotate)
