"""The training loop: exact resume, Ctrl-C, non-finite loss and solver failures, metrics.jsonl, stopping."""
from __future__ import annotations

import json
import math
import os
import random
import signal

import pytest
import torch

from pyjlode.training import loop as train_mod
from pyjlode.training.state import load_checkpoint
from pyjlode.models import LanguageModel, SolverConfig
from pyjlode.ode.errors import StepSizeUnderflow
from pyjlode.training.config import TrainConfig, build_configs
from pyjlode.training.loop import TrainingStopped, train

WORDS = "the king and queen of england went to see a play in london with many friends".split()


def write_corpus(path, lines: int = 400, seed: int = 0):
    rng = random.Random(seed)
    path.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10)))
                              for _ in range(lines)) + "\n")
    return path


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "text.txt")


def run(out, corpus, resume=False, echo=None, **opts):
    base = dict(corpus=str(corpus), out=str(out), model="gru", embed_size=8, hidden_size=16, batch_size=4,
                bptt=8, eval_tokens=200, eval_interval=0, eval_seconds=0, time_budget=0, max_steps=6,
                log_interval=2, seed=0)
    mcfg, tcfg = build_configs({**base, **opts})
    return train(mcfg, tcfg, resume=resume, echo=echo or (lambda line: None))


def params(out, name="last.pt"):
    return load_checkpoint(out / name)["state_dict"]


