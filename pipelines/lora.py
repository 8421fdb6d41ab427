"""The LoRA library: deployer-declared LoRA files (presets/loras.toml, validated on load) that a figure pins with a
weight, applied and removed per request through diffusers' peft adapters on the loaded pipeline, never reloading
its base. Several at once where the family's pipeline takes LoRAs (SDXL and FLUX.1 Kontext here)."""
from __future__ import annotations

import contextlib
import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_LORAS = Path(__file__).resolve().parent.parent / "presets" / "loras.toml"
LORA_FAMILIES = frozenset({"sdxl", "flux-kontext"})  # families whose runners apply LoRAs (`run_with_loras`)


class LoraLibraryError(ValueError):
    """loras.toml is malformed; the message names the entry and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraSource(_Strict):
    repo: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    file: str  # the weight file (in the repo, or in `path`)
    path: str | None = None  # a local folder instead of a hub repo

    @model_validator(mode="after")
    def _one(self) -> "LoraSource":
        if (self.repo is None) == (self.path is None):
            raise ValueError("give exactly one of 'repo' (hub id) or 'path' (local folder)")
        return self


class LoraLicence(_Strict):
    name: str
    non_commercial: bool = False
    note: str = ""


class LoraEntry(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")  # also the peft adapter name
    name: str
    kind: Literal["character", "style"]
    family: str
    source: LoraSource
    licence: LoraLicence
    weight: float = Field(default=0.8, ge=0.0, le=2.0)  # the default weight when a figure pins it

    @model_validator(mode="after")
    def _family(self) -> "LoraEntry":
        if self.family not in LORA_FAMILIES:
            raise ValueError(f"family: LoRAs apply to {sorted(LORA_FAMILIES)}, not {self.family!r}")
        return self


class LoraLibrary(_Strict):
    max_per_figure: int = Field(ge=1, le=5)
    loras: tuple[LoraEntry, ...] = ()

    def get(self, lora_id: str) -> LoraEntry:
        for entry in self.loras:
            if entry.id == lora_id:
                return entry
        raise KeyError(lora_id)


@functools.cache
def load_lora_library(path: Path = DEFAULT_LORAS) -> LoraLibrary:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        library = LoraLibrary.model_validate(data)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LoraLibraryError(f"{path}: cannot read: {exc}") from exc
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise LoraLibraryError(f"{path}: {fields}") from None
    ids = [e.id for e in library.loras]
    if len(ids) != len(set(ids)):
        raise LoraLibraryError(f"{path}: duplicate LoRA ids")
    return library


@dataclass(frozen=True)
class LoraUse:
    """One LoRA for one request: the adapter name, where its weights are, and the weight it runs at."""

    name: str
    weight: float
    folder: str | None = None  # filled by the runtime (the weights' folder and file)
    weight_name: str | None = None


def _loaded(pipe: Any) -> set[str]:
    adapters = pipe.get_list_adapters() if hasattr(pipe, "get_list_adapters") else {}
    return {name for names in adapters.values() for name in names}


@contextlib.contextmanager
def applied(pipe: Any, loras: tuple[LoraUse, ...]) -> Iterator[list[dict[str, Any]]]:
    """The request's LoRAs active on the pipeline for the duration, then off again (the base output exactly):
    adapters load once per pipeline (kept, disabled between requests) and are mixed with set_adapters."""
    if not loras:
        if _loaded(pipe):
            pipe.disable_lora()  # another request left adapters loaded: they stay off
        yield []
        return
    present = _loaded(pipe)
    for lora in loras:
        if lora.name not in present:
            pipe.load_lora_weights(lora.folder, weight_name=lora.weight_name, adapter_name=lora.name)
            if lora.name not in _loaded(pipe):  # an unrecognised key layout loads nothing, with only a warning
                raise RuntimeError(f"LoRA {lora.name!r} ({lora.weight_name}) loaded no adapter: its keys match no layer")
    pipe.enable_lora()
    pipe.set_adapters([lora.name for lora in loras], adapter_weights=[float(lora.weight) for lora in loras])
    try:
        yield [{"lora": lora.name, "weight": lora.weight} for lora in loras]
    finally:
        pipe.disable_lora()


def run_with_loras(pipe: Any, request: Any, run: Any) -> Any:
    """A family runner's body with the request's LoRAs active, then off; the result records which ran at what weight."""
    with applied(pipe, request.loras) as used:
        result = run()
    if used:
        result.parameters["loras"] = used
    return result
