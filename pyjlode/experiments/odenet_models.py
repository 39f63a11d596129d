"""The three image classifiers of the ODE-Net experiment (after Chen et al. 2018, "Neural Ordinary
Differential Equations", Table 1): one downsampling stem and one head, with a feature part that is

- ``ResNet``: ``depth`` residual blocks ``h <- h + g(h)``;
- ``ODENet``: one residual function used as a vector field, ``dh/dt = g(t, h)`` on [0, 1], with the time
  as an extra input channel (Chen et al.'s ``ConcatConv2d``), solved by the pyjlode engine and
  differentiated either by the adjoint method (``odeint_adjoint``) or by backpropagating through the
  solver's operations (``solve`` under autograd: Chen et al.'s "RK-Net").

GroupNorm, not BatchNorm, keeps every image an independent system, as the adjoint's batched state requires.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ode.adjoint import AdjointStats, odeint_adjoint
from ..ode.api import solve

GRADIENTS = ("adjoint", "direct")
# The residual function's nonlinearity. ReLU is Chen et al.'s; its kinks make the Jacobian, and so the
# adjoint equation's right-hand side -Jᵀa, jump in t, which tight tolerances pay for in steps. Softplus is
# smooth.
ACTIVATIONS = {"relu": torch.relu, "softplus": F.softplus}     # keys: odenet_config.ACTIVATIONS


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups (the largest divisor of ``channels`` among 1, 2, 4, 8)."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ConcatConv2d(nn.Module):
    """3x3 convolution that sees the time ``t`` as one more (constant) input channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels + 1, channels, 3, padding=1)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        tt = t.to(x).expand(x.shape[0], 1, *x.shape[2:])
        return self.conv(torch.cat([tt, x], dim=1))


class ResidualFunction(nn.Module):
    """``g = norm(conv(act(norm(conv(act(norm(h)))))))``: a ResNet block's branch, or with ``time=True``
    an ODE vector field ``g(t, h)`` whose convolutions also see t."""

    def __init__(self, channels: int, time: bool, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
        self.time, self.act = time, ACTIVATIONS[activation]
        conv = (lambda: ConcatConv2d(channels)) if time else (lambda: nn.Conv2d(channels, channels, 3, padding=1))
        self.norm1, self.conv1, self.norm2, self.conv2, self.norm3 = (
            group_norm(channels), conv(), group_norm(channels), conv(), group_norm(channels))

    def _conv(self, conv: nn.Module, t: Optional[Tensor], x: Tensor) -> Tensor:
        return conv(t, x) if self.time else conv(x)

    def forward(self, h: Tensor, t: Optional[Tensor] = None) -> Tensor:
        h = self._conv(self.conv1, t, self.act(self.norm1(h)))
        h = self._conv(self.conv2, t, self.act(self.norm2(h)))
        return self.norm3(h)


def stem(channels: int) -> nn.Sequential:
    """1x8x8 image -> channels x 4 x 4 features (one 3x3 convolution, then a strided 4x4 one)."""
    return nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), group_norm(channels), nn.ReLU(),
                         nn.Conv2d(channels, channels, 4, stride=2, padding=1))


def head(channels: int, classes: int) -> nn.Sequential:
    return nn.Sequential(group_norm(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(channels, classes))


class ResNet(nn.Module):
    """Stem, ``depth`` residual blocks, head. ``evaluations`` is the blocks run per forward pass."""

    def __init__(self, channels: int, depth: int, classes: int = 10, activation: str = "relu"):
        super().__init__()
        self.stem, self.head = stem(channels), head(channels, classes)
        self.blocks = nn.ModuleList(ResidualFunction(channels, False, activation) for _ in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


class ODEField(nn.Module):
    """The residual function as ``f(t, y)`` on flat states ``(B, C*H*W)``: the adjoint's backsolve and
    stiff backward solvers take a state of shape (B, n)."""

    def __init__(self, channels: int, side: int, activation: str = "relu"):
        super().__init__()
        self.shape = (channels, side, side)
        self.g = ResidualFunction(channels, True, activation)

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return self.g(y.view(y.shape[0], *self.shape), t).reshape(y.shape[0], -1)


@dataclass
class SolverSettings:
    """How an ODENet solves and differentiates its ODE (mutable: the tolerance sweep changes rtol/atol)."""

    gradient: str = "adjoint"            # "adjoint" (odeint_adjoint) or "direct" (backprop through solve)
    solver: str = "Tsit5"
    backward_solver: Optional[str] = None
    sensealg: str = "backsolve"
    rtol: float = 1e-3
    atol: float = 1e-3
    backward_rtol: Optional[float] = None
    backward_atol: Optional[float] = None


@dataclass
class NFECounter:
    """Function evaluations of the ODE solves since the last ``reset``. ``backward`` sums the adjoint
    solves of the adjoint calls made since then, so read it after ``loss.backward()``."""

    forward: int = 0
    adjoint_stats: list = field(default_factory=list)

    def reset(self) -> None:
        self.forward, self.adjoint_stats = 0, []

    @property
    def backward(self) -> int:
        return sum(s.backward.nfe for s in self.adjoint_stats)


class ODENet(nn.Module):
    """Stem, one ODE block ``h(1) = h(0) + ∫₀¹ g(t, h) dt``, head."""

    def __init__(self, channels: int, settings: SolverSettings, classes: int = 10, side: int = 4,
                 activation: str = "relu"):
        super().__init__()
        if settings.gradient not in GRADIENTS:
            raise ValueError(f"unknown gradient {settings.gradient!r}; choose one of: {', '.join(GRADIENTS)}")
        self.stem, self.head = stem(channels), head(channels, classes)
        self.field = ODEField(channels, side, activation)
        self.settings, self.nfe = settings, NFECounter()

    def forward(self, x: Tensor) -> Tensor:
        h0 = self.stem(x)
        s = self.settings
        y0 = h0.reshape(h0.shape[0], -1)
        if s.gradient == "adjoint" and torch.is_grad_enabled():
            stats = AdjointStats()
            y1 = odeint_adjoint(self.field, y0, [0.0, 1.0], solver=s.solver, backward_solver=s.backward_solver,
                                sensealg=s.sensealg, rtol=s.rtol, atol=s.atol, backward_rtol=s.backward_rtol,
                                backward_atol=s.backward_atol, stats=stats)[-1]
            self.nfe.forward += stats.forward.nfe
            self.nfe.adjoint_stats.append(stats)
        else:   # direct backprop, or inference: one plain solve, recorded by autograd when grad is on
            sol = solve(self.field, y0, [0.0, 1.0], solver=s.solver, rtol=s.rtol, atol=s.atol)
            y1 = sol.ys[-1]
            self.nfe.forward += sol.stats.nfe
        return self.head(y1.view_as(h0))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
