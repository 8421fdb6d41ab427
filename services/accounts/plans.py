"""Plans and prices as data (presets/plans.toml): tiers, grants, and the quote for any request."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    tasks: dict[str, int] = {}
    group_per_figure: bool = True
    models: dict[str, dict[str, int]] = {}

    @field_validator("resolution_multiplier")
    @classmethod
    def _multipliers(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if v < 1}
        if bad:
            raise ValueError(f"multipliers must be at least 1: {bad}")
        return value

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, value: dict[str, int]) -> dict[str, int]:
        for task, price in value.items():
            if task not in TASK_IDS:
                raise ValueError(f"unknown task {task!r}; tasks are {sorted(TASK_IDS)}")
            if price < 0:
                raise ValueError(f"price for {task!r} must not be negative")
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        for model, per_task in value.items():
            cls._tasks(per_task)
        return value


class AlbumTerms(BaseModel):
    """Photo albums: the price range an owner may set, and the creator's share of each unlock."""

    model_config = ConfigDict(extra="forbid")
    min_price: int = Field(ge=1)
    max_price: int = Field(ge=1)
    creator_share: float = Field(ge=0, le=1)  # of the price; the rest stays with the platform

    @model_validator(mode="after")
    def _range(self) -> "AlbumTerms":
        if self.max_price < self.min_price:
            raise ValueError("albums: max_price must not be below min_price")
        return self

    def share_of(self, price: int) -> int:
        return int(price * self.creator_share)  # whole credits, rounded down


class Plans(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tiers: dict[str, Tier]
    visitor_grants: VisitorGrants
    prices: Prices
    albums: AlbumTerms

    @model_validator(mode="after")
    def _required_tiers(self) -> "Plans":
        missing = {"guest", "member", "qa"} - set(self.tiers)
        if missing:
            raise ValueError(f"tiers {sorted(missing)} are required")
        return self

    def tier(self, name: str) -> Tier:
        return self.tiers[name]

    def quote(self, entry: ModelEntry, task: Task, resolution: str, count: int = 1, figures: int = 1) -> "Quote":
        task = Task(task)
        if resolution not in self.prices.resolution_multiplier:
            raise PlansError(f"no price multiplier for resolution {resolution!r}")
        unit = self.prices.models.get(entry.id, {}).get(task.value)
        if unit is None:
            unit = self.prices.tasks.get(task.value, entry.price)
        multiplier = self.prices.resolution_multiplier[resolution]
        per_output = unit * multiplier * (figures if self.prices.group_per_figure else 1)
        return Quote(entry.id, task.value, unit, multiplier, figures, count, per_output * count)


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
