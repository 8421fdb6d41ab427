"""Face analysis for identity: detect the main face and embed it.

- DlibFaceEngine (the default, requirements.txt): dlib's HOG frontal-face detector, its 5-point landmarks and its
  ResNet recogniser (128-d), from the CC0 model files of `face-recognition-models`, run by `dlib-bin`. It scores
  likeness (figures' embeddings, Remix, Compare and group identity scores); it cannot drive FaceID, FaceID Plus v2 or
  InstantID, which take ArcFace embeddings (and InstantID/Plus v2 insightface's 5 keypoints incl. mouth corners).
- FaceEngine: insightface FaceAnalysis (ArcFace, 512-d) from a local pack folder, PLAYGROUND_FACE_PACK; used instead
  of dlib wherever a pack is configured. Real packs (e.g. buffalo_l) are non-commercial research licences and are
  never downloaded by this app.

Identity scores (`engine.similarity`): ArcFace is the cosine of the two embeddings; dlib is 1 - the Euclidean
distance of its descriptors (dlib's own metric), so dlib's same-person line (distance 0.6) is a score of 0.4 and
both engines read "higher is likelier the same person" on a similar range. The engine's name is recorded with the
scores; scores of different engines are not compared with each other.
"""
from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
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
    arcface = True  # its embeddings drive the FaceID / Plus v2 / InstantID adapters

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

    @staticmethod
    def similarity(a: list[float], b: list[float]) -> float:
        return similarity(a, b)


@dataclass(frozen=True)
class DlibFace:
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 in the image's pixels
    score: float  # the HOG detector's confidence
    landmarks: tuple[tuple[float, float], ...]  # dlib's 5 points: two corners of each eye, the base of the nose
    embedding: tuple[float, ...]  # dlib's 128-d descriptor, as computed (not normalised: dlib compares distances)


class DlibFaceEngine:
    """dlib's HOG detector + 5-point landmarks + ResNet recogniser from face_recognition_models' CC0 files.

    Never its 68-point predictor (that file ships in the same package, but iBUG 300-W, its training data, is
    non-commercial). HOG rather than the package's mmod CNN detector: the CNN takes seconds per image on CPU.
    One set of models per process, shared by every engine; dlib calls run one at a time."""

    arcface = False
    name = "dlib:resnet128"
    SAME_PERSON_DISTANCE = 0.6  # dlib's threshold: below it, the same person (99.38% on LFW)
    MIN_DETECTION = 0.15  # HOG confidence kept: above the astronaut's shoulder patch, below the group photo's faces
    MAX_SIDE = 1024  # detection runs on a copy at most this large; faces the detector misses here are under ~40 px
    FILES = {"shape": "shape_predictor_5_face_landmarks.dat", "recogniser": "dlib_face_recognition_resnet_model_v1.dat"}
    _models = None
    _lock = threading.Lock()

    @staticmethod
    def model_dir() -> Path | None:
        """face_recognition_models' folder of .dat files, found without importing the package (its __init__ imports
        pkg_resources, which current setuptools no longer has)."""
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations))) / "models"

    @classmethod
    def available(cls) -> bool:
        if importlib.util.find_spec("dlib") is None:
            return False
        folder = cls.model_dir()
        return folder is not None and all((folder / f).is_file() for f in cls.FILES.values())

    @classmethod
    def _load(cls):
        if cls._models is None:
            import dlib

            folder = cls.model_dir()
            cls._models = (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(folder / cls.FILES["shape"])),
                           dlib.face_recognition_model_v1(str(folder / cls.FILES["recogniser"])))
        return cls._models

    def faces(self, image: Image.Image) -> list[DlibFace]:
        """Every face found, largest first. Images larger than MAX_SIDE are looked at on a smaller copy (the recogniser
        works on a 150x150 aligned chip either way); small images are upsampled once so faces down to ~40 px count."""
        rgb = image.convert("RGB")
        scale = min(1.0, self.MAX_SIDE / max(rgb.size))
        if scale < 1.0:
            rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.Resampling.BILINEAR)
        pixels = np.ascontiguousarray(np.asarray(rgb))
        upsample = 1 if max(rgb.size) <= 640 else 0
        with self._lock:
            detector, shapes, recogniser = self._load()
            rects, scores, _ = detector.run(pixels, upsample, self.MIN_DETECTION)
            found = []
            for rect, score in zip(rects, scores):
                shape = shapes(pixels, rect)
                descriptor = recogniser.compute_face_descriptor(pixels, shape)
                box = tuple(int(round(v / scale)) for v in (rect.left(), rect.top(), rect.right(), rect.bottom()))
                points = tuple((p.x / scale, p.y / scale) for p in shape.parts())
                found.append(DlibFace(box, float(score), points, tuple(float(x) for x in descriptor)))
        return sorted(found, key=lambda f: -(f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))

    def main_face(self, image: Image.Image) -> DlibFace | None:
        found = self.faces(image)
        return found[0] if found else None

    def embed(self, image: Image.Image) -> list[float] | None:
        """The largest face's 128-d descriptor, or None when no face is found."""
        face = self.main_face(image)
        return None if face is None else list(face.embedding)

    def embed_path(self, path: Path) -> list[float] | None:
        with Image.open(path) as image:
            return self.embed(image)

    def detect(self, image: Image.Image) -> list[tuple[list[int], list[float]]]:
        """Every face found: (box [x0, y0, x1, y1] in pixels, descriptor)."""
        return [(list(face.bbox), list(face.embedding)) for face in self.faces(image)]

    def keypoints(self, image: Image.Image):
        raise NotImplementedError("dlib's 5 points are eye corners and the nose (no mouth corners): InstantID needs an "
                                  "ArcFace face pack (PLAYGROUND_FACE_PACK)")

    def aligned_crop(self, image: Image.Image, size: int = 224):
        raise NotImplementedError("FaceID Plus v2 reads an ArcFace-aligned face: it needs an ArcFace face pack (PLAYGROUND_FACE_PACK)")

    @classmethod
    def similarity(cls, a: list[float], b: list[float]) -> float:
        """1 - Euclidean distance, floored at -1: 1.0 the same descriptor, 0.4 dlib's same-person line (0.6)."""
        distance = float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))
        return max(-1.0, 1.0 - distance)


def default_engine(face_pack: Path | None):
    """The face engine: insightface (ArcFace) where a pack is configured, else dlib when installed (requirements.txt),
    else None (identity features off)."""
    if face_pack:
        return FaceEngine(face_pack)
    return DlibFaceEngine() if DlibFaceEngine.available() else None


def _normed(face) -> list[float]:
    vector = np.asarray(face.normed_embedding if getattr(face, "normed_embedding", None) is not None else face.embedding, dtype=np.float32)
    vector = vector / (np.linalg.norm(vector) or 1.0)
    return [float(x) for x in vector]


def similarity(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two embeddings, in [-1, 1]."""
    va, vb = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return float(np.dot(va, vb) / ((np.linalg.norm(va) * np.linalg.norm(vb)) or 1.0))
