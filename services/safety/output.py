"""The output check of every request, behind one small interface with interchangeable backends.

- NudeNetChecker: NudeNet's ONNX detector, shipped inside the `nudenet` wheel, runs offline (optional
  extra: the wheel carries AGPL-3.0 licence text, see README).
- ClassifierChecker: any transformers image-classification model (e.g. a ViT NSFW classifier) for
  deployments with Hub access.
- Unchecked: no backend available; outputs are recorded as unchecked and the UI says so.

A backend turns an image into detections (label, score); `decide` applies the thresholds from
presets/safety.toml. Whether a flagged output may still be delivered is the request's decision (members'
18+ outputs on non-SFW surfaces are kept private; everywhere else a flagged output is refunded).
"""
from __future__ import annotations

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


def build_checker(output: dict, backend: str | None = None, allow_downloads: bool = False) -> SafetyChecker:
    """The configured backend: nudenet | classifier | none | auto (nudenet, else classifier, else none)."""
    backend = (backend or output.get("backend") or "auto").lower()
    if backend not in ("auto", "nudenet", "classifier", "none"):
        raise ValueError(f"unknown safety backend {backend!r}: use auto, nudenet, classifier or none")
    if backend == "none":
        return Unchecked()
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
