"""The one adaptive integration loop, shared by every solver family, and its Solution."""
from __future__ import annotations

import bisect
import math
from typing import Optional, Sequence

import torch
from torch import Tensor

from .control import PIController, error_ratio, initial_step
from .dense import hermite_eval
from .errors import MaxStepsExceeded, NewtonFailure, NonFiniteState, StepSizeUnderflow
from .problem import Problem, materialize

# A final step may be stretched by up to 1% to land on t_end instead of leaving
# a sliver that would cost a whole extra step.
_STRETCH = 1.01
# Fixed-step grids only absorb round-off.
_STRETCH_FIXED = 1.0 + 1e-9
_MAX_NONFINITE = 5       # consecutive non-finite attempts (each shrinks dt 5x) before giving up
_MAX_STEP_FAILS = 10     # consecutive failed implicit solves before NewtonFailure


class Solution:
    """Result of :func:`integrate`.

    Attributes:
        ts: output times (float64 tensor on y0's device).
        ys: states at ``ts``, shape ``(len(ts), *y0.shape)``.
        stats: work counters of this solve.
        t_steps: accepted step boundaries (Python floats), starting at ts[0].
        dt_next: the controller's proposal for a step after the last one (warm starts).
        q: integrated quadrature totals (tuple of tensors) or None.
        y_final: state at ts[-1]; f_final: f(ts[-1], y_final), reusable as the next f0.
        solver: solver name.
    """

    def __init__(self, ts, ys, stats, t_steps, y_steps, f_steps, dt_next, q, y_final, f_final, solver):
        self._ts, self.ys, self.stats = ts, ys, stats
        self._device = ys.device
        self.t_steps, self.dt_next, self.q = t_steps, dt_next, q
        self._y_final, self.f_final, self.solver = y_final, f_final, solver
        self._y_steps, self._f_steps = y_steps, f_steps
        # Ascending keys for bisect in either time direction.
        self._sign = 1.0 if len(t_steps) < 2 or t_steps[-1] >= t_steps[0] else -1.0
        self._keys = [self._sign * t for t in t_steps]

    @property
    def ts(self) -> Tensor:
        # Built on first use: a host-to-device copy per solve is a sync on CUDA.
        if not isinstance(self._ts, Tensor):
            self._ts = torch.tensor(self._ts, dtype=torch.float64, device=self._device)
        return self._ts

    @ts.setter
    def ts(self, value):
        self._ts = value

    @property
    def y_final(self) -> Tensor:
        return self._y_final

    def _at(self, t: float) -> Tensor:
        if self._y_steps is None:
            raise RuntimeError("dense output was not stored: integrate with dense=True")
        keys, key = self._keys, self._sign * t
        span = abs(keys[-1] - keys[0])
        slack = 1e-12 * max(span, abs(keys[0]), abs(keys[-1]))
        if not keys[0] - slack <= key <= keys[-1] + slack:
            raise ValueError(f"t={t} is outside the solved interval [{self.t_steps[0]}, {self.t_steps[-1]}]")
        if len(keys) == 1:
            return self._y_steps[0]
        i = min(max(bisect.bisect_right(keys, key) - 1, 0), len(keys) - 2)
        return hermite_eval(self.t_steps[i], self.t_steps[i + 1], self._y_steps[i], self._f_steps[i],
                            self._y_steps[i + 1], self._f_steps[i + 1], t)

    def __call__(self, t) -> Tensor:
        """Dense output (cubic Hermite on the accepted steps) at a float or a 1-D tensor of times."""
        if isinstance(t, Tensor):
            if t.dim() == 0:
                return self._at(float(t))
            return torch.stack([self._at(float(ti)) for ti in t.tolist()])
        return self._at(float(t))

    def __repr__(self) -> str:
        return f"Solution(solver={self.solver}, t=[{self.t_steps[0]}, {self.t_steps[-1]}], {self.stats})"


def _fail(cls, what, method, t, dt, **kw):
    return cls(what, solver=method.name, t=t, dt=dt, **kw)


