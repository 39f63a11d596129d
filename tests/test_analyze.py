"""`analyze`: the analytic Jacobian's spectrum agrees with autograd's, the spectrum is followed over
checkpoints, every solver pair reports its work, perplexity rises with embedding noise, and the plots are
images of the expected size that show data."""
from __future__ import annotations

import copy
import csv
import shutil

import pytest
import torch
from click.testing import CliRunner
from exp_helpers import colored_fraction, png_pixels, single_thread, train_tiny, write_corpus

from pyjlode.cli import cli
from pyjlode.experiments import plots
from pyjlode.experiments.analyze import load_model
from pyjlode.experiments.probes import EmbeddingNoise, embedding_rms
from pyjlode.experiments.spectrum import eig_summary, gruode_cells, jacobian, trajectory_spectrum

PAIRS = "Tsit5/Tsit5,Tsit5/KenCarp4,Tsit5/Rodas5P"
SIGMAS = (0.0, 0.5, 2.0)
TRAIN = dict(lr=0.03, max_steps=40, eval_interval=20)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """A GRU-ODE run with an early and a late checkpoint, and a GRU baseline on the same corpus."""
    root = tmp_path_factory.mktemp("analyze")
    corpus = write_corpus(root / "text.txt")
    ode = root / "gru-ode"
    with single_thread():
        train_tiny(ode, corpus, model="gru-ode", solver="RK4", **{**TRAIN, "max_steps": 2})
        shutil.copy(ode / "last.pt", root / "early.pt")
        train_tiny(ode, corpus, resume=True, model="gru-ode", solver="RK4", **TRAIN)
        train_tiny(root / "gru", corpus, model="gru", **TRAIN)
    return root


@pytest.fixture(scope="module")
def analyzed(runs_dir):
    out = runs_dir / "analysis"
    args = ["analyze", "--checkpoint", str(runs_dir / "early.pt"), "--checkpoint",
            str(runs_dir / "gru-ode" / "last.pt"), "--baseline", str(runs_dir / "gru" / "last.pt"),
            "--out", str(out), "--max-tokens", "40", "--every", "2", "--pairs", PAIRS, "--pair-batches", "1",
            "--batch-size", "2", "--sigmas", ",".join(map(str, SIGMAS)), "--robust-tokens", "600"]
    with single_thread():
        res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return out, res.output


def _csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _sample_state(model):
    """A token-end state and its token's drive, from a short walk through the text."""
    cell = gruode_cells(model)[0]
    x = model.embedding(torch.tensor([[3], [5], [7]]))           # (3, 1, E)
    with torch.no_grad():
        hs = cell.run(x, torch.zeros(1, cell.hidden_size, dtype=x.dtype))
    return cell, cell.drive(x)[-1].detach(), hs[-1].detach()     # (1, 3H), (1, H)


def test_analytic_jacobian_spectrum_matches_autograd(runs_dir):
    model, _ = load_model(str(runs_dir / "gru-ode" / "last.pt"))
    model = copy.deepcopy(model).double()
    cell, c, h = _sample_state(model)
    J = jacobian(cell, c, h)[0]                                                # (H, H), analytic
    J_auto = torch.func.jacrev(lambda y: cell.field(c)(None, y.unsqueeze(0)).squeeze(0))(h[0])
    assert torch.allclose(J, J_auto, atol=1e-10)
    lam, mu = torch.linalg.eigvals(J), torch.linalg.eigvals(J_auto)
    dist = (lam[:, None] - mu[None, :]).abs()
    assert dist.min(dim=1).values.max() < 1e-8 and dist.min(dim=0).values.max() < 1e-8
    s = eig_summary(J_auto.unsqueeze(0))
    assert s["max_abs_re"].item() == pytest.approx(mu.real.abs().max().item())
    decaying = -mu.real[mu.real < 0]
    assert s["ratio"].item() == pytest.approx((decaying.max() / decaying.min()).item())


