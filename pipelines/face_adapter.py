"""SDXL face adapters on a loaded pipeline: load once, set the scale, build embeddings, unload.

Three paths (FACE_PATHS): IP-Adapter FaceID, FaceID Plus v2 and InstantID; what the last two add (the CLIP crop
embeddings, the IdentityNet ControlNet and its keypoint image) is in pipelines/face_paths.py.

The adapter lives in the UNet (an `encoder_hid_proj` image projection plus IP attention processors), and the
runtime's task views (`from_pipe`) share one UNet, so the loaded state is tracked on the UNet object: loading it
through one view makes it loaded for every view of the same base pipeline. Loading and unloading hold a lock;
runs themselves are serialised per loaded pipeline by the runtime (`PipelineRuntime.run`).

Face embeddings are insightface-style 512-d vectors (`face.normed_embedding`). diffusers takes them as
`ip_adapter_image_embeds=[tensor]` with shape (batch, n_faces, 512); with classifier-free guidance the batch is
(negative, positive) = (zeros, embedding), negative FIRST, because the SDXL pipeline splits it with `.chunk(2)`.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from PIL import Image

from . import face_paths

FACE_EMBEDDING_DIM = 512
_LOCK = threading.RLock()
_STATE_ATTR = "_playground_faceid"  # on the UNet: {"weights": str, "scale": float, "path": str, ...}


def _ip_processor_classes() -> tuple[type, ...]:
    from diffusers.models.attention_processor import (
        IPAdapterAttnProcessor,
        IPAdapterAttnProcessor2_0,
        IPAdapterXFormersAttnProcessor,
    )

    return IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0, IPAdapterXFormersAttnProcessor


def _state(pipe: Any) -> dict | None:
    unet = getattr(pipe, "unet", None)
    state = getattr(unet, _STATE_ATTR, None)
    # Someone may have called pipe.unload_ip_adapter() directly: trust the UNet, not only our marker.
    if state is None or getattr(unet.config, "encoder_hid_dim_type", None) != "ip_image_proj":
        return None
    return state


def is_faceid_loaded(pipe: Any) -> bool:
    return _state(pipe) is not None


def faceid_scale(pipe: Any) -> float | None:
    state = _state(pipe)
    return None if state is None else float(state["scale"])


def ensure_faceid(pipe: Any, weights_path: Path | str, scale: float = 1.0, path: str = "ip-adapter-faceid",
                  image_encoder: str | None = None, controlnet: str | None = None) -> None:
    """Load the face adapter at `weights_path` into `pipe` once (idempotent), then set its scale.

    `weights_path` is the weight file (`.safetensors` flattened with "image_proj."/"ip_adapter." prefixes, or the
    original nested `.bin`); `path` names the adapter (FACE_PATHS): Plus v2 also loads its CLIP `image_encoder`
    folder, InstantID its `controlnet` folder (and a ControlNet view of the pipeline). Another file or path than the
    loaded one replaces it. `image_encoder_folder=None`: the adapter takes precomputed embeddings, never
    `ip_adapter_image`.
    """
    weights_path = Path(weights_path)
    with _LOCK:
        state = _state(pipe)
        if state is not None and (state["weights"], state["path"]) != (str(weights_path.resolve()), path):
            unload_faceid(pipe)
            state = None
        if state is None:
            if not weights_path.is_file():
                raise FileNotFoundError(f"face adapter weights not found: {weights_path}")
            if getattr(pipe.unet.config, "encoder_hid_dim_type", None) is not None:
                raise RuntimeError("the pipeline's UNet already has an image projection (another IP-Adapter?)")
            state = {"weights": str(weights_path.resolve()), "scale": 1.0, "path": path}
            if path == "ip-adapter-faceid-plusv2":
                if not image_encoder:
                    raise RuntimeError("FaceID Plus v2 needs its CLIP image encoder folder")
                state["image_encoder"], state["processor"] = face_paths.load_image_encoder(image_encoder, pipe.unet.device, pipe.unet.dtype)
            if path == "instantid":
                if not controlnet:
                    raise RuntimeError("InstantID needs its ControlNet folder")
                state["controlnet"] = face_paths.load_controlnet(controlnet, pipe.unet.device, pipe.unet.dtype)
            pipe.load_ip_adapter(
                str(weights_path.parent),
                subfolder="",
                weight_name=weights_path.name,
                image_encoder_folder=None,
                local_files_only=True,
            )
            setattr(pipe.unet, _STATE_ATTR, state)
        set_faceid_scale(pipe, scale)


def face_path(pipe: Any) -> str | None:
    """The loaded adapter's path name (FACE_PATHS), or None."""
    state = _state(pipe)
    return None if state is None else state["path"]


