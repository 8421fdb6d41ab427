"""Request bodies from templates and values out of answers, for the data-driven vendors (presets/providers.toml)."""
from __future__ import annotations

import re
from typing import Any

_WHOLE = re.compile(r"^\{([a-z_]+)\}$")
_MISSING = object()


def fill(template: Any, values: dict[str, Any]) -> Any:
    """The template with its placeholders filled. "{name}" alone keeps the value's type and is dropped when the value
    is None or empty; {each = "images", item = {...}} in a list repeats item per element of values["images_items"]."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            filled = fill(value, values)
            if filled is not _MISSING:
                out[key] = filled
        return out
    if isinstance(template, list):
        out_list = []
        for item in template:
            if isinstance(item, dict) and set(item) == {"each", "item"}:
                for element in values.get(f"{item['each']}_items", ()):
                    out_list.append(fill(item["item"], {**values, **element}))
                continue
            filled = fill(item, values)
            if filled is not _MISSING:
                out_list.append(filled)
        return out_list
    if isinstance(template, str):
        whole = _WHOLE.match(template)
        if whole:
            value = values.get(whole.group(1))
            return _MISSING if value in (None, "", [], ()) else value
        return template.format(**values)
    return template


def dig(data: Any, path: str) -> Any:
    """The value at a dotted path ("images.0.url"); "*" takes the first element where the rest of the path exists.
    Raises KeyError naming the path when it is absent."""
    found = _dig(data, path.split("."))
    if found is _MISSING:
        raise KeyError(path)
    return found


def _dig(data: Any, parts: list[str]) -> Any:
    if not parts:
        return data
    head, rest = parts[0], parts[1:]
    if head == "*":
        items = data if isinstance(data, list) else list(data.values()) if isinstance(data, dict) else []
        for item in items:
            found = _dig(item, rest)
            if found is not _MISSING:
                return found
        return _MISSING
    if isinstance(data, list):
        if not head.isdigit() or int(head) >= len(data):
            return _MISSING
        return _dig(data[int(head)], rest)
    if isinstance(data, dict) and head in data:
        return _dig(data[head], rest)
    return _MISSING
