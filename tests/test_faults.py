"""Reliability under faults: a run killed mid-checkpoint, --resume after it, a vector field going NaN and a
solver failing mid-run, damaged checkpoints given to every command, and compare with a failing model."""
from __future__ import annotations

import textwrap

import pytest
import torch
from click.testing import CliRunner
from exp_helpers import (max_diff, run_python, single_thread, state_dict, tiny_cli_args, train_tiny,
                         write_corpus)

from pyjlode.training import loop as train_mod
from pyjlode.training.state import load_checkpoint
from pyjlode.cli import cli
from pyjlode.experiments import compare as compare_mod
from pyjlode.evaluation.config import EvalConfig
from pyjlode.experiments import runs
from pyjlode.models.gru_ode_field import GRUODEField
from pyjlode.ode.errors import StepSizeUnderflow

# The training subprocess SIGKILLs itself when it is about to rename the step-KILL_AT checkpoint over
# last.pt: the new file is fully written under its temporary name, the rename never happens.
KILLER = textwrap.dedent("""
    import os, signal, sys, torch
    from pyjlode.training import checkpoint_io as ck
    real = ck._commit
    def commit(tmp, target):
        if torch.load(tmp, weights_only=True)["progress"]["step"] >= int(os.environ["KILL_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)
        real(tmp, target)
    ck._commit = commit
    from pyjlode.cli import main
    main(sys.argv[1:])
""")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("faults") / "text.txt")


@pytest.mark.slow
def test_sigkill_mid_checkpoint_keeps_previous_and_resume_matches_uninterrupted(tmp_path, corpus):
    out = tmp_path / "killed"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = run_python([str(script), "train", *tiny_cli_args(corpus, out, model="gru", max_steps=6)],
                      env_extra={"KILL_AT": "6"})
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert load_checkpoint(out / "last.pt")["progress"]["step"] == 3    # the previous one, intact
    assert any(p.name.endswith(".tmp") for p in out.iterdir())          # killed between write and rename
    with single_thread():                     # the killed subprocess ran on one thread too
        train_tiny(out, corpus, resume=True, model="gru", max_steps=6)
        train_tiny(tmp_path / "straight", corpus, model="gru", max_steps=6)
    assert max_diff(state_dict(out / "last.pt"), state_dict(tmp_path / "straight" / "last.pt")) == 0.0


def _arm_after_first_save(monkeypatch) -> dict:
    """A flag that turns on once the first checkpoint has been written (so a good one exists)."""
    armed = {"on": False}
    real = train_mod.Trainer.save

    def save(self, *a, **k):
        real(self, *a, **k)
        armed["on"] = True

    monkeypatch.setattr(train_mod.Trainer, "save", save)
    return armed


def _train_cli(corpus, out, **opts):
    args = tiny_cli_args(corpus, out, model="gru-ode", solver="RK4", max_steps=9, **opts)
    return CliRunner().invoke(cli, ["train", *args])


