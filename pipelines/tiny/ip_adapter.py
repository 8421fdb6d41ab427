"""A tiny random IP-Adapter FaceID (SDXL) weight file in the real `ip-adapter-faceid_sdxl.bin` key layout.

The real file is a torch pickle of two nested state dicts, which diffusers' `load_ip_adapter` reads:

    {"image_proj": {"proj.0.weight": (1024, 512), "proj.0.bias": (1024,),      # Linear 512 -> 512*mult
                    "proj.2.weight": (T*C, 1024), "proj.2.bias": (T*C,),        # Linear -> num_tokens * C
                    "norm.weight": (C,), "norm.bias": (C,)},                    # LayerNorm(C)
     "ip_adapter": {"1.to_k_ip.weight": (H, C), "1.to_v_ip.weight": (H, C),
                    "3.to_k_ip.weight": ..., ...}}

C is the UNet's cross_attention_dim, T = 4 tokens (diffusers hard-codes 4 for FaceID), H the hidden size of the
block an attention layer sits in. An `ip_adapter` index is the position of a cross-attention processor in
`unet.attn_processors` (self-attention `attn1` takes the even numbers, so cross-attention keys are 1, 3, 5, ...).
diffusers detects FaceID from `norm.weight` in `image_proj` (-> IPAdapterFaceIDImageProjection, mult = 1024 // 512,
num_tokens = proj.2 rows // C). The real file also carries FaceID LoRA keys (`N.to_q_lora.down.weight`, ...);
diffusers treats those as optional (they need PEFT), so this plain variant leaves them out.

As safetensors (the default here) the nested dicts are flattened with "image_proj." / "ip_adapter." prefixes,
which is exactly how `load_ip_adapter` splits a `.safetensors` file back; a `.bin` name writes the nested pickle.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

FACEID_SDXL_WEIGHT_NAME = "ip-adapter-faceid_sdxl.safetensors"
FACE_EMBEDDING_DIM = 512  # insightface (antelopev2 / buffalo_l) normed embedding size
FACEID_NUM_TOKENS = 4  # diffusers' _convert_ip_adapter_attn_to_diffusers assumes 4 tokens for FaceID
FACEID_MULT = 2  # the real SDXL file: proj.0 is 512 -> 1024


def _unet(unet_or_folder: Any):
    """A UNet2DConditionModel, or the one saved in a pipeline folder (`<folder>/unet`) or a UNet folder."""
    if hasattr(unet_or_folder, "attn_processors"):
        return unet_or_folder
    from diffusers import UNet2DConditionModel

    folder = Path(unet_or_folder)
    if (folder / "unet").is_dir():
        folder = folder / "unet"
    return UNet2DConditionModel.from_pretrained(folder)


def faceid_state_dict(unet, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Random (seeded, deterministic) FaceID weights, nested as in the real file, for `unet`'s layout."""
    config = unet.config
    cross_dim = int(config.cross_attention_dim)
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape: int, std: float) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * std).contiguous()

    inner = FACE_EMBEDDING_DIM * FACEID_MULT
    out = cross_dim * FACEID_NUM_TOKENS
    image_proj = {
        "proj.0.weight": normal(inner, FACE_EMBEDDING_DIM, std=FACE_EMBEDDING_DIM**-0.5),
        "proj.0.bias": normal(inner, std=0.02),
        "proj.2.weight": normal(out, inner, std=inner**-0.5),
        "proj.2.bias": normal(out, std=0.02),
        "norm.weight": 1.0 + normal(cross_dim, std=0.1),
        "norm.bias": normal(cross_dim, std=0.1),
    }

    # Same walk as diffusers' _convert_ip_adapter_attn_to_diffusers: key_id starts at 1 and advances by 2 per
    # cross-attention processor; self-attention (attn1) and motion modules get no IP weights.
    ip_adapter: dict[str, torch.Tensor] = {}
    key_id = 1
    channels = list(config.block_out_channels)
    for name in unet.attn_processors:
        if name.endswith("attn1.processor") or "motion_modules" in name:
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        # Larger than a plain 1/sqrt(fan_in) init so scale 1.0 visibly moves the tiny model's output.
        ip_adapter[f"{key_id}.to_k_ip.weight"] = normal(hidden, cross_dim, std=2.0 * cross_dim**-0.5)
        ip_adapter[f"{key_id}.to_v_ip.weight"] = normal(hidden, cross_dim, std=4.0 * cross_dim**-0.5)
        key_id += 2
    return {"image_proj": image_proj, "ip_adapter": ip_adapter}


def build_faceid_sdxl(out_dir: Path, unet: Any, weight_name: str = FACEID_SDXL_WEIGHT_NAME, seed: int = 0) -> Path:
    """Write tiny FaceID weights for `unet` into `out_dir` and return the file's path.

    `unet` is a UNet2DConditionModel (e.g. `pipe.unet`) or a path to a saved tiny SDXL pipeline folder
    (as written by `pipelines.tiny.sdxl.build`) or to its `unet` subfolder. The file loads with
    `pipe.load_ip_adapter(str(out_dir), subfolder="", weight_name=weight_name, image_encoder_folder=None)`.
    """
    state = faceid_state_dict(_unet(unet), seed=seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / weight_name
    if weight_name.endswith(".safetensors"):
        from safetensors.torch import save_file

        flat = {f"{group}.{key}": value for group, tensors in state.items() for key, value in tensors.items()}
        save_file(flat, str(path), metadata={"format": "pt"})
    else:
        torch.save(state, path)
    return path
