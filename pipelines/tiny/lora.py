"""Tiny random LoRAs for the tiny pipelines, written with peft and diffusers' save_lora_weights (the peft key layout:
`unet.<module>.lora_A/B` for SDXL, `transformer.<module>.lora_A/B` for FLUX.1 Kontext), so the LoRA library's
loading path runs offline. Seeded: each library entry gets its own weights."""
from __future__ import annotations

from pathlib import Path

LORA_FILE = "pytorch_lora_weights.safetensors"
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def build_tiny_lora(folder: Path, pipeline_folder: Path, seed: int, family: str = "sdxl", rank: int = 4) -> Path:
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    if family == "sdxl":
        from diffusers import StableDiffusionXLPipeline as Pipeline, UNet2DConditionModel as Model

        part, layers = "unet", "unet_lora_layers"
    elif family == "flux-kontext":
        from diffusers import FluxKontextPipeline as Pipeline, FluxTransformer2DModel as Model

        part, layers = "transformer", "transformer_lora_layers"
    else:
        raise ValueError(f"no tiny LoRA for family {family!r}")
    model = Model.from_pretrained(Path(pipeline_folder) / part)
    torch.manual_seed(seed)
    # init_lora_weights=False: random A and B, so the adapter visibly changes the output (a trained LoRA would too)
    model.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=TARGETS))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    Pipeline.save_lora_weights(folder, **{layers: get_peft_model_state_dict(model)}, weight_name=LORA_FILE)
    return folder / LORA_FILE


def build_tiny_sdxl_lora(folder: Path, pipeline_folder: Path, seed: int, rank: int = 4) -> Path:
    return build_tiny_lora(folder, pipeline_folder, seed, "sdxl", rank)
