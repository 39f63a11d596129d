"""What a checkpoint holds, and how the training state goes into one and comes back out.

A checkpoint is plain data (dicts, lists, strings, numbers, tensors), so it loads with
``torch.load(weights_only=True)`` and no class list is needed to read it (unlike a pickled ``nn.Module``)::

    format, version     "pyjlode-checkpoint", VERSION
    model_config        asdict(ModelConfig), the solver settings under "ode"
    train_config        asdict(TrainConfig)
    tokenizer, vocab    Tokenizer.to_dict(), Vocab.to_dict()
    state_dict          the model's parameters
    optimizer, scheduler  their state_dicts
    rng                 every generator training draws from (rng_state())
    progress            asdict(Progress): where the run stands
    carry               the recurrent state carried into the next window (global over ranks), or None

Version 1 (before the solver settings had a config of their own) kept them as ``cell_options``; such
checkpoints load as version 2.
"""
from __future__ import annotations

import math
import os
import random
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..models.config import ModelConfig
from .checkpoint_io import CheckpointError, read_torch, resolve_checkpoint, save_torch
from .config import TrainConfig

FORMAT = "pyjlode-checkpoint"
VERSION = 2


@dataclass
class Progress:
    """Where a run stands; saved in checkpoints so --resume picks up at the same batch."""

    step: int = 0
    epoch: int = 0
    pos: int = 0                  # row of the (T, B) stream where the next window starts
    tokens: int = 0               # training tokens seen, over all ranks
    train_time: float = 0.0       # seconds of training (evaluations included), over resumes
    step_seconds: float = 0.0     # mean duration of the latest steps: the time budget's guess for the next
    best_valid: float = math.inf  # best validation NLL so far
    best_step: int = 0
    last_eval_step: int = -1


# --------------------------------------------------------------------------------------------------
# files


def save_checkpoint(obj: dict, path: str | os.PathLike):
    """Write the checkpoint dict ``obj`` to ``path`` atomically; ``format`` and ``version`` are added.

    Returns:
        The path written.
    """
    return save_torch({"format": FORMAT, "version": VERSION, **obj}, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint, check it is one of ours, and bring an older version's layout up to date.

    Args:
        path: a ``.pt`` file or a run folder (``best.pt`` preferred, then ``last.pt``).
        map_location: where tensors land (default CPU; the caller moves the model).

    Raises:
        CheckpointError: missing, unreadable (garbage, truncated) or not a pyjlode checkpoint; one line.
    """
    path = resolve_checkpoint(path)
    obj = read_torch(path, map_location)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a torch file but not a pyjlode checkpoint; "
                              "pass a .pt file written by 'pyjlode train'")
    if obj.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} was written by a newer pyjlode (format {obj['version']}); upgrade pyjlode")
    return _upgrade(obj)


def _upgrade(obj: dict) -> dict:
    """The checkpoint in this version's layout."""
    if obj.get("version", 1) < 2:
        model = dict(obj["model_config"])
        model["ode"] = model.pop("cell_options", {})     # the same names, now SolverConfig's fields
        train = dict(obj["train_config"])
        train["max_vocab"] = train.get("max_vocab") or 0  # None meant no limit; now 0 does
        obj = {**obj, "version": VERSION, "model_config": model, "train_config": train}
    return obj


# --------------------------------------------------------------------------------------------------
# the payload and its parts


def checkpoint_payload(*, model_config: ModelConfig, train_config: TrainConfig, tokenizer, vocab, model,
                       optimizer, scheduler, progress: Progress, carry) -> dict:
    """The checkpoint dict of a training run (see the module docstring); ``carry`` already on the CPU."""
    return {"model_config": asdict(model_config), "train_config": asdict(train_config),
            "tokenizer": tokenizer.to_dict(), "vocab": vocab.to_dict(), "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state(),
            "progress": asdict(progress), "carry": carry}


def model_config(ckpt: dict) -> ModelConfig:
    return ModelConfig.from_dict(ckpt["model_config"])


def train_config(ckpt: dict) -> TrainConfig:
    return TrainConfig(**ckpt["train_config"])


def load_vocab(ckpt: dict):
    """(Tokenizer, Vocab) stored in a checkpoint."""
    from ..data import Tokenizer, Vocab

    return Tokenizer.from_dict(ckpt["tokenizer"]), Vocab.from_dict(ckpt["vocab"])


def model_from_checkpoint(ckpt: dict, device="cpu", backend: str | None = None):
    """Rebuild the LanguageModel from a checkpoint's model config and load its weights.

    Args:
        backend: run a GRU-ODE on this engine ("torch" or "julia") instead of the one it was trained with.
    """
    from dataclasses import replace

    from ..models import LanguageModel

    cfg = model_config(ckpt)
    if backend is not None and cfg.cell == "gru-ode":
        cfg = replace(cfg, ode=replace(cfg.ode, backend=backend))
    model = LanguageModel.from_config(cfg)
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device)


def to_device(state: Any, device) -> Any:
    """Move a recurrent state (tensor, nested tuples/lists of tensors, or None) to ``device``."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(to_device(s, device) for s in state)
    return state.to(device)


# --------------------------------------------------------------------------------------------------
# random number generators, as tensors so weights_only loading accepts them


def rng_state() -> dict[str, Any]:
    """The state of every generator training draws from: torch (CPU and CUDA), Python, NumPy."""
    version, words, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": torch.tensor(words, dtype=torch.int64),
        "python_version": int(version),
        "python_gauss": gauss,
    }
    try:
        import numpy as np
    except ImportError:  # numpy is optional for the loop itself
        np = None
    if np is not None:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = {"kind": str(kind), "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                          "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (generators it did not capture are left alone)."""
    torch.set_rng_state(state["torch"].cpu())
    words = tuple(int(w) for w in state["python"].tolist())
    random.setstate((state["python_version"], words, state["python_gauss"]))
    if "numpy" in state:
        import numpy as np

        s = state["numpy"]
        np.random.set_state((s["kind"], s["keys"].numpy().astype("uint32"), s["pos"], s["has_gauss"],
                             s["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), Python's ``random`` and NumPy's global generator."""
    torch.manual_seed(seed)
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass


__all__ = ["FORMAT", "VERSION", "Progress", "save_checkpoint", "load_checkpoint", "checkpoint_payload",
           "model_config", "train_config", "load_vocab", "model_from_checkpoint", "to_device",
           "rng_state", "set_rng_state", "seed_everything"]
