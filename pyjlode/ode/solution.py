"""The result of an integration: output states, counters, step data and dense output."""
from __future__ import annotations

import bisect

import torch
from torch import Tensor

from .dense import HERMITE, interpolate


class Solution:
    """Result of :func:`~pyjlode.ode.loop.integrate`.

    Attributes:
        ts: output times (float64 tensor on y0's device).
        ys: states at ``ts``, shape ``(len(ts), *y0.shape)``.
        stats: work counters of this solve.
        t_steps: accepted step boundaries (Python floats), starting at ts[0].
        dt_next: the controller's proposal for a step after the last one (warm starts).
        q: integrated quadrature totals (tuple of tensors) or None.
        y_final: state at ts[-1]; f_final: f(ts[-1], y_final), reusable as the next f0.
        solver: solver name.
        interpolant: the dense output ``__call__`` uses (the method's, from each step's D_j kept in
            ``k_steps``; cubic Hermite of (y, f) at the step ends without them).
    """

    def __init__(self, ts, ys, stats, t_steps, y_steps, f_steps, dt_next, q, y_final, f_final, solver,
                 k_steps=None, interpolant=HERMITE):
        self._ts, self.ys, self.stats = ts, ys, stats
        self._device = ys.device
        self.t_steps, self.dt_next, self.q = t_steps, dt_next, q
        self._y_final, self.f_final, self.solver = y_final, f_final, solver
        self._y_steps, self._f_steps, self._k_steps = y_steps, f_steps, k_steps
        self.interpolant = interpolant if k_steps is not None else HERMITE
        # Ascending keys for bisect in either time direction.
        self._sign = 1.0 if len(t_steps) < 2 or t_steps[-1] >= t_steps[0] else -1.0
        self._keys = [self._sign * t for t in t_steps]

    @property
    def ts(self) -> Tensor:
        # Built on first use: a host-to-device copy per solve is a sync on CUDA.
        if not isinstance(self._ts, Tensor):
            self._ts = torch.tensor(self._ts, dtype=torch.float64, device=self._device)
        return self._ts

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
        kept = self._k_steps[i] if self._k_steps is not None else None
        return interpolate(self.interpolant, self.t_steps[i], self.t_steps[i + 1], self._y_steps[i],
                           self._f_steps[i], self._y_steps[i + 1], self._f_steps[i + 1], kept, t)

    def __call__(self, t) -> Tensor:
        """Dense output (:attr:`interpolant` on the accepted steps) at a float or a 1-D tensor of times."""
        if isinstance(t, Tensor):
            if t.dim() == 0:
                return self._at(float(t))
            return torch.stack([self._at(float(ti)) for ti in t.tolist()])
        return self._at(float(t))

    def __repr__(self) -> str:
        return f"Solution(solver={self.solver}, t=[{self.t_steps[0]}, {self.t_steps[-1]}], {self.stats})"
