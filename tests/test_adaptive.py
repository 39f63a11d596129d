"""Adaptive stepping: error follows tolerance; outputs, direction, dtypes, warm starts, dense output."""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
import torchdiffeq

from pyjlode.ode import SOLVERS, Problem, get_method, integrate, odeint, solve

ADAPTIVE = sorted(n for n, m in SOLVERS.items() if m.adaptive)
EXPLICIT_ADAPTIVE = sorted(n for n in ADAPTIVE if not SOLVERS[n].stiff)
RTOLS = [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8]
TIMES = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]


@functools.lru_cache(maxsize=None)
def _solve_duffing(name: str, rtol: float):
    # One solve per interval, warm-started: every output is a stepped-to point, so this measures the
    # integration's error; outputs between steps are the dense output's claim (a cubic Hermite for
    # Kvaerno5 errs like h^4, tens of tolerances at rtol 1e-8).
    from conftest import DUFFING
    ys, steps, dt, y = [DUFFING.y0()], 0, None, DUFFING.y0()
    for a, b in zip(TIMES, TIMES[1:]):
        sol = solve(DUFFING.f, y, [a, b], solver=name, rtol=rtol, atol=rtol, dt=dt)
        y, dt, steps = sol.ys[-1], sol.dt_next, steps + sol.stats.naccept
        ys.append(y)
    ref = DUFFING.reference(TIMES)
    # Error in units of the tolerance, scaled by each component's magnitude along the solution.
    ratio = np.abs(torch.stack(ys).numpy() - ref) / (rtol + rtol * np.abs(ref).max(axis=0))
    return float(ratio.max()), steps


def _allowed(method, rtol: float) -> float:
    """A small multiple of the tolerance. Low-order pairs (p < 4) get the tolerance-
    proportionality growth of their global error, ~ (1/rtol)^(1/(p+1)), on top."""
    growth = 1.0 if method.order >= 4 else (1e-3 / rtol) ** (1 / (method.order + 1))
    return 30.0 * growth


@pytest.mark.parametrize("name", ADAPTIVE)
def test_error_is_a_small_multiple_of_the_tolerance(name):
    for rtol in RTOLS:
        ratio, _ = _solve_duffing(name, rtol)
        assert ratio < _allowed(SOLVERS[name], rtol), f"{name} rtol={rtol}: error {ratio:.1f} x tolerance"


@pytest.mark.parametrize("name", ADAPTIVE)
def test_looser_tolerance_takes_fewer_steps(name):
    steps = [_solve_duffing(name, rtol)[1] for rtol in RTOLS]
    assert steps[0] < steps[-1]
    assert all(a <= b for a, b in zip(steps, steps[1:])), steps


@pytest.mark.parametrize("name", ADAPTIVE)
def test_integrates_backwards_in_time(name, duffing):
    y_end = torch.from_numpy(duffing.reference([0.0, duffing.T])[-1].copy())
    times = torch.tensor([duffing.T, duffing.T / 2, 0.0], dtype=torch.float64)
    sol = solve(duffing.f, y_end, times, solver=name, rtol=1e-7, atol=1e-7)
    assert all(a > b for a, b in zip(sol.t_steps, sol.t_steps[1:]))
    assert sol.t_steps[-1] == 0.0
    ref = duffing.reference([0.0, duffing.T / 2])[::-1]
    bound = _allowed(SOLVERS[name], 1e-7) * 1e-7 * (1 + np.abs(ref).max())
    assert np.abs(sol.ys[1:].numpy() - ref).max() < bound


@pytest.mark.parametrize("name", EXPLICIT_ADAPTIVE)
def test_output_times_are_interpolated_not_stepped_to(name, duffing):
    coarse = solve(duffing.f, duffing.y0(), [0.0, duffing.T], solver=name, rtol=1e-6, atol=1e-6)
    fine = solve(duffing.f, duffing.y0(), TIMES, solver=name, rtol=1e-6, atol=1e-6)
    assert fine.stats.naccept == coarse.stats.naccept
    assert torch.equal(fine.ys[-1], coarse.ys[-1])
    assert fine.ys.shape == (len(TIMES), 2) and torch.equal(fine.ys[0], duffing.y0())
    assert np.abs(fine.ys.numpy() - duffing.reference(TIMES)).max() < 5e-5


