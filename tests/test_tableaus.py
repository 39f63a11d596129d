"""Every registered tableau is consistent: structure, row sums, weights, and its order conditions."""
from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest

from pyjlode.ode import SOLVERS, ButcherTableau, RosenbrockTableau
from pyjlode.ode.methods.explicit import DP5, TSIT5

NAMES = sorted(SOLVERS)
BUTCHER = [n for n in NAMES if isinstance(SOLVERS[n].tableau, ButcherTableau)]
ROSENBROCK = [n for n in NAMES if isinstance(SOLVERS[n].tableau, RosenbrockTableau)]


def _order_conditions(A, b, c):
    """Residuals of the Runge-Kutta order conditions (rooted trees) up to order 5, by order."""
    e = np.ones_like(c)
    Ac, Ac2, Ac3 = A @ c, A @ c**2, A @ c**3
    AAc = A @ Ac
    conds = {
        1: [b @ e - 1],
        2: [b @ c - 1 / 2],
        3: [b @ c**2 - 1 / 3, b @ Ac - 1 / 6],
        4: [b @ c**3 - 1 / 4, b @ (c * Ac) - 1 / 8, b @ Ac2 - 1 / 12, b @ AAc - 1 / 24],
        5: [b @ c**4 - 1 / 5, b @ (c**2 * Ac) - 1 / 10, b @ (c * Ac2) - 1 / 15, b @ (c * AAc) - 1 / 30,
            b @ Ac**2 - 1 / 20, b @ Ac3 - 1 / 20, b @ (A @ (c * Ac)) - 1 / 40, b @ (A @ Ac2) - 1 / 60,
            b @ (A @ AAc) - 1 / 120],
    }
    return conds


def _arrays(tab):
    A = np.array([[float(a) for a in row] for row in tab.A])
    return A, np.array([float(x) for x in tab.b]), np.array([float(x) for x in tab.c])


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry_matches_its_tableau(name):
    m = SOLVERS[name]
    assert m.name == m.tableau.name == name
    assert m.order == m.tableau.order >= 1
    assert m.adaptive_order == m.tableau.embedded_order
    assert m.tableau.source, "every tableau cites its source"
    assert m.stiff == (m.tableau.kind != "explicit")


@pytest.mark.parametrize("name", NAMES)
def test_tableau_is_frozen(name):
    with pytest.raises(dataclasses.FrozenInstanceError):
        SOLVERS[name].tableau.order = 99


@pytest.mark.parametrize("name", BUTCHER)
def test_butcher_rows_sum_to_c_and_weights_to_one(name):
    tab = SOLVERS[name].tableau
    A, b, c = _arrays(tab)
    scale = np.abs(A).sum(axis=1) + 1
    assert np.all(np.abs(A.sum(axis=1) - c) <= 1e-12 * scale)
    assert abs(b.sum() - 1) < 1e-12
    assert np.allclose(np.triu(A, 1), 0)
    if tab.b_hat is not None:
        assert abs(sum(float(x) for x in tab.b_hat) - 1) < 1e-12
        assert np.allclose([float(x) for x in tab.b_err], b - [float(x) for x in tab.b_hat], atol=1e-15)


@pytest.mark.parametrize("name", BUTCHER)
def test_butcher_diagonal_matches_kind(name):
    tab = SOLVERS[name].tableau
    diag = [float(tab.A[i][i]) for i in range(tab.stages)]
    if tab.kind == "explicit":
        assert all(d == 0 for d in diag) and tab.gamma is None
    else:
        assert tab.kind == "esdirk" and diag[0] == 0
        assert np.allclose(diag[1:], float(tab.gamma), rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", BUTCHER)
def test_butcher_weights_meet_the_declared_order(name):
    tab = SOLVERS[name].tableau
    A, b, c = _arrays(tab)
    for weights, order in ((b, tab.order), (tab.b_hat, tab.embedded_order)):
        if weights is None:
            continue
        w = np.array([float(x) for x in weights])
        conds = _order_conditions(A, w, c)
        for p in range(1, min(order, 5) + 1):
            assert np.max(np.abs(conds[p])) < 1e-10, f"{name}: order-{p} conditions fail for order {order}"
        if order < 5:  # the declared order is not an understatement either
            assert np.max(np.abs(conds[order + 1])) > 1e-8


@pytest.mark.parametrize("name", ROSENBROCK)
def test_rosenbrock_structure(name):
    tab = SOLVERS[name].tableau
    s = tab.stages
    for M in (tab.A, tab.C):
        assert len(M) == s and all(len(r) == s for r in M)
        assert all(float(M[i][j]) == 0 for i in range(s) for j in range(i, s))
    assert len(tab.d) == len(tab.b) == s and float(tab.c[0]) == 0 and float(tab.gamma) > 0


@pytest.mark.parametrize("name", NAMES)
def test_stepper_plan_is_the_tableau_in_floats(name):
    m = SOLVERS[name]
    plan, tab = m.stepper.plan, m.tableau
    assert plan.name == name and plan.c == tuple(float(x) for x in tab.c)
    dense_b = [0.0] * tab.stages
    for j, v in plan.b:
        dense_b[j] = v
    assert dense_b == pytest.approx([float(x) for x in tab.b], rel=0, abs=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.c = ()


def test_fsal_is_derived():
    assert TSIT5.fsal and DP5.fsal
    assert not SOLVERS["RK4"].tableau.fsal and not SOLVERS["Euler"].tableau.fsal


def test_exact_rationals_are_kept():
    assert DP5.A[4][0] == Fraction(19372, 6561)
    assert DP5.b_err[6] == Fraction(-1, 40)


@pytest.mark.parametrize("bad, match", [
    (dict(A=[[0, 0], [1, 0]], b=[0.5, 0.5], c=[0, 0.5]), "row 1 of A"),
    (dict(A=[[0, 0], [1, 0]], b=[0.5, 0.6], c=[0, 1]), "b sums"),
    (dict(A=[[0, 0], [1, 0]], b=[0.5, 0.5], c=[0, 1], b_hat=[0.2, 0.7], embedded_order=1), "b_hat sums"),
    (dict(A=[[0, 1], [1, 0]], b=[0.5, 0.5], c=[1, 1]), "lower triangular"),
    (dict(A=[[0, 0, 0], [0.25, 0.25, 0], [0.3, 0.3, 0.4]], b=[0.3, 0.3, 0.4], c=[0, 0.5, 1], gamma=0.25),
     "ESDIRK"),
    (dict(A=[[0, 0], [1, 0]], b=[0.5, 0.5], c=[0, 1], b_hat=[0.5, 0.5]), "embedded_order"),
])
def test_inconsistent_tableaus_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        ButcherTableau(name="bad", order=2, **bad)


def test_rosenbrock_tableau_refuses_upper_entries():
    with pytest.raises(ValueError, match="strictly lower"):
        RosenbrockTableau(name="bad", A=[[0, 1], [0, 0]], C=[[0, 0], [0, 0]], gamma=0.5, c=[0, 1],
                          d=[0.5, 0], b=[0.5, 0.5], order=2)