def integrate(problem: Problem, method, y0: Tensor, t_eval: Sequence[float] | Tensor, *,
              dt0: Optional[float] = None, adaptive: bool = True, max_steps: int = 100_000,
              norm: str = "rms", dense: bool = True, dtmin: Optional[float] = None,
              f0: Optional[Tensor] = None, controller: Optional[PIController] = None,
              cache: Optional[dict] = None) -> Solution:
    """Integrate ``problem`` with ``method`` from t_eval[0] to t_eval[-1].

    Args:
        problem: vector field, tolerances and counters.
        method: a registered :class:`~pyjlode.ode.methods.Method`.
        y0: initial state, ``(n,)`` or ``(B, n)``.
        t_eval: strictly monotone output times (increasing or decreasing).
        dt0: adaptive: the first step (warm start; skips the initial-step heuristic);
            fixed-step: the step size. Its sign is ignored.
        adaptive: use the embedded error estimate and the PI controller.
        max_steps: bound on attempted steps (accepted + rejected).
        norm: ``"rms"`` or ``"rows"`` (see :func:`~pyjlode.ode.control.error_ratio`).
        dense: keep references to the step data for ``Solution.__call__``.
        dtmin: smallest allowed |dt| (default ``1e-12 |t|``).
        f0: f(t_eval[0], y0) if the caller already has it (saves one evaluation).
        controller: a fresh PIController to use instead of the OrdinaryDiffEq defaults
            for ``method`` (it keeps state, so pass a new one per solve).
        cache: the step function's scratch dict to carry over from an earlier solve of a similar
            problem with the same method (stiff steppers then reuse its Jacobian and LU while
            Newton converges fast; a stale J only slows Newton, never the accuracy). Default: fresh.

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
    loop = _Loop(problem, method, adaptive, norm, dense, dtmin, max_steps, direction, controller)
    if dt0 is not None and controller is None:
        # A warm start continues an earlier solve whose accepted steps met the tolerance: start the
        # PI memory on target (errold = 1) rather than at the cold-start qoldinit, which would shrink
        # every warm-started first step (~1.6x fewer steps per GRU-ODE token, docs/performance.md).
        loop.controller.errold = 1.0
    if t_end != t0:
        if dt0 is not None:
            dt = direction * abs(float(dt0))
        else:
            dt = initial_step(problem, t0, y0, f0, direction, method.adaptive_order or method.order,
                              problem.rtol, problem.atol, abs(t_end - t0), norm, method.name)
        loop.run(ts, y0, f0, dt, warm=dt0 is not None, q0=q0, cache=cache)
    else:
        loop.start(ts, y0, f0)
    ys = torch.stack(loop.out)
    q = None if loop.q is None else tuple(materialize(x) for x in loop.q)
    return Solution(ts, ys,
                    problem.stats - before, loop.t_steps, loop.y_steps, loop.f_steps,
                    loop.dt_next, q, loop.y, loop.f, method.name)


class _Loop:
    """State of one integration; ``run`` is the step loop."""

    def __init__(self, problem, method, adaptive, norm, dense, dtmin, max_steps, direction, controller):
        self.problem, self.method, self.adaptive = problem, method, adaptive
        self.norm, self.dense, self.dtmin, self.max_steps = norm, dense, dtmin, max_steps
        self.direction = direction
        # The 1..1.2 dead-band saves W refactorisations; Rosenbrock methods refactorise every step anyway.
        keep_w = method.stiff and method.tableau.kind == "esdirk"
        self.controller = controller or PIController.for_order(method.order, implicit=keep_w)
        self.dt_next = None
        self.q = None

    def start(self, ts, y0, f0):
        self.t_steps = [ts[0]]
        self.y_steps, self.f_steps = ([y0], [f0]) if self.dense else (None, None)
        self.out, self.next_out = [y0], 1
        self.y, self.f = y0, f0
        while self.next_out < len(ts) and ts[self.next_out] == ts[0]:
            self.out.append(y0)
            self.next_out += 1

    def _emit(self, ts, t, t_new, y, f, y1, f1):
        """Outputs in (t, t_new]: interpolated inside the step, y1 at its end."""
        d = self.direction
        while self.next_out < len(ts) and d * (ts[self.next_out] - t_new) <= 0:
            tk = ts[self.next_out]
            self.out.append(y1 if tk == t_new else hermite_eval(t, t_new, y, f, y1, f1, tk))
            self.next_out += 1

    def _accept_q(self, q):
        if q is not None:
            self.q = q if self.q is None else tuple(a + b for a, b in zip(self.q, q))

    def run(self, ts, y0, f0, dt, warm, q0=None, cache=None):
        problem, method, stats, d = self.problem, self.method, self.problem.stats, self.direction
        self.start(ts, y0, f0)
        t, y, f, t_end = ts[0], y0, f0, ts[-1]
        stretch = _STRETCH if self.adaptive else _STRETCH_FIXED
        cache = {} if cache is None else cache
        cache.update(rejected=False, adaptive=self.adaptive)
        cache.pop("q_last", None)        # quadrature rates belong to one solve
        if q0 is not None:
            cache["q_last"] = (y0, q0)   # read by the steppers' stage-0 quadrature (same y0 object)
        self.dt_next = self.dt_fixed = dt
        self.fails = self.nonfinite = 0
        attempts = n_acc = 0
        while d * (t_end - t) > 0:
            if attempts >= self.max_steps:
                raise _fail(MaxStepsExceeded, f"reached max_steps={self.max_steps} before t_end={t_end:.6g}",
                            method, t, dt)
            attempts += 1
            remaining = t_end - t
            last = abs(remaining) <= stretch * abs(dt)
            dt_try = remaining if last else dt
            try:
                res = method.step(problem, method, t, y, f, dt_try, cache)
            except ArithmeticError as e:  # e.g. FloatingPointError from a numpy-backed field
                raise _fail(NonFiniteState, f"the vector field raised {type(e).__name__}: {e}",
                            method, t, dt_try) from e
            accept, dt_new = self._judge(res, t, y, dt_try, first=n_acc == 0 and not warm)
            cache["rejected"] = not accept
            if not accept:
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
            self._emit(ts, t, t_new, y, f, res.y1, res.f1)
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
        floor = self.dtmin if self.dtmin is not None else 1e-12 * abs(t) + 1e-300
        if abs(dt) < floor:
            if nonfinite:  # shrinking did not help: the field itself is NaN/inf just ahead
                raise _fail(NonFiniteState, "the vector field gives NaN or inf for every step tried",
                            self.method, t, dt)
            raise _fail(StepSizeUnderflow, f"step size fell below {floor:.3g}", self.method, t, dt)