def test_last_step_lands_exactly_on_the_final_time(duffing):
    for t_end in (duffing.T, 1.0 / 3.0, 2.0 + 1e-9):
        sol = solve(duffing.f, duffing.y0(), [0.0, t_end], solver="Tsit5", rtol=1e-5)
        assert sol.t_steps[-1] == t_end
        assert all(0.0 < b - a for a, b in zip(sol.t_steps, sol.t_steps[1:]))


@pytest.mark.parametrize("name", EXPLICIT_ADAPTIVE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float32_and_float64(name, dtype, duffing):
    seen = []

    def f(t, y):
        seen.append((t.dtype, t.dim()))
        return duffing.f(t, y)

    rtol = 1e-4
    sol = solve(f, duffing.y0(dtype), TIMES, solver=name, rtol=rtol, atol=rtol)
    assert sol.ys.dtype == dtype
    assert set(seen) == {(dtype, 0)}, "f gets t as a 0-d tensor of y's dtype"
    ref = duffing.reference(TIMES)
    assert np.abs(sol.ys.double().numpy() - ref).max() < 30 * rtol * (1 + np.abs(ref).max())


def test_warm_start_takes_dt0_and_saves_work(duffing):
    first = solve(duffing.f, duffing.y0(), [0.0, 2.0], solver="Tsit5", rtol=1e-5, atol=1e-5)
    assert first.dt_next > 0
    y_mid = first.y_final
    cold = solve(duffing.f, y_mid, [2.0, duffing.T], solver="Tsit5", rtol=1e-5, atol=1e-5)
    warm = solve(duffing.f, y_mid, [2.0, duffing.T], solver="Tsit5", rtol=1e-5, atol=1e-5, dt=first.dt_next)
    assert warm.stats.nfe < cold.stats.nfe
    tiny = solve(duffing.f, y_mid, [2.0, duffing.T], solver="Tsit5", rtol=1e-5, atol=1e-5, dt=1e-3)
    assert tiny.t_steps[1] == pytest.approx(2.0 + 1e-3, abs=1e-15)


def test_fsal_costs_six_evaluations_per_attempt(duffing):
    sol = solve(duffing.f, duffing.y0(), [0.0, duffing.T], solver="Tsit5", rtol=1e-6)
    s = sol.stats
    # + f(t0, y0) + the initial-step heuristic's one evaluation
    assert s.nfe == 6 * (s.naccept + s.nreject) + 2


@pytest.mark.parametrize("name", ADAPTIVE)
def test_dense_output_accuracy(name, duffing):
    sol = solve(duffing.f, duffing.y0(), [0.0, duffing.T], solver=name, rtol=1e-8, atol=1e-8)
    t = torch.linspace(0.0, duffing.T, 41, dtype=torch.float64)
    dense = sol(t)
    assert dense.shape == (41, 2)
    # Cubic Hermite is third order: between steps it, not the solver, limits the accuracy.
    assert np.abs(dense.numpy() - duffing.reference(t.tolist())).max() < 5e-5
    assert torch.equal(sol(duffing.T), sol.ys[-1]) and torch.equal(sol(0.0), sol.ys[0])
    with pytest.raises(ValueError, match="outside"):
        sol(duffing.T + 1.0)


def test_gradients_flow_through_the_solver_and_not_under_no_grad():
    a = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    T = 1.5
    yT = solve(lambda t, y: -a * y, y0, [0.0, T], rtol=1e-10, atol=1e-12).ys[-1, 0]
    (da, dy0) = torch.autograd.grad(yT, (a, y0))
    assert float(da) == pytest.approx(-T * 2.0 * math.exp(-0.7 * T), rel=1e-7)
    assert float(dy0) == pytest.approx(math.exp(-0.7 * T), rel=1e-7)
    with torch.no_grad():
        ys = solve(lambda t, y: -a * y, y0, [0.0, T]).ys
    assert not ys.requires_grad


@pytest.mark.parametrize("fused", [False, True])
def test_quadrature_accumulates_over_accepted_steps_only(fused):
    # y' = -y, q = int_0^T t * y dt = 1 - (T + 1) e^{-T}; a huge dt0 forces rejections.
    f = lambda t, y: -y
    quad = lambda t, y: (t * y,)
    problem = Problem(f, rtol=1e-9, atol=1e-12, **({"fq": lambda t, y: (f(t, y), quad(t, y))} if fused
                                                  else {"quad": quad}))
    y0 = torch.tensor([1.0], dtype=torch.float64)
    T = 3.0
    sol = integrate(problem, get_method("Tsit5"), y0, [0.0, T], dt0=10.0)
    assert sol.stats.nreject > 0
    assert float(sol.q[0]) == pytest.approx(1 - (T + 1) * math.exp(-T), rel=1e-8)
    assert sol.stats.nfe == 6 * (sol.stats.naccept + sol.stats.nreject) + 1


@pytest.mark.parametrize("name", EXPLICIT_ADAPTIVE)
def test_rows_norm_holds_every_batch_row_to_the_tolerance(name, duffing):
    # One moving row among 15 at rest: the all-element RMS divides its error by sqrt(16),
    # the "rows" norm does not, so the moving row is solved exactly as if alone.
    B, rtol = 16, 1e-6
    mask = torch.zeros(B, 1, dtype=torch.float64)
    mask[0] = 1.0
    f = lambda t, y: duffing.f(t, y) * mask
    y0 = duffing.y0().expand(B, 2) * mask
    alone = solve(duffing.f, duffing.y0(), TIMES, solver=name, rtol=rtol, atol=rtol)
    rows = solve(f, y0, TIMES, solver=name, rtol=rtol, atol=rtol, norm="rows")
    rms = solve(f, y0, TIMES, solver=name, rtol=rtol, atol=rtol)
    assert rows.stats.naccept == alone.stats.naccept > rms.stats.naccept
    assert torch.allclose(rows.ys[:, 0], alone.ys, rtol=0, atol=1e-13)
    ref = duffing.reference(TIMES)
    err_rows = np.abs(rows.ys[:, 0].numpy() - ref).max()
    assert err_rows < np.abs(rms.ys[:, 0].numpy() - ref).max()


@pytest.mark.parametrize("name", ["DP5", "Tsit5"])
def test_agrees_with_torchdiffeq_dopri5(name, duffing):
    t = torch.tensor(TIMES, dtype=torch.float64)
    ours = odeint(duffing.f, duffing.y0(), t, method=name, rtol=1e-10, atol=1e-10)
    theirs = torchdiffeq.odeint(duffing.f, duffing.y0(), t, rtol=1e-10, atol=1e-10, method="dopri5")
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-8)


