"""Tiny random Wan 2.1 pipelines (T2V 1.3B/14B and I2V 480P layouts), after diffusers' Wan tests.

Same classes as the Wan-AI/Wan2.1-*-Diffusers folders: UMT5 text encoder, WanTransformer3DModel, AutoencoderKLWan
(8x spatial, 4x temporal compression, so sizes are multiples of 16 and frame counts 4k+1), UniPC with flow sigmas
(flow_shift 3.0, the 480P setting); I2V adds a CLIPVisionModel image encoder and its CLIPImageProcessor.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .tokenizers import t5_tokenizer

TEXT_DIM = 32
CLIP_SIDE = 32  # the tiny image encoder's input size (the real ViT-H/14 takes 224)
CLIP_HIDDEN = 16


def _scheduler():
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=3.0
    )


def _vae():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    return AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    ).eval()


def _text_encoder(tokenizer):
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    config = UMT5Config(
        vocab_size=len(tokenizer),
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=37,
        num_layers=1,  # UMT5 gives every layer its own 512x512 position bias: one layer keeps tiny runs fast
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return UMT5EncoderModel(config).eval()


def _transformer(in_channels: int, image_dim: int | None = None):
    from diffusers import WanTransformer3DModel

    heads, head_dim = 2, 12
    torch.manual_seed(0)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=in_channels,
        out_channels=16,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=image_dim,
        # Wan 2.1 I2V projects the image tokens to the inner width (5120 = 40 x 128 in the 14B model)
        added_kv_proj_dim=heads * head_dim if image_dim is not None else None,
    ).eval()


def _text_components() -> dict:
    tokenizer = t5_tokenizer()
    return {"tokenizer": tokenizer, "text_encoder": _text_encoder(tokenizer)}


def build_t2v(out_dir: Path) -> None:
    """WanPipeline (Wan 2.1 T2V)."""
    from diffusers import WanPipeline

    torch.manual_seed(0)
    components = _text_components()
    pipe = WanPipeline(
        transformer=_transformer(in_channels=16), vae=_vae(), scheduler=_scheduler(), **components
    )
    pipe.save_pretrained(out_dir)


def build_i2v(out_dir: Path) -> None:
    """WanImageToVideoPipeline (Wan 2.1 I2V 480P): the transformer takes noise (16) + the encoded first frame (16)
    + the 4-channel frame mask, and CLIP image tokens (penultimate hidden states) through added K/V projections."""
    from diffusers import WanImageToVideoPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    components = _text_components()
    torch.manual_seed(0)
    image_encoder = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=CLIP_HIDDEN,
            intermediate_size=37,
            projection_dim=CLIP_HIDDEN,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=CLIP_SIDE,
            patch_size=4,
        )
    ).eval()
    # Built offline with the real processor's normalisation (OpenAI CLIP mean/std), at the tiny input size.
    image_processor = CLIPImageProcessor(
        do_resize=True,
        size={"shortest_edge": CLIP_SIDE},
        do_center_crop=True,
        crop_size={"height": CLIP_SIDE, "width": CLIP_SIDE},
        do_normalize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
        do_convert_rgb=True,
    )
    pipe = WanImageToVideoPipeline(
        transformer=_transformer(in_channels=36, image_dim=CLIP_HIDDEN),
        vae=_vae(),
        scheduler=_scheduler(),
        image_encoder=image_encoder,
        image_processor=image_processor,
        **components,
    )
    pipe.save_pretrained(out_dir)
