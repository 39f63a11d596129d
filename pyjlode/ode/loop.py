"""The one adaptive integration loop, shared by every solver family.

The loop owns time, step-size control, outputs and failure reporting; the method's stepper owns
the step and its own state. Between them pass only arguments: ``stepper.step(problem, t, y, f0,
dt, state, rejected=...)`` returns ``(StepResult, state)``.
"""
from __future__ import annotations

import math
import sys
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..errors import InputError
from .control import PIController, error_ratio, initial_step
from .dense import interpolate
from .errors import FiniteTimeBlowUp, MaxStepsExceeded, NewtonFailure, NonFiniteState, StepSizeUnderflow
from .problem import Problem, materialize
from .solution import Solution

# A final step may be stretched by up to 1% to land on t_end instead of leaving
# a sliver that would cost a whole extra step.
_STRETCH = 1.01
# Fixed-step grids only absorb round-off.
_STRETCH_FIXED = 1.0 + 1e-9
_MAX_NONFINITE = 5       # consecutive non-finite attempts (each shrinks dt 5x) before giving up
_MAX_STEP_FAILS = 10     # consecutive failed implicit solves before NewtonFailure
# Smallest |dt|: this many units in the last place of t in the engine's time type (float64, a Python
# float), OrdinaryDiffEq's eps(t) floor with a margin. Not y's dtype: a float32 stiff solve can dip
# below float32's resolution of t for a few steps and recover (Kvaerno5 on a float32 linear stiff
# problem reaches dt = 2.7e-6 at t = 2.36, 10 float32 ulps of t).
_DT_FLOOR_ULPS = 10
_T_EPS = sys.float_info.epsilon
# Blow-up, told apart from other step-size collapses: |y| grew at least this much since t0 and its
# own time scale |y| / |f| is within this many step sizes (y ~ (t* - t)^-a: dt shrinks with t* - t).
_BLOWUP_GROWTH = 10.0
_BLOWUP_STEPS = 1000.0


def integrate(problem: Problem, method, y0: Tensor, t_eval: Sequence[float] | Tensor, *,
              dt0: Optional[float] = None, adaptive: bool = True, max_steps: int = 100_000,
              norm: str = "rms", dense: bool = True, f0: Optional[Tensor] = None) -> Solution:
    """Integrate ``problem`` with ``method`` from t_eval[0] to t_eval[-1].

    Args:
        problem: vector field (t a Python float), tolerances and counters.
        method: a registered :class:`~pyjlode.ode.methods.Method`.
        y0: initial state, ``(n,)`` or ``(B, n)``.
        t_eval: strictly monotone output times (increasing or decreasing).
        dt0: adaptive: the first step (warm start; skips the initial-step heuristic and starts
            the PI memory on target); fixed-step: the step size. Its sign is ignored.
        adaptive: use the embedded error estimate and the PI controller.
        max_steps: bound on attempted steps (accepted + rejected).
        norm: ``"rms"`` or ``"rows"`` (see :func:`~pyjlode.ode.control.error_ratio`).
        dense: keep references to the step data for ``Solution.__call__`` (y, f and the method's
            interpolant's D_j, per accepted step; see :mod:`~pyjlode.ode.dense`).
        f0: f(t_eval[0], y0) if the caller already has it (saves one evaluation).

    Returns:
        A :class:`Solution`; intermediate outputs come from the method's interpolant, never stepped to.

    Raises:
        StepSizeUnderflow (FiniteTimeBlowUp), MaxStepsExceeded, NewtonFailure, NonFiniteState;
        InputError: fixed-step without dt, or f(t0, y0) not shaped and typed like y0.
    """
    ts = [float(t) for t in (t_eval.tolist() if isinstance(t_eval, Tensor) else t_eval)]
    t0, t_end = ts[0], ts[-1]
    before = problem.stats.copy()
    adaptive = adaptive and method.adaptive_order is not None
    if not adaptive and dt0 is None:
        raise InputError(f"{method.name}: fixed-step integration needs dt (pass dt=...)")
    q0 = None
    if f0 is None:
        if problem.has_quad:   # the first step's stage-0 quad rates come with f0 at no extra cost
            f0, q0 = problem.fq_eval(t0, y0)
        else:
            f0 = problem.f_eval(t0, y0)
    check_field_output(f0, y0)
    direction = 1.0 if t_end >= t0 else -1.0
    loop = _Loop(problem, method, adaptive, dense, max_steps, direction, norm, ts, y0, f0)
    if t_end != t0:
        if dt0 is not None:
            dt = direction * abs(float(dt0))
            # A warm start continues an earlier solve whose accepted steps met the tolerance: start
            # the PI memory on target (errold = 1) rather than at the cold-start qoldinit, which
            # would shrink every warm-started first step (~1.6x fewer steps per GRU-ODE token).
            loop.controller.errold = 1.0
        else:
            dt = initial_step(problem, t0, y0, f0, direction, method.adaptive_order or method.order,
                              problem.rtol, problem.atol, abs(t_end - t0), norm, method.name)
        loop.run(dt, warm=dt0 is not None, q0=q0)
    ys = torch.stack(loop.out)
    q = None if loop.q is None else tuple(materialize(x) for x in loop.q)
    return Solution(ts, ys, problem.stats - before, loop.t_steps, loop.y_steps, loop.f_steps,
                    loop.dt_next, q, loop.y, loop.f, method.name, loop.k_steps, method.interpolant)


