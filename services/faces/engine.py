"""Face analysis for identity: detect the main face and embed it (insightface FaceAnalysis from a local
pack folder, PLAYGROUND_FACE_PACK). Real packs (e.g. buffalo_l) are non-commercial research licences and
are never downloaded by this app; without a pack, identity features are off and the app says so."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PIL import Image


def face_analysis(pack_dir: Path, det_size: tuple[int, int] = (640, 640)):
    """Return a prepared CPU ``insightface.app.FaceAnalysis`` for the pack at ``pack_dir``.

    It loads only the detection and recognition modules. The pack folder is
    passed as an absolute path: insightface 2.x uses an existing folder
    directly, and older versions join it onto ``root/models``, which also gives
    back the absolute path. Either way the folder exists, so insightface never
    reaches its download code.
    """
    pack = Path(pack_dir).expanduser().resolve()
    if not pack.is_dir() or not any(pack.glob("*.onnx")):
        raise FileNotFoundError(f"no insightface model pack (*.onnx files) at {pack}")
    from insightface.app import FaceAnalysis

    app = FaceAnalysis(
        name=str(pack),
        root=str(pack.parent.parent),
        allowed_modules=["detection", "recognition"],
        providers=["CPUExecutionProvider"],
    )
    app.prepare(ctx_id=-1, det_size=tuple(det_size))
    return app


class FaceEngine:
    def __init__(self, pack_dir: Path, det_size: tuple[int, int] = (640, 640)):
        self.pack_dir = Path(pack_dir)
        self.det_size = det_size
        self.name = f"insightface:{self.pack_dir.name}"
        self._app = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._app is None:
                self._app = face_analysis(self.pack_dir, self.det_size)
        return self._app

    def faces(self, image: Image.Image) -> list:
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        return self._load().get(bgr)

    def main_face(self, image: Image.Image):
        """The largest face insightface finds (its bbox, kps, embedding), or None."""
        found = self.faces(image)
        if not found:
            return None
        return max(found, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))

    def embed(self, image: Image.Image) -> list[float] | None:
        """The normalised embedding of the largest face, or None when no face is found."""
        face = self.main_face(image)
        return None if face is None else _normed(face)

    def keypoints(self, image: Image.Image) -> list[tuple[float, float]] | None:
        """The largest face's five keypoints (eyes, nose, mouth corners) in pixels, or None."""
        face = self.main_face(image)
        return None if face is None else [(float(x), float(y)) for x, y in np.asarray(face.kps)[:5]]

    def aligned_crop(self, image: Image.Image, size: int = 224) -> Image.Image | None:
        """The largest face aligned on its keypoints to the ArcFace template (insightface's norm_crop), as FaceID
        Plus v2 feeds its image encoder; None when no face is found."""
        face = self.main_face(image)
        if face is None:
            return None
        from insightface.utils import face_align

        rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
        return Image.fromarray(face_align.norm_crop(rgb, landmark=np.asarray(face.kps), image_size=size))

    def detect(self, image: Image.Image) -> list[tuple[list[int], list[float]]]:
        """Every face found: (box [x0, y0, x1, y1] in pixels, normalised embedding)."""
        return [([int(round(float(v))) for v in face.bbox[:4]], _normed(face)) for face in self.faces(image)]

    def embed_path(self, path: Path) -> list[float] | None:
        with Image.open(path) as image:
            return self.embed(image)


def _normed(face) -> list[float]:
    vector = np.asarray(face.normed_embedding if getattr(face, "normed_embedding", None) is not None else face.embedding, dtype=np.float32)
    vector = vector / (np.linalg.norm(vector) or 1.0)
    return [float(x) for x in vector]


def similarity(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two embeddings, in [-1, 1]."""
    va, vb = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return float(np.dot(va, vb) / ((np.linalg.norm(va) * np.linalg.norm(vb)) or 1.0))
