"""presets/projects.toml as a validated model: card settings, model classes per task, limits."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.types import Task

from ..presets_io import PRESETS_DIR, load_validated

DEFAULT_FILE = PRESETS_DIR / "projects.toml"
CLASS_TASKS = (Task.TEXT_TO_IMAGE, Task.REFERENCE, Task.MULTI_REFERENCE)


class ProjectsFileError(ValueError):
    """presets/projects.toml is malformed; the message names the field."""


class ModelClass(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    label: str
    text_to_image: str = Field(alias="text-to-image")
    reference: str
    multi_reference: str = Field(alias="multi-reference")

    def model_for(self, task: Task) -> str:
        return {Task.TEXT_TO_IMAGE: self.text_to_image, Task.REFERENCE: self.reference,
                Task.MULTI_REFERENCE: self.multi_reference}[task]


class ProjectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_generating: int = Field(ge=1, le=20)
    search_min: int = Field(ge=1, le=10)
    feed_page: int = Field(ge=1, le=500)
    resolutions: tuple[str, ...] = Field(min_length=1)
    aspect_ratios: tuple[str, ...] = Field(min_length=1)
    counts: tuple[int, ...] = Field(min_length=1)
    ref_kinds: tuple[str, ...] = Field(min_length=1)
    over_cap: Literal["rank", "refuse"]
    model_classes: dict[str, ModelClass] = Field(min_length=1)

    @model_validator(mode="after")
    def _counts(self) -> "ProjectSettings":
        if any(c < 1 for c in self.counts) or max(self.counts) > self.max_generating:
            raise ValueError(f"counts: each from 1 to max_generating ({self.max_generating})")
        return self

    def check(self, registry) -> None:
        """Every class names, per task, a registry model that offers it (start-up refuses a bad file)."""
        for name, klass in self.model_classes.items():
            for task in CLASS_TASKS:
                model = klass.model_for(task)
                if model not in registry.ids() or task not in registry.get(model).tasks:
                    raise ProjectsFileError(f"{DEFAULT_FILE}: model_classes.{name}.{task.value}: {model!r} is not a "
                                            f"registry model that offers {task.value}")

    def default_settings(self) -> dict:
        return {"resolution": self.resolutions[0], "aspect_ratio": self.aspect_ratios[0],
                "model_class": next(iter(self.model_classes)), "count": self.counts[0]}


def load_project_settings(path: Path = DEFAULT_FILE) -> ProjectSettings:
    return load_validated(path, ProjectSettings, ProjectsFileError)
