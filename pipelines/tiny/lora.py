"""A tiny random LoRA for a tiny SDXL pipeline, written with peft and diffusers' save_lora_weights (the peft key
layout `unet.<module>.lora_A/B`), so the LoRA library's loading path runs offline. Seeded: each library entry gets
its own weights."""
from __future__ import annotations

from pathlib import Path

LORA_FILE = "pytorch_lora_weights.safetensors"


def build_tiny_sdxl_lora(folder: Path, pipeline_folder: Path, seed: int, rank: int = 4) -> Path:
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(Path(pipeline_folder) / "unet")
    torch.manual_seed(seed)
    # init_lora_weights=False: random A and B, so the adapter visibly changes the output (a trained LoRA would too)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    StableDiffusionXLPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet), weight_name=LORA_FILE)
    return folder / LORA_FILE