def _assert_stopped_with_good_checkpoint(res, out, *words):
    assert res.exit_code == 2, res.output
    (message,) = res.stderr.strip().splitlines()                       # one line, on stderr
    assert message.startswith("error: ") and "last.pt" in message
    for w in words:
        assert w in message
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["progress"]["step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_vector_field_turning_nan_stops_with_message_and_keeps_checkpoint(tmp_path, corpus, monkeypatch):
    armed = _arm_after_first_save(monkeypatch)
    real = GRUODEField.__call__

    def field(self, t, h):
        dh = real(self, t, h)
        return dh * float("nan") if armed["on"] else dh

    monkeypatch.setattr(GRUODEField, "__call__", field)
    out = tmp_path / "nan"
    _assert_stopped_with_good_checkpoint(_train_cli(corpus, out), out, "stopped")


def test_solver_failure_in_the_backward_pass_names_it_and_keeps_checkpoint(tmp_path, corpus, monkeypatch):
    armed = _arm_after_first_save(monkeypatch)
    real = GRUODEField.vjp

    def vjp(self, t, h, a, **kwargs):
        if armed["on"]:
            raise StepSizeUnderflow("step size underflow", solver="RK4", t=0.5, dt=1e-13)
        return real(self, t, h, a, **kwargs)

    monkeypatch.setattr(GRUODEField, "vjp", vjp)
    out = tmp_path / "underflow"
    _assert_stopped_with_good_checkpoint(_train_cli(corpus, out), out, "RK4", "--backward-solver")


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, corpus):
    root = tmp_path_factory.mktemp("damaged")
    train_tiny(root / "run", corpus, model="gru", max_steps=1)
    raw = (root / "run" / "last.pt").read_bytes()
    (root / "truncated").mkdir()
    (root / "truncated" / "last.pt").write_bytes(raw[: len(raw) // 2])
    (root / "garbage").mkdir()
    (root / "garbage" / "last.pt").write_bytes(b"not a checkpoint at all" * 10)
    return root


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
@pytest.mark.parametrize("command", ["resume", "evaluate", "generate", "analyze"])
def test_damaged_checkpoint_is_a_one_line_error(damaged, corpus, kind, command):
    folder = damaged / kind
    path = str(folder / "last.pt")
    args = {"resume": ["train", "--resume", "--out", str(folder), "--corpus", str(corpus)],
            "evaluate": ["evaluate", "--checkpoint", path],
            "generate": ["generate", "--checkpoint", path],
            "analyze": ["analyze", "--checkpoint", path, "--out", str(damaged / "analysis")]}[command]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "last.pt" in lines[0]
    assert "Traceback" not in res.output


def test_compare_marks_a_solver_failure_and_retries_it_next_time(tmp_path, monkeypatch):
    """One GRU-ODE variant fails with a solver error: the other rows are still reported; a second
    compare retries only the failed run."""
    calls, fail = [], {"on": True}

    def train_run(run_dir, options, echo=None):
        calls.append(run_dir)
        if fail["on"] and options.get("backward_solver") == "KenCarp4":
            raise StepSizeUnderflow("step size underflow", solver="KenCarp4", t=0.3, dt=1e-13)
        return {}

    monkeypatch.setattr(runs, "train_run", train_run)
    monkeypatch.setattr(runs, "evaluate_run", lambda run_dir, opts: {"test_ppl": 42.0, "params": 10})
    kw = dict(seeds=[1], variants="Tsit5/Tsit5,Tsit5/KenCarp4", out_dir=str(tmp_path), log=lambda s: None)
    first = compare_mod.compare(["gru", "gru-ode"], {"corpus": "x"}, **kw)
    status = {a["label"]: a["status"] for a in first["aggregated"]}
    assert status == {"gru": "ok", "gru-ode Tsit5/Tsit5": "ok", "gru-ode Tsit5/KenCarp4": "failed"}
    md = (tmp_path / "results.md").read_text()
    assert "**FAILED**" in md and "KenCarp4: step size underflow" in md and "| gru | ok" in md
    calls.clear()
    fail["on"] = False
    second = compare_mod.compare(["gru", "gru-ode"], {"corpus": "x"}, **kw)
    assert len(calls) == 1 and "KenCarp4" in calls[0]
    assert all(a["status"] == "ok" for a in second["aggregated"])


def test_ctrl_c_in_compare_leaves_the_run_unfinished_and_the_next_compare_resumes_it(tmp_path, corpus,
                                                                                     monkeypatch):
    from exp_helpers import TINY

    opts = {**{k: v for k, v in TINY.items() if k != "seed"}, "corpus": str(corpus), "max_steps": 6}
    kw = dict(seeds=[1], out_dir=str(tmp_path), evaluation=EvalConfig(prompts=2, prompt_len=3, gen_len=3),
              log=lambda s: None)
    real, calls = train_mod.Trainer.step, {"n": 0}

    def step(self, x, y):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(self, x, y)

    with monkeypatch.context() as m:
        m.setattr(train_mod.Trainer, "step", step)
        with pytest.raises(KeyboardInterrupt):
            compare_mod.compare(["gru"], opts, **kw)
    run_dir = tmp_path / "runs" / "gru-seed1"
    assert not (run_dir / "result.json").exists()
    assert load_checkpoint(run_dir / "last.pt")["progress"]["step"] == 4
    result = compare_mod.compare(["gru"], opts, **kw)
    assert result["runs"][0]["status"] == "ok"
    assert load_checkpoint(run_dir / "last.pt")["progress"]["step"] == 6
