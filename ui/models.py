"""How every model picker labels a model, the same way everywhere: its name, its price per output (or "needs a
provider key" and no price when this deployment cannot run it), then what the visitor should know: runs through an
API, offline preview, non-commercial licence, region-restricted."""
from __future__ import annotations

from typing import Callable, Iterable

from services.catalogue import Task
from services.container import Services

UNITS = {Task.TEXT_TO_IMAGE: "image", Task.EDIT: "edit", Task.REFERENCE: "image", Task.IMAGE_TO_IMAGE: "image",
         Task.MULTI_REFERENCE: "figure", Task.IMAGE_TO_VIDEO: "video", Task.TEXT_TO_VIDEO: "video"}
NEEDS_KEY = "needs a provider key"


def needs_key(services: Services, entry) -> bool:
    """An API-only model this deployment has no key for: shown, never priced as runnable."""
    return entry.is_remote and not services.catalogue.status(entry).get("runnable")


def model_label(services: Services, entry, task: Task, unit: str | None = None, how: str = "") -> str:
    status = services.catalogue.status(entry)
    parts = [entry.name]
    if needs_key(services, entry):
        parts.append(NEEDS_KEY)
    else:
        price = services.catalogue.unit_price(entry, task)
        parts.append(f"{price} credit{'s' if price != 1 else ''}/{unit or UNITS.get(task, 'output')}")
        if entry.is_remote:
            parts.append("API")
        elif status.get("preview"):
            parts.append("offline preview")
    if how:
        parts.append(how)
    if entry.licence.non_commercial:
        parts.append("non-commercial")
    if entry.licence.region_restricted:
        parts.append("region-restricted")
    return " · ".join(parts)


def model_choices(services: Services, entries: Iterable, task: Task, unit: str | None = None,
                  how: Callable[[object], str] = lambda entry: "") -> list[tuple[str, str]]:
    return [(model_label(services, e, task, unit, how(e)), e.id) for e in entries]


def key_note(services: Services, entry) -> str | None:
    """The price line for a model this deployment cannot run, or None when it can."""
    if not needs_key(services, entry):
        return None
    return (f"**{entry.name} needs a provider key** that this deployment does not have, so it cannot run here; "
            "pick another model (the deployer can add the key in the Space settings).")
