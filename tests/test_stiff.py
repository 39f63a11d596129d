"""Stiff solvers: Robertson and Van der Pol against scipy's Radau, a linear stiff problem with a
known solution, quadrature along the solution, and the upstream defects we must not copy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from pyjlode.ode import SOLVERS, MaxStepsExceeded, Problem, get_method, integrate, solve

STIFF = sorted(name for name, m in SOLVERS.items() if m.stiff)


def _rober(t, y):
    y1, y2, y3 = y[..., 0], y[..., 1], y[..., 2]
    return torch.stack([-0.04 * y1 + 1e4 * y2 * y3,
                        0.04 * y1 - 1e4 * y2 * y3 - 3e7 * y2 ** 2,
                        3e7 * y2 ** 2], dim=-1)


def _rober_np(t, y):
    return [-0.04 * y[0] + 1e4 * y[1] * y[2], 0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] ** 2,
            3e7 * y[1] ** 2]


_EPS = 1e-6  # Van der Pol with mu = 1000 in Hairer & Wanner's scaling (VDPOL): eps = 1/mu^2


def _vdp(t, y):
    return torch.stack([y[..., 1], ((1 - y[..., 0] ** 2) * y[..., 1] - y[..., 0]) / _EPS], dim=-1)


def _vdp_np(t, y):
    return [y[1], ((1 - y[0] ** 2) * y[1] - y[0]) / _EPS]


# name: (f, f_np, y0, t_end, atol, max attempted steps for order-2 / higher-order solvers)
PROBLEMS = {
    "robertson": (_rober, _rober_np, [1.0, 0.0, 0.0], 1e5, 1e-10, (600, 300)),
    "vanderpol": (_vdp, _vdp_np, [2.0, -0.66], 2.0, 1e-8, (3000, 1200)),
}


def _rtol(name: str) -> float:
    # 1e-3 relative accuracy at the end needs a tighter tolerance from the 2nd-order methods.
    return 3e-5 if SOLVERS[name].order <= 2 else 1e-4


@pytest.fixture(scope="module")
def runs():
    """Lazily computed and cached: scipy Radau references and our solutions."""
    cache: dict = {}

    def get(problem: str, solver: str | None = None):
        key = (problem, solver)
        if key not in cache:
            f, f_np, y0, t_end, atol, _ = PROBLEMS[problem]
            if solver is None:
                ref = solve_ivp(f_np, (0.0, t_end), y0, method="Radau", rtol=1e-10, atol=1e-12)
                assert ref.success
                cache[key] = ref.y[:, -1]
            else:
                cache[key] = solve(f, torch.tensor(y0, dtype=torch.float64), [0.0, t_end],
                                   solver=solver, rtol=_rtol(solver), atol=atol)
        return cache[key]

    return get


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("name", STIFF)
def test_stiff_benchmark_matches_radau_in_bounded_steps(name, problem, runs):
    sol, ref = runs(problem, name), runs(problem)
    rel = np.abs(sol.ys[-1].numpy() - ref) / np.abs(ref)
    assert rel.max() < 1e-3, f"{name} on {problem}: relative errors {rel}"
    bound = PROBLEMS[problem][-1][0 if SOLVERS[name].order <= 2 else 1]
    steps = sol.stats.naccept + sol.stats.nreject
    assert steps <= bound, f"{name} on {problem}: {steps} steps"
    assert sol.stats.njac >= 1 and sol.stats.nlu >= 1 and sol.stats.nsolve >= sol.stats.naccept


@pytest.mark.parametrize("problem", [
    "robertson", pytest.param("vanderpol", marks=pytest.mark.slow)])  # ~2e4 Tsit5 steps: 10-30 s
def test_tsit5_needs_ten_times_the_steps_of_every_stiff_solver(problem, runs):
    f, _, y0, t_end, atol, _ = PROBLEMS[problem]
    most = max(runs(problem, name).stats.naccept + runs(problem, name).stats.nreject for name in STIFF)
    with pytest.raises(MaxStepsExceeded, match="Tsit5: reached max_steps"):
        solve(f, torch.tensor(y0, dtype=torch.float64), [0.0, t_end], solver="Tsit5",
              rtol=1e-4, atol=atol, max_steps=10 * most)


# Linear, non-autonomous, eigenvalues -1, -1e3, -1e6 of a non-normal A:
# y' = A (y - g(t)) + g'(t) has y = g(t) + exp(A t) (y0 - g(0)).
_P = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 1.0]], dtype=torch.float64)
_A = _P @ torch.diag(torch.tensor([-1.0, -1e3, -1e6], dtype=torch.float64)) @ torch.linalg.inv(_P)


def _g(t):
    return torch.stack([torch.sin(t), torch.cos(2 * t), 1 + t * t])


def _dg(t):
    return torch.stack([torch.cos(t), -2 * torch.sin(2 * t), 2 * t])


def _linear(t, y):
    A = _A.to(y.dtype)
    return (y - _g(t)) @ A.T + _dg(t)


def _linear_exact(t: float, y0):
    tt = torch.tensor(t, dtype=torch.float64)
    return _g(tt) + torch.linalg.matrix_exp(_A * t) @ (y0 - _g(torch.tensor(0.0, dtype=torch.float64)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", STIFF)
def test_linear_stiff_problem_with_known_solution(name, dtype):
    y0 = torch.tensor([2.0, -1.0, 3.0], dtype=torch.float64)
    # float32 rounding of f (entries ~1e6) is noise of ~0.06 |y|: keep the tolerance above it.
    rtol, atol = (1e-6, 1e-9) if dtype == torch.float64 else (1e-3, 1e-5)
    if SOLVERS[name].order <= 2 and dtype == torch.float64:
        rtol = 1e-5
    sol = solve(_linear, y0.to(dtype), [0.0, 0.5, 3.0], solver=name, rtol=rtol, atol=atol)
    assert sol.ys.dtype == dtype
    for k, t in enumerate((0.5, 3.0)):
        exact = _linear_exact(t, y0)
        err = (sol.ys[k + 1].double() - exact).abs() / (atol + rtol * exact.abs())
        assert err.max() < 100, f"{name}: scaled error {err.max():.3g} at t={t}"
    dts = np.diff(sol.t_steps)
    assert dts.max() / dts.min() > 100  # the transient forces tiny steps, the tail allows big ones


@pytest.mark.parametrize("name", STIFF)
def test_quadrature_is_as_accurate_as_the_state(name):
    # y1' = -y1 (y1 = e^-t), y2' = -1e3 (y2 - cos t) (stiff); rates (y1^2, t y2) are integrated
    # along accepted steps but are not part of the state.
    def f(t, y):
        return torch.stack([-y[0], -1e3 * (y[1] - torch.cos(t))])

    problem = Problem.from_torch(f, quad=lambda t, y: (y[0] ** 2, t * y[1]), rtol=1e-7, atol=1e-10)
    sol = integrate(problem, get_method(name), torch.tensor([1.0, 0.0], dtype=torch.float64), [0.0, 1.0])
    aug = solve_ivp(lambda t, u: [-u[0], -1e3 * (u[1] - math.cos(t)), u[0] ** 2, t * u[1]],
                    (0.0, 1.0), [1.0, 0.0, 0.0, 0.0], method="Radau", rtol=1e-12, atol=1e-14)
    assert aug.success
    state_err = np.abs(sol.ys[-1].numpy() - aug.y[:2, -1]).max()
    q_err = np.abs(torch.stack(sol.q).numpy() - aug.y[2:, -1]).max()
    # Rosenbrock quadrature runs on the cubic Hermite: within tolerance, not always below the
    # (5th-order) state error.
    bound = max(10 * state_err, 10 * problem.rtol * float(sol.q[0]))
    assert abs(float(sol.q[0]) - (1 - math.exp(-2)) / 2) <= bound
    assert q_err <= bound, f"{name}: quadrature error {q_err:.2g}, state {state_err:.2g}"


def test_rosenbrock23_estimate_tracks_the_true_error_for_nonautonomous_f():
    # With the d*h*T term in k3 (Shampine-Reichelt) the estimate/true ratio tends to 1; with
    # OrdinaryDiffEq's h*T it carries a spurious O(h^2) term and the ratio blows up as h -> 0.
    def f(t, y):
        return -y + torch.sin(3 * t) + t * t

    t0, y0 = 0.3, torch.tensor([0.7], dtype=torch.float64)
    stepper = get_method("Rosenbrock23").stepper
    for h in (0.05, 0.025):
        problem = Problem.from_torch(f)
        f0 = problem.f_eval(t0, y0)
        res, _ = stepper.step(problem, t0, y0, f0, h, stepper.init(problem, t0, y0, f0), rejected=False)
        fine = solve(f, y0, [t0, t0 + h], solver="Tsit5", rtol=1e-13, atol=1e-15).ys[-1]
        ratio = float(res.err / (res.y1 - fine))
        assert 0.9 < abs(ratio) < 1.1, f"h={h}: estimate/true error = {ratio:.3g}"


def _stability(tab, weights, z: float) -> float:
    """R(z) = 1 + z w^T (I - z A)^-1 1: one step of y' = lam y from y0 = 1, z = lam dt."""
    A = torch.tensor([[float(a) for a in row] for row in tab.A], dtype=torch.float64)
    ones = torch.ones(len(tab.c), dtype=torch.float64)
    stage = torch.linalg.solve(torch.eye(len(tab.c), dtype=torch.float64) - z * A, ones)
    return float(1 + z * torch.tensor([float(w) for w in weights], dtype=torch.float64) @ stage)


