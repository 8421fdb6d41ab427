"""4K on local models: a 2x upscale stage after a 2K generation, as a tiled image-to-image pass of the same model.

The 2K image is resized to the 4K size (Lanczos), cut into overlapping tiles of about the model's native size, each
tile is refined by the family's own image-to-image runner at a low strength (new detail, same composition), and the
tiles are blended back with linear feathering over the overlaps, so no seam shows. Memory stays that of one tile."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image

from .types import GenerationRequest, GenerationResult, StepCallback


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one side: first at 0, last flush with the end, evenly spread, overlapping >= `overlap`."""
    if length <= tile:
        return [0]
    count = int(np.ceil((length - overlap) / (tile - overlap)))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tile_boxes(width: int, height: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    tw, th = min(tile, width), min(tile, height)
    return [(x, y, x + tw, y + th) for y in tile_starts(height, th, overlap) for x in tile_starts(width, tw, overlap)]


def tile_count(width: int, height: int, tile: int, overlap: int) -> int:
    return len(tile_boxes(width, height, tile, overlap))


def _feather(width: int, height: int, overlap: int) -> np.ndarray:
    """A weight mask rising linearly over `overlap` pixels at every edge (never zero, so a lone tile keeps weight 1)."""
    def ramp(n: int) -> np.ndarray:
        edge = np.minimum(np.arange(n) + 1, np.arange(n)[::-1] + 1).astype(np.float32)
        return np.clip(edge / max(1, overlap), 1e-3, 1.0)

    return (ramp(height)[:, None] * ramp(width)[None, :])[:, :, None]


def run_tiled(runner, pipe, request: GenerationRequest, on_step: StepCallback, cancel) -> GenerationResult:
    """Upscale each of `request.reference_images` to (width, height) through `runner` (a family's image-to-image
    run function) tile by tile; progress is reported over all tiles of all images."""
    assert request.tile is not None
    boxes = tile_boxes(request.width, request.height, request.tile, request.tile_overlap)
    images = list(request.reference_images)
    planned = max(1, request.steps) * max(1, len(images))
    total_tiles = len(boxes) * len(images)
    outputs: list[Image.Image] = []
    parameters: dict = {}
    for image_index, source in enumerate(images):
        big = source.convert("RGB").resize((request.width, request.height), Image.LANCZOS)
        canvas = np.zeros((request.height, request.width, 3), dtype=np.float32)
        weight = np.zeros((request.height, request.width, 1), dtype=np.float32)
        for tile_index, (x0, y0, x1, y1) in enumerate(boxes):
            done_tiles = image_index * len(boxes) + tile_index

            def progress(done: int, steps: int, done_tiles: int = done_tiles) -> None:
                fraction = (done_tiles + done / max(1, steps)) / total_tiles
                on_step(int(fraction * planned), planned)

            crop = big.crop((x0, y0, x1, y1))
            sub = replace(request, width=x1 - x0, height=y1 - y0, reference_images=(crop,), count=1, tile=None,
                          seed=request.seeds()[image_index % request.count])
            result = runner(pipe, sub, progress, cancel)
            refined = result.images[0].convert("RGB")
            if refined.size != crop.size:
                refined = refined.resize(crop.size, Image.LANCZOS)
            mask = _feather(x1 - x0, y1 - y0, request.tile_overlap)
            canvas[y0:y1, x0:x1] += np.asarray(refined, dtype=np.float32) * mask
            weight[y0:y1, x0:x1] += mask
            parameters = result.parameters
        outputs.append(Image.fromarray(np.clip(np.round(canvas / weight), 0, 255).astype(np.uint8)))
    on_step(planned, planned)
    parameters = dict(parameters, width=request.width, height=request.height, count=len(outputs),
                      upscale={"method": "tiled-img2img", "tiles": len(boxes), "tile": request.tile,
                               "overlap": request.tile_overlap, "strength": request.strength})
    return GenerationResult(seeds=request.seeds()[: len(outputs)], parameters=parameters, images=outputs)
