"""Identity scores people can trust: per output, the face engine's similarity between a face in it and the figure's
canonical face (ArcFace: cosine; dlib: 1 - Euclidean distance; see engine.py), with the face that was matched. One
figure: the best-matching face, flagged when the image holds several. A group: faces are assigned to figures by the
best total match (every assignment is tried; groups have at most 3 figures), one score per figure, "no face found"
for a figure left without a face, "no face in the figure's image" for a figure whose canonical image has none, and
"embedded by another face engine" for a figure embedded before the engine changed (a 128-d dlib descriptor is never
compared with a 512-d ArcFace embedding)."""
from __future__ import annotations

import itertools
from typing import Any

from PIL import Image

from .engine import FaceEngine, similarity

NO_FACE = "no face found"
SEVERAL = "several faces"
NO_REFERENCE = "no face in the figure's image"
OTHER_ENGINE = "embedded by another face engine"


def _similarity(faces) -> Any:
    return getattr(faces, "similarity", similarity)


def single_score(faces: FaceEngine, reference: list[float], image: Image.Image) -> float | str | dict[str, Any]:
    """A score when the image holds one face; "no face found"; or, with several faces, the best match flagged."""
    found = faces.detect(image)
    if not found:
        return NO_FACE
    if len(found[0][1]) != len(reference):
        return OTHER_ENGINE
    score = _similarity(faces)
    scored = [(round(score(reference, emb), 4), box) for box, emb in found]
    best, box = max(scored, key=lambda item: item[0])
    if len(found) == 1:
        return best
    return {"note": SEVERAL, "faces": len(found), "score": best, "face": box}


def group_scores(faces: FaceEngine, references: dict[str, list[float] | None], image: Image.Image) -> dict[str, Any]:
    """{"faces": n, "scores": {figure_id: score | "no face found" | ...}, "boxes": {figure_id: box}} for one image."""
    found = faces.detect(image)
    size = len(found[0][1]) if found else None
    ids = [f for f, emb in references.items() if emb is not None and (size is None or len(emb) == size)]
    score = _similarity(faces)
    matrix = {(f, j): score(references[f], emb) for f in ids for j, (_, emb) in enumerate(found)}
    best: tuple[float, tuple[tuple[str, int], ...]] = (float("-inf"), ())
    slots = min(len(ids), len(found))
    for chosen in itertools.permutations(range(len(found)), slots):
        for figures in itertools.permutations(ids, slots):
            pairs = tuple(zip(figures, chosen))
            total = sum(matrix[p] for p in pairs)
            if total > best[0]:
                best = (total, pairs)
    matched = dict(best[1])
    scores: dict[str, Any] = {f: NO_FACE if emb is not None and f in ids else NO_REFERENCE if emb is None else OTHER_ENGINE
                              for f, emb in references.items()}
    boxes: dict[str, list[int]] = {}
    for figure_id, face in matched.items():
        scores[figure_id] = round(matrix[(figure_id, face)], 4)
        boxes[figure_id] = found[face][0]
    return {"faces": len(found), "scores": scores, "boxes": boxes}