def set_faceid_scale(pipe: Any, scale: float) -> None:
    with _LOCK:
        state = _state(pipe)
        if state is None:
            raise RuntimeError("no FaceID adapter is loaded on this pipeline; call ensure_faceid first")
        pipe.set_ip_adapter_scale(float(scale))
        state["scale"] = float(scale)


def unload_faceid(pipe: Any) -> bool:
    """Remove the adapter (UNet attention processors and image projection back to the plain ones) and its LoRA."""
    with _LOCK:
        unet = getattr(pipe, "unet", None)
        if unet is None or getattr(unet, _STATE_ATTR, None) is None:
            return False
        if getattr(unet.config, "encoder_hid_dim_type", None) == "ip_image_proj":
            pipe.unload_ip_adapter()
        from .face_weights import FACE_LORAS

        loaded = {n for names in pipe.get_list_adapters().values() for n in names} if hasattr(pipe, "get_list_adapters") else set()
        if loaded & FACE_LORAS:
            pipe.delete_adapters(sorted(loaded & FACE_LORAS))  # the adapter's own LoRA goes with it
        delattr(unet, _STATE_ATTR)  # with it go the Plus v2 image encoder and InstantID's ControlNet and view
        return True


def uses_cfg(pipe: Any, guidance: float) -> bool:
    """The SDXL pipelines' do_classifier_free_guidance, known before the call."""
    return guidance > 1 and getattr(pipe.unet.config, "time_cond_proj_dim", None) is None


def face_embeds(pipe: Any, embedding: Sequence[float] | Sequence[Sequence[float]] | torch.Tensor, guidance: float,
                device: torch.device | str | None = None, sequence: bool = False) -> list[torch.Tensor]:
    """`ip_adapter_image_embeds` for one face (512 floats) or several (n x 512), in the UNet's dtype.

    With CFG: [cat([zeros, emb])] of shape (2, n_faces, 512); without: [emb] of shape (1, n_faces, 512).
    `sequence`: one more axis, (2, n_faces, 1, 512), for a resampler projection (InstantID) that reads a sequence.
    """
    emb = torch.as_tensor(embedding, dtype=torch.float32)
    if emb.ndim == 1:
        emb = emb[None]
    if emb.ndim != 2 or emb.shape[-1] != FACE_EMBEDDING_DIM or emb.shape[0] < 1:
        raise ValueError(f"face_embedding must be {FACE_EMBEDDING_DIM} floats or a list of them; got {tuple(emb.shape)}")
    if not torch.isfinite(emb).all():
        raise ValueError("face_embedding holds NaN or infinite values")
    emb = emb[None]  # (1, n_faces, 512)
    if uses_cfg(pipe, guidance):
        emb = torch.cat([torch.zeros_like(emb), emb])
    if sequence:
        emb = emb[:, :, None, :]
    return [emb.to(device=device or pipe.unet.device, dtype=pipe.unet.dtype)]


@contextlib.contextmanager
def faceid_muted(pipe: Any) -> Iterator[None]:
    """Scale 0 on every IP processor for one call (exactly the base output), restoring the scales after."""
    processors = [p for p in pipe.unet.attn_processors.values() if isinstance(p, _ip_processor_classes())]
    saved = [list(p.scale) for p in processors]
    for p in processors:
        p.scale = [0.0] * len(p.scale)
    try:
        yield
    finally:
        for p, scale in zip(processors, saved):
            p.scale = scale


