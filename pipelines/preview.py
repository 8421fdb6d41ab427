"""The offline preview: what its outputs are called, a request shrunk to a tiny model's scale, and the atomic build of a
tiny variant's folder."""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from .family import Family
from .registry import ModelEntry
from .types import GenerationRequest, Task

log = logging.getLogger(__name__)

PREVIEW_NOTICE = "offline preview: outputs are noise"
PREVIEW_TEXT_NOTICE = "offline preview: replies are noise (a tiny random language model)"


def preview_notice(entry: ModelEntry) -> str:
    """What the offline preview of this entry makes: noise images, or noise text for a language model."""
    return PREVIEW_TEXT_NOTICE if Task.CHAT in entry.tasks else PREVIEW_NOTICE


def preview_request(family: Family, request: GenerationRequest) -> GenerationRequest:
    """Shrink a request to the tiny model's scale, keeping its aspect ratio (outputs are resized back)."""
    if request.messages:
        return request  # a conversation has no pixels to shrink
    m = family.size_multiple
    scale = family.preview_side / max(request.width, request.height)
    width = max(m, round(request.width * scale / m) * m)
    height = max(m, round(request.height * scale / m) * m)
    frames = request.num_frames
    if frames is not None:
        frames = min(frames, family.preview_frames)
    # Edit pipelines resize references to ~1 MP before their VAE; the tiny preview caps that area.
    area = family.preview_side**2 if family.takes_option("max_reference_area") else None
    tile = None if request.tile is None else max(m, round(request.tile * scale / m) * m)
    overlap = max(0, round(request.tile_overlap * scale))
    return replace(request, width=width, height=height, num_frames=frames, max_reference_area=area, tile=tile, tile_overlap=overlap)


def build_tiny(family: Family, variant: str, folder: Path) -> Path:
    """Build a tiny variant into `folder` atomically (a half-written folder is never seen as ready)."""
    builder = family.tiny_builders[variant]
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{variant}-", dir=folder.parent))
    try:
        builder(staging)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("built tiny %s preview model in %s", variant, folder)
    return folder
