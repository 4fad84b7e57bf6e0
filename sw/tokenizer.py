"""Tokenizer of a checkpoint directory: ``tokenizer.json`` read with the ``tokenizers`` library.

Contract: ``load_tokenizer(dir) -> tokenizers.Tokenizer | None``. None when ``dir`` is not a
directory or holds no ``tokenizer.json`` (random-init presets, bare checkpoints); a present but
unreadable file raises ``TokenizerError``. Works offline (the file is read from disk only).
"""
from __future__ import annotations

from pathlib import Path


class TokenizerError(RuntimeError):
    """tokenizer.json exists but cannot be used."""


def load_tokenizer(path: str | Path | None):
    if path is None:
        return None
    p = Path(path)
    f = p / "tokenizer.json" if p.is_dir() else None
    if f is None or not f.is_file():
        return None
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise TokenizerError(f"{f} exists but the 'tokenizers' package is not installed "
                             "(pip install -e .[export])") from None
    try:
        return Tokenizer.from_file(str(f))
    except Exception as e:
        raise TokenizerError(f"{f}: cannot load ({e})") from None


def encode_prompt(text: str | None, tokenizer, model_config) -> list[int]:
    """The prompt's token ids as every host of the accelerator feeds them: the tokenizer's ids with
    BOS first (added when the tokenizer does not add it), BOS alone without a prompt, and without a
    tokenizer the UTF-8 bytes modulo the vocabulary (as sw.generate). `model_config` is a
    spec.models.ModelConfig."""
    if not text:
        return [model_config.bos_token_id]
    if tokenizer is not None:
        ids = tokenizer.encode(text).ids
    else:
        ids = [b % model_config.vocab_size for b in text.encode()]
    if not ids or ids[0] != model_config.bos_token_id:
        ids = [model_config.bos_token_id] + ids
    return ids
