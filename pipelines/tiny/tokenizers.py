"""Tokenizers built offline (no hub) for the tiny preview models."""
from __future__ import annotations

import string


def byte_alphabet() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values (byte-level BPE alphabet)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


# Real CLIP's BPE makes about one token per word, so its 77 positions hold an ordinary prompt of some 60 words. This
# tiny tokenizer has no merges: every character is a token, and a 60-word prompt is about 300. At 77 positions every
# ordinary prompt was cut, and each run warned twice per text encoder (transformers: "Token indices sequence length
# is longer than the specified maximum sequence length for this model"; diffusers: "The following part of your
# input was truncated because CLIP can only handle sequences up to 77 tokens"). So the tiny tokenizer is 512 long,
# and the tiny CLIP text encoders get as many positions (`clip_text_config`): an ordinary prompt fits whole, as it
# does on the real model, and only a prompt a real CLIP would also cut (some 85 words and more) is truncated.
CLIP_MAX_LENGTH = 512


def clip_tokenizer(model_max_length: int = CLIP_MAX_LENGTH):
    """A CLIPTokenizer over the byte alphabet (every text tokenizes; no merges: one token per character)."""
    from transformers import CLIPTokenizer

    alphabet = byte_alphabet()
    vocab: dict[str, int] = {}
    for piece in alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]:
        vocab.setdefault(piece, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def clip_text_config(tokenizer, **overrides):
    """The tiny CLIP text encoder's config for `tokenizer`: its vocabulary, special tokens, and one position per
    token the tokenizer keeps (max_position_embeddings == model_max_length, so truncation and the encoder agree)."""
    from transformers import CLIPTextConfig

    fields = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        vocab_size=len(tokenizer),
        max_position_embeddings=tokenizer.model_max_length,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        hidden_act="gelu",
        projection_dim=32,
    )
    return CLIPTextConfig(**{**fields, **overrides})


def t5_tokenizer(model_max_length: int = 512):
    """A Unigram T5Tokenizer with <pad>=0, </s>=1, <unk>=2 and printable ASCII pieces."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    for ch in string.ascii_letters + string.digits + string.punctuation:
        pieces.append((ch, -2.0))
        pieces.append(("\u2581" + ch, -2.5))
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=model_max_length)
