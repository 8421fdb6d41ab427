"""Tiny random SDXL pipelines (SDXL base and Playground v2.5's EDM variant), after diffusers' SDXL tests."""
from __future__ import annotations

from pathlib import Path

import torch

from .tokenizers import clip_text_config, clip_tokenizer


def _components() -> dict:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=80,  # 6 * 8 + 32 (pooled text embeds)
        cross_attention_dim=64,
        norm_num_groups=4,
    ).eval()
    vae = AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=4,
        sample_size=128,
    ).eval()
    tokenizer = clip_tokenizer()
    config = clip_text_config(tokenizer)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="scaled_linear", timestep_spacing="leading"
    )
    return {
        "unet": unet,
        "vae": vae,
        "scheduler": scheduler,
        "text_encoder": CLIPTextModel(config).eval(),
        "tokenizer": tokenizer,
        "text_encoder_2": CLIPTextModelWithProjection(config).eval(),
        "tokenizer_2": clip_tokenizer(),
    }


def build(out_dir: Path) -> None:
    from diffusers import StableDiffusionXLPipeline

    StableDiffusionXLPipeline(**_components()).save_pretrained(out_dir)


def build_playground(out_dir: Path) -> None:
    """Playground v2.5 is the SDXL architecture sampled with an EDM DPM-Solver scheduler."""
    from diffusers import EDMDPMSolverMultistepScheduler, StableDiffusionXLPipeline

    components = _components()
    components["scheduler"] = EDMDPMSolverMultistepScheduler(
        sigma_min=0.002, sigma_max=80.0, sigma_data=0.5, rho=7.0, final_sigmas_type="zero", solver_order=2
    )
    StableDiffusionXLPipeline(**components).save_pretrained(out_dir)
