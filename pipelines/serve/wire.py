"""What travels between the app and a replica: the request without its callbacks, events as tuples, outputs as PNG bytes,
errors by name. No ray here: both sides import it."""
from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

from PIL import Image

from .. import errors
from ..types import GenerationCancelled, GenerationRequest, GenerationResult, VideoFrames

# A replica's generate() yields these, in order: any number of STEP (done, total) and TEXT (a piece of a chat reply),
# then exactly one RESULT (a packed result) or ERROR (kind, message).
STEP, TEXT, RESULT, ERROR = "step", "text", "result", "error"
CANCELLED = "cancelled"  # the ERROR kind of a run its step callback stopped

DEFAULT_NAMESPACE = "playground"


def application_name(namespace: str, group: str) -> str:
    """The Serve application of one serve group (pipelines.registry.ServeOptions.group): apps are cluster-wide, so the
    namespace keeps two deployments of the playground on one cluster apart."""
    return f"{namespace}.{group}"


class ReplicaFailed(RuntimeError):
    """A replica's run raised something that is not a refusal: a bug or a broken model, named by its class."""


def outbound(request: GenerationRequest) -> tuple[GenerationRequest, bool]:
    """The request as a replica receives it: without the reply's text callback (it stays in the app; the replica
    streams TEXT events instead), and whether it wants them."""
    return replace(request, stream=None), request.stream is not None


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # lossless: the app stores the same pixels; level 1 is fast
    return buffer.getvalue()


def _image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def pack_result(result: GenerationResult) -> dict[str, Any]:
    """A result as bytes: every image and every video frame as a PNG; a provider's encoded video kept as it is."""
    return {
        "seeds": list(result.seeds),
        "parameters": dict(result.parameters),
        "images": [_png(image) for image in result.images],
        "videos": [[_png(frame) for frame in frames] for frames in result.videos],
        "encoded": [getattr(frames, "encoded", None) for frames in result.videos],
        "texts": list(result.texts),
    }


def unpack_result(payload: dict[str, Any]) -> GenerationResult:
    videos = []
    for frames, encoded in zip(payload["videos"], payload["encoded"]):
        video = VideoFrames(_image(frame) for frame in frames)
        video.encoded = encoded
        videos.append(video if encoded else list(video))
    return GenerationResult(seeds=list(payload["seeds"]), parameters=dict(payload["parameters"]),
                            images=[_image(data) for data in payload["images"]], videos=videos, texts=list(payload["texts"]))


def pack_error(exc: BaseException) -> tuple[str, str, str]:
    """An ERROR event: a cancelled run, a refusal of the pipeline layer by its class name, or any other failure."""
    if isinstance(exc, GenerationCancelled):
        return ERROR, CANCELLED, str(exc) or "cancelled"
    if isinstance(exc, errors.RequestRefused):
        kind = type(exc).__name__ if isinstance(getattr(errors, type(exc).__name__, None), type) else "RequestRefused"
        return ERROR, kind, str(exc)
    return ERROR, f"failed:{type(exc).__name__}", str(exc)


def raise_error(kind: str, message: str) -> None:
    """Raise in the app what the replica raised: GenerationCancelled, the same refusal class, or ReplicaFailed."""
    if kind == CANCELLED:
        raise GenerationCancelled(message)
    refusal = getattr(errors, kind, None)
    if isinstance(refusal, type) and issubclass(refusal, errors.RequestRefused):
        raise refusal(message)
    raise ReplicaFailed(f"{kind.removeprefix('failed:')} on the Ray Serve replica: {message}")
