"""Load a presets/*.toml file into its pydantic model; errors name the file and every bad field."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"


def load_validated(path: Path, model: type[M], error: type[Exception]) -> M:
    path = Path(path)
    try:
        return model.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise error(f"{path}: {problems}") from exc
