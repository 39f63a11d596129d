"""Stopping and resuming: token and time budgets, what a resume keeps and changes, the time it reports, and
the messages when there is nothing to resume. Time is a fake clock advanced by the steps themselves, so
nothing here depends on how fast the machine is."""
from __future__ import annotations

import json
import re

import pytest
import torch
from click.testing import CliRunner
from exp_helpers import TINY, tiny_cli_args, train_tiny, write_corpus

from pyjlode.cli import cli
from pyjlode.training import loop as train_mod
from pyjlode.training.state import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

STEP_TOKENS = TINY["batch_size"] * TINY["bptt"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "text.txt")


@pytest.fixture
def fake_clock(monkeypatch):
    """Each training step takes 1 s and each evaluation 0.25 s of a clock the loop reads."""
    now = {"t": 1000.0}
    monkeypatch.setattr(train_mod, "_clock", lambda: now["t"])
    real_step, real_nll = train_mod.Trainer.step, train_mod.evaluate_nll

    def step(self, x, y):
        now["t"] += 1.0
        return real_step(self, x, y)

    def evaluate_nll(*args, **kwargs):
        now["t"] += 0.25
        return real_nll(*args, **kwargs)

    monkeypatch.setattr(train_mod.Trainer, "step", step)
    monkeypatch.setattr(train_mod, "evaluate_nll", evaluate_nll)
    return now


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="pyjlode")


def records(out, event="eval"):
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["event"] == event]


# --------------------------------------------------------------------------------------------------
# budgets


@pytest.mark.parametrize("model", ["gru", "gru-ode"])
def test_token_budget_gives_every_model_the_same_tokens(tmp_path, corpus, model):
    summary = train_tiny(tmp_path, corpus, model=model, solver="RK4", token_budget=5 * STEP_TOKENS - 1)
    assert summary["stopped"] == "token_budget"
    assert summary["tokens"] == 5 * STEP_TOKENS and summary["step"] == 5   # reached, by less than a step


def test_time_budget_stops_before_a_step_that_would_end_past_it(tmp_path, corpus, fake_clock):
    # Steps take 1 s: after 3 s the next step would end at 4 s > 3.5 s, so the run stops at 3 steps
    # (checking only "time left?" would start a fourth and end at 4 s).
    summary = train_tiny(tmp_path, corpus, eval_interval=0, time_budget=3.5)
    assert summary["stopped"] == "time_budget" and summary["step"] == 3
    assert summary["train_time"] == pytest.approx(3.25)     # the final evaluation comes after the stop


@pytest.mark.parametrize("option, value", [("time-budget", "-5"), ("token-budget", "-1"), ("max-steps", "-2"),
                                           ("threads", "-1"), ("eval-seconds", "-1"), ("time-budget", "nan")])
def test_negative_budgets_are_rejected_before_anything_is_written(tmp_path, corpus, option, value):
    result = invoke("train", *tiny_cli_args(corpus, tmp_path / "run"), f"--{option}", value)
    assert result.exit_code == 2 and f"--{option} must be 0 (off) or positive" in result.stderr
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------------------
# resume


def test_resume_keeps_the_runs_budget_and_threads_unless_given(tmp_path, corpus):
    first = invoke("train", *tiny_cli_args(corpus, tmp_path, max_steps=4, token_budget=2 * STEP_TOKENS,
                                           threads=1))
    assert first.exit_code == 0 and "done (token_budget): 2 steps" in first.output
    # The bare resume keeps the run's token budget (spent), not the command line's default (none).
    bare = invoke("train", "--out", tmp_path, "--resume")
    assert bare.exit_code == 0, bare.output
    assert f"keeps the run's --epochs 10, --max-steps 4, --token-budget {2 * STEP_TOKENS}, --threads 1" \
        in bare.output
    assert "nothing to train: the run's --token-budget" in bare.output
    assert load_checkpoint(tmp_path / "last.pt")["progress"]["step"] == 2
    more = invoke("train", "--out", tmp_path, "--resume", "--token-budget", str(3 * STEP_TOKENS))
    assert f"changes --token-budget {2 * STEP_TOKENS} -> {3 * STEP_TOKENS}" in more.output
    assert "keeps the run's --epochs 10, --max-steps 4, --threads 1" in more.output and "done (token_budget): 3 steps" in more.output
    assert load_checkpoint(tmp_path / "last.pt")["train_config"]["token_budget"] == 3 * STEP_TOKENS


def test_done_after_resume_agrees_with_the_logged_training_time(tmp_path, corpus, fake_clock):
    # Each session: its steps, then a final evaluation that counts too (the checkpoint is saved after it).
    train_tiny(tmp_path, corpus, eval_interval=0, max_steps=3)                  # 3 + 0.25 s
    summary = train_tiny(tmp_path, corpus, resume=True, eval_interval=0, max_steps=6)  # + 3 + 0.25 s
    assert summary["train_time"] == pytest.approx(6.5)
    assert records(tmp_path)[-1]["wall"] == pytest.approx(6.5)
    assert load_checkpoint(tmp_path / "last.pt")["progress"]["train_time"] == pytest.approx(6.5)
    result = invoke("train", "--out", tmp_path, "--resume", "--max-steps", "8")            # + 2 + 0.25 s
    assert re.search(r"in 9 s of training \(2 s in this session\)", result.output), result.output
    assert records(tmp_path)[-1]["wall"] == pytest.approx(8.75)


def test_resume_without_a_checkpoint_says_how_to_start(tmp_path):
    result = invoke("train", "--out", tmp_path / "empty", "--resume")
    assert result.exit_code == 2
    assert "nothing to resume in" in result.stderr and "leave out --resume to start a new run" in result.stderr
    assert ".pt file" not in result.stderr                    # no option of `train` takes one


def test_resume_from_a_damaged_last_points_at_best(tmp_path, corpus):
    train_tiny(tmp_path, corpus, max_steps=3)
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").unlink()                       # best.pt may be a hard link to the same file
    (tmp_path / "last.pt").write_bytes(data[:len(data) // 3])
    result = invoke("train", "--out", tmp_path, "--resume")
    assert result.exit_code == 2, result.output
    assert "damaged" in result.stderr and f"{tmp_path / 'best.pt'} is intact" in result.stderr
    assert "e.g. last.pt" not in result.stderr
    evaluated = invoke("evaluate", "--checkpoint", tmp_path / "last.pt")
    assert f"try {tmp_path / 'best.pt'} instead" in evaluated.stderr


def test_char_level_training_reports_bits_per_character(tmp_path, corpus):
    result = invoke("train", *tiny_cli_args(corpus, tmp_path, model="gru", level="char", max_steps=3))
    assert result.exit_code == 0, result.output
    row = records(tmp_path)[-1]
    assert row["valid_bpc"] == pytest.approx(torch.log(torch.tensor(row["valid_ppl"])).item() / 0.693147, rel=1e-4)
    assert f"valid bpc {row['valid_bpc']:6.3f}" in result.output


def test_the_run_header_says_how_many_threads(tmp_path, corpus):
    result = invoke("train", *tiny_cli_args(corpus, tmp_path, max_steps=1, threads=1))
    assert "1 CPU thread" in result.output.splitlines()[0]
