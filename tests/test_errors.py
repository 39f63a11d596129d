"""Failures name their real cause in one line, and arrive quickly; bad input is one line naming the fix.

Claims: NaN or inf from the vector field or its Jacobian is reported as such in every family, with the
time it first happened, within a bounded number of evaluations (never as stiffness or a Newton
failure); a finite-time blow-up is told apart from stiffness and stops at a step-size floor relative
to t and the dtype; an rtol below the dtype's unit roundoff is refused before any evaluation; hints
depend on the solver used and on the adjoint's sensealg; a field returning the wrong shape, dtype or
type is refused after one evaluation; bad arguments raise InputError (a ValueError).
"""
from __future__ import annotations

import math

import pytest
import torch

from pyjlode.errors import InputError
from pyjlode.ode import (SOLVERS, FiniteTimeBlowUp, MaxStepsExceeded, NewtonFailure, NonFiniteState,
                         SolverError, StepSizeUnderflow, get_method, odeint, solve)
from pyjlode.ode.adjoint import odeint_adjoint

Y0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
ADAPTIVE = sorted(name for name, m in SOLVERS.items() if m.adaptive)
STIFF = sorted(name for name, m in SOLVERS.items() if m.stiff)


def rotate(t, y):
    return torch.stack([y[1], -y[0]])


class Counted:
    """A vector field that counts its evaluations and the non-finite values it returned."""

    def __init__(self, f):
        self.f, self.calls, self.nonfinite = f, 0, 0

    def __call__(self, t, y):
        self.calls += 1
        out = self.f(t, y)
        self.nonfinite += isinstance(out, torch.Tensor) and not bool(torch.isfinite(out).all())
        return out


def _one_line(exc: BaseException) -> None:
    assert "\n" not in str(exc)


# ---- NaN and inf -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ADAPTIVE)
def test_nan_from_the_vector_field_is_named_in_every_family(name):
    f = Counted(lambda t, y: rotate(t, y) * (float("nan") if float(t) > 0.5 else 1.0))
    with pytest.raises(NonFiniteState, match=name) as info:
        solve(f, Y0, [0.0, 1.0], solver=name)
    err = info.value
    assert err.cause == "field" and "vector field returned NaN" in str(err)
    assert "stiff" not in str(err) and not isinstance(err, NewtonFailure)
    assert 0.5 - 1e-6 <= err.t <= 0.5
    assert f.nonfinite <= 400, f"{f.nonfinite} NaN evaluations before the report"
    _one_line(err)


@pytest.mark.parametrize("name", STIFF)
def test_a_nan_jacobian_is_named(name):
    # f = -sqrt|y| is finite everywhere, its derivative is infinite at y = 0: the first Jacobian is.
    f = Counted(lambda t, y: -y.abs().sqrt())
    with pytest.raises(NonFiniteState, match="Jacobian") as info:
        solve(f, torch.tensor([0.0, 0.5], dtype=torch.float64), [0.0, 1.0], solver=name)
    assert info.value.cause == "jacobian" and info.value.t == 0.0
    assert f.calls <= 60


@pytest.mark.parametrize("name", ["Tsit5", "Rodas5P", "KenCarp4"])
def test_leaving_the_domain_of_the_field_is_named(name):
    # sqrt(y1 - 0.9): the solution reaches y1 = 0.9 near t = 0.536 and every step past it is NaN.
    f = Counted(lambda t, y: torch.stack([y[1], -y[0] + torch.sqrt(y[0] - 0.9)]))
    with pytest.raises(NonFiniteState) as info:
        solve(f, Y0, [0.0, 3.0], solver=name)
    assert info.value.cause == "domain" and "domain" in str(info.value)
    assert info.value.t == pytest.approx(0.5356, abs=1e-3)
    assert f.nonfinite <= 800


def test_nan_initial_state():
    with pytest.raises(NonFiniteState, match="initial") as info:
        solve(rotate, torch.tensor([float("nan"), 0.0], dtype=torch.float64), [0.0, 1.0])
    assert info.value.cause == "initial"


def test_arithmetic_error_in_the_vector_field():
    def f(t, y):
        if float(t) > 0.5:
            raise FloatingPointError("overflow in exp")
        return rotate(t, y)

    with pytest.raises(NonFiniteState, match="FloatingPointError") as info:
        solve(f, Y0, [0.0, 1.0])
    assert info.value.cause == "field"


