"""Application settings from the command line and the environment."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.registry import DEFAULT_REGISTRY
from pipelines.runtime import RuntimeSettings


def default_data_dir() -> Path:
    # Hugging Face Spaces mount persistent storage at /data.
    env = os.environ.get("PLAYGROUND_DATA_DIR")
    if env:
        return Path(env)
    return Path("/data") if Path("/data").is_dir() and os.access("/data", os.W_OK) else Path("data")


def _flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class AppSettings:
    data_dir: Path = field(default_factory=default_data_dir)
    registry_path: Path = DEFAULT_REGISTRY
    preview: str = "auto"  # auto | force | forbid
    allow_downloads: bool | None = None
    device: str | None = None
    dtype: str | None = None
    cache_budget_gb: float | None = None
    max_file_size: str = "10mb"

    @classmethod
    def from_env(cls, **overrides) -> "AppSettings":
        values: dict = {}
        if os.environ.get("PLAYGROUND_PREVIEW"):
            values["preview"] = os.environ["PLAYGROUND_PREVIEW"]
        if _flag("PLAYGROUND_ALLOW_DOWNLOADS") is not None:
            values["allow_downloads"] = _flag("PLAYGROUND_ALLOW_DOWNLOADS")
        for key, env in (("device", "PLAYGROUND_DEVICE"), ("dtype", "PLAYGROUND_DTYPE")):
            if os.environ.get(env):
                values[key] = os.environ[env]
        if os.environ.get("PLAYGROUND_CACHE_GB"):
            values["cache_budget_gb"] = float(os.environ["PLAYGROUND_CACHE_GB"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        return cls(**values)

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def tiny_root(self) -> Path:
        return Path(os.environ.get("PLAYGROUND_TINY_DIR") or self.data_dir / "tiny-models")

    def runtime_settings(self) -> RuntimeSettings:
        budget = int(self.cache_budget_gb * 2**30) if self.cache_budget_gb else None
        return RuntimeSettings(
            tiny_root=self.tiny_root,
            preview=self.preview,  # type: ignore[arg-type]
            allow_downloads=self.allow_downloads,
            device=self.device,
            dtype=self.dtype,
            cache_budget_bytes=budget,
        )