def test_spectrum_walks_the_requested_tokens(runs_dir):
    model, ckpt = load_model(str(runs_dir / "gru-ode" / "last.pt"))
    ids = torch.randint(0, ckpt["model_config"]["vocab_size"], (30,))
    (layer,) = trajectory_spectrum(model, ids, max_tokens=25, every=3, window=7)
    assert layer.positions == list(range(0, 25, 3))
    assert all(r >= 1 for r in layer.ratio) and all(a > 0 for a in layer.max_abs_re)


def test_spectrum_table_follows_the_checkpoints(analyzed):
    out, _ = analyzed
    rows = _csv(out / "spectrum.csv")
    assert [int(r["step"]) for r in rows] == [2, 40]
    for r in rows:
        assert int(r["tokens"]) == 20
        assert float(r["ratio_median"]) >= 1 and float(r["max_abs_re_median"]) > 0
        assert float(r["max_abs_re_dt_max"]) == pytest.approx(float(r["max_abs_re_max"]))      # dt = 1
        assert float(r["tau_min"]) == float(r["tau_max"]) == 1.0
    assert len(_csv(out / "spectrum_tokens.csv")) == 20


def test_every_solver_pair_reports_its_work(analyzed):
    out, _ = analyzed
    rows = {r["pair"]: r for r in _csv(out / "solver_pairs.csv")}
    assert sorted(rows) == sorted(PAIRS.split(","))
    for pair, r in rows.items():
        assert r["status"] == "ok", (pair, r["error"])
        assert float(r["nfe_fwd_per_token"]) > 0 and float(r["nfe_bwd_per_token"]) > 0
        assert float(r["steps_fwd_per_token"]) >= 1


def test_noise_raises_perplexity_for_every_model(analyzed):
    out, _ = analyzed
    rows = _csv(out / "robustness.csv")
    labels = {r["label"] for r in rows}
    assert len(labels) == 2 and any(lab.startswith("gru-ode") for lab in labels)
    for lab in labels:
        ppl = {float(r["sigma"]): float(r["ppl"]) for r in rows if r["label"] == lab}
        assert sorted(ppl) == list(SIGMAS)
        assert ppl[2.0] > ppl[0.0] * 1.01, (lab, ppl)


@pytest.mark.parametrize("name", ["spectrum.png", "eigenvalues.png", "spectrum_evolution.png",
                                  "solver_pairs.png", "robustness.png"])
def test_plots_have_the_expected_size_and_show_data(analyzed, name):
    out, _ = analyzed
    img = png_pixels(out / name)
    assert img.shape[:2] == (plots.PIXELS[1], plots.PIXELS[0])
    assert colored_fraction(img) > 0.002


def test_report_has_the_three_studies(analyzed):
    out, printed = analyzed
    md = (out / "analysis.md").read_text()
    for heading in ("Jacobian spectrum", "Solver work", "Gaussian embedding noise"):
        assert heading in md and heading in printed


def test_baseline_given_as_the_gru_ode_is_a_one_line_error(runs_dir):
    res = CliRunner().invoke(cli, ["analyze", "--checkpoint", str(runs_dir / "gru" / "last.pt")])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and "gru-ode" in res.stderr and "--baseline" in res.stderr


def test_embedding_noise_has_the_requested_scale_and_is_reproducible(runs_dir):
    model, _ = load_model(str(runs_dir / "gru" / "last.pt"))
    tokens = torch.randint(0, model.embedding.num_embeddings, (200, 4))
    clean = model.embedding(tokens)
    with EmbeddingNoise(model, 0.0):
        assert torch.equal(model.embedding(tokens), clean)
    with EmbeddingNoise(model, 0.5, seed=3):
        a = model.embedding(tokens)
    with EmbeddingNoise(model, 0.5, seed=3):
        b = model.embedding(tokens)
    assert torch.equal(a, b)
    rms = (a - clean).pow(2).mean().sqrt().item()
    assert rms == pytest.approx(0.5 * embedding_rms(model), rel=0.05)
    assert torch.equal(model.embedding(tokens), clean)                  # the hook is gone afterwards
