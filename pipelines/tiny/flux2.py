"""Tiny random FLUX.2 [dev] pipeline (Flux2Pipeline), after diffusers' Flux2 tests, built fully offline.

The real text side is a Mistral-Small-3.1 Mistral3ForConditionalGeneration driven through a PixtralProcessor (the
pipeline's `tokenizer` component). The hub-only pieces of diffusers' recipe are rebuilt here: a byte-level BPE
tokenizer whose first ids are Mistral's special tokens, a PixtralImageProcessor with a 24 px longest edge and 6 px
patches, and a trimmed Mistral chat template (system prompt, user turns with text and image blocks, assistant turns).

The real pipeline stacks the hidden states after text layers (10, 20, 30) of a 40-layer model. The tiny text model has
3 layers (30 would cost about 1 s per prompt at the pipeline's 512 tokens), so the family's runners pick the layers
with `families.flux2.text_encoder_out_layers(text_encoder)`: the real default when the model is deep enough, else
(1, 2, 3). The stacked output is 3 x 16 = 48 wide, the transformer's joint_attention_dim.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .tokenizers import byte_alphabet

# The pipeline stacks three hidden states of the text model (see the module docstring).
STACKED_LAYERS = 3
TEXT_LAYERS = 3

# Mistral-Small-3.1 (tekken) special tokens, in their real id order.
MISTRAL_SPECIAL_TOKENS = [
    "<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]", "[PREFIX]", "[MIDDLE]",
    "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]",
]

# Mistral-Small-3.1's chat template, trimmed to what the FLUX.2 pipeline renders (no tools).
MISTRAL_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['content'] is string %}{%- set blocks = [{'type': 'text', 'text': message['content']}] %}"
    "{%- else %}{%- set blocks = message['content'] %}{%- endif %}"
    "{%- if message['role'] == 'system' %}{{- '[SYSTEM_PROMPT]' }}"
    "{%- elif message['role'] == 'user' %}{{- '[INST]' }}{%- endif %}"
    "{%- for block in blocks %}"
    "{%- if block['type'] == 'text' %}{{- block['text'] }}"
    "{%- elif block['type'] in ['image', 'image_url'] %}{{- '[IMG]' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if message['role'] == 'system' %}{{- '[/SYSTEM_PROMPT]' }}"
    "{%- elif message['role'] == 'user' %}{{- '[/INST]' }}"
    "{%- elif message['role'] == 'assistant' %}{{- eos_token }}{%- endif %}"
    "{%- endfor %}"
)


def mistral_tokenizer(model_max_length: int = 2048):
    """A byte-level BPE PreTrainedTokenizerFast: Mistral's special tokens first, then the 256 byte symbols."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(MISTRAL_SPECIAL_TOKENS)}
    for piece in byte_alphabet():
        vocab.setdefault(piece, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in MISTRAL_SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=model_max_length,
    )


def pixtral_processor():
    from transformers import PixtralImageProcessor, PixtralProcessor

    image_processor = PixtralImageProcessor(size={"longest_edge": 24}, patch_size={"height": 6, "width": 6})
    return PixtralProcessor(
        image_processor=image_processor,
        tokenizer=mistral_tokenizer(),
        patch_size=6,
        spatial_merge_size=2,
        chat_template=MISTRAL_CHAT_TEMPLATE,
    )


def build(out_dir: Path) -> None:
    from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2Pipeline, Flux2Transformer2DModel
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    processor = pixtral_processor()
    tokenizer = processor.tokenizer
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in ("<s>", "</s>", "<pad>", "[IMG]")}

    torch.manual_seed(0)
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels x the pipeline's 2x2 patchify
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=16 * STACKED_LAYERS,
        timestep_guidance_channels=256,  # hardcoded in the original model
        axes_dims_rope=[4, 4, 4, 4],
    ).eval()

    config = Mistral3Config(
        text_config={
            "model_type": "mistral",
            "vocab_size": len(tokenizer),
            "hidden_size": 16,
            "intermediate_size": 37,
            "max_position_embeddings": 2048,
            "num_attention_heads": 4,
            "num_hidden_layers": TEXT_LAYERS,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-05,
            "rope_theta": 1000000000.0,
            "sliding_window": None,
            "bos_token_id": ids["<s>"],
            "eos_token_id": ids["</s>"],
            "pad_token_id": ids["<pad>"],
        },
        vision_config={
            "model_type": "pixtral",
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "intermediate_size": 37,
            "image_size": 30,
            "patch_size": 6,
            "num_channels": 3,
        },
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<pad>"],
        image_seq_length=4,
        vision_feature_layer=-1,
        spatial_merge_size=2,
        image_token_index=ids["[IMG]"],
    )
    torch.manual_seed(0)
    text_encoder = Mistral3ForConditionalGeneration(config).eval()

    torch.manual_seed(0)
    vae = AutoencoderKLFlux2(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(4, 8, 8),  # x4 spatial compression: 64 px references stay cheap
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
    ).eval()

    pipe = Flux2Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=processor,
        transformer=transformer,
    )
    pipe.save_pretrained(out_dir)
