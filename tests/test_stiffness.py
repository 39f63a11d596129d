"""The stiffness figures: right on matrices and on a GRU-ODE field whose eigenvalues are known, taken from
the states a validation pass ends in at a bounded cost, and logged by training at every evaluation."""
from __future__ import annotations

import json

import pytest
import torch
from exp_helpers import TINY, write_corpus

from pyjlode.experiments.spectrum import (eig_summary, last_call_stiffness, probe_count, trajectory_spectrum,
                                          watch_last_call)
from pyjlode.models import LanguageModel
from pyjlode.training.config import build_configs
from pyjlode.training.loop import train

f64 = torch.float64


def _similar(eigs_block: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A dense matrix with the eigenvalues of the block-diagonal ``eigs_block`` (a random similarity)."""
    g = torch.Generator().manual_seed(seed)
    n = eigs_block.shape[0]
    P = torch.eye(n, dtype=f64) + 0.3 * torch.randn(n, n, generator=g, dtype=f64)
    return P @ eigs_block @ torch.linalg.inv(P)


def test_ratio_is_over_the_decaying_modes_and_dt_scales_the_fastest():
    # eigenvalues -100, -1 ± 3i, -0.5 and +0.2 (growing: not part of the ratio)
    A = torch.zeros(5, 5, dtype=f64)
    A[0, 0], A[3, 3], A[4, 4] = -100.0, -0.5, 0.2
    A[1:3, 1:3] = torch.tensor([[-1.0, 3.0], [-3.0, -1.0]], dtype=f64)
    s = eig_summary(_similar(A).unsqueeze(0), dt=0.5)
    assert s["ratio"].item() == pytest.approx(200.0, rel=1e-9)
    assert s["min_abs_re"].item() == pytest.approx(0.5, rel=1e-9)
    assert s["max_abs_re"].item() == pytest.approx(100.0, rel=1e-9)
    assert s["max_abs_re_dt"].item() == pytest.approx(50.0, rel=1e-9)
    assert s["max_re"].item() == pytest.approx(0.2, rel=1e-9)


def test_no_decaying_mode_gives_no_ratio():
    s = eig_summary(torch.diag(torch.tensor([0.1, 2.0], dtype=f64)).unsqueeze(0))
    assert s["ratio"].isnan().all() and s["max_abs_re"].item() == pytest.approx(2.0)


def _known_spectrum_model(num_layers: int, dt: float) -> LanguageModel:
    """With U = 0 and no z drive, ∂f/∂h = diag(-(1 - z)/tau) with z = σ(0) = 1/2: eigenvalues -1/(2 tau_i),
    so tau spread over [0.01, 1] gives a stiffness ratio of exactly 100 and max |Re λ| = 50."""
    torch.manual_seed(0)
    model = LanguageModel(12, "gru-ode", embed_size=4, hidden_size=6, num_layers=num_layers, learn_tau=True,
                          tau_min=0.01, tau_max=1.0, dt=dt, solver="RK4").double()
    with torch.no_grad():
        for cell in model.core.rnn.cells:
            H = cell.hidden_size
            cell.weight_hh.zero_()
            cell.weight_ih[H:2 * H].zero_()
            cell.bias_ih[H:2 * H].zero_()
            cell.bias_hh[H:2 * H].zero_()
    return model


def test_spectrum_of_a_field_with_known_eigenvalues():
    model = _known_spectrum_model(num_layers=2, dt=0.25)
    for layer in trajectory_spectrum(model, torch.arange(12), max_tokens=6):
        assert layer.ratio == pytest.approx([100.0] * 6, rel=1e-6)
        row = layer.summary()
        assert row["max_abs_re_dt_max"] == pytest.approx(50.0 * 0.25, rel=1e-6)
        assert (row["tau_min"], row["tau_max"]) == pytest.approx((0.01, 1.0), rel=1e-6)


def test_training_probe_reads_the_last_states_of_a_forward_call():
    model = _known_spectrum_model(num_layers=2, dt=0.25)
    with watch_last_call(model) as seen:
        model(torch.randint(0, 12, (5, 3)))
        model(torch.randint(0, 12, (4, 3)))
    assert seen["tokens"].shape == (4, 3)                            # the last call's
    assert not model._forward_hooks                                 # the hook is gone afterwards
    got = last_call_stiffness(model, seen)
    assert got["stiffness_ratio"] == pytest.approx(100.0, rel=1e-6)
    assert got["stiffness_ratio_max"] == pytest.approx(100.0, rel=1e-6)
    assert got["max_abs_re_dt"] == pytest.approx(12.5, rel=1e-6)
    assert last_call_stiffness(model, {}) == {}


@pytest.mark.parametrize("hidden, columns, states", [(256, 32, 1), (128, 32, 4), (64, 32, 16), (64, 4, 4),
                                                     (1024, 32, 1), (8, 32, 32)])
def test_probe_takes_fewer_states_as_eigvals_get_dearer(hidden, columns, states):
    assert probe_count(hidden, columns) == states


@pytest.mark.usefixtures("one_thread")
def test_training_logs_the_stiffness_at_every_evaluation(tmp_path):
    corpus = write_corpus(tmp_path / "text.txt", lines=200)
    lines: list[str] = []
    for model, extra in (("gru-ode", dict(learn_tau=True, tau_min=0.1)), ("gru", {})):
        opts = {**TINY, "corpus": str(corpus), "out": str(tmp_path / model), "model": model, "max_steps": 6,
                **extra}
        train(*build_configs(opts), echo=lines.append)
    evals = [[json.loads(l) for l in (tmp_path / m / "metrics.jsonl").read_text().splitlines()
              if '"eval"' in l] for m in ("gru-ode", "gru")]
    assert len(evals[0]) == 2
    for row in evals[0]:
        assert row["stiffness_ratio_max"] >= row["stiffness_ratio"] >= 1 and row["max_abs_re_dt"] > 0
        assert 0.05 < row["tau_min"] < row["tau_max"] < 2
    assert not any("stiffness_ratio" in row for row in evals[1])
    printed = [l for l in lines if l.startswith("| step")]
    assert sum("stiffness ratio" in l for l in printed) == 2 and len(printed) == 4