@pytest.mark.parametrize("name", ["TRBDF2", "KenCarp4", "Kvaerno5"])
def test_esdirk_estimate_is_filtered_exactly_when_the_embedded_formula_is_unbounded(name):
    # Shampine's filter W^-1 = 1 / (1 - gamma z) is needed where R_hat(z) grows like |z| (TRBDF2's
    # embedded formula is not A-stable); where R_hat is bounded (KenCarp4, Kvaerno5) the plain
    # difference (R - R_hat) y0 is the estimate. Never OrdinaryDiffEq's gamma*dt-scaled variant.
    method = get_method(name)
    tab = method.tableau
    unbounded = abs(_stability(tab, tab.b_hat, -1e8)) > 1e3
    assert tab.filtered_estimate == unbounded
    lam, dt = -50.0, 0.1
    R, R_hat = _stability(tab, tab.b, lam * dt), _stability(tab, tab.b_hat, lam * dt)
    expected = (R - R_hat) / (1 - float(tab.gamma) * lam * dt) if unbounded else R - R_hat

    problem = Problem(lambda t, y: lam * y, rtol=1e-13, atol=1e-15)
    y0 = torch.tensor([1.0], dtype=torch.float64)
    f0 = problem.f_eval(0.0, y0)
    res, _ = method.stepper.step(problem, 0.0, y0, f0, dt, method.stepper.init(problem, 0.0, y0, f0),
                                 rejected=False)
    assert res.ok
    assert float(res.y1) == pytest.approx(R, rel=1e-10)
    assert abs(float(res.err)) == pytest.approx(abs(expected), rel=1e-8)


