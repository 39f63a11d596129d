"""Files that are never half-written: atomic writes of checkpoints and JSON, safe reads of checkpoints.

A write goes to a temporary file in the same folder, is fsync'ed, then renamed over the target, so a
crash at any moment leaves either the old file or the new one, never half. Checkpoints are read with
``torch.load(weights_only=True)``: nothing in one can run code. What a checkpoint holds is
:mod:`pyjlode.training.state`'s business.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import InputError
from .rundir import BEST, LAST, RunDir


class CheckpointError(InputError):
    """A path that is not a readable pyjlode checkpoint (missing, garbage, truncated, wrong kind)."""


# --------------------------------------------------------------------------------------------------
# writing


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


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Let ``write`` fill a temp file beside ``path``, then rename it over ``path`` (never half a file).

    The folder of ``path`` is created if needed. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        _commit(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def save_torch(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (temp file, fsync, rename)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
    return atomic_write(path, write)


def save_json(obj: Any, path: str | os.PathLike) -> Path:
    """``obj`` as indented JSON at ``path``, atomically (values JSON cannot hold are written as strings)."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=1, default=str)
            fh.flush()
            os.fsync(fh.fileno())
    return atomic_write(path, write)


def snapshot_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Make ``dst`` an atomic snapshot of the checkpoint file ``src`` without serialising it again.

    A hard link when the file system allows it (``save_torch`` later *replaces* ``src`` by a new file,
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
    return atomic_write(dst, write)


# --------------------------------------------------------------------------------------------------
# reading


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint file for ``path``: the file itself, or ``best.pt`` / ``last.pt`` inside a run folder.

    Raises:
        CheckpointError: nothing there.
    """
    path = Path(path)
    if path.is_dir():
        run = RunDir(path)
        found = run.checkpoint()
        if found is None:
            raise CheckpointError(f"no {run.best.name} or {run.last.name} in {path}; "
                                  "pass a checkpoint written by 'pyjlode train'")
        return found
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; pass a .pt file written by 'pyjlode train'")
    return path


def read_torch(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, any failure a one-line CheckpointError."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError... depending on the damage
        # torch's own messages run over many lines and talk about weights_only; name the kind only.
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: damaged, truncated "
                              f"or not written by 'pyjlode train'); {_other_checkpoint(path)}") from None


def _other_checkpoint(path: Path) -> str:
    """Advice after ``path`` failed to load: the run folder's other checkpoint when it has one."""
    run = RunDir(path.parent)
    other = {run.last.name: run.best, run.best.name: run.last}.get(path.name)
    if other is not None and other.is_file():
        return f"try {other} instead"
    return f"pass a checkpoint written by 'pyjlode train' (a run folder's {BEST} or {LAST})"


__all__ = ["CheckpointError", "atomic_write", "save_torch", "save_json", "snapshot_checkpoint",
           "resolve_checkpoint", "read_torch"]
