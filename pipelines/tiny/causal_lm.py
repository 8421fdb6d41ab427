"""A tiny random Qwen3 chat model (Qwen3ForCausalLM + a byte-level Qwen2Tokenizer with Qwen's ChatML template),
built offline: the offline preview of the local chat entries. Its replies are noise; the plumbing is real (chat
template, KV-cached sampling, streaming, seeds)."""
from __future__ import annotations

from pathlib import Path

from .qwen_image_edit import qwen_tokenizer

# Qwen's ChatML chat template (system / user / assistant turns; the generation prompt opens an assistant turn).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# The tiny model's own window: long enough for a real conversation's bounded context on one CPU core (every character
# is a token here), short enough that a prompt at the limit runs in well under a second.
TINY_CONTEXT_TOKENS = 2048


def build(out_dir: Path) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = qwen_tokenizer()
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.model_max_length = TINY_CONTEXT_TOKENS
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=TINY_CONTEXT_TOKENS,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen3ForCausalLM(config).eval()
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
