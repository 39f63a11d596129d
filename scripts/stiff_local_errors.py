"""Per-step audit of a stiff regression case: the true local error of every accepted step against the
error estimate that accepted it (and, for the ESDIRK methods, against the other estimate, filtered or
plain), summarised over four time windows.

The true local error of a step from (t, y) is y1 minus scipy's Radau solution from the same (t, y)
(rtol 1e-12), in the scaled RMS norm the controller uses. A ratio true/estimate near 1 means the
estimate is right; well above 1 means the solver accepts steps whose error it does not see.

    python scripts/stiff_local_errors.py hires KenCarp4 1e-6
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from stiff_problems import PROBLEMS, load_references, scaled_error  # noqa: E402

from pyjlode.ode import Problem, get_method, integrate  # noqa: E402
from pyjlode.ode.control import error_ratio  # noqa: E402
from pyjlode.ode.linalg import solve_w  # noqa: E402
from pyjlode.ode.steppers.base import lincomb  # noqa: E402


class Recording:
    """A stepper that records every successful attempt (t, dt, y, y1, err, other estimate)."""

    def __init__(self, inner):
        self.inner, self.qsteady_max, self.steps = inner, inner.qsteady_max, []

    def init(self, *args, **kwargs):
        return self.inner.init(*args, **kwargs)

    def step(self, problem, t, y, f0, dt, state, *, rejected):
        res, state = self.inner.step(problem, t, y, f0, dt, state, rejected=rejected)
        if res.ok and res.err is not None:
            plan, other = self.inner.plan, None
            if self.inner.family == "esdirk":   # the estimate this method does not use
                raw = lincomb(None, list(res.stages), plan.b_err)
                other = raw if plan.filtered else solve_w(problem, state.w, raw)
            self.steps.append((t, dt, y, res.y1, res.err, other))
        return res, state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problem", choices=sorted(PROBLEMS))
    parser.add_argument("solver")
    parser.add_argument("rtol", type=float)
    args = parser.parse_args()
    torch.set_num_threads(1)
    p, method = PROBLEMS[args.problem], get_method(args.solver)
    rtol, atol = args.rtol, p.atol(args.rtol)
    recorder = Recording(method.stepper)
    problem = Problem.from_torch(p.f, jac=p.jac, rtol=rtol, atol=atol)
    sol = integrate(problem, replace(method, stepper=recorder), p.y0_tensor(), [0.0, p.t_end], max_steps=100_000)
    error = scaled_error(sol.ys[-1].numpy(), np.asarray(load_references()[args.problem]["y"]), rtol, atol)[0]
    print(f"{args.problem} {method.name} rtol={rtol:g}: end error {error:.3g} x tol, {sol.stats}")

    def fnp(t, y):
        return p.f(torch.tensor(t), torch.from_numpy(y)).numpy()

    def jnp(t, y):
        return p.jac(torch.tensor(t), torch.from_numpy(y)).numpy()

    steps = recorder.steps
    accepted = [s for s, nxt in zip(steps, steps[1:] + [None]) if nxt is None or nxt[0] != s[0]]
    rows = []
    for t, dt, y, y1, err, other in accepted:
        exact = solve_ivp(fnp, (t, t + dt), y.numpy(), method="Radau", jac=jnp, rtol=1e-12, atol=1e-4 * atol)
        true = error_ratio(y1 - torch.from_numpy(exact.y[:, -1]), y, y1, rtol, atol)
        est = error_ratio(err, y, y1, rtol, atol)
        alt = error_ratio(other, y, y1, rtol, atol) if other is not None else float("nan")
        rows.append((t, true, est, alt))
    a = np.array(rows)
    label = {True: "plain", False: "filtered"}.get(getattr(method.stepper.plan, "filtered", None), "")
    print(f"{len(a)} accepted steps; true/estimate (the controller's){', true/' + label if label else ''}:")
    edges = [0.0, 1e-3 * p.t_end, 0.1 * p.t_end, 0.6 * p.t_end, p.t_end]
    for lo, hi in zip(edges, edges[1:]):
        m = (a[:, 0] >= lo) & (a[:, 0] < hi)
        if m.any():
            r = a[m, 1] / a[m, 2]
            line = f"  t in [{lo:.3g}, {hi:.3g}): {m.sum():5d} steps, median {np.median(r):.3g}, max {r.max():.3g}"
            if label:
                r2 = a[m, 1] / a[m, 3]
                line += f" | median {np.median(r2):.3g}, max {r2.max():.3g}"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