def test_fixed_step_nan_is_reported():
    with pytest.raises(NonFiniteState, match="RK4"):
        solve(lambda t, y: y * y, torch.tensor([1.0], dtype=torch.float64), [0.0, 3.0], solver="RK4", dt=0.1)


# ---- blow-up and the step-size floor -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", ADAPTIVE)
def test_finite_time_blow_up_is_told_apart_from_stiffness(name, dtype):
    # y' = y^2, y(0) = 1 blows up at t = 1. Every solver stops there at the floor of 10 units in the
    # last place of t (a float64), not at dt = 1e-156, says blow-up and does not suggest a stiff solver.
    f = Counted(lambda t, y: y * y)
    with pytest.raises(FiniteTimeBlowUp, match=name) as info:
        solve(f, torch.tensor([1.0], dtype=dtype), [0.0, 2.0], solver=name)
    err = info.value
    assert isinstance(err, StepSizeUnderflow) and "blow-up" in str(err) and "stiff" not in str(err)
    assert err.t == pytest.approx(1.0, abs=2e-4)
    eps = torch.finfo(torch.float64).eps
    assert eps < abs(err.dt) <= 10 * eps * 1.01
    assert f.calls <= 12_000
    _one_line(err)


# ---- tolerances the dtype cannot meet ----------------------------------------------------------------
def test_an_rtol_below_the_dtype_resolution_is_refused_before_any_evaluation():
    f = Counted(lambda t, y: -y)
    with pytest.raises(InputError, match=r"rtol=1e-10 is below float32's unit roundoff") as info:
        solve(f, torch.tensor([1.0], dtype=torch.float32), [0.0, 1.0], rtol=1e-10, atol=1e-12)
    assert f.calls == 0 and "float64" in str(info.value)
    _one_line(info.value)
    # the same rtol in float64, and torchdiffeq's default rtol 1e-7 in float32, are fine
    solve(f, torch.tensor([1.0], dtype=torch.float64), [0.0, 1.0], rtol=1e-10, atol=1e-12)
    odeint(f, torch.tensor([1.0]), torch.tensor([0.0, 1.0]))


def test_the_adjoint_names_the_backward_tolerance_it_refuses():
    with pytest.raises(InputError, match="backward_rtol=1e-09"):
        odeint_adjoint(lambda t, y: -y, torch.tensor([1.0]), [0.0, 1.0], rtol=1e-4, backward_rtol=1e-9)


# ---- hints that depend on what was used ----------------------------------------------------------------
def test_max_steps_hint_suggests_a_stiff_solver_only_to_an_explicit_one(duffing):
    with pytest.raises(MaxStepsExceeded, match=r"Tsit5.*max_steps=5") as info:
        solve(duffing.f, duffing.y0(), [0.0, duffing.T], solver="Tsit5", rtol=1e-8, max_steps=5)
    assert isinstance(info.value, SolverError) and info.value.solver == "Tsit5"
    assert "KenCarp4" in str(info.value)
    _one_line(info.value)
    with pytest.raises(MaxStepsExceeded, match="Rodas5P") as info:
        solve(duffing.f, duffing.y0(), [0.0, duffing.T], solver="Rodas5P", rtol=1e-8, max_steps=5)
    assert "stiff" not in str(info.value) and "raise max_steps" in str(info.value)


def test_newton_failure_points_to_a_solver_without_newton():
    # A field that is not a function of y (fresh noise every call): no stage equation has a root.
    gen = torch.Generator().manual_seed(0)
    f = Counted(lambda t, y: -y * (1 + 0.5 * torch.randn(y.shape, generator=gen, dtype=y.dtype)))
    with pytest.raises(NewtonFailure, match="KenCarp4") as info:
        solve(f, torch.tensor([1.0, 2.0], dtype=torch.float64), [0.0, 2.0], solver="KenCarp4")
    assert "Rodas5P" in str(info.value) and f.calls <= 200


