"""Where each SDXL face path's weights come from: tiny random ones (built once, beside the tiny pipeline) in the
offline preview, else the published files from the local Hugging Face cache, or a download where allowed.

The real weights and their licences (README names them):
- IP-Adapter FaceID and FaceID Plus v2 (h94/IP-Adapter-FaceID): non-commercial research only; each pairs with
  its own LoRA, and Plus v2 reads a CLIP ViT-H/14 image encoder (h94/IP-Adapter, models/image_encoder).
- InstantID (InstantX/InstantID): Apache-2.0 weights (its adapter and the IdentityNet ControlNet); the face
  keypoints and embeddings come from the configured insightface pack, whose own licence applies.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import WeightsUnavailable
from .lora import LoraUse
from .types import FaceConditioning

if TYPE_CHECKING:
    from .registry import ModelEntry
    from .runtime import PipelineRuntime


@dataclass(frozen=True)
class FaceWeights:
    repo: str
    adapter: str  # the adapter file in `repo`
    lora: str | None = None  # its own LoRA file in `repo` (FaceID recipes)
    encoder: tuple[str, str] | None = None  # (repo, subfolder) of the CLIP image encoder (Plus v2)
    controlnet: str | None = None  # the ControlNet subfolder in `repo` (InstantID)
    tiny_seed: int = 0
    lora_name: str = "faceid-lora"  # the peft adapter name of its LoRA (one per path: their weights differ)


FACE_WEIGHTS = {
    "ip-adapter-faceid": FaceWeights("h94/IP-Adapter-FaceID", "ip-adapter-faceid_sdxl.bin",
                                     lora="ip-adapter-faceid_sdxl_lora.safetensors", tiny_seed=2024),
    "ip-adapter-faceid-plusv2": FaceWeights("h94/IP-Adapter-FaceID", "ip-adapter-faceid-plusv2_sdxl.bin",
                                            lora="ip-adapter-faceid-plusv2_sdxl_lora.safetensors",
                                            encoder=("h94/IP-Adapter", "models/image_encoder"), tiny_seed=2025,
                                            lora_name="faceid-plusv2-lora"),
    "instantid": FaceWeights("InstantX/InstantID", "ip-adapter.bin", controlnet="ControlNetModel"),
}
FACE_LORAS = frozenset(spec.lora_name for spec in FACE_WEIGHTS.values() if spec.lora)  # their adapter names


def _download(runtime: "PipelineRuntime", repo: str, filename: str, what: str) -> Path:
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo, filename, local_files_only=not runtime.downloads_allowed))
    except Exception as exc:
        raise WeightsUnavailable(f"{what} ({repo}/{filename}) is not on this machine and downloads are off; "
                                 "pick a reference model for Remix, or download it first") from exc


def _tiny(runtime: "PipelineRuntime", entry: "ModelEntry", path: str) -> tuple[str, str | None, str | None]:
    """The tiny files of a path for this entry's tiny pipeline: (adapter file, image encoder, ControlNet)."""
    from .tiny import face_paths as tiny
    from .tiny.ip_adapter import build_faceid_sdxl

    root = runtime.settings.tiny_root
    pipeline = runtime.ensure_tiny(entry)
    if path == "ip-adapter-faceid":
        file = root / f"faceid-{entry.tiny}" / "ip-adapter-faceid_sdxl.safetensors"
        build = lambda: build_faceid_sdxl(file.parent, pipeline, weight_name=file.name)  # noqa: E731
    elif path == "ip-adapter-faceid-plusv2":
        file = root / f"faceid-plusv2-{entry.tiny}" / tiny.PLUSV2_FILE
        build = lambda: tiny.build_plusv2(file.parent, pipeline)  # noqa: E731
    else:
        file = root / f"instantid-{entry.tiny}" / tiny.INSTANTID_FILE
        build = lambda: tiny.build_instantid(file.parent, pipeline)  # noqa: E731
    with runtime._lock_for(("face", path, entry.tiny)):
        if not file.exists():
            build()  # the adapter file is written last, so its presence means the folder is complete
    encoder = str(file.parent / tiny.IMAGE_ENCODER_DIR) if path == "ip-adapter-faceid-plusv2" else None
    controlnet = str(file.parent / tiny.CONTROLNET_DIR) if path == "instantid" else None
    return str(file), encoder, controlnet


def complete_face(runtime: "PipelineRuntime", entry: "ModelEntry", face: FaceConditioning) -> FaceConditioning:
    """Fill the weights a face path needs (adapter, image encoder, ControlNet) where the request left them open."""
    if face.weights is not None:
        return face
    spec = FACE_WEIGHTS[face.path]
    if runtime.resolve(entry).preview:
        weights, encoder, controlnet = _tiny(runtime, entry, face.path)
        return replace(face, weights=weights, image_encoder=encoder, controlnet=controlnet)
    weights = _download(runtime, spec.repo, spec.adapter, f"the {face.path} adapter")
    encoder = controlnet = None
    if spec.encoder:
        repo, sub = spec.encoder
        _download(runtime, repo, f"{sub}/config.json", "the FaceID Plus v2 image encoder")
        encoder = str(_download(runtime, repo, f"{sub}/model.safetensors", "the FaceID Plus v2 image encoder").parent)
    if spec.controlnet:
        _download(runtime, spec.repo, f"{spec.controlnet}/config.json", "InstantID's ControlNet")
        controlnet = str(_download(runtime, spec.repo, f"{spec.controlnet}/diffusion_pytorch_model.safetensors",
                                   "InstantID's ControlNet").parent)
    return replace(face, weights=str(weights), image_encoder=encoder, controlnet=controlnet)


def face_lora(runtime: "PipelineRuntime", entry: "ModelEntry", path: str, weight: float) -> LoraUse | None:
    """A face path's own LoRA (the FaceID recipes load it beside the adapter) at `weight`; None for InstantID."""
    spec = FACE_WEIGHTS[path]
    if spec.lora is None:
        return None
    if runtime.resolve(entry).preview:
        from .tiny.lora import LORA_FILE, build_tiny_sdxl_lora

        folder = runtime.settings.tiny_root / f"{path}-lora-{entry.tiny}"
        with runtime._lock_for(("face-lora", path, entry.tiny)):
            if not (folder / LORA_FILE).exists():
                build_tiny_sdxl_lora(folder, runtime.ensure_tiny(entry), seed=spec.tiny_seed)
        return LoraUse(spec.lora_name, weight, str(folder), LORA_FILE)
    file = _download(runtime, spec.repo, spec.lora, f"the {path} LoRA")
    return LoraUse(spec.lora_name, weight, str(file.parent), file.name)

