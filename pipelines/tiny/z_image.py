"""Tiny random Z-Image (Turbo) pipeline, after diffusers' tests/pipelines/z_image/test_z_image.py.

The Qwen tokenizer is built offline (byte-level BPE over GPT-2's byte alphabet, no merges, Qwen's special
tokens and a Qwen3-style chat template) instead of the hub's tiny-random Qwen2-VL tokenizer. The VAE keeps
the real 8x downsampling (FLUX VAE layout, 16 latent channels), so sizes are multiples of 16 as for the real model.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .tokenizers import byte_alphabet

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
QWEN_ADDED_TOKENS = ["<think>", "</think>"]

# Qwen3's template, reduced to plain messages (no tools); enable_thinking=False adds the empty think block.
QWEN3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}"
    "{% endif %}"
)


def qwen_tokenizer(model_max_length: int = 32768):
    """A Qwen2Tokenizer whose ids are the 256 byte characters, then Qwen's special tokens."""
    from transformers import Qwen2Tokenizer

    vocab = {piece: i for i, piece in enumerate(byte_alphabet())}
    for token in QWEN_SPECIAL_TOKENS + QWEN_ADDED_TOKENS:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=model_max_length,
        chat_template=QWEN3_CHAT_TEMPLATE,
        extra_special_tokens=QWEN_SPECIAL_TOKENS[1:],
    )
    tokenizer.add_tokens(QWEN_ADDED_TOKENS)
    return tokenizer


def build(out_dir: Path) -> None:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(0)
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        norm_eps=1e-5,
        qk_norm=True,
        cap_feat_dim=16,  # Qwen3 hidden size
        rope_theta=256.0,
        t_scale=1000.0,
        axes_dims=[8, 4, 4],  # sums to dim / n_heads
        axes_lens=[1024, 64, 64],
    ).eval()
    # x_pad_token and cap_pad_token are created with torch.empty (whatever memory held: NaNs happen);
    # the real checkpoint overwrites them, the tiny one must too.
    with torch.no_grad():
        transformer.x_pad_token.copy_(torch.randn_like(transformer.x_pad_token) * 0.02)
        transformer.cap_pad_token.copy_(torch.randn_like(transformer.cap_pad_token) * 0.02)

    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=4,
        sample_size=32,
        use_quant_conv=False,
        use_post_quant_conv=False,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    ).eval()

    tokenizer = qwen_tokenizer()
    torch.manual_seed(0)
    text_encoder = Qwen3Model(
        Qwen3Config(
            hidden_size=16,
            intermediate_size=16,
            num_hidden_layers=2,  # the pipeline reads hidden_states[-2]
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=8,
            vocab_size=len(tokenizer),
            max_position_embeddings=1024,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    ).eval()

    # Z-Image-Turbo's scheduler config: static shift 3.0.
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)

    ZImagePipeline(
        transformer=transformer, vae=vae, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer
    ).save_pretrained(out_dir)
