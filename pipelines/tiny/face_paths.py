"""Tiny random weights, in the real key layouts, for the two further SDXL face paths.

IP-Adapter FaceID Plus v2 (`ip-adapter-faceid-plusv2_sdxl.bin`, h94/IP-Adapter-FaceID): its `image_proj` is the
FacePerceiverResampler of `ProjPlusModel` -- `proj.0/2` (512 -> 2 x 512 -> T x C, the ID embedding to T tokens),
`norm`, and `perceiver_resampler.{proj_in, proj_out, norm_out, layers.N.0.{norm1, norm2, to_q, to_kv, to_out},
layers.N.1.{0, 1, 3}}` over 4 blocks, attending from the ID tokens to the CLIP image encoder's penultimate hidden
states of the aligned face crop. diffusers detects it from `perceiver_resampler.proj_in.weight` and builds an
`IPAdapterFaceIDPlusImageProjection`. Its image encoder is a `CLIPVisionModelWithProjection` (ViT-H/14 for real).

InstantID (InstantX/InstantID): `ip-adapter.bin` holds a Resampler (the IP-Adapter Plus layout: `latents`
(1, 16, D), `proj_in` (D, 512), `proj_out` (C, D), `norm_out`, `layers.N.0.*` and `layers.N.1.*`), which diffusers
loads as an `IPAdapterPlusImageProjection` fed with the face embedding instead of CLIP features, plus the usual
`to_k_ip`/`to_v_ip`; and `ControlNetModel/`, an SDXL ControlNet (IdentityNet) conditioned on a keypoint image.

Attention heads are read back as `to_q rows // 64`, so the tiny blocks use one head of 64 channels. The weights
are seeded and scaled so that each part visibly moves the tiny model's output; they carry no identity.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .ip_adapter import FACE_EMBEDDING_DIM, _unet, faceid_state_dict

PLUSV2_FILE = "ip-adapter-faceid-plusv2_sdxl.safetensors"
INSTANTID_FILE = "ip-adapter.safetensors"
IMAGE_ENCODER_DIR = "image_encoder"
CONTROLNET_DIR = "ControlNetModel"
PLUS_TOKENS = 4  # FaceID Plus: 4 ID tokens
INSTANTID_QUERIES = 16  # InstantID's Resampler: 16 queries
DIM_HEAD = 64
DEPTH = 4


def _normal(gen: torch.Generator, *shape: int, std: float) -> torch.Tensor:
    return (torch.randn(*shape, generator=gen) * std).contiguous()


def _blocks(gen: torch.Generator, prefix: str, dim: int) -> dict[str, torch.Tensor]:
    """The 4 perceiver blocks (original layout): attention (norm1 on the features, norm2 on the latents) + FF."""
    inner = DIM_HEAD  # one head
    out: dict[str, torch.Tensor] = {}
    for i in range(DEPTH):
        p = f"{prefix}layers.{i}."
        for norm in ("0.norm1", "0.norm2", "1.0"):
            out[f"{p}{norm}.weight"] = 1.0 + _normal(gen, dim, std=0.1)
            out[f"{p}{norm}.bias"] = _normal(gen, dim, std=0.1)
        out[f"{p}0.to_q.weight"] = _normal(gen, inner, dim, std=dim**-0.5)
        out[f"{p}0.to_kv.weight"] = _normal(gen, 2 * inner, dim, std=dim**-0.5)
        out[f"{p}0.to_out.weight"] = _normal(gen, dim, inner, std=inner**-0.5)
        out[f"{p}1.1.weight"] = _normal(gen, 4 * dim, dim, std=dim**-0.5)
        out[f"{p}1.3.weight"] = _normal(gen, dim, 4 * dim, std=(4 * dim) ** -0.5)
    return out


def _resampler(gen: torch.Generator, prefix: str, features: int, dim: int, out: int) -> dict[str, torch.Tensor]:
    """A perceiver resampler (original layout): `features`-wide inputs into `dim`, 4 blocks, out to `out`."""
    return {
        f"{prefix}proj_in.weight": _normal(gen, dim, features, std=2.0 * features**-0.5),
        f"{prefix}proj_in.bias": _normal(gen, dim, std=0.02),
        f"{prefix}proj_out.weight": _normal(gen, out, dim, std=dim**-0.5),
        f"{prefix}proj_out.bias": _normal(gen, out, std=0.02),
        f"{prefix}norm_out.weight": 1.0 + _normal(gen, out, std=0.1),
        f"{prefix}norm_out.bias": _normal(gen, out, std=0.1),
        **_blocks(gen, prefix, dim),
    }


def _ip_layers(unet: Any, seed: int) -> dict[str, torch.Tensor]:
    return faceid_state_dict(unet, seed=seed)["ip_adapter"]  # to_k_ip / to_v_ip per cross-attention layer


def plusv2_state_dict(unet: Any, clip_hidden: int, seed: int = 1) -> dict[str, dict[str, torch.Tensor]]:
    cross = int(unet.config.cross_attention_dim)
    gen = torch.Generator().manual_seed(seed)
    inner = FACE_EMBEDDING_DIM * 2
    image_proj = {
        "proj.0.weight": _normal(gen, inner, FACE_EMBEDDING_DIM, std=FACE_EMBEDDING_DIM**-0.5),
        "proj.0.bias": _normal(gen, inner, std=0.02),
        "proj.2.weight": _normal(gen, cross * PLUS_TOKENS, inner, std=inner**-0.5),
        "proj.2.bias": _normal(gen, cross * PLUS_TOKENS, std=0.02),
        "norm.weight": 1.0 + _normal(gen, cross, std=0.1),
        "norm.bias": _normal(gen, cross, std=0.1),
        **_resampler(gen, "perceiver_resampler.", clip_hidden, cross, cross),
    }
    return {"image_proj": image_proj, "ip_adapter": _ip_layers(unet, seed)}


def instantid_state_dict(unet: Any, seed: int = 3) -> dict[str, dict[str, torch.Tensor]]:
    cross = int(unet.config.cross_attention_dim)
    dim = cross  # the real one is 1280 wide for C = 2048; any width loads
    gen = torch.Generator().manual_seed(seed)
    image_proj = {
        "latents": _normal(gen, 1, INSTANTID_QUERIES, dim, std=dim**-0.5),
        **_resampler(gen, "", FACE_EMBEDDING_DIM, dim, cross),
    }
    return {"image_proj": image_proj, "ip_adapter": _ip_layers(unet, seed)}


def _save(state: dict[str, dict[str, torch.Tensor]], path: Path) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {f"{group}.{key}": value for group, tensors in state.items() for key, value in tensors.items()}
    save_file(flat, str(path), metadata={"format": "pt"})
    return path


def build_image_encoder(folder: Path, seed: int = 5) -> Path:
    """A tiny CLIPVisionModelWithProjection (the FaceID Plus image encoder) and its image processor."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=3, num_attention_heads=4,
                              image_size=32, patch_size=8, projection_dim=32)
    folder = Path(folder)
    CLIPVisionModelWithProjection(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def build_plusv2(out_dir: Path, pipeline: Any, seed: int = 1) -> Path:
    """The adapter file plus `image_encoder/` beside it, for the tiny SDXL pipeline at `pipeline` (folder or UNet)."""
    out_dir = Path(out_dir)
    encoder = build_image_encoder(out_dir / IMAGE_ENCODER_DIR)
    from transformers import CLIPVisionConfig

    hidden = CLIPVisionConfig.from_pretrained(encoder).hidden_size
    return _save(plusv2_state_dict(_unet(pipeline), hidden, seed), out_dir / PLUSV2_FILE)


def build_instantid(out_dir: Path, pipeline: Any, seed: int = 3) -> Path:
    """`ip-adapter.safetensors` plus `ControlNetModel/` (made from the UNet, its zero convolutions given seeded random
    weights so the keypoint image visibly steers the tiny model, as a trained IdentityNet does)."""
    from diffusers import ControlNetModel

    out_dir = Path(out_dir)
    unet = _unet(pipeline)
    # (8, 16): one 2x downsampling, as the tiny VAE has (the real IdentityNet: 8x, as the SDXL VAE)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16), conditioning_channels=3)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in controlnet.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")):
                param.copy_(_normal(gen, *param.shape, std=0.3 / max(1, param.shape[1] if param.ndim > 1 else 1) ** 0.5))
    controlnet.save_pretrained(out_dir / CONTROLNET_DIR)
    return _save(instantid_state_dict(unet, seed), out_dir / INSTANTID_FILE)
