"""The command line: train / evaluate / generate / doctor, bad input as one line with exit 2, help text."""
from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from pyjlode.training import loop as train_mod
from pyjlode.training.state import load_checkpoint
from pyjlode.backends import wants_julia
from pyjlode.cli import cli, main
from pyjlode.models import LanguageModel, ModelConfig, SolverConfig
from pyjlode.training.config import TrainConfig

WORDS = "the king and queen of england went to see a play in london with many friends".split()
SMALL = ["--embed-size", "8", "--hidden-size", "16", "--batch-size", "4", "--bptt", "8", "--eval-tokens",
         "200", "--eval-seconds", "0", "--time-budget", "0", "--max-steps", "3", "--eval-interval", "3",
         "--seed", "0"]


def write_corpus(path: Path, lines: int = 300, seed: int = 0) -> Path:
    rng = random.Random(seed)
    path.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10)))
                              for _ in range(lines)) + "\n")
    return path


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="pyjlode")


def assert_ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)


def assert_one_line_error(result, *needles: str):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in err, err


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "text.txt")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert_ok(invoke("train", "--model", "gru", "--corpus", corpus, "--out", out, *SMALL))
    return out


# --------------------------------------------------------------------------------------------------
# train


@pytest.mark.parametrize("extra", [["--model", "rnn"], ["--model", "gru"], ["--model", "lstm"],
                                   ["--model", "gru-ode"], ["--model", "gru-ode", "--backward-solver", "kencarp4"],
                                   ["--model", "gru-ode", "--stiff-solver", "KenCarp4"],
                                   ["--model", "gru", "--level", "char"]],
                         ids=["rnn", "gru", "lstm", "gru-ode", "gru-ode-KenCarp4", "stiff-solver-alias",
                              "gru-char"])
def test_train_each_model(tmp_path, corpus, extra):
    result = invoke("train", "--corpus", corpus, "--out", tmp_path, *SMALL, *extra)
    assert_ok(result)
    assert "valid ppl" in result.output and "done (max_steps)" in result.output
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["progress"]["step"] == 3
    if "gru-ode" in extra and len(extra) > 2:                          # stored with its canonical name
        assert ckpt["model_config"]["ode"]["backward_solver"] == "KenCarp4"
        assert "nfe/token" in result.output


def test_resume_from_the_command_line(tmp_path, corpus):
    assert_ok(invoke("train", "--model", "gru", "--corpus", corpus, "--out", tmp_path, *SMALL))
    result = invoke("train", "--model", "gru", "--corpus", corpus, "--out", tmp_path, *SMALL[:-6],
                    "--max-steps", "5", "--resume", "--lr", "0.5")
    assert_ok(result)
    assert "resuming at step 3" in result.output and "--lr" in result.output   # --lr is the checkpoint's
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["progress"]["step"] == 5 and ckpt["train_config"]["lr"] == 2e-3


def test_dry_run_writes_nothing(tmp_path, corpus):
    result = invoke("train", "--model", "gru", "--corpus", corpus, "--out", tmp_path / "x", *SMALL, "--dry-run")
    assert_ok(result)
    assert "dry run" in result.output and not (tmp_path / "x").exists()


def test_ctrl_c_saves_and_exits_cleanly(tmp_path, corpus, monkeypatch):
    real, calls = train_mod.Trainer.step, {"n": 0}

    def step(self, x, y):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, x, y)

    monkeypatch.setattr(train_mod.Trainer, "step", step)
    result = invoke("train", "--model", "gru", "--corpus", corpus, "--out", tmp_path, *SMALL[:-6],
                    "--max-steps", "10")
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert "interrupted at step 2" in result.output
    assert load_checkpoint(tmp_path / "last.pt")["progress"]["step"] == 2


def test_non_finite_loss_is_one_line(tmp_path, corpus, monkeypatch):
    real = LanguageModel.forward

    def forward(self, tokens, state=None):
        logits, state = real(self, tokens, state)
        return logits * float("nan") if self.training else logits, state

    monkeypatch.setattr(LanguageModel, "forward", forward)
    result = invoke("train", "--model", "gru", "--corpus", corpus, "--out", tmp_path, *SMALL)
    assert_one_line_error(result, "non-finite loss", "no checkpoint was written yet")