class _Loop:
    """State of one integration; ``run`` is the step loop."""

    def __init__(self, problem, method, adaptive, dense, max_steps, direction, norm, ts, y0, f0):
        self.problem, self.method, self.adaptive, self.dense = problem, method, adaptive, dense
        self.max_steps, self.direction, self.norm, self.ts = max_steps, direction, norm, ts
        self.controller = PIController.for_method(method)
        self.choose = getattr(method.stepper, "choose", None)   # composite methods switch members
        self.dt_next = self.dt_fixed = None
        self.q = self.q_next = None   # q_next: running quad total after the attempt being judged
        self.fails = self.nonfinite = 0
        self.y0 = y0
        self.huge = math.sqrt(torch.finfo(y0.dtype).max)   # past it, y*y overflows
        self.t_steps = [ts[0]]
        self.y_steps, self.f_steps = ([y0], [f0]) if dense else (None, None)
        self.k_steps = [] if dense and method.interpolant.uses_stages else None   # each step's D_j
        self.out, self.next_out = [y0], 1
        self.y, self.f = y0, f0
        while self.next_out < len(ts) and ts[self.next_out] == ts[0]:
            self.out.append(y0)
            self.next_out += 1

    def _emit(self, t, t_new, y, f, res, D, dt):
        """Outputs in (t, t_new]: interpolated inside the step (its D_j built on first need), y1 at its end."""
        ts, d, ip = self.ts, self.direction, self.method.interpolant
        while self.next_out < len(ts) and d * (ts[self.next_out] - t_new) <= 0:
            tk = ts[self.next_out]
            if tk == t_new:
                self.out.append(res.y1)
            else:
                D = ip.compress(res.stages, dt) if D is None else D
                self.out.append(interpolate(ip, t, t_new, y, f, res.y1, res.f1, D, tk))
            self.next_out += 1

    def _accept_q(self, q):
        if self.q_next is not None:   # totals already formed by _quad_ratio
            self.q, self.q_next = self.q_next, None
        elif q is not None:
            self.q = q if self.q is None else tuple(a + b for a, b in zip(self.q, q))

    def run(self, dt: float, warm: bool, q0: Optional[tuple]):
        problem, method, stats, d = self.problem, self.method, self.problem.stats, self.direction
        stepper, ts = method.stepper, self.ts
        t, y, f, t_end = ts[0], self.y, self.f, ts[-1]
        state = stepper.init(problem, t, y, f, q0, adaptive=self.adaptive)
        stretch = _STRETCH if self.adaptive else _STRETCH_FIXED
        self.dt_next = self.dt_fixed = dt
        attempts = n_acc = 0
        rejected = False
        while d * (t_end - t) > 0:
            if attempts >= self.max_steps:
                raise _fail(MaxStepsExceeded, f"reached max_steps={self.max_steps} before t_end={t_end:.6g}",
                            method, t, dt)
            attempts += 1
            remaining = t_end - t
            last = abs(remaining) <= stretch * abs(dt)
            dt_try = remaining if last else dt
            try:
                res, state = stepper.step(problem, t, y, f, dt_try, state, rejected=rejected)
            except ArithmeticError as e:  # e.g. FloatingPointError from a numpy-backed field
                raise _fail(NonFiniteState, f"the vector field raised {type(e).__name__}: {e}",
                            method, t, dt_try, cause="field") from e
            accept, dt_new = self._judge(res, t, y, f, dt_try, state, first=n_acc == 0 and not warm)
            if self.choose is not None:
                dt_new = self._choose(state, dt_new, accept, t_end - (t + dt_try if accept else t))
            rejected = not accept
            if rejected:
                stats.nreject += 1
                dt = dt_new
                self._check_dt(t, y, f, dt, dt_try, state)
                continue
            stats.naccept += 1
            n_acc += 1
            if last:
                t_new = t_end
            else:  # fixed grids use t0 + n dt: no drift along long runs
                t_new = t + dt_try if self.adaptive else ts[0] + n_acc * dt
            self._accept_q(res.q)
            D = method.interpolant.compress(res.stages, dt_try) if self.k_steps is not None else None
            self._emit(t, t_new, y, f, res, D, dt_try)
            t, y, f = t_new, res.y1, res.f1
            self.t_steps.append(t)
            if self.dense:
                self.y_steps.append(y)
                self.f_steps.append(f)
                if D is not None:
                    self.k_steps.append(D)
            # After a clipped last step keep the larger of the two proposals for warm starts.
            self.dt_next = d * max(abs(dt_new), abs(dt)) if last else dt_new
            dt = dt_new
            if self.adaptive and not last:   # a collapse on accepted steps (a blow-up) is caught here
                self._check_dt(t, y, f, dt, dt_try, state)
        if not self.adaptive and not bool(torch.isfinite(y).all()):
            raise _fail(NonFiniteState, "the fixed-step solution is NaN or inf", method, t, dt,
                        hint="use a smaller fixed dt or adaptive=True")
        self.y, self.f = y, f

    def _judge(self, res, t, y, f, dt_try, state, first):
        """``(accept, dt_next)`` for an attempted step; raises after repeated failures."""
        method, self.q_next = self.method, None
        if res.nonfinite:       # NaN/inf met inside an implicit solve
            return self._nonfinite_attempt(t, y, f, dt_try, state)
        if not res.ok:          # the implicit stage equations did not converge
            self.fails += 1
            if self.fails >= _MAX_STEP_FAILS or not self.adaptive:
                raise _fail(NewtonFailure, f"{self.fails} consecutive implicit solves failed", method, t,
                            dt_try, hint=None if self.adaptive else "use a smaller fixed dt or adaptive=True")
            return False, dt_try / 2
        self.fails = 0
        if not self.adaptive:
            return True, self.dt_fixed
        ratio = error_ratio(res.err, y, res.y1, self.problem.rtol, self.problem.atol, self.norm)
        if res.q_err is not None and math.isfinite(ratio):
            ratio = max(ratio, self._quad_ratio(res.q, res.q_err))
        if not math.isfinite(ratio):  # NaN/inf somewhere in the step
            return self._nonfinite_attempt(t, y, f, dt_try, state)
        self.nonfinite = 0
        return self.controller.propose(dt_try, ratio, first)

    def _quad_ratio(self, dq: tuple, q_err: tuple) -> float:
        """The worst quad tensor's ``RMS(err / (atol + rtol |Q + dq|))``, Q the running total.

        One RMS per tensor, then the max: a large parameter tensor cannot swamp a small one (or the
        state) and a small one is never ignored. Factored rates are materialised here (one matmul
        per block for the increment and one for its error); the new totals are kept for the accept.
        """
        rtol, atol = self.problem.rtol, self.problem.atol
        totals, ratios = [], []
        for m, (d, e) in enumerate(zip(dq, q_err)):
            d, e = materialize(d).detach(), materialize(e).detach()
            tot = d if self.q is None else materialize(self.q[m]) + d
            totals.append(tot)
            if e.numel():
                ratios.append(_rms(e / tot.abs().mul(rtol).add_(atol)))
        self.q_next = tuple(totals)
        return float(torch.stack(ratios).max()) if ratios else 0.0

    def _choose(self, state, dt_new, accept, remaining):
        """A composite's member choice after an attempt; the controller follows the active member."""
        active = state.active
        dt_new = self.choose(self.problem, state, dt_new, accept, remaining)
        if state.active != active:
            controller = PIController.for_method(self.method.stepper.members[state.active])
            controller.errold = self.controller.errold
            self.controller = controller
        return dt_new

    def _nonfinite_attempt(self, t, y, f, dt_try, state):
        """Shrink hard after a non-finite attempt; diagnose and raise if it persists."""
        self.nonfinite += 1
        if self.nonfinite >= _MAX_NONFINITE or not self.adaptive:
            raise self._nonfinite_failure(t, y, f, dt_try, state)
        return False, dt_try * self.controller.qmin

    @staticmethod
    def _floor(t: float) -> float:
        """The smallest step at t: _DT_FLOOR_ULPS units in the last place of t."""
        return _DT_FLOOR_ULPS * _T_EPS * abs(t) + 1e-300

    def _check_dt(self, t, y, f, dt, dt_try, state):
        floor = self._floor(t)
        if abs(dt) >= floor:
            return
        if self.nonfinite:      # shrinking did not help: NaN/inf just ahead
            raise self._nonfinite_failure(t, y, f, dt_try, state)
        raise self._collapse(t, y, f, dt, f"step size fell below {floor:.3g}")

    def _blowing_up(self, y, f, dt) -> Optional[float]:
        """max |y| if the solution is blowing up at (y, f = f(t, y)) with steps of size dt, else None.

        A blow-up (y ~ (t* - t)^-a) grows |y| while its own time scale |y| / |f| shrinks along with the
        step size; unbounded growth of any kind ends near the dtype's range (the overflow shows as NaN
        or inf). A discontinuity, a singular f or NaN ahead collapses dt with |y| bounded.
        """
        ny, nf, ny0 = torch.stack([y.detach().abs().max(), f.detach().abs().max(),
                                   self.y0.detach().abs().max()]).tolist()
        grew = ny >= _BLOWUP_GROWTH * max(ny0, self.problem.atol)
        return ny if grew and (ny <= _BLOWUP_STEPS * abs(dt) * nf or ny >= self.huge) else None

    def _collapse(self, t, y, f, dt, what):
        """FiniteTimeBlowUp if the solution is blowing up, else StepSizeUnderflow saying ``what``."""
        ny = self._blowing_up(y, f, dt)
        if ny is not None:
            return _fail(FiniteTimeBlowUp, f"the solution grows without bound (max |y| = {ny:.3g})",
                         self.method, t, dt)
        return _fail(StepSizeUnderflow, what, self.method, t, dt)

    def _nonfinite_failure(self, t, y, f, dt_try, state):
        """The error for NaN/inf that shrinking dt did not cure, naming where it comes from."""
        if bool(torch.isfinite(f).all()) and self._blowing_up(y, f, dt_try) is not None:
            return self._collapse(t, y, f, dt_try, "")
        J, T = getattr(state, "J", None), getattr(state, "T", None)   # stiff steppers' matrices at t
        if not bool(torch.isfinite(f).all()):
            cause, what = "field", "the vector field returned NaN or inf at a finite state"
        elif J is not None and not bool(torch.isfinite(J).all()):
            cause, what = "jacobian", "the Jacobian of the vector field is NaN or inf at a finite state"
        elif T is not None and not bool(torch.isfinite(T).all()):
            cause, what = "field", "the vector field returned NaN or inf just after t (in df/dt) for a finite state"
        elif not bool(torch.isfinite(self.problem.f_eval(t + dt_try, y)).all()):
            cause, what = "field", f"the vector field returned NaN or inf at t={t + dt_try:.9g} for a finite state"
        else:
            cause, what = "domain", "every step tried produced NaN or inf, though f is finite at the current state"
        return _fail(NonFiniteState, what, self.method, t, dt_try, cause=cause)


def _rms(x: Tensor) -> Tensor:
    return torch.linalg.vector_norm(x) / math.sqrt(x.numel())


def _fail(cls, what, method, t, dt, **kw):
    return cls(what, solver=method.name, t=t, dt=dt, family=method.stepper.family, **kw)


def check_field_output(dy, y: Tensor) -> None:
    """The vector field's value at the initial point is a tensor shaped and typed like y (one check).

    Raises:
        InputError: naming what f returned and what was expected.
    """
    if not isinstance(dy, Tensor):
        raise InputError(f"the vector field returned {type(dy).__name__}; it must return a torch.Tensor "
                         f"dy/dt shaped like y, here {tuple(y.shape)} {str(y.dtype)[6:]}")
    if dy.shape != y.shape:
        raise InputError(f"the vector field returned shape {tuple(dy.shape)} for y of shape {tuple(y.shape)}; "
                         f"return dy/dt with y's shape")
    if dy.dtype != y.dtype or dy.device != y.device:
        raise InputError(f"the vector field returned {str(dy.dtype)[6:]} on {dy.device} for y of "
                         f"{str(y.dtype)[6:]} on {y.device}; return y's dtype and device (create constants "
                         f"with dtype=y.dtype, device=y.device)")
