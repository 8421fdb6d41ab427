"""Plans and prices as data (presets/plans.toml): tiers, grants, and the quote for any request."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from pipelines.registry import ModelEntry
from pipelines.types import Task

from ..presets_io import PRESETS_DIR, load_validated

DEFAULT_PLANS = PRESETS_DIR / "plans.toml"

Feature = Literal["adult_prompts", "image_to_video", "video_prompt", "review"]
TASK_IDS = {t.value for t in Task}


class PlansError(ValueError):
    """plans.toml is malformed; the message names the file and the field."""


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str
    starting_grant: int = Field(ge=0)
    unlimited: bool = False
    unlocks: list[Feature] = []
    description: str = ""


class VisitorGrants(BaseModel):
    model_config = ConfigDict(extra="forbid")
    per_ip: int = Field(ge=0)
    window_hours: float = Field(gt=0)


class Prices(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resolution_multiplier: dict[str, int]
    group_per_figure: bool = True
    # registry id -> {"output": credits per output at the model's base tier, task id: override for that task}
    models: dict[str, dict[str, int]]

    @field_validator("resolution_multiplier")
    @classmethod
    def _multipliers(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if v < 1}
        if bad:
            raise ValueError(f"multipliers must be at least 1: {bad}")
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        for model, prices in value.items():
            if "output" not in prices:
                raise ValueError(f"{model!r}: give its price per output as `output = N`")
            for key, price in prices.items():
                if key != "output" and key not in TASK_IDS:
                    raise ValueError(f"{model!r}: unknown task {key!r}; tasks are {sorted(TASK_IDS)}")
                if price < 0:
                    raise ValueError(f"{model!r}: price for {key!r} must not be negative")
        return value

    def unit(self, model_id: str, task: Task) -> int:
        """Credits for one output of `task` on the model at its base tier."""
        prices = self.models.get(model_id)
        if prices is None:
            raise PlansError(f"plans.toml has no price for model {model_id!r}; add it under [prices.models]")
        return prices.get(Task(task).value, prices["output"])

    def multiplier(self, entry: ModelEntry, resolution: str) -> int:
        """The requested tier's multiplier relative to the entry's base tier (its cheapest one): a model offered only
        at 720p is priced at its own figure there."""
        table = self.resolution_multiplier
        if resolution not in table:
            raise PlansError(f"no price multiplier for resolution {resolution!r}")
        offered = [table[t] for tiers in entry.sizes.values() for t in tiers if t in table]
        base = min(offered, default=1)
        return max(1, table[resolution] // base)


class AlbumTerms(BaseModel):
    """Photo albums: the price range an owner may set, and the creator's share of each unlock in whole percent.

    Credits are whole numbers, so the share is integer arithmetic (never a float product): the creator receives
    `price * creator_share_percent // 100`, and the platform account the rest, so the two always add up to the price.
    """

    model_config = ConfigDict(extra="forbid")
    min_price: int = Field(ge=1)
    max_price: int = Field(ge=1)
    creator_share_percent: int = Field(ge=0, le=100)  # of the price; the rest goes to the platform account

    @model_validator(mode="after")
    def _range(self) -> "AlbumTerms":
        if self.max_price < self.min_price:
            raise ValueError("albums: max_price must not be below min_price")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def creator_share(self) -> float:
        """The share as a fraction, for display only (derived from the percent); money uses share_of()."""
        return self.creator_share_percent / 100

    def share_of(self, price: int) -> int:
        """The creator's whole credits of `price` (rounded down; the platform keeps the remainder)."""
        return int(price) * self.creator_share_percent // 100

    def platform_part(self, price: int) -> int:
        return int(price) - self.share_of(price)


class Mode(BaseModel):
    """An image mode's rules, enforced by the service whatever the UI shows."""

    model_config = ConfigDict(extra="forbid")
    label: str
    prompt_style: Literal["tags", "natural"]
    max_batch: int = Field(ge=1, le=8)
    tiers: list[Literal["1K", "2K", "4K"]] = Field(min_length=1)


class SheetTerms(BaseModel):
    """Advanced reference sheets: the model, how many options a sheet holds, and its price in image prices."""

    model_config = ConfigDict(extra="forbid")
    model: str
    options: int = Field(ge=1, le=8)
    first: int = Field(ge=0)
    regenerate: int = Field(ge=0)


