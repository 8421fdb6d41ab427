"""IP-Adapter FaceID (SDXL) on a loaded pipeline: load once, set the scale, build embeddings, unload.

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
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

FACE_EMBEDDING_DIM = 512
_LOCK = threading.RLock()
_STATE_ATTR = "_playground_faceid"  # on the UNet: {"weights": str, "scale": float}


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


def ensure_faceid(pipe: Any, weights_path: Path | str, scale: float = 1.0) -> None:
    """Load the FaceID adapter at `weights_path` into `pipe` once (idempotent), then set its scale.

    `weights_path` is the weight file (`.safetensors` flattened with "image_proj."/"ip_adapter." prefixes, or the
    original nested `.bin`). A different file than the one loaded replaces it. No CLIP image encoder is loaded
    (`image_encoder_folder=None`): FaceID takes precomputed face embeddings, never `ip_adapter_image`.
    """
    weights_path = Path(weights_path)
    with _LOCK:
        state = _state(pipe)
        if state is not None and state["weights"] != str(weights_path.resolve()):
            unload_faceid(pipe)
            state = None
        if state is None:
            if not weights_path.is_file():
                raise FileNotFoundError(f"FaceID weights not found: {weights_path}")
            if getattr(pipe.unet.config, "encoder_hid_dim_type", None) is not None:
                raise RuntimeError("the pipeline's UNet already has an image projection (another IP-Adapter?)")
            pipe.load_ip_adapter(
                str(weights_path.parent),
                subfolder="",
                weight_name=weights_path.name,
                image_encoder_folder=None,
                local_files_only=True,
            )
            state = {"weights": str(weights_path.resolve()), "scale": 1.0}
            setattr(pipe.unet, _STATE_ATTR, state)
        set_faceid_scale(pipe, scale)


def set_faceid_scale(pipe: Any, scale: float) -> None:
    with _LOCK:
        state = _state(pipe)
        if state is None:
            raise RuntimeError("no FaceID adapter is loaded on this pipeline; call ensure_faceid first")
        pipe.set_ip_adapter_scale(float(scale))
        state["scale"] = float(scale)


def unload_faceid(pipe: Any) -> bool:
    """Remove the adapter (UNet attention processors and image projection back to the plain ones)."""
    with _LOCK:
        unet = getattr(pipe, "unet", None)
        if unet is None or getattr(unet, _STATE_ATTR, None) is None:
            return False
        if getattr(unet.config, "encoder_hid_dim_type", None) == "ip_image_proj":
            pipe.unload_ip_adapter()
        delattr(unet, _STATE_ATTR)
        return True


def uses_cfg(pipe: Any, guidance: float) -> bool:
    """The SDXL pipelines' do_classifier_free_guidance, known before the call."""
    return guidance > 1 and getattr(pipe.unet.config, "time_cond_proj_dim", None) is None


def face_embeds(pipe: Any, embedding: Sequence[float] | Sequence[Sequence[float]] | torch.Tensor, guidance: float,
                device: torch.device | str | None = None) -> list[torch.Tensor]:
    """`ip_adapter_image_embeds` for one face (512 floats) or several (n x 512), in the UNet's dtype.

    With CFG: [cat([zeros, emb])] of shape (2, n_faces, 512); without: [emb] of shape (1, n_faces, 512).
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


def ip_adapter_call(pipe: Any, request: Any) -> tuple[dict[str, Any], dict[str, Any], Callable[[], Any]]:
    """(pipeline kwargs, recorded parameters, context factory) for a request's face conditioning.

    Run each pipeline call inside `with context():` (a fresh context manager per call, one call per seed).

    `request.face` (a `FaceConditioning`): its embedding (512 floats, or several faces' 512 floats each) drives the
    adapter at `face.scale`, or at the loaded scale when that is None; `face.weights` loads the adapter when none is
    loaded yet. Without a face the call is unchanged; if an adapter is loaded on the shared UNet (which then insists
    on image embeds) it gets zero embeds at scale 0, i.e. the exact base output.
    """
    face = request.face
    loaded = is_faceid_loaded(pipe)
    if face is None:
        if not loaded:
            return {}, {}, contextlib.nullcontext
        zeros = [[0.0] * FACE_EMBEDDING_DIM]
        return {"ip_adapter_image_embeds": face_embeds(pipe, zeros, request.guidance)}, {}, lambda: faceid_muted(pipe)
    embedding = list(face.embedding)
    if len(embedding) > FACE_EMBEDDING_DIM and len(embedding) % FACE_EMBEDDING_DIM == 0:
        embedding = [embedding[i:i + FACE_EMBEDDING_DIM] for i in range(0, len(embedding), FACE_EMBEDDING_DIM)]
    if not loaded:
        if not face.weights:
            raise RuntimeError("a face was given but no FaceID adapter is loaded and no adapter weights were given")
        ensure_faceid(pipe, Path(face.weights), 1.0 if face.scale is None else float(face.scale))
    if face.scale is not None:
        set_faceid_scale(pipe, float(face.scale))
    kwargs = {"ip_adapter_image_embeds": face_embeds(pipe, embedding, request.guidance)}
    return kwargs, {"ip_adapter_scale": faceid_scale(pipe)}, contextlib.nullcontext
