"""Every preset as QA cases, loaded one entry at a time so a broken entry is named and the rest still run.

One function per family (figures, images, video, loras, models) returns `Case`s: a name (`family/table/key`), the kind,
the fragment the preset must put into the prompt, and how to run it (`how`: which surface and with what). An entry
that fails validation becomes a case with `error` set (it fails without running); a file that cannot be read at all
becomes one failing case named after the file.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from ..creation.figure_presets import OPTION_KINDS, Archetype, FigurePresets, Option, StyleRegister
from ..creation.image_presets import Fragment, ImagePresets, Scene
from ..creation.video import Preset, VideoPresets
from ..presets_io import PRESETS_DIR

FAMILIES = ("figures", "images", "video", "loras", "models")


@dataclass
class Case:
    name: str  # family/table/key, unique within a run
    family: str
    kind: str  # archetype, option, style, tag, outfit, action, scene, video-action, ..., lora, model, sheet, limits
    fragment: str = ""  # what the composed prompt must contain
    how: dict[str, Any] = field(default_factory=dict)  # the surface and its arguments (see services.qa.run)
    error: str = ""  # a load error: the case fails without running
    skip: str = ""  # why the case is not run (e.g. a remote model without its key)


@dataclass
class Loaded:
    """A family's valid presets as the surface's own model, and a case for every entry that did not load."""

    value: Any
    broken: list[Case]


def _messages(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}" for e in exc.errors())
    return str(exc)


def read_toml(path: Path, family: str) -> tuple[dict[str, Any] | None, list[Case]]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8")), []
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return None, [Case(f"{family}/{Path(path).name}", family, "file", error=f"{path}: cannot load: {exc}")]


def _table(data: dict, table: str, model: type[BaseModel], family: str, kind: str, broken: list[Case],
           check: Callable[[str, Any], str] | None = None) -> dict[str, Any]:
    """The valid entries of one table; each invalid one becomes a failing case naming the entry and field."""
    good = {}
    for key, raw in (data.get(table) or {}).items():
        try:
            value = model.model_validate(raw)
            problem = check(key, value) if check else ""
            if problem:
                raise ValueError(problem)
            good[key] = raw
        except (ValidationError, ValueError, TypeError) as exc:
            broken.append(Case(f"{family}/{table}/{key}", family, kind, error=f"{table}.{key}: {_messages(exc)}"))
    return good


def load_figures(presets_dir: Path, known_models: set[str]) -> Loaded:
    data, broken = read_toml(presets_dir / "figures.toml", "figures")
    if data is None:
        return Loaded(None, broken)

    def models_known(key: str, style: StyleRegister) -> str:
        unknown = [m for m in style.models if m not in known_models]
        return f"models {unknown} are not in the model registry" if unknown else ""

    styles = _table(data, "styles", StyleRegister, "figures", "style", broken, models_known)
    options = {kind: _table(data.get("options") or {}, kind, Option, "figures", "option", [])
               for kind in (data.get("options") or {})}
    for kind, table in (data.get("options") or {}).items():  # name broken options as options.<kind>/<key>
        for key, raw in table.items():
            if key not in options.get(kind, {}):
                try:
                    Option.model_validate(raw)
                    reason = f"options.{kind} is not a picker kind ({list(OPTION_KINDS)})"
                except ValidationError as exc:
                    reason = _messages(exc)
                broken.append(Case(f"figures/options.{kind}/{key}", "figures", "option", error=f"options.{kind}.{key}: {reason}"))
        if kind not in OPTION_KINDS:
            options.pop(kind, None)

    def archetype_ok(key: str, arch: Archetype) -> str:
        if arch.style not in styles:
            return f"style {arch.style!r} is not a (valid) style register"
        bad = [f"{k}={v!r}" for k, v in arch.defaults.items() if k not in options or v not in options[k]]
        return f"defaults {bad} are not options" if bad else ""

    archetypes = _table(data, "archetypes", Archetype, "figures", "archetype", broken, archetype_ok)
    return Loaded(_whole(FigurePresets, {"archetypes": archetypes, "options": options, "styles": styles}, "figures",
                         "figures.toml", broken), broken)


def _whole(model, values: dict, family: str, file: str, broken: list):
    """The file's presets validated as a whole (None, with the file named among the broken cases, when they fail)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        broken.append(Case(f"{family}/{file}", family, "file", error=f"{file}: {_messages(exc)}"))
        return None


def load_images(presets_dir: Path) -> Loaded:
    data, broken = read_toml(presets_dir / "image_presets.toml", "images")
    if data is None:
        return Loaded(None, broken)
    tags = {}
    for category, chips in (data.get("tags") or {}).items():
        if isinstance(chips, list) and all(isinstance(c, str) and c.strip() for c in chips):
            tags[category] = chips
        else:
            broken.append(Case(f"images/tags/{category}", "images", "tag", error=f"tags.{category}: a list of non-empty strings"))
    libraries = {table: _table(data, table, Scene if table == "scenes" else Fragment, "images", table[:-1], broken)
                 for table in ("outfits", "actions", "scenes")}
    return Loaded(_whole(ImagePresets, {"tags": tags, **libraries}, "images", "image_presets.toml", broken), broken)