def same_params(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def events(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------------------------------
# exact resume


@pytest.mark.parametrize("model", ["lstm", "gru-ode"])
def test_resume_continues_exactly(tmp_path, corpus, model):
    # dropout > 0 so the RNG state matters; the LSTM carries a (h, c) tuple; 3 is not an eval step.
    opts = dict(model=model, dropout=0.2, eval_interval=2)
    run(tmp_path / "straight", corpus, max_steps=6, **opts)
    run(tmp_path / "halves", corpus, max_steps=3, **opts)
    summary = run(tmp_path / "halves", corpus, resume=True, max_steps=6, **opts)
    assert summary["step"] == 6
    assert same_params(params(tmp_path / "straight"), params(tmp_path / "halves"))


def test_resume_across_an_epoch_boundary(tmp_path):
    small = write_corpus(tmp_path / "small.txt", lines=80)
    run(tmp_path / "a", small, max_steps=0, epochs=2, dropout=0.1)
    first = run(tmp_path / "b", small, max_steps=0, epochs=1, dropout=0.1)
    second = run(tmp_path / "b", small, resume=True, max_steps=0, epochs=2, dropout=0.1)
    assert second["step"] == 2 * first["step"] and first["stopped"] == "epochs"
    assert same_params(params(tmp_path / "a"), params(tmp_path / "b"))


def test_resume_takes_model_options_from_checkpoint(tmp_path, corpus):
    run(tmp_path, corpus, max_steps=2)
    lines = []
    run(tmp_path, corpus, resume=True, echo=lines.append, max_steps=4, hidden_size=99)
    mcfg = load_checkpoint(tmp_path / "last.pt")["model_config"]
    assert mcfg["hidden_size"] == 16


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, corpus):
    with pytest.raises(ValueError, match="last.pt"):
        run(tmp_path / "nothing", corpus, resume=True)


# --------------------------------------------------------------------------------------------------
# interruptions and failures


def _fail_on_call(monkeypatch, n: int, exc: BaseException):
    """Make the n-th training step consume some randomness, then raise ``exc`` (mid-step)."""
    real = train_mod.Trainer.step
    calls = {"n": 0}

    def step(self, x, y):
        calls["n"] += 1
        if calls["n"] == n:
            torch.rand(7)
            random.random()
            raise exc
        return real(self, x, y)

    monkeypatch.setattr(train_mod.Trainer, "step", step)


def test_ctrl_c_saves_and_resume_is_still_exact(tmp_path, corpus, monkeypatch):
    run(tmp_path / "straight", corpus, max_steps=6, dropout=0.2, eval_interval=2)
    with monkeypatch.context() as m:
        _fail_on_call(m, 4, KeyboardInterrupt())
        summary = run(tmp_path / "cut", corpus, max_steps=6, dropout=0.2, eval_interval=2)
    assert summary["stopped"] == "interrupted" and summary["step"] == 3
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["progress"]["step"] == 3
    run(tmp_path / "cut", corpus, resume=True, max_steps=6, dropout=0.2, eval_interval=2)
    assert same_params(params(tmp_path / "straight"), params(tmp_path / "cut"))


def test_sigterm_is_handled_like_ctrl_c(tmp_path, corpus, monkeypatch):
    real = train_mod.Trainer.step
    calls = {"n": 0}

    def step(self, x, y):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, x, y)

    monkeypatch.setattr(train_mod.Trainer, "step", step)
    before = signal.getsignal(signal.SIGTERM)
    summary = run(tmp_path, corpus, max_steps=6)
    assert summary["stopped"] == "interrupted" and summary["step"] == 2
    assert load_checkpoint(tmp_path / "last.pt")["progress"]["step"] == 2
    assert signal.getsignal(signal.SIGTERM) == before          # the handler is put back


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, corpus, monkeypatch):
    real = LanguageModel.forward
    calls = {"n": 0}

    def forward(self, tokens, state=None):
        logits, state = real(self, tokens, state)
        if self.training:
            calls["n"] += 1
            if calls["n"] >= 5:
                logits = logits * float("nan")
        return logits, state

    monkeypatch.setattr(LanguageModel, "forward", forward)
    with pytest.raises(TrainingStopped) as info:
        run(tmp_path, corpus, max_steps=10, eval_interval=2)
    message = str(info.value)
    assert "non-finite loss" in message and "last.pt" in message and "\n" not in message
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["progress"]["step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_solver_failure_names_solver_and_suggests_stiff_solver(tmp_path, corpus, monkeypatch):
    _fail_on_call(monkeypatch, 4, StepSizeUnderflow("step size underflow", solver="Tsit5", t=0.5, dt=1e-14))
    with pytest.raises(TrainingStopped) as info:
        run(tmp_path, corpus, max_steps=6, eval_interval=2)
    message = str(info.value)
    assert "Tsit5" in message and "`backward_solver` KenCarp4" in message and "last.pt" in message
    assert load_checkpoint(tmp_path / "last.pt")["progress"]["step"] == 2


# --------------------------------------------------------------------------------------------------
# what a run writes


def test_checkpoint_contents_rebuild_everything(tmp_path, corpus):
    run(tmp_path, corpus, model="lstm", max_steps=2)
    raw = torch.load(tmp_path / "last.pt", weights_only=True)
    for key in ("model_config", "train_config", "tokenizer", "vocab", "state_dict", "optimizer",
                "scheduler", "rng", "progress", "carry"):
        assert key in raw
    assert TrainConfig(**raw["train_config"]).bptt == 8
    model = LanguageModel.from_config(raw["model_config"])
    model.load_state_dict(raw["state_dict"])
    assert isinstance(raw["carry"], tuple) and raw["carry"][0].shape == (1, 4, 16)  # LSTM (h, c)


@pytest.mark.parametrize("model", ["gru", "gru-ode"])
def test_metrics_jsonl_records_training_and_evaluation(tmp_path, corpus, model):
    run(tmp_path, corpus, model=model, max_steps=4, eval_interval=2, log_interval=1)
    rows = events(tmp_path)
    evals = [r for r in rows if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    for r in evals:
        for key in ("step", "tokens", "wall", "train_ppl", "valid_ppl", "lr"):
            assert key in r
        assert ("nfe_fwd" in r) == (model == "gru-ode")
    if model == "gru-ode":
        assert all(r["nfe_fwd"] > 0 and r["nfe_bwd"] > 0 for r in evals)
    assert [r["tokens"] for r in rows if r["event"] == "train"] == [32, 64, 96, 128]  # batch 4 x bptt 8 per step


def test_epochs_end_with_an_evaluation_each(tmp_path):
    small = write_corpus(tmp_path / "small.txt", lines=80)
    summary = run(tmp_path / "run", small, max_steps=0, epochs=2)
    evals = [r for r in events(tmp_path / "run") if r["event"] == "eval"]
    assert summary["stopped"] == "epochs"
    assert [r["epoch"] for r in evals] == [0, 1] and evals[-1]["step"] == summary["step"]


def test_time_budget_stops_and_evaluates(tmp_path, corpus):
    summary = run(tmp_path, corpus, max_steps=0, epochs=1000, time_budget=0.5)
    assert summary["stopped"] == "time_budget"
    assert events(tmp_path)[-1]["event"] == "eval"
    assert math.isfinite(summary["best_valid_ppl"])


def test_dry_run_writes_nothing(tmp_path, corpus):
    summary = run(tmp_path / "dry", corpus, dry_run=True, max_steps=100)
    assert summary["stopped"] == "dry_run" and summary["step"] == 1
    assert not (tmp_path / "dry").exists()


def test_build_configs_maps_cli_names(tmp_path):
    mcfg, tcfg = build_configs({"model": "gru-ode", "layers": 2, "backward_solver": "KenCarp4", "bptt": 7,
                                "solver": None})
    assert (mcfg.cell, mcfg.num_layers, tcfg.bptt) == ("gru-ode", 2, 7)
    assert mcfg.ode == SolverConfig(backward_solver="KenCarp4")
    baseline, _ = build_configs({"model": "gru", "backward_solver": "KenCarp4"})
    assert baseline.ode == SolverConfig()       # solver options only reach the GRU-ODE
    with pytest.raises(ValueError, match="unknown training option"):
        build_configs({"hiden_size": 3})