@dataclass
class FaceCall:
    """How to call the pipeline for a request's face: which pipeline (InstantID: the ControlNet view), the extra
    keyword arguments, the parameters to record, and a context factory to enter around each call (one per seed)."""

    pipe: Any
    kwargs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    context: Callable[[], Any] = contextlib.nullcontext


def ip_adapter_call(pipe: Any, request: Any, image_to_image: bool = False) -> FaceCall:
    """The call for a request's face conditioning.

    `request.face` (a `FaceConditioning`): its embedding (512 floats, or several faces' 512 floats each) drives the
    adapter of `face.path` at `face.scale`, or at the loaded scale when that is None; `face.weights` loads the
    adapter when another (or none) is loaded. Without a face the call is unchanged; if an adapter is loaded on the
    shared UNet (which then insists on image embeds) it gets zero embeds at scale 0, i.e. the exact base output.
    """
    face = request.face
    state = _state(pipe)
    if face is None:
        if state is None:
            return FaceCall(pipe)
        zeros = [[0.0] * FACE_EMBEDDING_DIM]
        embeds = face_embeds(pipe, zeros, request.guidance, sequence=state["path"] == "instantid")
        crop = Image.new("RGB", (8, 8))

        def muted():
            if state["path"] != "ip-adapter-faceid-plusv2":
                return faceid_muted(pipe)
            # Plus v2's projection still runs on the zero embeds and reads CLIP embeddings: any crop, muted after it
            return _stack(faceid_muted(pipe), face_paths.plus_clip_embeds(pipe, state, crop, uses_cfg(pipe, request.guidance)))

        return FaceCall(pipe, {"ip_adapter_image_embeds": embeds}, {}, muted)
    if face.path == "instantid" and image_to_image:
        raise RuntimeError("InstantID runs text-to-image only here; pick FaceID for image-to-image")
    embedding = list(face.embedding)
    if len(embedding) > FACE_EMBEDDING_DIM and len(embedding) % FACE_EMBEDDING_DIM == 0:
        embedding = [embedding[i:i + FACE_EMBEDDING_DIM] for i in range(0, len(embedding), FACE_EMBEDDING_DIM)]
    if state is None or state["path"] != face.path or (face.weights and state["weights"] != str(Path(face.weights).resolve())):
        if not face.weights:
            raise RuntimeError("a face was given but no FaceID adapter of its path is loaded and no adapter weights were given")
        ensure_faceid(pipe, Path(face.weights), 1.0 if face.scale is None else float(face.scale), face.path,
                      face.image_encoder, face.controlnet)
        state = _state(pipe)
    if face.scale is not None:
        set_faceid_scale(pipe, float(face.scale))
    cfg = uses_cfg(pipe, request.guidance)
    embeds = face_embeds(pipe, embedding, request.guidance, sequence=face.path == "instantid")
    call = FaceCall(pipe, {"ip_adapter_image_embeds": embeds}, {"face_path": face.path, "ip_adapter_scale": faceid_scale(pipe)})
    if face.path == "ip-adapter-faceid-plusv2":
        call.context = lambda: face_paths.plus_clip_embeds(pipe, state, face.crop, cfg)
    elif face.path == "instantid":
        if "view" not in state:
            state["view"] = face_paths.controlnet_view(pipe, state["controlnet"])
        scale = 1.0 if face.control_scale is None else float(face.control_scale)
        call.pipe = state["view"]
        call.kwargs["image"] = face_paths.keypoint_image(face.keypoints, request.width, request.height)
        call.kwargs["controlnet_conditioning_scale"] = scale
        call.params["controlnet_conditioning_scale"] = scale

        def context():
            return face_paths.identitynet_context(pipe, state["controlnet"], embeds[0], cfg)

        call.context = context
    return call


@contextlib.contextmanager
def _stack(*managers: Any) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for manager in managers:
            stack.enter_context(manager)
        yield