# --------------------------------------------------------------------------------------------------
# evaluate and generate


def test_evaluate_report(trained):
    result = invoke("evaluate", "--checkpoint", trained, "--prompts", "4", "--prompt-len", "5", "--gen-len", "5")
    assert_ok(result)
    for needle in ("perplexity", "protocol: 4 prompts of 5 tokens", "smoothing method1", "BLEU", "ROUGE",
                   "distinct-1", "self-BLEU"):
        assert needle in result.output


def test_evaluate_json(trained):
    result = invoke("evaluate", "--checkpoint", trained / "last.pt", "--json", "--split", "valid",
                    "--prompts", "3", "--prompt-len", "4", "--gen-len", "6", "--seed", "3")
    assert_ok(result)
    r = json.loads(result.output)
    assert r["split"] == "valid" and r["perplexity"] > 1 and "bits_per_char" not in r
    assert set(r["bleu"]) == {"bleu1", "bleu2", "bleu3", "bleu4"}
    assert set(r["rouge"]) == {"rouge1", "rouge2", "rougeL"}
    assert r["protocol"]["prompts"] == 3 and r["protocol"]["gen_len"] == 6
    assert 0 <= r["distinct_1"] <= 1 and 0 <= r["self_bleu"] <= 1


def test_evaluate_char_level_reports_bits_per_char(tmp_path, corpus):
    assert_ok(invoke("train", "--model", "gru", "--level", "char", "--corpus", corpus, "--out", tmp_path, *SMALL))
    r = json.loads(invoke("evaluate", "--checkpoint", tmp_path, "--json", "--prompts", "2").output)
    assert r["bits_per_char"] == pytest.approx(r["nll"] / 0.6931471805599453)


def test_generate_is_seeded(trained):
    args = ("generate", "--checkpoint", trained, "--prompt", "the king", "--max-tokens", "12", "--seed", "5")
    first, second = invoke(*args), invoke(*args)
    assert_ok(first)
    assert first.output == second.output and first.output.startswith("the king")
    assert len(first.output.split()) > 2


def test_doctor_torch():
    result = invoke("doctor", "--backend", "torch")
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------------------------------
# bad input: one line on stderr, exit 2, no traceback


