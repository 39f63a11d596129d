"""Checkpoint files: atomic writes survive a crash, damaged files fail in one line, RNG state round-trips."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from pyjlode.training import checkpoint_io as ck
from pyjlode.training.checkpoint_io import CheckpointError, load_checkpoint, save_checkpoint


def _payload(value: float) -> dict:
    return {"state_dict": {"w": torch.full((3,), value)}, "train_config": {"lr": 1e-3, "cache_dir": None},
            "progress": {"step": int(value)}, "rng": ck.rng_state()}


def test_round_trip_with_weights_only(tmp_path):
    path = save_checkpoint(_payload(2.0), tmp_path / "run" / "last.pt")
    raw = torch.load(path, weights_only=True)          # plain data: the strict loader accepts it
    assert raw["format"] == ck.FORMAT and raw["version"] == ck.VERSION
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.full((3,), 2.0))


def test_folder_resolves_to_best_then_last(tmp_path):
    save_checkpoint(_payload(1.0), tmp_path / "last.pt")
    assert load_checkpoint(tmp_path)["progress"]["step"] == 1
    save_checkpoint(_payload(5.0), tmp_path / "best.pt")
    assert load_checkpoint(tmp_path)["progress"]["step"] == 5


def _damaged(tmp_path, kind: str):
    good = save_checkpoint(_payload(1.0), tmp_path / "good.pt")
    bad = tmp_path / f"{kind}.pt"
    if kind == "garbage":
        bad.write_bytes(b"this is not a checkpoint\n" * 40)
    elif kind == "truncated":
        data = good.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "foreign":
        torch.save({"weights": torch.ones(2)}, bad)     # a torch file, but not ours
    elif kind == "missing":
        pass
    return bad


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty", "foreign", "missing"])
def test_damaged_file_is_one_line_error(tmp_path, kind):
    bad = _damaged(tmp_path, kind)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad)
    message = str(info.value)
    assert "\n" not in message and str(bad) in message


def test_crash_before_rename_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(_payload(1.0), tmp_path / "last.pt")

    def crash(tmp, target):
        assert tmp.exists() and tmp.stat().st_size > 0   # the new file was fully written...
        raise OSError("simulated crash before rename")   # ...but never renamed over the old one

    monkeypatch.setattr(ck, "_commit", crash)
    with pytest.raises(OSError):
        save_checkpoint(_payload(9.0), path)
    assert load_checkpoint(path)["progress"]["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]   # no temp file left behind


def test_sigkill_between_write_and_rename_keeps_previous_checkpoint(tmp_path):
    path = save_checkpoint(_payload(1.0), tmp_path / "last.pt")
    child = textwrap.dedent(f"""
        import os, signal, torch
        from pyjlode.training import checkpoint_io as ck
        ck._commit = lambda tmp, target: os.kill(os.getpid(), signal.SIGKILL)
        ck.save_checkpoint({{"progress": {{"step": 9}}, "w": torch.ones(1000)}}, {str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=120)
    assert proc.returncode == -9
    assert load_checkpoint(path)["progress"]["step"] == 1
    leftovers = [p for p in tmp_path.iterdir() if p.name != "last.pt"]
    assert leftovers and all(p.name.endswith(".tmp") for p in leftovers)   # killed mid-protocol


def test_rng_state_round_trips_every_generator(tmp_path):
    ck.seed_everything(7)
    state = ck.rng_state()
    first = (torch.rand(3), random.random(), np.random.rand())
    save_checkpoint({"rng": state}, tmp_path / "r.pt")
    torch.rand(5), random.random(), np.random.rand()     # move every generator on
    ck.set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    again = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]


def test_save_leaves_no_temp_files(tmp_path):
    for v in (1.0, 2.0):
        save_checkpoint(_payload(v), tmp_path / "last.pt")
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]


def test_snapshot_survives_later_saves(tmp_path):
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    save_checkpoint(_payload(1.0), last)
    ck.snapshot_checkpoint(last, best)
    save_checkpoint(_payload(2.0), last)            # replaces last.pt; best.pt keeps its content
    assert load_checkpoint(best)["progress"]["step"] == 1
    assert load_checkpoint(last)["progress"]["step"] == 2
    assert sorted(os.listdir(tmp_path)) == ["best.pt", "last.pt"]
