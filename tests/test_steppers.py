"""Stepper objects: typed state, the loop's flags, what a step hands to dense output.

Claims: every registered method's stepper returns a slotted State from ``init`` and updates it in
place; ``StepResult.stages`` rebuilds y1 with the tableau's weights; the loop passes
``rejected=True`` exactly for retries from the same point; the ESDIRK and Rosenbrock states keep or
renew J and W by the documented policy; stage-0 quadrature rates follow accepted points only.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from pyjlode.ode import SOLVERS, Problem, get_method, integrate
from pyjlode.ode.steppers import ExplicitRK

A = torch.tensor([[-1.0, 0.3, 0.0], [0.2, -50.0, 0.1], [0.0, -0.4, -800.0]], dtype=torch.float64)
Y0 = torch.tensor([[0.5, -0.2, 0.1], [0.3, 0.4, -0.6]], dtype=torch.float64)


def _f(t, y):
    return torch.tanh(y @ A.T) - 0.1 * y


def _step(name, problem, t, y, dt, state=None, rejected=False):
    stepper = get_method(name).stepper
    f0 = problem.f_eval(t, y)
    state = stepper.init(problem, t, y, f0) if state is None else state
    return stepper.step(problem, t, y, f0, dt, state, rejected=rejected)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_state_is_slotted_and_updated_in_place(name):
    stepper = get_method(name).stepper
    problem = Problem(_f)
    f0 = problem.f_eval(0.0, Y0)
    state = stepper.init(problem, 0.0, Y0, f0, adaptive=False)
    assert not hasattr(state, "__dict__") and state.want_err is False
    res, out = stepper.step(problem, 0.0, Y0, f0, 1e-3, state, rejected=False)
    assert out is state and res.ok and res.err is None


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_stages_rebuild_the_step_with_the_tableau_weights(name):
    m = get_method(name)
    problem = Problem(_f, rtol=1e-8, atol=1e-10)
    dt = 1e-3
    res, _ = _step(name, problem, 0.0, Y0, dt)
    tab = m.tableau
    assert len(res.stages) == tab.stages
    # Explicit RK stores derivatives k_i (k_0 = f0); ESDIRK z_i = dt k_i; Rosenbrock the
    # W-transformed k_i, which already carry dt.
    scale = dt if m.stepper.family == "explicit" else 1.0
    y1 = Y0 + scale * sum(float(b) * k for b, k in zip(tab.b, res.stages))
    torch.testing.assert_close(y1, res.y1, rtol=1e-13, atol=1e-15)
    first = problem.f_eval(0.0, Y0) * (dt if m.stepper.family == "esdirk" else 1.0)
    if m.stepper.family != "rosenbrock":
        torch.testing.assert_close(res.stages[0], first)


class _Recorder(ExplicitRK):
    __slots__ = ("calls",)

    def step(self, problem, t, y, f0, dt, state, *, rejected):
        self.calls.append((t, y, rejected))
        return super().step(problem, t, y, f0, dt, state, rejected=rejected)


def test_the_loop_flags_retries_from_the_same_point():
    tsit5 = get_method("Tsit5")
    rec = _Recorder(tsit5.tableau)
    rec.calls = []
    method = dataclasses.replace(tsit5, stepper=rec)
    sol = integrate(Problem(_f, rtol=1e-8, atol=1e-10), method, Y0, [0.0, 1.0], dt0=0.5)
    assert sol.stats.nreject > 0 and len(rec.calls) == sol.stats.naccept + sol.stats.nreject
    assert rec.calls[0][2] is False
    for (t0, y0, _), (t1, y1, rejected) in zip(rec.calls, rec.calls[1:]):
        assert rejected == (t1 == t0 and y1 is y0)


def test_esdirk_state_keeps_j_while_newton_is_fast_and_renews_it_after_a_rejection():
    problem = Problem(lambda t, y: y @ A.T, rtol=1e-6, atol=1e-9)
    res, state = _step("KenCarp4", problem, 0.0, Y0, 1e-3)
    assert state.j_current and state.fast and problem.stats.njac == 1
    J, njac, nlu = state.J, problem.stats.njac, problem.stats.nlu
    res, state = _step("KenCarp4", problem, 1e-3, res.y1, 1e-3, state)       # accepted: a new point
    assert not state.j_current and state.J is J and problem.stats.njac == njac
    assert problem.stats.nlu == nlu                                          # same gamma*dt: same LU
    y = res.y1
    res, state = _step("KenCarp4", problem, 2e-3, y, 1e-3, state)
    res, state = _step("KenCarp4", problem, 2e-3, y, 5e-4, state, rejected=True)
    assert state.j_current and problem.stats.njac == njac + 1                # retry: J at this point
    nlu = problem.stats.nlu
    res, state = _step("KenCarp4", problem, 2e-3, y, 2.5e-4, state, rejected=True)
    assert problem.stats.njac == njac + 1 and problem.stats.nlu == nlu + 1   # J kept, W refactorised
    assert state.theta <= 1.0 and res.ok


def test_rosenbrock_state_renews_j_at_every_new_point_and_keeps_it_for_a_retry():
    problem = Problem(_f, rtol=1e-6, atol=1e-9)
    res, state = _step("Rodas5P", problem, 0.0, Y0, 1e-2)
    J, T = state.J, state.T
    assert problem.stats.njac == 1 and T is not None
    res2, state = _step("Rodas5P", problem, 0.0, Y0, 5e-3, state, rejected=True)
    assert state.J is J and state.T is T and problem.stats.njac == 1 and problem.stats.nlu == 2
    _, state = _step("Rodas5P", problem, 5e-3, res2.y1, 5e-3, state)
    assert state.J is not J and problem.stats.njac == 2


@pytest.mark.parametrize("name", ["Tsit5", "KenCarp4"])
def test_stage_zero_rates_follow_accepted_points_only(name):
    seen = []

    def quad(t, y):
        seen.append(y)
        return (y.sum(0),)

    problem = Problem(_f, quad=quad, rtol=1e-6, atol=1e-9)
    res1, state = _step(name, problem, 0.0, Y0, 1e-2)
    seen.clear()
    res2, state = _step(name, problem, 1e-2, res1.y1, 1e-2, state)           # res1 accepted
    assert all(y is not res1.y1 for y in seen)                               # its end rates reused
    _, state = _step(name, problem, 2e-2, res2.y1, 1e-2, state)              # an attempt, then rejected
    retry, state = _step(name, problem, 2e-2, res2.y1, 5e-3, state, rejected=True)
    fresh, _ = _step(name, Problem(_f, quad=quad, rtol=1e-6, atol=1e-9), 2e-2, res2.y1, 5e-3)
    torch.testing.assert_close(retry.q[0], fresh.q[0], rtol=1e-12, atol=1e-14)
