"""A checkpoint's model, ready to evaluate: on the asked-for device and engine, with the asked-for threads."""
from __future__ import annotations

import torch

from ..errors import InputError
from ..training.checkpoint_io import resolve_checkpoint
from ..training.config import apply_threads
from ..training.state import load_checkpoint, load_vocab, model_from_checkpoint
from .config import EvalConfig


def load_model(checkpoint, cfg: EvalConfig):
    """(checkpoint file, checkpoint dict, tokenizer, vocab, model in eval mode) under ``cfg``'s device,
    engine and threads."""
    cfg.validate()
    apply_threads(cfg.threads)
    path = resolve_checkpoint(checkpoint)
    ckpt = load_checkpoint(path)
    tokenizer, vocab = load_vocab(ckpt)
    model = model_from_checkpoint(ckpt, _device(cfg.device), cfg.backend).eval()
    return path, ckpt, tokenizer, vocab, model


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("`device` cuda was asked for but CUDA is not available; use `device` cpu")
    return torch.device(device)


__all__ = ["load_model"]
