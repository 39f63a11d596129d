"""Classic stiff test problems (Hairer & Wanner II; the IVP test set of Mazzia et al.) as torch
vector fields with analytic Jacobians, their cached Radau references and the published test-set end
values they are checked against; then the regression cases, their error bounds and one case's run.

Shared by tests/test_stiff_regression.py, scripts/make_stiff_references.py (which writes the
reference fixture) and scripts/stiff_regression_table.py (the docs table).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from scipy.integrate import solve_ivp

from pyjlode import solve
from pyjlode.ode import SOLVERS
from pyjlode.ode.errors import SolverError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "stiff_references.json"

# scipy Radau settings of the reference solutions (see scripts/make_stiff_references.py).
REF_RTOL = 1e-12


def _const(values, y):
    return torch.as_tensor(values, dtype=y.dtype, device=y.device)


# ---- Van der Pol, mu = 1000, unscaled: y1' = y2, y2' = mu (1 - y1^2) y2 - y1 ----------------------
MU = 1000.0


def vdp(t, y):
    y1, y2 = y[..., 0], y[..., 1]
    return torch.stack([y2, MU * (1 - y1 * y1) * y2 - y1], dim=-1)


def vdp_jac(t, y):
    y1, y2 = y[0], y[1]
    zero, one = torch.zeros_like(y1), torch.ones_like(y1)
    return torch.stack([torch.stack([zero, one]),
                        torch.stack([-2 * MU * y1 * y2 - 1, MU * (1 - y1 * y1)])])


# ---- Robertson (ROBER) -----------------------------------------------------------------------------
def rober(t, y):
    y1, y2, y3 = y[..., 0], y[..., 1], y[..., 2]
    return torch.stack([-0.04 * y1 + 1e4 * y2 * y3,
                        0.04 * y1 - 1e4 * y2 * y3 - 3e7 * y2 * y2,
                        3e7 * y2 * y2], dim=-1)


def rober_jac(t, y):
    y2, y3 = y[1], y[2]
    c, zero = torch.full_like(y2, 0.04), torch.zeros_like(y2)
    return torch.stack([torch.stack([-c, 1e4 * y3, 1e4 * y2]),
                        torch.stack([c, -1e4 * y3 - 6e7 * y2, -1e4 * y2]),
                        torch.stack([zero, 6e7 * y2, zero])])


# ---- HIRES: f = A y + c + (e7 - e6 - e8) * 280 y6 y8 ------------------------------------------------
_HIRES_A = [
    [-1.71, 0.43, 8.32, 0.0, 0.0, 0.0, 0.0, 0.0],
    [1.71, -8.75, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, -10.03, 0.43, 0.035, 0.0, 0.0, 0.0],
    [0.0, 8.32, 1.71, -1.12, 0.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 0.0, -1.745, 0.43, 0.43, 0.0],
    [0.0, 0.0, 0.0, 0.69, 1.71, -0.43, 0.69, 0.0],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.81, 0.0],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.81, 0.0],
]
_HIRES_C = [0.0007, 0, 0, 0, 0, 0, 0, 0]
_HIRES_G = [0, 0, 0, 0, 0, -1.0, 1.0, -1.0]  # where the reaction 280 y6 y8 enters


def hires(t, y):
    r = 280.0 * y[..., 5] * y[..., 7]
    return y @ _const(_HIRES_A, y).T + _const(_HIRES_C, y) + r.unsqueeze(-1) * _const(_HIRES_G, y)


def hires_jac(t, y):
    dr = torch.zeros_like(y)              # gradient of 280 y6 y8
    dr[5], dr[7] = 280.0 * y[7], 280.0 * y[5]
    return _const(_HIRES_A, y) + torch.outer(_const(_HIRES_G, y), dr)


# ---- OREGO (Oregonator, Field-Noyes) ---------------------------------------------------------------
_S, _W, _Q = 77.27, 0.161, 8.375e-6


def orego(t, y):
    y1, y2, y3 = y[..., 0], y[..., 1], y[..., 2]
    return torch.stack([_S * (y2 + y1 * (1 - _Q * y1 - y2)),
                        (y3 - (1 + y1) * y2) / _S,
                        _W * (y1 - y3)], dim=-1)


def orego_jac(t, y):
    y1, y2 = y[0], y[1]
    zero = torch.zeros_like(y1)
    return torch.stack([torch.stack([_S * (1 - 2 * _Q * y1 - y2), _S * (1 - y1), zero]),
                        torch.stack([-y2 / _S, -(1 + y1) / _S, torch.full_like(y1, 1 / _S)]),
                        torch.stack([torch.full_like(y1, _W), zero, torch.full_like(y1, -_W)])])


# ---- POLLU (Verwer 1994): 20 species, 25 mass-action reactions -------------------------------------
POLLU_SPECIES = ["NO2", "NO", "O3P", "O3", "HO2", "OH", "HCHO", "CO", "ALD", "MEO2", "C2O3", "CO2",
                 "PAN", "CH3O", "HNO3", "O1D", "SO2", "SO4", "NO3", "N2O5"]
# (rate constant, reactants, products); a repeated product is produced twice.
POLLU_REACTIONS = [
    (0.35, ["NO2"], ["NO", "O3P"]),
    (26.6, ["NO", "O3"], ["NO2"]),
    (1.23e4, ["HO2", "NO"], ["NO2", "OH"]),
    (8.6e-4, ["HCHO"], ["HO2", "HO2", "CO"]),
    (8.2e-4, ["HCHO"], ["CO"]),
    (1.5e4, ["HCHO", "OH"], ["HO2", "CO"]),
    (1.3e-4, ["ALD"], ["MEO2", "HO2", "CO"]),
    (2.4e4, ["ALD", "OH"], ["C2O3"]),
    (1.65e4, ["C2O3", "NO"], ["NO2", "MEO2", "CO2"]),
    (9.0e3, ["C2O3", "NO2"], ["PAN"]),
    (0.022, ["PAN"], ["C2O3", "NO2"]),
    (1.2e4, ["MEO2", "NO"], ["CH3O", "NO2"]),
    (1.88, ["CH3O"], ["HCHO", "HO2"]),
    (1.63e4, ["NO2", "OH"], ["HNO3"]),
    (4.8e6, ["O3P"], ["O3"]),
    (3.5e-4, ["O3"], ["O1D"]),
    (0.0175, ["O3"], ["O3P"]),
    (1.0e8, ["O1D"], ["OH", "OH"]),
    (4.44e11, ["O1D"], ["O3P"]),
    (1.24e3, ["SO2", "OH"], ["SO4", "HO2"]),
    (2.1, ["NO3"], ["NO"]),
    (5.78, ["NO3"], ["NO2", "O3P"]),
    (0.0474, ["NO2", "O3"], ["NO3"]),
    (1.78e3, ["NO3", "NO2"], ["N2O5"]),
    (3.12, ["N2O5"], ["NO3", "NO2"]),
]


def _pollu_tables():
    idx = {s: i for i, s in enumerate(POLLU_SPECIES)}
    n, m = len(POLLU_SPECIES), len(POLLU_REACTIONS)
    S = torch.zeros(n, m, dtype=torch.float64)           # stoichiometric matrix: f = S r(y)
    k, a, b = [], [], []
    for j, (rate, reactants, products) in enumerate(POLLU_REACTIONS):
        for s in reactants:
            S[idx[s], j] -= 1
        for s in products:
            S[idx[s], j] += 1
        k.append(rate)
        a.append(idx[reactants[0]])
        b.append(idx[reactants[1]] if len(reactants) == 2 else n)   # index n is a constant 1
    return S, torch.tensor(k, dtype=torch.float64), torch.tensor(a), torch.tensor(b)


_POLLU_S, _POLLU_K, _POLLU_A, _POLLU_B = _pollu_tables()


def _with_one(y):
    return torch.cat([y, torch.ones_like(y[..., :1])], dim=-1)


def pollu(t, y):
    ye = _with_one(y)
    r = _POLLU_K.to(y) * ye[..., _POLLU_A] * ye[..., _POLLU_B]
    return r @ _POLLU_S.to(y).T


def pollu_jac(t, y):
    ye, k = _with_one(y), _POLLU_K.to(y)
    m, n = len(POLLU_REACTIONS), y.shape[-1]
    dr = torch.zeros(m, n + 1, dtype=y.dtype, device=y.device)   # d r_j / d y_i (last column: the 1)
    rows = torch.arange(m)
    dr.index_put_((rows, _POLLU_A), k * ye[_POLLU_B], accumulate=True)
    dr.index_put_((rows, _POLLU_B), k * ye[_POLLU_A], accumulate=True)
    return _POLLU_S.to(y) @ dr[:, :n]


# ---- The problem set -------------------------------------------------------------------------------
@dataclass(frozen=True)
class StiffProblem:
    """One stiff IVP: field, Jacobian, y0, end time, and (where the IVP test set publishes one) the
    reference end value to check our Radau reference against.

    Solved with ``atol = atol_per_rtol * rtol`` (SciMLBenchmarks' StiffODE work-precision sets pair
    each reltol with abstol = 1e-3 reltol).
    """

    name: str
    f: Callable
    jac: Callable
    y0: tuple
    t_end: float
    ref_atol: float                       # Radau's atol for the reference (rtol REF_RTOL)
    published: Optional[tuple] = None
    atol_per_rtol: float = 1e-3

    def atol(self, rtol: float) -> float:
        return self.atol_per_rtol * rtol

    def y0_tensor(self) -> torch.Tensor:
        return torch.tensor(self.y0, dtype=torch.float64)


_POLLU_Y0 = [0.0] * 20
for _s, _v in {"NO": 0.2, "O3": 0.04, "HCHO": 0.1, "CO": 0.3, "ALD": 0.01, "SO2": 0.007}.items():
    _POLLU_Y0[POLLU_SPECIES.index(_s)] = _v

# Published end values: the `solut` routines of the IVP test set (hires.f, orego.f, pollu.f, rober.f;
# RADAU5 in extended precision).
PROBLEMS = {p.name: p for p in [
    StiffProblem("vanderpol", vdp, vdp_jac, (2.0, 0.0), 3000.0, ref_atol=1e-12),
    StiffProblem("robertson", rober, rober_jac, (1.0, 0.0, 0.0), 1e5, ref_atol=1e-20),
    StiffProblem("robertson_1e11", rober, rober_jac, (1.0, 0.0, 0.0), 1e11, ref_atol=1e-22,
                 published=(0.2083340149701255e-7, 0.8333360770334713e-13, 0.9999999791665050)),
    StiffProblem("hires", hires, hires_jac, (1.0, 0, 0, 0, 0, 0, 0, 0.0057), 321.8122, ref_atol=1e-16,
                 published=(0.7371312573325668e-3, 0.1442485726316185e-3, 0.5888729740967575e-4,
                            0.1175651343283149e-2, 0.2386356198831331e-2, 0.6238968252742796e-2,
                            0.2849998395185769e-2, 0.2850001604814231e-2)),
    StiffProblem("orego", orego, orego_jac, (1.0, 2.0, 3.0), 360.0, ref_atol=1e-12,
                 published=(0.1000814870318523e1, 0.1228178521549917e4, 0.1320554942846706e3)),
    StiffProblem("pollu", pollu, pollu_jac, tuple(_POLLU_Y0), 60.0, ref_atol=1e-22,
                 published=(0.5646255480022769e-1, 0.1342484130422339, 0.4139734331099427e-8,
                            0.5523140207484359e-2, 0.2018977262302196e-6, 0.1464541863493966e-6,
                            0.7784249118997964e-1, 0.3245075353396018, 0.7494013383880406e-2,
                            0.1622293157301561e-7, 0.1135863833257075e-7, 0.2230505975721359e-2,
                            0.2087162882798630e-3, 0.1396921016840158e-4, 0.8964884856898295e-2,
                            0.4352846369330103e-17, 0.6899219696263405e-2, 0.1007803037365946e-3,
                            0.1772146513969984e-5, 0.5682943292316392e-4)),
]}


def load_references() -> dict:
    """``{problem: {"y": [...], ...}}`` from the fixture written by scripts/make_stiff_references.py."""
    return json.loads(FIXTURE.read_text())["problems"]


def scipy_solve(problem: StiffProblem, method: str, rtol: float, atol: float):
    """``scipy.integrate.solve_ivp`` on the same field and analytic Jacobian, float64."""
    def f(t, y):
        return problem.f(torch.tensor(t, dtype=torch.float64), torch.from_numpy(y)).numpy()

    def jac(t, y):
        return problem.jac(torch.tensor(t, dtype=torch.float64), torch.from_numpy(y)).numpy()

    return solve_ivp(f, (0.0, problem.t_end), np.array(problem.y0, dtype=np.float64), method=method,
                     jac=jac, rtol=rtol, atol=atol)


def radau_reference(problem: StiffProblem):
    """End value by scipy's Radau IIA(5) at rtol REF_RTOL with the analytic Jacobian.

    Returns ``(y_end, nsteps)`` as a float64 numpy array and Radau's step count.
    """
    sol = scipy_solve(problem, "Radau", REF_RTOL, problem.ref_atol)
    if not sol.success:
        raise RuntimeError(f"Radau reference for {problem.name} failed: {sol.message}")
    return sol.y[:, -1], sol.t.size - 1


# ---- The regression cases, their bounds, and one run ----------------------------------------------
RTOLS = (1e-3, 1e-6)
TIGHT_RTOL = 1e-8                      # only for the 4th/5th-order pairs, and only where cheap
TIGHT_PROBLEMS = ("robertson", "robertson_1e11", "hires", "pollu")   # OREGO, VdP: 7-35 s per run
BASE_BOUND = {"orego": 100.0}          # default 30; see bound()
MAX_STEPS = {2: 20_000, 4: 6_000}      # by order class: 2-3x the most a correct solver needs here


# Cases whose error exceeds the bound for a reason measured and understood, not a defect to fix by
# loosening: TRBDF2 advances its 2nd-order solution, and on these two problems its (Hosea-Shampine
# filtered) estimate matches the true local error of every accepted step (true/estimate 0.99-1.03,
# scripts/stiff_local_errors.py); what exceeds the bound is the sum of those correctly controlled
# local errors (HIRES amplifies them as y6 decays 100-fold, OREGO as phase error along its cycle).
# Each entry: (why, the error measured when it was listed). The test expects these to exceed their
# bound, by at most twice the measured error (strict: if one ever meets its bound, the entry must go;
# a larger error, or a solver failure, fails the case as any other).
KNOWN_EXCESS = {
    ("hires", "TRBDF2", 1e-6): ("accumulated local errors of a 2nd-order method; each step's estimate exact",
                                491.0),
    ("orego", "TRBDF2", 1e-6): ("accumulated phase error of a 2nd-order method; each step's estimate exact",
                                1177.0),
}


def stiff_solvers() -> list[str]:
    return [name for name, method in SOLVERS.items() if method.stiff]


def _low_order(solver: str) -> bool:
    """The 2nd-order pairs here (Rosenbrock23, TRBDF2) advance the solution whose error they control."""
    return SOLVERS[solver].order <= 2


def cases() -> list[tuple[str, str, float]]:
    """``(problem, solver, rtol)`` for every stiff solver in the registry."""
    out = []
    for problem in PROBLEMS:
        for solver in stiff_solvers():
            rtols = RTOLS
            if not _low_order(solver) and problem in TIGHT_PROBLEMS:
                rtols = RTOLS + (TIGHT_RTOL,)
            out += [(problem, solver, rtol) for rtol in rtols]
    return out


def bound(problem: str, solver: str, rtol: float) -> float:
    """Largest accepted error, in units of the tolerance (see the regression test's docstring)."""
    b = BASE_BOUND.get(problem, 30.0)
    return float(f"{b * (1e-3 / rtol) ** (1 / 3):.6g}") if _low_order(solver) else b


def scaled_error(y, ref, rtol: float, atol: float):
    """``max_i |y_i - ref_i| / (atol + rtol |ref_i|)`` and the component where it is reached."""
    e = np.abs(np.asarray(y) - ref) / (atol + rtol * np.abs(ref))
    return float(e.max()), int(e.argmax())


@dataclass
class CaseResult:
    problem: str
    solver: str
    rtol: float
    bound: float
    error: float = float("nan")        # scaled error; nan when the solve failed
    component: int = -1
    naccept: int = 0
    nreject: int = 0                   # -1: not reported (scipy peers)
    nfe: int = 0
    njac: int = 0
    failure: str = ""                  # the SolverError message when the solve raised

    @property
    def ok(self) -> bool:
        return not self.failure and self.error <= self.bound

    def verdict(self) -> str:
        if math.isnan(self.bound):         # a peer row: no bound
            return "—"
        if self.failure:
            return "FAIL (" + self.failure.split(";")[0] + ")"
        if not self.ok and (self.problem, self.solver, self.rtol) in KNOWN_EXCESS:
            return "over (known)"
        return "ok" if self.ok else "FAIL"


def run_case(problem: str, solver: str, rtol: float, references: dict) -> CaseResult:
    """Solve one case in float64 with the analytic Jacobian and compare it with the reference."""
    p = PROBLEMS[problem]
    res = CaseResult(problem, solver, rtol, bound(problem, solver, rtol))
    max_steps = MAX_STEPS[2 if _low_order(solver) else 4]
    try:
        sol = solve(p.f, p.y0_tensor(), [0.0, p.t_end], solver=solver, rtol=rtol, atol=p.atol(rtol),
                    jac=p.jac, max_steps=max_steps)
    except SolverError as e:
        res.failure = str(e)
        return res
    ref = np.asarray(references[problem]["y"])
    res.error, res.component = scaled_error(sol.ys[-1].numpy(), ref, rtol, p.atol(rtol))
    st = sol.stats
    res.naccept, res.nreject, res.nfe, res.njac = st.naccept, st.nreject, st.nfe, st.njac
    return res


def markdown_table(results: list[CaseResult]) -> list[str]:
    lines = ["| problem | solver | rtol | error / tol | bound | verdict | accepted | rejected | NFE "
             "| Jacobians |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in results:
        err = "—" if r.failure else f"{r.error:.3g}"
        bnd = "—" if math.isnan(r.bound) else f"{r.bound:.0f}"
        rej = "—" if r.nreject < 0 else r.nreject
        lines.append(f"| {r.problem} | {r.solver} | {r.rtol:.0e} | {err} | {bnd} | {r.verdict()} "
                     f"| {r.naccept} | {rej} | {r.nfe} | {r.njac} |")
    return lines
