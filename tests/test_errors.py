"""Failures and bad input: SolverError subclasses and one-line ValueErrors that name the fix."""
from __future__ import annotations

import math

import pytest
import torch

from pyjlode.ode import (SOLVERS, MaxStepsExceeded, NonFiniteState, SolverError, StepSizeUnderflow,
                         get_method, odeint, solve)

Y0 = torch.tensor([1.0, 0.0], dtype=torch.float64)


def rotate(t, y):
    return torch.stack([y[1], -y[0]])


def test_max_steps_exceeded(duffing):
    with pytest.raises(MaxStepsExceeded, match=r"Tsit5.*max_steps=5") as info:
        solve(duffing.f, duffing.y0(), [0.0, duffing.T], solver="Tsit5", rtol=1e-8, max_steps=5)
    assert isinstance(info.value, SolverError) and info.value.solver == "Tsit5"
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["Tsit5", "DP5"])
def test_step_size_underflow_at_a_blow_up(name):
    # y' = y^2, y(0) = 1 blows up at t = 1: steps shrink until they underflow.
    with pytest.raises(StepSizeUnderflow, match=name) as info:
        solve(lambda t, y: y * y, torch.tensor([1.0], dtype=torch.float64), [0.0, 2.0], solver=name)
    assert info.value.t == pytest.approx(1.0, abs=1e-6)
    assert "stiff" in str(info.value)


@pytest.mark.parametrize("name", ["Tsit5", "DP5"])
def test_nan_from_the_vector_field(name):
    f = lambda t, y: rotate(t, y) * (float("nan") if float(t) > 0.5 else 1.0)
    with pytest.raises(NonFiniteState, match=name) as info:
        solve(f, Y0, [0.0, 1.0], solver=name)
    assert 0.0 <= info.value.t <= 0.5


def test_nan_initial_state():
    with pytest.raises(NonFiniteState, match="initial"):
        solve(rotate, torch.tensor([float("nan"), 0.0], dtype=torch.float64), [0.0, 1.0])


def test_arithmetic_error_in_the_vector_field():
    def f(t, y):
        if float(t) > 0.5:
            raise FloatingPointError("overflow in exp")
        return rotate(t, y)

    with pytest.raises(NonFiniteState, match="FloatingPointError"):
        solve(f, Y0, [0.0, 1.0])


def test_fixed_step_nan_is_reported():
    with pytest.raises(NonFiniteState, match="RK4"):
        solve(lambda t, y: y * y, torch.tensor([1.0], dtype=torch.float64), [0.0, 3.0], solver="RK4", dt=0.1)


def test_unknown_solver_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown solver 'rk45'") as info:
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
    with pytest.raises(ValueError, match=match) as info:
        solve(args.pop("f"), args.pop("y0"), args.pop("t"), **args)
    assert "\n" not in str(info.value)


def test_odeint_is_solve_ys():
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    ys = odeint(rotate, Y0, t, method="dopri5", rtol=1e-6, atol=1e-8)
    assert torch.equal(ys, solve(rotate, Y0, t, solver="DP5").ys)
    assert torch.allclose(odeint(rotate, Y0, t, rtol=1e-10, atol=1e-12)[:, 0], torch.cos(t), atol=1e-9)
    with pytest.raises(ValueError, match="either solver= or method="):
        odeint(rotate, Y0, t, method="DP5", solver="Tsit5")


def test_fixed_step_grid_lands_on_the_final_time():
    sol = solve(rotate, Y0, [0.0, 1.0], solver="RK4", dt=0.3)
    assert sol.t_steps == pytest.approx([0.0, 0.3, 0.6, 0.9, 1.0], abs=1e-15)
    assert sol.t_steps[-1] == 1.0
    assert float(sol.ys[-1, 0]) == pytest.approx(math.cos(1.0), abs=1e-4)