def test_a_failing_backsolve_adjoint_points_to_the_interpolating_one():
    # y' = -k (y - cos t) decays forward; backsolve re-integrates it backwards, where it grows like
    # e^(k t) and overflows float32. The interpolating adjoint reads y from the forward solve.
    k = torch.tensor(200.0, requires_grad=True)
    f = Counted(lambda t, y: -k * (y - torch.cos(t)))
    y0, t = torch.tensor([2.0]), torch.tensor([0.0, 1.0])
    kwargs = dict(params=[k], solver="KenCarp4", backward_solver="KenCarp4", rtol=1e-4, atol=1e-6)
    ys = odeint_adjoint(f, y0, t, sensealg="backsolve", **kwargs)
    with pytest.raises(SolverError) as info:
        ys[-1].sum().backward()
    err = info.value
    assert err.backward and "adjoint backward solve" in str(err) and "sensealg='interpolating'" in str(err)
    assert f.calls <= 5_000
    _one_line(err)
    ys = odeint_adjoint(f, y0, t, sensealg="interpolating", **kwargs)
    ys[-1].sum().backward()
    assert torch.isfinite(k.grad)


# ---- the field's output, checked once --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Tsit5", "Rodas5P", "KenCarp4"])
@pytest.mark.parametrize("field, match", [
    (lambda t, y: torch.ones(3, dtype=y.dtype), r"returned shape \(3,\) for y of shape \(2,\)"),
    (lambda t, y: (-y).float(), r"returned float32 on cpu for y of float64"),
    (lambda t, y: [y[1], -y[0]], r"returned list; it must return a torch.Tensor dy/dt shaped like y, "
                                 r"here \(2,\) float64"),
])
def test_a_field_of_the_wrong_shape_or_dtype_is_refused_after_one_evaluation(name, field, match):
    f = Counted(field)
    with pytest.raises(InputError, match=match) as info:
        solve(f, Y0, [0.0, 1.0], solver=name)
    assert f.calls == 1
    _one_line(info.value)


# ---- bad arguments ---------------------------------------------------------------------------------------
def test_unknown_solver_lists_the_valid_names():
    with pytest.raises(InputError, match="unknown solver 'rk45'") as info:
        solve(rotate, Y0, [0.0, 1.0], solver="rk45")
    for name in SOLVERS:
        assert name in str(info.value)


def test_names_are_case_insensitive_with_aliases():
    assert get_method("dopri5") is get_method("DP5") is get_method("dp5")
    assert get_method("TSIT5") is SOLVERS["Tsit5"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(t=[0.0, 1.0, 0.5]), "strictly increasing or strictly decreasing"),
    (dict(t=[]), "empty"),
    (dict(t=torch.zeros(2, 2)), "1-D"),
    (dict(y0=torch.tensor([1, 0])), "floating-point"),
    (dict(rtol=-1.0), "tolerances"),
    (dict(norm="max"), "unknown norm"),
    (dict(solver="RK4"), "fixed-step solver: pass dt"),
    (dict(adaptive=False), "pass dt"),
    (dict(dt=float("nan")), "dt must be"),
])
def test_bad_input_is_one_clear_line(kwargs, match):
    args = dict(f=rotate, y0=Y0, t=[0.0, 1.0])
    args.update(kwargs)
    with pytest.raises(InputError, match=match) as info:
        solve(args.pop("f"), args.pop("y0"), args.pop("t"), **args)
    assert isinstance(info.value, ValueError)
    _one_line(info.value)


def test_adjoint_bad_input_is_an_input_error():
    with pytest.raises(InputError, match="unknown sensealg"):
        odeint_adjoint(rotate, Y0, [0.0, 1.0], sensealg="quadrature")


def test_odeint_is_solve_ys():
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    ys = odeint(rotate, Y0, t, method="dopri5", rtol=1e-6, atol=1e-8)
    assert torch.equal(ys, solve(rotate, Y0, t, solver="DP5").ys)
    assert torch.allclose(odeint(rotate, Y0, t, rtol=1e-10, atol=1e-12)[:, 0], torch.cos(t), atol=1e-9)
    with pytest.raises(InputError, match="either solver= or method="):
        odeint(rotate, Y0, t, method="DP5", solver="Tsit5")


def test_fixed_step_grid_lands_on_the_final_time():
    sol = solve(rotate, Y0, [0.0, 1.0], solver="RK4", dt=0.3)
    assert sol.t_steps == pytest.approx([0.0, 0.3, 0.6, 0.9, 1.0], abs=1e-15)
    assert sol.t_steps[-1] == 1.0
    assert float(sol.ys[-1, 0]) == pytest.approx(math.cos(1.0), abs=1e-4)