class ResearchTerms(BaseModel):
    """Research grids and arenas: how large a grid may be, and the arena's anti-gaming limits."""

    model_config = ConfigDict(extra="forbid")
    grid_max_cells: int = Field(ge=4, le=2000)  # a grid's cells (prompts x models x seeds x settings values)
    grid_max_prompts: int = Field(ge=1, le=500)
    votes_per_day: int = Field(ge=1)  # one voter's arena votes in 24 h
    personal_after: int = Field(ge=1)  # a voter's own leaderboard appears after this many of their votes


class Plans(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tiers: dict[str, Tier]
    visitor_grants: VisitorGrants
    prices: Prices
    albums: AlbumTerms
    modes: dict[Literal["premium", "advanced"], Mode]
    reference_sheets: SheetTerms
    research: ResearchTerms

    @model_validator(mode="after")
    def _required_tiers(self) -> "Plans":
        missing = {"guest", "member", "qa"} - set(self.tiers)
        if missing:
            raise ValueError(f"tiers {sorted(missing)} are required")
        if set(self.modes) != {"premium", "advanced"}:
            raise ValueError("modes: give both [modes.premium] and [modes.advanced]")
        return self

    def tier(self, name: str) -> Tier:
        return self.tiers[name]

    def quote(self, entry: ModelEntry, task: Task, resolution: str, count: int = 1, figures: int = 1) -> "Quote":
        task = Task(task)
        unit = self.prices.unit(entry.id, task)
        # a chat reply is priced per message: no resolution
        multiplier = 1 if task.is_text else self.prices.multiplier(entry, resolution)
        per_output = unit * multiplier * (figures if self.prices.group_per_figure else 1)
        return Quote(entry.id, task.value, unit, multiplier, figures, count, per_output * count)

    def sheet_quote(self, entry: ModelEntry, regenerate: bool) -> "Quote":
        """A reference sheet's price: `first` (or `regenerate`) times the model's image price, for all its options."""
        terms = self.reference_sheets
        times = terms.regenerate if regenerate else terms.first
        unit = self.prices.unit(entry.id, Task.REFERENCE)
        label = "regenerated reference sheet" if regenerate else "reference sheet"
        return Quote(entry.id, Task.REFERENCE.value, unit, times, 1, 1, unit * times,
                     note=f"{unit} (image price) × {times} ({label}, {terms.options} options)")

    def with_prices(self, extra: dict[str, int]) -> "Plans":
        """These plans plus per-output prices for models built in code (benchmarks, tests)."""
        models = dict(self.prices.models, **{model: {"output": price} for model, price in extra.items()})
        return self.model_copy(update={"prices": self.prices.model_copy(update={"models": models})})


@dataclass(frozen=True)
class Quote:
    model: str
    task: str
    unit: int
    multiplier: int
    figures: int
    count: int
    total: int
    note: str = ""  # a breakdown when a request has several paid stages

    @classmethod
    def combined(cls, quotes: list["Quote"], labels: list[str]) -> "Quote":
        """One quote for several paid stages (e.g. a start frame, then the video): the total, with a breakdown."""
        total = sum(q.total for q in quotes)
        final = quotes[-1]
        note = " + ".join(f"{q.total} ({label})" for q, label in zip(quotes, labels))
        return cls(final.model, final.task, total, 1, 1, 1, total, note=note)

    @property
    def per_output(self) -> int:
        return self.total // self.count if self.count else 0

    def text(self) -> str:
        if self.note:
            return f"{self.note} = {self.total} credit{'' if self.total == 1 else 's'}"
        parts = [str(self.unit)]
        if self.multiplier != 1:
            parts.append(f"{self.multiplier} (resolution)")
        if self.figures != 1:
            parts.append(f"{self.figures} figures")
        parts.append(str(self.count))
        return f"{' × '.join(parts)} = {self.total} credit{'' if self.total == 1 else 's'}"

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "task": self.task,
            "unit": self.unit,
            "multiplier": self.multiplier,
            "figures": self.figures,
            "count": self.count,
            "total": self.total,
            "text": self.text(),
        }


def load_plans(path: Path = DEFAULT_PLANS) -> Plans:
    return load_validated(path, Plans, PlansError)
