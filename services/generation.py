"""Generation requests: validate, run through the registry runtime, store PNGs with their settings."""
from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.registry import ModelEntry, Registry
from pipelines.runtime import PREVIEW_NOTICE, PipelineRuntime
from pipelines.types import GenerationRequest, StepCallback, Task

from .metadata import png_bytes
from .storage import OutputStore

MAX_PROMPT_CHARS = 2000
MAX_COUNT = 8


class InvalidRequest(ValueError):
    """The request cannot run as given; the message says what to change."""


@dataclass(frozen=True)
class TextToImageParams:
    prompt: str
    model: str
    negative_prompt: str = ""
    aspect_ratio: str = "1:1"
    resolution: str = "1K"
    count: int = 1
    seed: int | None = None  # None or negative: random
    steps: int | None = None  # None or 0: the model's default
    guidance: float | None = None  # None or negative: the model's default


@dataclass
class ImageOutput:
    files: list[Path]
    seeds: list[int]
    parameters: dict[str, Any]
    preview: bool
    notice: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        return {
            "seeds": self.seeds,
            "parameters": self.parameters,
            "preview": self.preview,
            "notice": self.notice,
            "files": [str(p) for p in self.files],
        }


class GenerationService:
    def __init__(self, registry: Registry, runtime: PipelineRuntime, store: OutputStore):
        self.registry = registry
        self.runtime = runtime
        self.store = store

    def models(self) -> list[dict[str, Any]]:
        """The registry as JSON, with whether real weights or the offline preview would run."""
        rows = []
        for entry in self.registry:
            row = entry.model_dump(mode="json", exclude={"sizes"})
            row["sizes"] = {r: {t: list(s) for t, s in tiers.items()} for r, tiers in entry.sizes.items()}
            row.update(self.runtime.status(entry))
            rows.append(row)
        return rows

    def build_request(self, params: TextToImageParams, task: Task = Task.TEXT_TO_IMAGE) -> tuple[ModelEntry, GenerationRequest]:
        prompt = (params.prompt or "").strip()
        if not prompt:
            raise InvalidRequest("Write a prompt first: describe what the image should show.")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidRequest(f"The prompt is {len(prompt)} characters; shorten it to {MAX_PROMPT_CHARS} or fewer.")
        entry = self.registry.require(params.model, task)
        width, height = entry.size_for(params.aspect_ratio, params.resolution)
        count = int(params.count)
        if not 1 <= count <= MAX_COUNT:
            raise InvalidRequest(f"Batch size must be between 1 and {MAX_COUNT}, not {count}.")
        seed = params.seed
        if seed is None or int(seed) < 0:
            seed = secrets.randbelow(2**32)
        if int(seed) >= 2**32:
            raise InvalidRequest("Seed must be below 4294967296 (or -1 for random).")
        steps = int(params.steps or 0) or entry.defaults.steps
        if not 1 <= steps <= 200:
            raise InvalidRequest(f"Steps must be between 1 and 200, not {steps}.")
        guidance = params.guidance
        if guidance is None or guidance < 0:
            guidance = entry.defaults.guidance
        request = GenerationRequest(
            prompt=prompt,
            negative_prompt=(params.negative_prompt or "").strip(),
            width=width,
            height=height,
            steps=steps,
            guidance=float(guidance),
            seed=int(seed),
            count=count,
            scheduler=entry.defaults.scheduler,
        )
        return entry, request

    def text_to_image(
        self, params: TextToImageParams, on_step: StepCallback | None = None, cancel: threading.Event | None = None
    ) -> ImageOutput:
        entry, request = self.build_request(params)
        result = self.runtime.run(entry, Task.TEXT_TO_IMAGE, request, on_step=on_step, cancel=cancel)
        parameters = dict(result.parameters, aspect_ratio=params.aspect_ratio, resolution=params.resolution)
        files = [
            self.store.put(png_bytes(image, parameters, seed), ".png")
            for image, seed in zip(result.images, result.seeds)
        ]
        preview = bool(parameters.get("preview"))
        return ImageOutput(files, result.seeds, parameters, preview, PREVIEW_NOTICE if preview else "")
