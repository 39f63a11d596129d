"""EvalConfig: how a trained model is scored and sampled, with the only copy of each default.

`pyjlode evaluate` takes every field as an option, `pyjlode generate` the sampling and run fields, and
`pyjlode compare` the protocol fields (its runs are scored exactly as `evaluate` scores a checkpoint).
Importing this module does not import torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..backends import BACKENDS
from ..errors import InputError
from ..flags import flag
from ..training.config import DEFAULT_THREADS, DEVICES, THREADS_HELP

SPLITS = ("train", "valid", "test")
# the fields that describe the generation protocol (what compare passes on to evaluate)
PROTOCOL = ("split", "prompts", "prompt_len", "gen_len", "temperature", "top_k")
# the fields that only say how to sample (what generate takes besides its prompt)
SAMPLING = ("temperature", "top_k", "seed", "device", "backend", "threads")


@dataclass(frozen=True)
class EvalConfig:
    """Perplexity on held-out text, then N prompts of K tokens continued by M sampled tokens each."""

    split: str = field(default="test", metadata=flag(
        "Which split of the corpus to score.", choices=SPLITS, aliases=("--eval-split",)))
    corpus: str | None = field(default=None, metadata=flag(
        "Take the split from this corpus instead of the model's own (a built-in name, a folder with "
        "train/valid/test files, or a text file, split by lines 90/5/5: --split test is its last 5 %)."))
    file: str | None = field(default=None, metadata=flag(
        "Score this whole UTF-8 text file, every line of it (instead of a split)."))
    prompts: int = field(default=50, metadata=flag(
        "Prompts taken at evenly spaced positions of the scored text (for BLEU, ROUGE and diversity)."))
    prompt_len: int = field(default=20, metadata=flag("Tokens per prompt."))
    gen_len: int = field(default=20, metadata=flag(
        "Tokens generated per prompt and compared with the true continuation."))
    temperature: float = field(default=1.0, metadata=flag("Sampling temperature (0: the likeliest token)."))
    top_k: int = field(default=0, metadata=flag("Sample from the k likeliest tokens (0: from all)."))
    seed: int = field(default=0, metadata=flag(
        "Seed of the sampling generator: the same for every model evaluated (common random numbers); "
        "generate mixes the prompt in, so two prompts do not share draws."))
    batch_size: int = field(default=10, metadata=flag(
        "Parallel streams for the perplexity pass (state carried down each)."))
    device: str = field(default="auto", metadata=flag(
        "Where to run the model; auto picks CUDA when available.", choices=DEVICES))
    backend: str | None = field(default=None, metadata=flag(
        "Run a GRU-ODE on this engine.", choices=BACKENDS, default_text="the one it was trained with"))
    threads: int = field(default=DEFAULT_THREADS, metadata=flag(THREADS_HELP))

    def validate(self) -> EvalConfig:
        """Check the settings before a checkpoint is read.

        Raises:
            InputError: a setting that cannot work, named in backticks, with the fix.
        """
        if self.split not in SPLITS:
            raise InputError(f"unknown `split` {self.split!r}; choose one of: {', '.join(SPLITS)}")
        if self.file and self.corpus:
            raise InputError("`file` scores a whole file and `corpus` a split of another corpus; give one")
        for name in ("prompts", "prompt_len", "gen_len", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"`{name}` must be at least 1 (got {getattr(self, name)})")
        if not self.temperature >= 0:
            raise InputError(f"`temperature` must be 0 (greedy) or positive (got {self.temperature})")
        for name in ("top_k", "threads"):
            if getattr(self, name) < 0:
                raise InputError(f"`{name}` must be 0 (off) or positive (got {getattr(self, name)})")
        return self


__all__ = ["EvalConfig", "SPLITS", "PROTOCOL", "SAMPLING"]