def test_rodas5p_keeps_its_order_where_rodas4_loses_it():
    # Prothero-Robinson y' = lam (y - sin t) + cos t with lam = -1e6, from the exact solution: one
    # step's local error. Rodas4 drops to order ~1.2-1.6 here (the cause of its steep step growth at
    # tight tolerances on HIRES and OREGO); Rodas5P was built to keep order 3 (Steinebach 2023).
    lam, t0 = -1e6, 0.4

    def f(t, y):
        return lam * (y - math.sin(t)) + math.cos(t)

    def jac(t, y):
        return torch.full((1, 1), lam, dtype=torch.float64)

    y0 = torch.tensor([math.sin(t0)], dtype=torch.float64)
    hs = [0.05, 0.025, 0.0125]
    slopes = {}
    for name in ("Rodas4", "Rodas5P"):
        stepper, errs = get_method(name).stepper, []
        for h in hs:
            problem = Problem(f, jac=jac, rtol=1e-12, atol=1e-14)
            f0 = problem.f_eval(t0, y0)
            res, _ = stepper.step(problem, t0, y0, f0, h, stepper.init(problem, t0, y0, f0), rejected=False)
            errs.append(abs(float(res.y1) - math.sin(t0 + h)))
        slopes[name] = float(np.polyfit(np.log(hs), np.log(errs), 1)[0])
    assert slopes["Rodas4"] < 2.0 and slopes["Rodas5P"] > 2.5, slopes


@pytest.mark.parametrize("name", STIFF)
def test_backward_in_time_stiff_integration(name):
    # y' = 1e4 (y - cos t) from t = 1 down to 0 is stiff and stable in reverse time (the adjoint's
    # situation); dt is negative throughout.
    def f(t, y):
        return 1e4 * (y - torch.cos(t))

    y1 = torch.tensor([math.cos(1.0) + 0.5], dtype=torch.float64)
    sol = solve(f, y1, [1.0, 0.5, 0.0], solver=name, rtol=1e-6, atol=1e-9)
    ref = solve_ivp(lambda t, y: 1e4 * (y - math.cos(t)), (1.0, 0.0), [float(y1)], method="Radau",
                    rtol=1e-12, atol=1e-14, t_eval=[0.5, 0.0])
    assert np.allclose(sol.ys[1:, 0].numpy(), ref.y[0], rtol=1e-4, atol=1e-7)
    assert sol.stats.naccept < (1500 if SOLVERS[name].order <= 2 else 300)
