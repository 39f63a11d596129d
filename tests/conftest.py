"""Shared fixtures: a nonlinear non-stiff test problem with a high-accuracy reference."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp


def _duffing(t, y):
    """Forced undamped Duffing oscillator; torch ops only, for y of shape (2,) or (B, 2)."""
    return torch.stack([y[..., 1], -y[..., 0] - y[..., 0] ** 3 + 0.3 * torch.sin(t)], dim=-1)


def _duffing_np(t, y):
    return [y[1], -y[0] - y[0] ** 3 + 0.3 * math.sin(t)]


@dataclass(frozen=True)
class RefProblem:
    """A test ODE with a scipy DOP853 reference at rtol 1e-13 (accurate to ~1e-14)."""

    f: Callable
    y0_values: tuple
    T: float
    f_np: Callable

    def y0(self, dtype=torch.float64, device="cpu") -> torch.Tensor:
        return torch.tensor(self.y0_values, dtype=dtype, device=device)

    def reference(self, times) -> np.ndarray:
        """States at ``times`` (monotone, starting at 0): array of shape (len(times), n)."""
        times = [float(t) for t in times]
        sol = solve_ivp(self.f_np, (0.0, max(times)), self.y0_values, method="DOP853",
                        rtol=1e-13, atol=1e-15, dense_output=True)
        assert sol.success
        return sol.sol(times).T


# Nonlinear and non-autonomous (so the stage times c_i matter), non-stiff.
DUFFING = RefProblem(_duffing, (1.0, 0.0), 4.0, _duffing_np)


@pytest.fixture(scope="session")
def duffing() -> RefProblem:
    return DUFFING


@pytest.fixture
def cuda_device():
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return torch.device("cuda")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny problems gain nothing from intra-op threads, and on a busy CPU the hand-offs dominate (10x
    slower steps measured); the setting is restored for the other modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