def test_single_output_time_returns_y0(duffing):
    sol = solve(duffing.f, duffing.y0(), [0.5])
    assert sol.ys.shape == (1, 2) and torch.equal(sol.ys[0], duffing.y0())
    assert sol.stats.naccept == 0


@pytest.mark.cuda
@pytest.mark.parametrize("name", ADAPTIVE)
def test_cuda_matches_cpu(name, duffing, cuda_device):
    cpu = solve(duffing.f, duffing.y0(), TIMES, solver=name, rtol=1e-6, atol=1e-6)
    gpu = solve(duffing.f, duffing.y0(device=cuda_device), TIMES, solver=name, rtol=1e-6, atol=1e-6)
    assert gpu.ys.device.type == "cuda"
    assert torch.allclose(gpu.ys.cpu(), cpu.ys, rtol=0, atol=1e-8)


def test_f_final_is_reused_as_the_next_f0(duffing):
    first = solve(duffing.f, duffing.y0(), [0.0, 2.0], rtol=1e-6)
    t_end = torch.tensor(2.0, dtype=torch.float64)
    assert torch.allclose(first.f_final, duffing.f(t_end, first.y_final), rtol=0, atol=1e-14)
    problem = Problem.from_torch(duffing.f, rtol=1e-6)
    nxt = integrate(problem, get_method("Tsit5"), first.y_final, [2.0, 4.0], dt0=first.dt_next,
                    f0=first.f_final)
    assert nxt.stats.nfe == 6 * (nxt.stats.naccept + nxt.stats.nreject)
