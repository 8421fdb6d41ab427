"""Tiny random FLUX.1 pipelines (dev and schnell), after diffusers' tests/pipelines/flux/test_pipeline_flux.py.

The VAE keeps FLUX's 8x downsampling (four levels), so sizes follow the real rule: multiples of 16 pixels.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .tokenizers import clip_text_config, clip_tokenizer, t5_tokenizer


def flux_components(guidance_embeds: bool = True) -> dict:
    """Components shared by FluxPipeline, FluxImg2ImgPipeline and FluxKontextPipeline."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels packed 2x2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,  # T5 d_model
        pooled_projection_dim=32,  # CLIP hidden size
        guidance_embeds=guidance_embeds,
        axes_dims_rope=[4, 4, 8],  # sums to attention_head_dim
    ).eval()

    tokenizer = clip_tokenizer()
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(clip_text_config(tokenizer)).eval()

    tokenizer_2 = t5_tokenizer()
    torch.manual_seed(0)
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer_2),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            dropout_rate=0.0,
            pad_token_id=tokenizer_2.pad_token_id,
            eos_token_id=tokenizer_2.eos_token_id,
            decoder_start_token_id=tokenizer_2.pad_token_id,
        )
    ).eval()

    torch.manual_seed(0)
    vae = AutoencoderKL(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.1159,
        scaling_factor=0.3611,
    ).eval()

    return {
        "transformer": transformer,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "text_encoder_2": text_encoder_2,
        "tokenizer_2": tokenizer_2,
        "vae": vae,
        "image_encoder": None,
        "feature_extractor": None,
    }


def dev_scheduler():
    """FLUX.1-dev's scheduler config: resolution-dependent (dynamic) shift."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )


def build(out_dir: Path) -> None:
    """FLUX.1-dev: guidance-distilled (guidance is an embedding, not CFG)."""
    from diffusers import FluxPipeline

    FluxPipeline(scheduler=dev_scheduler(), **flux_components(guidance_embeds=True)).save_pretrained(out_dir)


def build_schnell(out_dir: Path) -> None:
    """FLUX.1-schnell: timestep-distilled, no guidance embedding, fixed shift 1.0."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    FluxPipeline(scheduler=scheduler, **flux_components(guidance_embeds=False)).save_pretrained(out_dir)
