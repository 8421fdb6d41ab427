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


def clip_tokenizer(model_max_length: int = 77):
    """A CLIPTokenizer over the byte alphabet (every text tokenizes; no merges)."""
    from transformers import CLIPTokenizer

    alphabet = byte_alphabet()
    vocab: dict[str, int] = {}
    for piece in alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]:
        vocab.setdefault(piece, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def t5_tokenizer(model_max_length: int = 512):
    """A Unigram T5Tokenizer with <pad>=0, </s>=1, <unk>=2 and printable ASCII pieces."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    for ch in string.ascii_letters + string.digits + string.punctuation:
        pieces.append((ch, -2.0))
        pieces.append(("\u2581" + ch, -2.5))
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=model_max_length)
