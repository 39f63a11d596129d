"""Checkpoint files: atomic writes, safe loads, and the RNG state that makes ``--resume`` exact.

A checkpoint is plain data (dicts, lists, strings, numbers, tensors) so it loads with
``torch.load(weights_only=True)``: nothing in it can run code, and no class list is needed to read it
(unlike a pickled ``nn.Module``). Writes go to a temporary file in the same folder, are fsync'ed, then
renamed over the target, so a crash at any moment leaves either the old file or the new one, never half.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError

FORMAT = "pyjlode-checkpoint"
VERSION = 1


class CheckpointError(InputError):
    """A path that is not a readable pyjlode checkpoint (missing, garbage, truncated, wrong kind)."""


# --------------------------------------------------------------------------------------------------
# writing and reading


def _commit(tmp: Path, path: Path) -> None:
    """Atomically replace ``path`` by ``tmp`` (a separate hook so tests can crash right before it)."""
    os.replace(tmp, path)


def _fsync_dir(folder: Path) -> None:
    # The rename itself is only durable once the directory entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(obj: dict, path: str | os.PathLike) -> Path:
    """Write ``obj`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    Args:
        obj: the checkpoint dict (plain data only, see module docstring); ``format``/``version`` are added.
        path: target file; its folder is created if needed.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **obj}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
    return _atomic(path, write)


def snapshot_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Make ``dst`` an atomic snapshot of the checkpoint file ``src`` without serialising it again.

    A hard link when the file system allows it (``save_checkpoint`` later *replaces* ``src`` by a new file,
    so the link keeps the old content), else a copy; either way through a temp file and a rename.
    """
    src = Path(src)

    def write(tmp: Path) -> None:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
    return _atomic(Path(dst), write)


def _atomic(path: Path, write) -> Path:
    """Let ``write`` fill a temp file beside ``path``, then rename it over ``path`` (never half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        _commit(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint file for ``path``: the file itself, or ``best.pt`` / ``last.pt`` inside a run folder.

    Raises:
        CheckpointError: nothing there.
    """
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"no best.pt or last.pt in {path}; pass a checkpoint written by 'pyjlode train'")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; pass a .pt file written by 'pyjlode train'")
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True`` and check it is one of ours.

    Args:
        path: a ``.pt`` file or a run folder (``best.pt`` preferred, then ``last.pt``).
        map_location: where tensors land (default CPU; the caller moves the model).

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: missing, unreadable (garbage, truncated) or not a pyjlode checkpoint; one line.
    """
    path = resolve_checkpoint(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError... depending on the damage
        # torch's own messages run over many lines and talk about weights_only; name the kind only.
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: damaged, truncated "
                              "or not written by 'pyjlode train'); use another file, e.g. last.pt") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a torch file but not a pyjlode checkpoint; "
                              "pass a .pt file written by 'pyjlode train'")
    if obj.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} was written by a newer pyjlode (format {obj['version']}); upgrade pyjlode")
    return obj


# --------------------------------------------------------------------------------------------------
# rebuilding from a checkpoint


def to_device(state: Any, device) -> Any:
    """Move a recurrent state (tensor, nested tuples/lists of tensors, or None) to ``device``."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(to_device(s, device) for s in state)
    return state.to(device)


def load_vocab(ckpt: dict):
    """(Tokenizer, Vocab) stored in a checkpoint."""
    from ..data import Tokenizer, Vocab

    return Tokenizer.from_dict(ckpt["tokenizer"]), Vocab.from_dict(ckpt["vocab"])


def model_from_checkpoint(ckpt: dict, device="cpu", backend: str | None = None):
    """Rebuild the LanguageModel from a checkpoint's model config and load its weights.

    Args:
        backend: run a GRU-ODE on this engine ("torch" or "julia") instead of the one it was trained with.
    """
    from ..models import LanguageModel, ModelConfig

    cfg = ModelConfig(**ckpt["model_config"])
    if backend is not None and cfg.cell == "gru-ode":
        cfg.cell_options = {**cfg.cell_options, "backend": backend}
    model = LanguageModel.from_config(cfg)
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device)


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
