"""Checkpoint files: atomic writes survive a crash, damaged files fail in one line, RNG state round-trips,
and checkpoints in an older layout still load."""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from pyjlode.models import SolverConfig
from pyjlode.training import checkpoint_io as ck
from pyjlode.training import state
from pyjlode.training.checkpoint_io import CheckpointError
from pyjlode.training.config import build_configs
from pyjlode.training.loop import train
from pyjlode.training.state import load_checkpoint, save_checkpoint


def _payload(value: float) -> dict:
    return {"state_dict": {"w": torch.full((3,), value)}, "train_config": {"lr": 1e-3, "cache_dir": None},
            "progress": {"step": int(value)}, "rng": state.rng_state()}


def test_round_trip_with_weights_only(tmp_path):
    path = save_checkpoint(_payload(2.0), tmp_path / "run" / "last.pt")
    raw = torch.load(path, weights_only=True)          # plain data: the strict loader accepts it
    assert raw["format"] == state.FORMAT and raw["version"] == state.VERSION
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
        from pyjlode.training.state import save_checkpoint
        save_checkpoint({{"progress": {{"step": 9}}, "w": torch.ones(1000)}}, {str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=120)
    assert proc.returncode == -9
    assert load_checkpoint(path)["progress"]["step"] == 1
    leftovers = [p for p in tmp_path.iterdir() if p.name != "last.pt"]
    assert leftovers and all(p.name.endswith(".tmp") for p in leftovers)   # killed mid-protocol


def test_rng_state_round_trips_every_generator(tmp_path):
    state.seed_everything(7)
    rng = state.rng_state()
    first = (torch.rand(3), random.random(), np.random.rand())
    save_checkpoint({"rng": rng}, tmp_path / "r.pt")
    torch.rand(5), random.random(), np.random.rand()     # move every generator on
    state.set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
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


# --------------------------------------------------------------------------------------------------
# older layouts

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.usefixtures("one_thread")
def test_a_version_1_checkpoint_loads_rebuilds_its_model_and_resumes(tmp_path, monkeypatch):
    """A checkpoint written before the solver settings had a config of their own (tests/fixtures)."""
    old = FIXTURES / "checkpoint-v1" / "last.pt"
    raw = torch.load(old, weights_only=True)
    assert raw["version"] == 1 and "cell_options" in raw["model_config"]      # really the old layout
    ckpt = load_checkpoint(old)
    assert state.model_config(ckpt).ode == SolverConfig(backward_solver="KenCarp4", rtol=1e-4, tau=0.5)
    model = state.model_from_checkpoint(ckpt)
    assert all(torch.equal(v, raw["state_dict"][k]) for k, v in model.state_dict().items())
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(old, run / "last.pt")
    monkeypatch.chdir(FIXTURES)            # the checkpoint names its corpus relative to this folder
    summary = train(*build_configs({"out": str(run), "max_steps": 4, "time_budget": 0}), resume=True,
                    echo=lambda line: None)
    assert summary["step"] == 4
    new = load_checkpoint(run / "last.pt")
    assert new["version"] == state.VERSION and new["model_config"]["ode"]["backward_solver"] == "KenCarp4"


def test_version_1_wrote_no_vocabulary_limit_as_none(tmp_path):
    old = {"format": state.FORMAT, "version": 1, "train_config": {"max_vocab": None},
           "model_config": {"vocab_size": 3, "cell": "gru", "cell_options": {}}}
    ck.save_torch(old, tmp_path / "old.pt")
    new = load_checkpoint(tmp_path / "old.pt")
    assert new["train_config"]["max_vocab"] == 0 and new["model_config"]["ode"] == {}
