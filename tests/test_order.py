"""Convergence order: the log-log slope of the global error against a fixed dt is the method's order."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pyjlode.ode import SOLVERS, solve

# Steps per interval, by order: errors stay within ~[1e-12, 1e-2], past the
# pre-asymptotic regime and above the reference's ~1e-14 accuracy.
STEPS = {1: [128, 256, 512, 1024], 2: [16, 32, 64, 128], 3: [16, 32, 64, 128],
         4: [16, 32, 64, 128], 5: [32, 64, 128, 256]}


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_convergence_order(name, duffing):
    method = SOLVERS[name]
    # Output times on the step grid (every N is a multiple of 8): the error is the max
    # over 9 grid points, which is far less prone to lucky cancellation than t_end alone.
    times = torch.linspace(0.0, duffing.T, 9, dtype=torch.float64)
    ref = duffing.reference(times.tolist())
    dts, errs = [], []
    for n in STEPS[method.order]:
        dt = duffing.T / n
        # Tight tolerances only matter for implicit methods (Newton convergence).
        sol = solve(duffing.f, duffing.y0(), times, solver=name, dt=dt, adaptive=False,
                    rtol=1e-12, atol=1e-14)
        dts.append(dt)
        errs.append(np.abs(sol.ys.numpy() - ref).max())
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert abs(slope - method.order) < 0.3, f"{name}: slope {slope:.2f}, errors {errs}"
