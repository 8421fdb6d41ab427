"""Tiny random LTX-Video pipeline (LTXPipeline; LTXImageToVideoPipeline shares its components), after diffusers' tests.

Same classes as Lightricks/LTX-Video: T5 text encoder, LTXVideoTransformer3DModel, AutoencoderKLLTXVideo and a
dynamically shifted FlowMatchEulerDiscreteScheduler. The tiny VAE keeps the real compression (patch 4 x three
2x down-blocks = 32x spatial, 8x temporal), so sizes are multiples of 32 (the pipeline also checks that) and frame
counts 8k+1 behave as on the real model.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .tokenizers import t5_tokenizer

TEXT_DIM = 32
LATENT_CHANNELS = 8


def build(out_dir: Path) -> None:
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline, LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    heads, head_dim = 4, 8
    transformer = LTXVideoTransformer3DModel(
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        cross_attention_dim=heads * head_dim,
        num_layers=1,
        caption_channels=TEXT_DIM,
    ).eval()

    torch.manual_seed(0)
    scaling = (True, True, True, False)
    vae = AutoencoderKLLTXVideo(
        latent_channels=LATENT_CHANNELS,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        spatio_temporal_scaling=scaling,
        decoder_spatio_temporal_scaling=scaling,
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    ).eval()

    # LTX-Video's scheduler_config.json (resolution-dependent shift, terminal sigma 0.1).
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=1.0,
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )

    tokenizer = t5_tokenizer()
    torch.manual_seed(0)
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=TEXT_DIM,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
    ).eval()

    pipe = LTXPipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer
    )
    pipe.save_pretrained(out_dir)
