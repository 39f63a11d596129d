"""Automatic stiffness switching: an explicit RK method paired with a stiff one.

OrdinaryDiffEq's ``AutoTsit5(Rosenbrock23())`` (``AutoSwitch`` in ``composite_algs.jl``): after every
attempt the active member estimates the spectral radius rho of df/dy, and ``rho |dt| / S`` (S: the
explicit method's stability bound on the negative real axis) is compared with 0.9. More than
MAXSTIFFSTEP successive stiff verdicts move the solve to the stiff member with dt doubled; more than
MAXNONSTIFFSTEP successive non-stiff verdicts move it back with dt halved. The counters are the
hysteresis: one verdict never switches.

rho comes from each member's own work. The explicit member uses Hairer's estimate (Hairer & Wanner,
Solving ODEs II, Sec. IV.2) ``||k_s - k_{s-1}|| / ||Y_s - Y_{s-1}||`` from its last two stages, whose
difference is dominated by the stiffest mode once the step nears the stability bound. The stiff
member does one power-iteration step ``v <- J v / ||J v||`` per attempt with the Jacobian it already
has, seeded with the last explicit ``Y_s - Y_{s-1}``; OrdinaryDiffEq uses ``||J||_inf`` there, which
overestimates rho by the row sums of a dense J (about 10x for a GRU-ODE field) and so would keep a
solve stiff long after explicit steps are stable. For a batch (B, n) both take the largest
row's rho: every row shares dt.

One addition, for short solves (a GRU-ODE's per-token intervals): the switch to the stiff member
also needs MIN_TAIL explicit steps' worth of interval left at the stability-limited step,
``rho |t_end - t| / S``. A stiff step (a Jacobian and an LU) costs several explicit ones, and after
a token's transient the explicit member is stability-limited for the rest of the interval, so a
short remainder is cheaper to finish explicitly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor

from .base import Stepper, StepResult, lincomb, nonzero

STIFFTOL = NONSTIFFTOL = 0.9   # rho |dt| / S above this is a stiff verdict (OrdinaryDiffEq's defaults)
MAXSTIFFSTEP = 10              # successive stiff verdicts before leaving the explicit member
MAXNONSTIFFSTEP = 3            # successive non-stiff verdicts before leaving the stiff member
# Explicit steps left at the stability bound for a switch to pay: a GRU-ODE token (B=32, H=256) gains
# from KenCarp4 with about 280 left (tau = 0.001) and loses with about 100 (tau = 0.003).
MIN_TAIL = 150.0
DTFAC = 2.0                    # dt is multiplied by this entering the stiff member, divided leaving it
# |z| where the stability region meets the negative real axis (OrdinaryDiffEq alg_stability_size)
STABILITY_SIZE = {"Tsit5": 3.5068, "DP5": 3.3066}


@dataclass(frozen=True, slots=True)
class CompositePlan:
    """The members, the explicit member's stability bound and its last-two-stage row difference."""

    name: str
    members: tuple            # (explicit Method, stiff Method)
    stability: float
    dY: tuple                 # nonzero entries of A[s] - A[s-1]: Y_s - Y_{s-1} = dt sum dY_j k_j


@dataclass(slots=True, eq=False)
class CompositeState:
    """Both members' states, which one is active, and the switching memory.

    Attributes:
        members: the members' states; a member's is None until it takes its next step (a member is
            re-initialised at the point where the solve switches to it).
        active: 0 (explicit) or 1 (stiff).
        count: successive stiff (> 0) or non-stiff (< 0) verdicts.
        rho: the last attempt's spectral-radius estimate (NaN: none).
        v: the stiff member's power-iteration vector (the last explicit ``Y_s - Y_{s-1}`` at a switch).
        adaptive: the solve is adaptive (a fixed-step solve never rescales dt at a switch).
    """

    members: list = field(default_factory=lambda: [None, None])
    active: int = 0
    count: int = 0
    rho: float = math.nan
    v: Optional[Tensor] = None
    adaptive: bool = True

    @property
    def J(self):
        """The active member's Jacobian (read by the loop's failure diagnosis)."""
        return getattr(self.members[self.active], "J", None)

    @property
    def T(self):
        return getattr(self.members[self.active], "T", None)


