"""The one adaptive integration loop, shared by every solver family.

The loop owns time, step-size control, outputs and failure reporting; the method's stepper owns
the step and its own state. Between them pass only arguments: ``stepper.step(problem, t, y, f0,
dt, state, rejected=...)`` returns ``(StepResult, state)``.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor

from .control import PIController, error_ratio, initial_step
from .dense import hermite_eval
from .errors import MaxStepsExceeded, NewtonFailure, NonFiniteState, StepSizeUnderflow
from .problem import Problem, materialize
from .solution import Solution

# A final step may be stretched by up to 1% to land on t_end instead of leaving
# a sliver that would cost a whole extra step.
_STRETCH = 1.01
# Fixed-step grids only absorb round-off.
_STRETCH_FIXED = 1.0 + 1e-9
_MAX_NONFINITE = 5       # consecutive non-finite attempts (each shrinks dt 5x) before giving up
_MAX_STEP_FAILS = 10     # consecutive failed implicit solves before NewtonFailure
_DT_FLOOR = 1e-12        # smallest |dt| relative to |t|


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
        dense: keep references to the step data for ``Solution.__call__``.
        f0: f(t_eval[0], y0) if the caller already has it (saves one evaluation).

    Returns:
        A :class:`Solution`; intermediate outputs are interpolated, never stepped to.

    Raises:
        StepSizeUnderflow, MaxStepsExceeded, NewtonFailure, NonFiniteState.
    """
    ts = [float(t) for t in (t_eval.tolist() if isinstance(t_eval, Tensor) else t_eval)]
    t0, t_end = ts[0], ts[-1]
    before = problem.stats.copy()
    adaptive = adaptive and method.adaptive_order is not None
    q0 = None
    if f0 is None:
        if problem.has_quad:   # the first step's stage-0 quad rates come with f0 at no extra cost
            f0, q0 = problem.fq_eval(t0, y0)
        else:
            f0 = problem.f_eval(t0, y0)
    direction = 1.0 if t_end >= t0 else -1.0
    if not adaptive and dt0 is None:
        raise ValueError(f"{method.name}: fixed-step integration needs dt (pass dt=...)")
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
                    loop.dt_next, q, loop.y, loop.f, method.name)


class _Loop:
    """State of one integration; ``run`` is the step loop."""

    def __init__(self, problem, method, adaptive, dense, max_steps, direction, norm, ts, y0, f0):
        self.problem, self.method, self.adaptive, self.dense = problem, method, adaptive, dense
        self.max_steps, self.direction, self.norm, self.ts = max_steps, direction, norm, ts
        self.controller = PIController.for_method(method)
        self.dt_next = self.dt_fixed = None
        self.q = None
        self.fails = self.nonfinite = 0
        self.t_steps = [ts[0]]
        self.y_steps, self.f_steps = ([y0], [f0]) if dense else (None, None)
        self.out, self.next_out = [y0], 1
        self.y, self.f = y0, f0
        while self.next_out < len(ts) and ts[self.next_out] == ts[0]:
            self.out.append(y0)
            self.next_out += 1

    def _emit(self, t, t_new, y, f, y1, f1):
        """Outputs in (t, t_new]: interpolated inside the step, y1 at its end."""
        ts, d = self.ts, self.direction
        while self.next_out < len(ts) and d * (ts[self.next_out] - t_new) <= 0:
            tk = ts[self.next_out]
            self.out.append(y1 if tk == t_new else hermite_eval(t, t_new, y, f, y1, f1, tk))
            self.next_out += 1

    def _accept_q(self, q):
        if q is not None:
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
                            method, t, dt_try) from e
            accept, dt_new = self._judge(res, t, y, dt_try, first=n_acc == 0 and not warm)
            rejected = not accept
            if rejected:
                stats.nreject += 1
                dt = dt_new
                self._check_dt(t, dt, nonfinite=self.nonfinite > 0)
                continue
            stats.naccept += 1
            n_acc += 1
            if last:
                t_new = t_end
            else:  # fixed grids use t0 + n dt: no drift along long runs
                t_new = t + dt_try if self.adaptive else ts[0] + n_acc * dt
            self._accept_q(res.q)
            self._emit(t, t_new, y, f, res.y1, res.f1)
            t, y, f = t_new, res.y1, res.f1
            self.t_steps.append(t)
            if self.dense:
                self.y_steps.append(y)
                self.f_steps.append(f)
            # After a clipped last step keep the larger of the two proposals for warm starts.
            self.dt_next = d * max(abs(dt_new), abs(dt)) if last else dt_new
            dt = dt_new
        if not self.adaptive and not bool(torch.isfinite(y).all()):
            raise _fail(NonFiniteState, "the fixed-step solution is NaN or inf", method, t, dt)
        self.y, self.f = y, f

    def _judge(self, res, t, y, dt_try, first):
        """``(accept, dt_next)`` for an attempted step; raises after repeated failures."""
        method = self.method
        if not res.ok:  # the implicit stage equations did not converge
            self.fails += 1
            if self.fails >= _MAX_STEP_FAILS or not self.adaptive:
                raise _fail(NewtonFailure, f"{self.fails} consecutive implicit solves failed", method, t,
                            dt_try, hint=None if self.adaptive else "use a smaller fixed dt or adaptive=True")
            return False, dt_try / 2
        self.fails = 0
        if not self.adaptive:
            return True, self.dt_fixed
        ratio = error_ratio(res.err, y, res.y1, self.problem.rtol, self.problem.atol, self.norm)
        if not math.isfinite(ratio):  # NaN/inf somewhere in the step: shrink hard, give up if it persists
            self.nonfinite += 1
            if self.nonfinite >= _MAX_NONFINITE:
                raise _fail(NonFiniteState, "the step produced NaN or inf", method, t, dt_try)
            return False, dt_try * self.controller.qmin
        self.nonfinite = 0
        return self.controller.propose(dt_try, ratio, first)

    def _check_dt(self, t, dt, nonfinite=False):
        floor = _DT_FLOOR * abs(t) + 1e-300
        if abs(dt) < floor:
            if nonfinite:  # shrinking did not help: the field itself is NaN/inf just ahead
                raise _fail(NonFiniteState, "the vector field gives NaN or inf for every step tried",
                            self.method, t, dt)
            raise _fail(StepSizeUnderflow, f"step size fell below {floor:.3g}", self.method, t, dt)


def _fail(cls, what, method, t, dt, **kw):
    return cls(what, solver=method.name, t=t, dt=dt, **kw)
