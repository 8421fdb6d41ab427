"""PNG metadata: an A1111-style `parameters` text chunk plus a JSON chunk, written and read back."""
from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image, PngImagePlugin

JSON_KEY = "playground"


def a1111_parameters(params: dict[str, Any], seed: int) -> str:
    lines = [params.get("prompt", "")]
    if params.get("negative_prompt"):
        lines.append(f"Negative prompt: {params['negative_prompt']}")
    fields = [
        ("Steps", params.get("steps")),
        ("Sampler", params.get("sampler")),
        ("CFG scale", params.get("guidance")),
        ("Seed", seed),
        ("Size", f"{params.get('width')}x{params.get('height')}"),
        ("Model", params.get("model")),
    ]
    lines.append(", ".join(f"{k}: {v}" for k, v in fields if v is not None))
    return "\n".join(lines)


def parse_a1111_parameters(text: str) -> dict[str, Any]:
    lines = text.split("\n")
    settings_line = lines[-1] if len(lines) > 1 else ""
    body = lines[:-1] if len(lines) > 1 else lines
    prompt_lines, negative = [], ""
    for line in body:
        if line.startswith("Negative prompt: "):
            negative = line[len("Negative prompt: "):]
        else:
            prompt_lines.append(line)
    out: dict[str, Any] = {"prompt": "\n".join(prompt_lines), "negative_prompt": negative}
    for part in settings_line.split(", "):
        key, _, value = part.partition(": ")
        out[key.strip()] = value.strip()
    if "Size" in out:
        w, _, h = out["Size"].partition("x")
        out["width"], out["height"] = int(w), int(h)
    if "Seed" in out:
        out["seed"] = int(out["Seed"])
    return out


def png_bytes(image: Image.Image, params: dict[str, Any], seed: int) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", a1111_parameters(params, seed))
    record = {k: v for k, v in params.items() if k != "seeds"}
    record["seed"] = seed
    info.add_text(JSON_KEY, json.dumps(record, sort_keys=True, default=str))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def read_png_metadata(path_or_bytes) -> dict[str, Any]:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source, formats=["PNG"]) as image:
        text = dict(getattr(image, "text", {}) or {})
    out: dict[str, Any] = {}
    if "parameters" in text:
        out["parameters"] = parse_a1111_parameters(text["parameters"])
    if JSON_KEY in text:
        out["record"] = json.loads(text[JSON_KEY])
    return out
