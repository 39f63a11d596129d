"""Batched states (B, n): B independent systems of different stiffness solved together agree with
each solved alone; analytic and torch.func Jacobians agree."""
from __future__ import annotations

import pytest
import torch

from pyjlode.ode import SOLVERS, solve

STIFF = sorted(name for name, m in SOLVERS.items() if m.stiff)
EXPLICIT = sorted(name for name, m in SOLVERS.items() if not m.stiff)


class VanDerPol(torch.nn.Module):
    """y1' = y2, y2' = mu (1 - y1^2) y2 - y1 with one mu per row (an nn.Module field)."""

    def __init__(self, mu):
        super().__init__()
        self.register_buffer("mu", torch.as_tensor(mu, dtype=torch.float64))

    def forward(self, t, y):
        return torch.stack([y[..., 1], self.mu * (1 - y[..., 0] ** 2) * y[..., 1] - y[..., 0]], dim=-1)

    def jac(self, t, y):
        """Analytic per-row Jacobian, (B, 2, 2) for y of shape (B, 2) or (2, 2) for (2,)."""
        y1, y2 = y[..., 0], y[..., 1]
        mu = self.mu.expand_as(y1)
        row1 = torch.stack([torch.zeros_like(y1), torch.ones_like(y1)], dim=-1)
        row2 = torch.stack([-2 * mu * y1 * y2 - 1, mu * (1 - y1 ** 2)], dim=-1)
        return torch.stack([row1, row2], dim=-2)


def _y0(batch: int) -> torch.Tensor:
    return torch.tensor([[2.0, 0.0]], dtype=torch.float64).repeat(batch, 1) + \
        0.1 * torch.arange(batch, dtype=torch.float64)[:, None]


def _assert_rows_match_alone(name, mus, t, rtol, atol, dt=None, **kw):
    y0 = _y0(len(mus))
    adaptive = dt is None
    with torch.no_grad():
        together = solve(VanDerPol(mus), y0, t, solver=name, rtol=rtol, atol=atol, dt=dt,
                         adaptive=adaptive, **kw)
        for b, mu in enumerate(mus):
            alone = solve(VanDerPol(mu), y0[b], t, solver=name, rtol=rtol, atol=atol, dt=dt,
                          adaptive=adaptive, **kw)
            # Together, every row takes the batch's (smaller) steps: both are within the
            # tolerance's reach of the truth, so of each other.
            scale = atol + rtol * alone.ys.abs()
            err = ((together.ys[:, b] - alone.ys) / scale).abs().max()
            assert err < 50, f"{name}, mu={mu}: batched vs alone differ by {err:.3g} tolerances"
    return together


@pytest.mark.parametrize("name", STIFF)
def test_stiff_rows_of_different_stiffness_match_each_alone(name):
    sol = _assert_rows_match_alone(name, [1.0, 10.0, 100.0, 1000.0], [0.0, 0.5, 2.0], 1e-5, 1e-8)
    assert sol.stats.njac >= 1 and sol.stats.nlu >= 1


@pytest.mark.parametrize("name", EXPLICIT)
def test_explicit_rows_match_each_alone(name):
    fixed = not SOLVERS[name].adaptive
    _assert_rows_match_alone(name, [0.5, 1.0, 2.0, 5.0], [0.0, 1.0, 2.0], 1e-7, 1e-9,
                             dt=1e-2 if fixed else None)


@pytest.mark.parametrize("name", STIFF)
def test_batched_rows_norm_matches_each_alone(name):
    # norm="rows": each system meets the tolerance by itself.
    _assert_rows_match_alone(name, [1.0, 1000.0], [0.0, 2.0], 1e-5, 1e-7, norm="rows")


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("name", STIFF)
def test_analytic_and_autodiff_jacobians_give_the_same_solution(name, batched):
    mus = [1.0, 100.0, 1000.0] if batched else 300.0
    field = VanDerPol(mus)
    y0 = _y0(3) if batched else _y0(1)[0]
    t = [0.0, 1.0, 2.0]
    auto = solve(field, y0, t, solver=name, rtol=1e-6, atol=1e-8)
    analytic = solve(field, y0, t, solver=name, rtol=1e-6, atol=1e-8, jac=field.jac)
    scale = 1e-8 + 1e-6 * auto.ys.abs()
    assert ((auto.ys - analytic.ys) / scale).abs().max() < 1.0
    assert analytic.stats.njac == pytest.approx(auto.stats.njac, rel=0.2)