class Composite(Stepper):
    """Steps with the active member and estimates rho; :meth:`choose`, called by the loop after every
    attempt, updates the verdict counters and switches members."""

    family = "composite"
    __slots__ = ()

    def __init__(self, name: str, explicit, stiff):
        tab = explicit.tableau
        rows = [[float(a) for a in r] + [0.0] * (len(tab.c) - len(r)) for r in tab.A]
        d = [a - b for a, b in zip(rows[-1], rows[-2])]
        self.plan = CompositePlan(name, (explicit, stiff), STABILITY_SIZE[explicit.name], nonzero(d))

    @property
    def members(self) -> tuple:
        return self.plan.members

    def init(self, problem, t0, y0, f0, q0=None, *, adaptive=True) -> CompositeState:
        first = self.plan.members[0].stepper.init(problem, t0, y0, f0, q0, adaptive=adaptive)
        return CompositeState(members=[first, None], adaptive=adaptive)

    def step(self, problem, t: float, y: Tensor, f0: Tensor, dt: float, state: CompositeState, *,
             rejected: bool) -> tuple[StepResult, CompositeState]:
        m = state.active
        member = self.plan.members[m].stepper
        if state.members[m] is None:       # just switched: a fresh state at the current point
            old = state.members[1 - m]
            q0 = None
            if problem.has_quad and old is not None:
                old.begin(rejected)        # its rates at (t, y), if it has them
                q0 = old.q0
            state.members[m] = member.init(problem, t, y, f0, q0, adaptive=state.adaptive)
            state.members[1 - m] = None
            rejected = False
        res, state.members[m] = member.step(problem, t, y, f0, dt, state.members[m], rejected=rejected)
        state.rho = math.nan
        if res.ok and not res.nonfinite:
            state.rho = self._rho_explicit(res.stages, dt, state) if m == 0 else self._rho_stiff(state, y)
        return res, state

    def _rho_explicit(self, k: tuple, dt: float, state: CompositeState) -> float:
        dY = lincomb(None, list(k), self.plan.dY, dt).detach()
        dk = (k[-1] - k[-2]).detach()
        state.v = dY
        return _max_ratio(dk, dY)

    def _rho_stiff(self, state: CompositeState, y: Tensor) -> float:
        J = state.J
        if not isinstance(J, Tensor):
            return math.nan
        v = state.v if state.v is not None and state.v.shape == y.shape else torch.ones_like(y)
        Jv = torch.matmul(J.detach(), v.unsqueeze(-1)).squeeze(-1)
        rho = _max_ratio(Jv, v)
        norm = torch.linalg.vector_norm(Jv, dim=-1, keepdim=True)
        state.v = Jv / norm.clamp_min(torch.finfo(Jv.dtype).tiny)
        return rho

    def choose(self, problem, state: CompositeState, dt_new: float, accepted: bool, remaining: float) -> float:
        """Count this attempt's verdict and switch members when the counters say so.

        ``dt_new`` is the controller's next step, ``remaining`` the signed interval left.

        Returns the next dt: ``dt_new`` (the controller's proposal), rescaled by DTFAC at a switch.
        The caller takes its controller from ``self.members[state.active]`` when that changed.
        """
        m = state.active
        if accepted and m == 1:
            problem.stats.nstiff += 1
        if not math.isfinite(state.rho):
            return dt_new
        S = self.plan.stability
        stiff = state.rho * abs(dt_new) / S > (STIFFTOL if m == 1 else NONSTIFFTOL)
        state.count = max(state.count, 0) + 1 if stiff else min(state.count, 0) - 1
        if m == 0 and state.count > MAXSTIFFSTEP and state.rho * abs(remaining) / S > MIN_TAIL:
            return self._switch(problem, state, dt_new * DTFAC if state.adaptive else dt_new)
        if m == 1 and state.count < -MAXNONSTIFFSTEP:
            return self._switch(problem, state, dt_new / DTFAC if state.adaptive else dt_new)
        return dt_new

    @staticmethod
    def _switch(problem, state: CompositeState, dt: float) -> float:
        state.active = 1 - state.active
        state.members[state.active] = None
        state.count = 0
        problem.stats.nswitch += 1
        return dt

    def __repr__(self) -> str:
        return f"Composite({self.plan.name})"


def _max_ratio(num: Tensor, den: Tensor) -> float:
    """max over rows of ``||num_row|| / ||den_row||`` (0 where both vanish), as a float (one sync)."""
    a = torch.linalg.vector_norm(num, dim=-1)
    b = torch.linalg.vector_norm(den, dim=-1)
    return float((a / b.clamp_min(torch.finfo(b.dtype).tiny)).max())