def load_video(presets_dir: Path, known_models: set[str]) -> Loaded:
    data, broken = read_toml(presets_dir / "video.toml", "video")
    if data is None:
        return Loaded(None, broken)
    tables = {table: _table(data, table, Preset, "video", table[:-1], broken) for table in ("actions", "backgrounds", "outfits")}
    defaults = dict(data.get("defaults") or {})
    for key in ("figure_model", "start_frame_model"):
        if defaults.get(key) not in known_models:
            broken.append(Case(f"video/defaults/{key}", "video", "defaults",
                               error=f"defaults.{key}: {defaults.get(key)!r} is not in the model registry"))
    value = _whole(VideoPresets, {"defaults": defaults, "talking": data.get("talking"), **tables}, "video", "video.toml", broken)
    if any(c.name.startswith("video/defaults/") for c in broken):
        value = None
    return Loaded(value, broken)


def load_loras(presets_dir: Path) -> Loaded:
    from pipelines.lora import LoraEntry, LoraLibrary

    data, broken = read_toml(presets_dir / "loras.toml", "loras")
    if data is None:
        return Loaded(None, broken)
    good = []
    for index, raw in enumerate(data.get("loras") or []):
        name = raw.get("id", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
        try:
            good.append(LoraEntry.model_validate(raw))
        except ValidationError as exc:
            broken.append(Case(f"loras/{name}", "loras", "lora", error=f"loras[{index}] ({name}): {_messages(exc)}"))
    try:
        value = LoraLibrary(max_per_figure=data.get("max_per_figure", 3), loras=tuple(good))
    except ValidationError as exc:
        broken.append(Case("loras/loras.toml", "loras", "file", error=f"loras.toml: {_messages(exc)}"))
        value = None
    return Loaded(value, broken)


def figure_cases(loaded: Loaded, model: str) -> list[Case]:
    presets: FigurePresets | None = loaded.value
    cases = list(loaded.broken)
    if presets is None:
        return cases

    def case(name: str, kind: str, choices: dict[str, str], fragment: str) -> Case:
        return Case(f"figures/{name}", "figures", kind, fragment, {"surface": "figure", "choices": choices, "model": model})

    for key, arch in presets.archetypes.items():
        cases.append(case(f"archetypes/{key}", "archetype", {"archetype": key}, f"portrait of an adult {arch.noun}"))
    for kind in OPTION_KINDS:
        for key, option in presets.options[kind].items():
            cases.append(case(f"options.{kind}/{key}", "option", {"archetype": "custom", kind: key}, option.phrase))
    for key, style in presets.styles.items():
        cases.append(case(f"styles/{key}", "style", {"archetype": "custom", "style": key}, style.positive))
    return cases


def image_cases(loaded: Loaded, model: str) -> list[Case]:
    presets: ImagePresets | None = loaded.value
    cases = list(loaded.broken)
    if presets is None:
        return cases
    for category, chips in presets.tags.items():
        for chip in chips:
            cases.append(Case(f"images/tags.{category}/{chip}", "images", "tag", chip, {"surface": "text", "fragment": chip, "model": model}))
    for table in ("outfits", "actions", "scenes"):
        for key, preset in getattr(presets, table).items():
            cases.append(Case(f"images/{table}/{key}", "images", table[:-1], preset.fragment,
                              {"surface": "text", "fragment": preset.fragment, "model": model}))
    return cases


def video_cases(loaded: Loaded) -> list[Case]:
    presets: VideoPresets | None = loaded.value
    cases = list(loaded.broken)
    if presets is None:
        return cases
    first_action = next(iter(presets.actions))
    for key, preset in presets.actions.items():
        cases.append(Case(f"video/actions/{key}", "video", "video-action", preset.prompt, {"surface": "video", "action": key}))
    for table in ("backgrounds", "outfits"):
        for key, preset in getattr(presets, table).items():
            cases.append(Case(f"video/{table}/{key}", "video", f"video-{table[:-1]}", preset.prompt,
                              {"surface": "video", "action": first_action, table[:-1]: key}))
    return cases


def lora_cases(loaded: Loaded) -> list[Case]:
    cases = list(loaded.broken)
    if loaded.value is not None:
        for entry in loaded.value.loras:
            cases.append(Case(f"loras/{entry.id}", "loras", "lora", "", {"surface": "lora", "lora": entry.id, "family": entry.family}))
    return cases


def model_cases(catalogue: Any, remote_ready: Callable[[Any], str]) -> list[Case]:
    """Every registry entry's defaults at each tier it offers (its first aspect ratio); remote ones without a key are skipped."""
    cases = []
    for entry in catalogue.entries():
        if entry.is_chat:  # language models have no sizes; the chat tests cover them (not a QA case yet)
            continue
        ratio = catalogue.ratios(entry)[0]
        task = entry.tasks[0]
        for tier in catalogue.tiers(entry, ratio):
            case = Case(f"models/{entry.id}/{tier}", "models", "model", "", {"surface": "model", "model": entry.id, "task": str(getattr(task, "value", task)), "ratio": ratio, "tier": tier})
            if entry.is_remote:
                case.skip = remote_ready(entry) or ""
            cases.append(case)
    return cases


def extra_cases(presets_dir: Path) -> list[Case]:
    """The reference-sheet settings (plans.toml) and the character limits (characters.toml)."""
    from ..creation.characters import load_character_limits

    cases = [Case("figures/reference-sheet", "figures", "sheet", "", {"surface": "sheet"})]
    limits = Case("figures/character-limits", "figures", "limits", "", {"surface": "limits"})
    try:
        load_character_limits(presets_dir / "characters.toml")
    except Exception as exc:  # noqa: BLE001 - the loader's own message names the field
        limits.error = f"characters.toml: {exc}"
    return cases + [limits]


DEFAULT_PRESETS_DIR = PRESETS_DIR