def _bad_corpus(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.txt"
    if kind == "empty":
        path.write_text("")
    elif kind == "not-utf8":
        path.write_bytes(b"the king\n\xff\xfe went away\n" * 50)
    elif kind == "tiny":
        write_corpus(path, lines=12)
    return path


@pytest.mark.parametrize("kind, extra, needles", [
    ("missing", [], ["does not exist"]),
    ("empty", [], ["empty"]),
    ("not-utf8", [], ["not UTF-8"]),
    ("tiny", ["--batch-size", "64"], ["fewer than one batch"]),
    ("ok", ["--solver", "Foo"], ["--solver", "unknown solver", "Tsit5", "KenCarp4"]),
    ("ok", ["--stiff-solver", "Bar"], ["--backward-solver", "Tsit5", "Rodas5P"]),
    ("ok", ["--tie-weights"], ["--tie-weights", "--embed-size"]),
    ("ok", ["--resume"], ["last.pt"]),
], ids=["missing-path", "empty", "non-utf8", "split-smaller-than-batch", "unknown-solver",
        "unknown-stiff-solver", "tie-weights-sizes", "resume-nothing"])
def test_bad_training_input(tmp_path, corpus, kind, extra, needles):
    path = corpus if kind == "ok" else _bad_corpus(tmp_path, kind)
    result = invoke("train", "--model", "gru-ode", "--corpus", path, "--out", tmp_path / "run", *SMALL, *extra)
    assert_one_line_error(result, *needles)


def test_every_deliberate_error_is_a_pyjlode_error():
    from pyjlode.backends import BackendUnavailable
    from pyjlode.data import DataError
    from pyjlode.errors import InputError, PyjlodeError
    from pyjlode.ode.errors import SolverError
    from pyjlode.training.checkpoint_io import CheckpointError
    from pyjlode.training.loop import TrainingStopped

    for kind in (InputError, DataError, CheckpointError, SolverError, TrainingStopped, BackendUnavailable):
        assert issubclass(kind, PyjlodeError), kind
    for kind in (InputError, DataError, CheckpointError):     # callers that catch ValueError still do
        assert issubclass(kind, ValueError), kind


def test_a_bug_keeps_its_traceback(tmp_path, corpus, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug, not bad input")

    monkeypatch.setattr(train_mod, "prepare_corpus", broken)
    result = invoke("train", "--model", "gru", "--corpus", corpus, "--out", tmp_path, *SMALL)
    assert result.exit_code == 1 and isinstance(result.exception, ZeroDivisionError)
    assert "error: " not in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(tmp_path, corpus):
    result = invoke("train", "--corpus", corpus, "--out", tmp_path, *SMALL, "--device", "cuda")
    assert_one_line_error(result, "--device cpu")


@pytest.mark.parametrize("command", ["evaluate", "generate"])
@pytest.mark.parametrize("kind", ["garbage", "truncated", "missing"])
def test_bad_checkpoint(tmp_path, trained, command, kind):
    path = tmp_path / "model.pt"
    if kind == "garbage":
        path.write_bytes(os.urandom(2048))
    elif kind == "truncated":
        data = (trained / "last.pt").read_bytes()
        path.write_bytes(data[: len(data) // 3])
    result = invoke(command, "--checkpoint", path)
    assert_one_line_error(result, str(path))


# --------------------------------------------------------------------------------------------------
# the program itself


def _all_commands():
    return [(name, cmd) for name, cmd in cli.commands.items()]


@pytest.mark.parametrize("name, command", _all_commands(), ids=[n for n, _ in _all_commands()])
def test_every_option_has_help(name, command):
    assert command.help
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help and len(param.help) > 10, f"{name} --{param.name} has no help"
    assert_ok(invoke(name, "--help"))


@pytest.mark.parametrize("config", [TrainConfig, ModelConfig, SolverConfig])
def test_train_options_are_the_config_fields(config):
    """Flag, help and default come from each field; a setting without a flag has no option."""
    options = {getattr(p, "field_name", p.name): p for p in cli.commands["train"].params}
    for f in dataclasses.fields(config):
        if "flag" not in f.metadata:
            assert f.name not in options, f.name
            continue
        option = options[f.name]
        assert option.help == f.metadata["flag"].help
        assert option.default == f.default, f.name


def test_python_m_pyjlode_is_the_script():
    script = Path(sys.executable).with_name("pyjlode")
    if not script.exists():
        script = Path(shutil.which("pyjlode") or "missing")
    if not script.exists():
        pytest.skip("the pyjlode console script is not installed")
    env = dict(os.environ, COLUMNS="100")
    a = subprocess.run([sys.executable, "-m", "pyjlode", "train", "--help"], capture_output=True, text=True,
                       env=env, timeout=120)
    b = subprocess.run([str(script), "train", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout and a.stdout.startswith("Usage: pyjlode train")


@pytest.mark.parametrize("argv, preloads", [(["train", "--backend", "julia", "--rtol", "-1"], True),
                                            (["train", "--backend", "julia", "--help"], False),
                                            (["doctor", "--backend", "julia"], False)])
def test_backend_julia_is_preloaded_before_torch_and_only_for_work(argv, preloads):
    # A stand-in for the Julia runtime's preload records whether torch was already imported at that time.
    child = textwrap.dedent(f"""
        import sys, types
        fake = types.ModuleType("pyjlode.backends._julia_runtime")
        fake.preload = lambda: print("torch loaded at preload:", "torch" in sys.modules) or True
        sys.modules["pyjlode.backends._julia_runtime"] = fake
        from pyjlode.cli import main
        try:
            main({argv!r})
        except SystemExit:
            pass
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    expected = "torch loaded at preload: False" if preloads else None
    if expected:
        assert expected in proc.stdout, proc.stdout + proc.stderr
    else:
        assert "torch loaded at preload" not in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("argv, expected", [(["train", "--backend", "julia"], True),
                                            (["train", "--backend=julia"], True),
                                            (["train", "--backend", "torch"], False),
                                            (["train", "--corpus", "julia"], False)])
def test_wants_julia(argv, expected):
    assert wants_julia(argv) is expected


def test_main_exits_like_click(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "train" in capsys.readouterr().out
