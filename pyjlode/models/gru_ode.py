"""GRUODECell (one layer, one solve per token) and GRUODE (a stack of them, called like nn.GRU).

One token's work: the drive c_i = W x_i + b is computed by torch for the whole sequence at once, then h
is carried over [0, dt] by the ODE solver with (U, c_i) as parameters of the solve, so the adjoint
returns dL/dh, dL/dU, dL/dc_i and torch carries dL/dc_i on into W, b and the embedding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError
from ..ode.adjoint import AdjointStats, adjoint_config, adjoint_solve
from ..ode.api import solve
from ..ode.methods import get_method
from ..ode.problem import SolveStats
from .gru_ode_field import GRUODEField
from .solver_config import DIRECT, SolverConfig


@dataclass
class _RunStats:
    """Work of one layer over one forward (and its backward): totals plus the token count."""

    tokens: int = 0
    forward: SolveStats = field(default_factory=SolveStats)
    backward: SolveStats = field(default_factory=SolveStats)
    adjoint: object = None          # AdjointStats of the adjoint path, read lazily after backward

    def totals(self) -> tuple[SolveStats, SolveStats]:
        if self.adjoint is not None:
            return self.adjoint.forward, self.adjoint.backward
        return self.forward, self.backward


def initial_log_tau(hidden_size: int, tau_min: float, tau_max: float) -> Tensor:
    """log tau of H units spaced evenly in log between tau_min and tau_max, both ends included.

    Log-uniform because time scales act multiplicatively (e^{-t/tau}): each decade of the range gets the
    same number of units. An evenly spaced grid rather than random draws covers both ends for any H and
    is the same for every seed; the units are exchangeable (their weights are i.i.d.), so the order of
    the grid carries no meaning. One unit gets the geometric mean.
    """
    lo, hi = math.log(tau_min), math.log(tau_max)
    if hidden_size == 1:
        return torch.full((1,), (lo + hi) / 2)
    return torch.linspace(lo, hi, hidden_size)


class GRUODECell(nn.Module):
    """One GRU-ODE layer: ``h1 = cell(x, h)`` evolves h over one token interval of length ``dt``.

    Parameters mirror one layer of ``torch.nn.GRU`` (weight_ih (3H, I), weight_hh (3H, H), bias_ih,
    bias_hh; rows r, z, n), so parameter counts match the GRU baseline exactly; ``learn_tau`` adds
    ``log_tau`` (H,), one time constant per unit: tau = exp(log_tau) stays positive and a gradient step
    changes it by a factor, the same relative change at tau = 0.01 as at tau = 1.

    Args:
        input_size, hidden_size: I and H.
        config: the solver settings (:class:`~pyjlode.models.solver_config.SolverConfig`; default: its
            defaults), changed by any SolverConfig fields given as keywords: ``solver`` ("Euler" takes
            exactly one step of size dt per token with plain autograd, see :meth:`_euler`),
            ``backward_solver``, ``sensealg`` ("direct" backpropagates through the solver's operations),
            ``rtol``, ``atol``, ``dt``, ``tau``, ``learn_tau`` (a per-unit tau, initialised by
            :func:`initial_log_tau` over ``tau_min``..``tau_max``, whose missing ends are ``tau``),
            ``reset_after`` (False: the seed's g = tanh(c_h + U_h (r ⊙ h)); True: PyTorch's
            g = tanh(c_h + r ⊙ (U_h h + b_hn))), ``backend`` ("torch" or "julia").
    """

    def __init__(self, input_size: int, hidden_size: int, config: SolverConfig | None = None, **settings):
        super().__init__()
        self.config = cfg = SolverConfig.with_options(config, **settings).validate()
        if cfg.backend == "julia":
            from ..backends import get_backend
            get_backend("julia")                        # raises BackendUnavailable with the fix
        self.input_size, self.hidden_size = input_size, hidden_size
        self.method = get_method(cfg.solver)
        H = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(3 * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * H, H))
        self.bias_ih = nn.Parameter(torch.empty(3 * H))
        self.bias_hh = nn.Parameter(torch.empty(3 * H))
        self.log_tau = nn.Parameter(torch.empty(H)) if cfg.learn_tau else None
        self.reset_parameters()
        self.last_stats = _RunStats()

    def reset_parameters(self) -> None:
        """Weights U(-1/sqrt(H), 1/sqrt(H)), as torch.nn.GRU initialises; a learned tau on its grid
        (:func:`initial_log_tau`, which draws no random numbers: the weights are those of a fixed-tau
        layer with the same seed)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            nn.init.uniform_(p, -bound, bound)
        if self.log_tau is not None:
            with torch.no_grad():
                self.log_tau.copy_(initial_log_tau(self.hidden_size, *self.config.tau_range()))

    def extra_repr(self) -> str:
        cfg = self.config
        tau = "learned, initially {:g}..{:g}".format(*cfg.tau_range()) if cfg.learn_tau else cfg.tau
        return (f"{self.input_size}, {self.hidden_size}, solver={cfg.solver}, dt={cfg.dt}, "
                f"tau={tau}, reset_after={cfg.reset_after}")

    # ------------------------------------------------------------------ pieces of the field
    @property
    def uses_fast_euler(self) -> bool:
        return self.config.backend == "torch" and self.method.name == "Euler"

    def drive(self, x: Tensor) -> Tensor:
        """c = W x + b for (..., I) -> (..., 3H); the part of bias_hh outside the reset is folded in."""
        H = self.hidden_size
        if self.config.reset_after:
            b = torch.cat([self.bias_ih[:2 * H] + self.bias_hh[:2 * H], self.bias_ih[2 * H:]])
        else:
            b = self.bias_ih + self.bias_hh
        return F.linear(x, self.weight_ih, b)

    def b_hn(self) -> Tensor | None:
        return self.bias_hh[2 * self.hidden_size:] if self.config.reset_after else None

    def tau_value(self) -> float | Tensor:
        return self.log_tau.exp() if self.log_tau is not None else self.config.tau

    def field(self, c: Tensor, tau: float | Tensor | None = None) -> GRUODEField:
        """The vector field of one token with drive c (B, 3H) (tau: a precomputed tau_value())."""
        tau = self.tau_value() if tau is None else tau
        return GRUODEField(self.weight_hh, c, self.b_hn(), tau, self.config.reset_after)

    # ------------------------------------------------------------------ running
    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """One token: x (B, I), h (B, H) or None (zeros) -> h1 (B, H)."""
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        return self.run(x.unsqueeze(0), h)[0]

    def run(self, x: Tensor, h: Tensor) -> Tensor:
        """A sequence: x (T, B, I), h (B, H) -> outputs (T, B, H). Records ``last_stats``."""
        c = self.drive(x)                                # (T, B, 3H): one matmul for all tokens
        self.last_stats = stats = _RunStats(tokens=x.shape[0])
        if self.uses_fast_euler:
            return self._euler(c, h, stats)
        if self.config.backend == "julia":
            return self._julia(c, h, stats)
        if self.config.sensealg == DIRECT:
            return self._direct(c, h, stats)
        return self._adjoint(c, h, stats)

    def _euler(self, c: Tensor, h: Tensor, stats: _RunStats) -> Tensor:
        """One explicit Euler step of size dt per token: h + dt/tau (1 - z)(g - h) = lerp(h, g, dt/tau (1 - z)).

        The adjoint of a single discrete Euler step is exactly backprop through it, so this path lets
        torch autograd differentiate the fused update directly (no solver, no adjoint bookkeeping):
        with dt = tau it is a GRU update and costs about what nn.GRU's cell loop costs.
        """
        H, U, reset_after = self.hidden_size, self.weight_hh, self.config.reset_after
        k = self.config.dt / self.tau_value()
        one = isinstance(k, float) and k == 1.0
        if reset_after:
            b_pad = torch.cat([self.bias_hh.new_zeros(2 * H), self.b_hn()])
        hs = []
        for c_i in c:                                   # c_i (B, 3H)
            if reset_after:
                gh = F.linear(h, U, b_pad)              # (B, 3H): [U_r h, U_z h, U_h h + b_hn]
                rz = torch.sigmoid(c_i[:, :2 * H] + gh[:, :2 * H])
                r, z = rz[:, :H], rz[:, H:]
                g = torch.tanh(torch.addcmul(c_i[:, 2 * H:], r, gh[:, 2 * H:]))
            else:
                rz = torch.sigmoid(torch.addmm(c_i[:, :2 * H], h, U[:2 * H].t()))
                r, z = rz[:, :H], rz[:, H:]
                g = torch.tanh(torch.addmm(c_i[:, 2 * H:], r * h, U[2 * H:].t()))
            h = torch.lerp(g, h, z) if one else torch.lerp(h, g, (1 - z) * k)
            hs.append(h)
        out = torch.stack(hs)
        T = len(hs)
        stats.forward.nfe = stats.forward.naccept = T
        if out.requires_grad:                           # one VJP per token once backward runs
            def _count(grad, bwd=stats.backward):
                bwd.nfe = bwd.naccept = T
            out.register_hook(_count)
        return out

    def _solve_kwargs(self) -> dict:
        cfg = self.config
        return dict(solver=cfg.solver, rtol=cfg.rtol, atol=cfg.atol)

    def _adjoint(self, c: Tensor, h: Tensor, stats: _RunStats) -> Tensor:
        stats.adjoint = AdjointStats()
        cfg, adaptive = self.config, self.method.adaptive
        dt0, hs, tau = None if adaptive else cfg.dt, [], self.tau_value()
        # the settings of every token's solve, checked once; each token binds its own field
        settings = adjoint_config(None, h, [0.0, cfg.dt], backward_solver=cfg.backward_solver,
                                  sensealg=cfg.sensealg, dt0=dt0, stats=stats.adjoint, quad_error=cfg.quad_error,
                                  **self._solve_kwargs())
        for c_i in c:
            f = self.field(c_i, tau)
            # lazy VJP: U's cotangent as factors, one matmul per backward solve instead of per evaluation
            # linsolve "krylov" needs only J v products: the matrix-free Jacobian, no (B, H, H) tensor
            jac = f.jac_operator if ":krylov" in f"{cfg.solver} {cfg.backward_solver}".lower() else f.jac
            token = settings.bind(f, jac=jac, vjp=partial(f.vjp, lazy=True), dt0=dt0)
            h = adjoint_solve(token, h, *f.params)[-1]
            if adaptive:                                # warm start: the last proposal, not Hairer again
                dt0 = stats.adjoint.dt_next
            hs.append(h)
        return torch.stack(hs)

    def _direct(self, c: Tensor, h: Tensor, stats: _RunStats) -> Tensor:
        """Backprop through the solver's operations (the reference the adjoint is checked against)."""
        adaptive, dt = self.method.adaptive, self.config.dt
        t, dt0, hs, tau = [0.0, dt], None if adaptive else dt, [], self.tau_value()
        for c_i in c:
            f = self.field(c_i, tau)
            sol = solve(f, h, t, jac=f.jac, dt=dt0, **self._solve_kwargs())
            h = sol.ys[-1]
            stats.forward += sol.stats
            dt0 = sol.dt_next if adaptive else dt0
            hs.append(h)
        # autograd replays one VJP per evaluation that reached the output: report the forward count
        stats.backward = SolveStats(nfe=stats.forward.nfe - stats.forward.nreject)
        return torch.stack(hs)

    def _julia(self, c: Tensor, h: Tensor, stats: _RunStats) -> Tensor:
        from ..backends import get_backend
        jl, counts, hs = get_backend("julia"), {}, []
        cfg = self.config
        for c_i in c:
            h = jl.gruode_solve(h, self.weight_hh, c_i, self.b_hn(), dt=cfg.dt, tau=cfg.tau,
                                reset_after=cfg.reset_after, solver=cfg.solver,
                                backward_solver=cfg.backward_solver, sensealg=cfg.sensealg,
                                rtol=cfg.rtol, atol=cfg.atol, stats=counts)
            hs.append(h)
        # the Julia engine reports forward work only
        stats.forward = SolveStats(nfe=counts.get("nfe_forward", 0), naccept=counts.get("naccept", 0),
                                   nreject=counts.get("nreject", 0), njac=counts.get("njac", 0))
        return torch.stack(hs)


class GRUODE(nn.Module):
    """A multi-layer GRU-ODE called like ``torch.nn.GRU``: ``output, h_n = layer(input, h0=None)``.

    input (T, B, I) (or (B, T, I) with batch_first, or unbatched (T, I)); h0 (num_layers, B, H);
    output (T, B, H) from the last layer; h_n (num_layers, B, H). Dropout acts between layers.
    ``config`` and the remaining keywords (SolverConfig fields) are :class:`GRUODECell`'s, shared by
    every layer.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, batch_first: bool = False,
                 dropout: float = 0.0, config: SolverConfig | None = None, **settings):
        super().__init__()
        if num_layers < 1:
            raise InputError(f"num_layers must be at least 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.dropout = batch_first, float(dropout)
        self.config = SolverConfig.with_options(config, **settings).validate()
        self.cells = nn.ModuleList(
            GRUODECell(input_size if i == 0 else hidden_size, hidden_size, self.config)
            for i in range(num_layers))

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, batch_first={self.batch_first}, dropout={self.dropout}"

    def forward(self, input: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        unbatched = input.dim() == 2                    # (T, I), whatever batch_first says
        if unbatched:
            x = input.unsqueeze(1)
            h0 = None if h0 is None else h0.unsqueeze(1)
        elif input.dim() == 3:
            x = input.transpose(0, 1) if self.batch_first else input      # (T, B, I)
        else:
            raise InputError(f"GRUODE expects input of 2 or 3 dimensions, got shape {tuple(input.shape)}")
        L, B, H = self.num_layers, x.shape[1], self.hidden_size
        if h0 is None:
            h0 = x.new_zeros(L, B, H)
        elif h0.shape != (L, B, H):
            raise InputError(f"h0 must have shape {(L, B, H)}, got {tuple(h0.shape)}")
        h_n = []
        for i, cell in enumerate(self.cells):
            x = cell.run(x, h0[i])
            h_n.append(x[-1])
            if i < L - 1 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
        h_n = torch.stack(h_n)
        if unbatched:
            return x.squeeze(1), h_n.squeeze(1)
        return (x.transpose(0, 1) if self.batch_first else x), h_n

    def solver_stats(self) -> dict:
        """Work per token of the last forward, summed over layers; backward entries fill in after
        backward. Keys: nfe_fwd_per_token, nfe_bwd_per_token, steps_fwd_per_token,
        rejects_fwd_per_token, steps_bwd_per_token, rejects_bwd_per_token, njac_per_token, and for the
        auto-switching solvers switches_fwd/bwd_per_token and stiff_steps_fwd/bwd_per_token (accepted
        steps of the stiff member)."""
        keys = dict(nfe_fwd_per_token=0.0, nfe_bwd_per_token=0.0, steps_fwd_per_token=0.0,
                    rejects_fwd_per_token=0.0, steps_bwd_per_token=0.0, rejects_bwd_per_token=0.0,
                    njac_per_token=0.0, switches_fwd_per_token=0.0, switches_bwd_per_token=0.0,
                    stiff_steps_fwd_per_token=0.0, stiff_steps_bwd_per_token=0.0)
        for cell in self.cells:
            st = cell.last_stats
            if not st.tokens:
                continue
            fwd, bwd = st.totals()
            n = st.tokens
            for key, val in (("nfe_fwd", fwd.nfe), ("nfe_bwd", bwd.nfe), ("steps_fwd", fwd.naccept),
                             ("rejects_fwd", fwd.nreject), ("steps_bwd", bwd.naccept),
                             ("rejects_bwd", bwd.nreject), ("njac", fwd.njac + bwd.njac),
                             ("switches_fwd", fwd.nswitch), ("switches_bwd", bwd.nswitch),
                             ("stiff_steps_fwd", fwd.nstiff), ("stiff_steps_bwd", bwd.nstiff)):
                keys[key + "_per_token"] += val / n
        return keys

    # ------------------------------------------------------------------ nn.GRU interchange
    @classmethod
    def from_gru(cls, gru: nn.GRU, **options) -> "GRUODE":
        """A reset_after=True GRU-ODE carrying ``gru``'s weights (same gate order r, z, n).

        With solver="Euler", dt=1, tau=1 it computes exactly what ``gru`` computes.
        """
        if not isinstance(gru, nn.GRU):
            raise InputError(f"from_gru needs a torch.nn.GRU, got {type(gru).__name__}")
        if gru.bidirectional or getattr(gru, "proj_size", 0):
            raise InputError("from_gru supports unidirectional nn.GRU without projections only")
        if not options.pop("reset_after", True):
            raise InputError("from_gru builds reset_after=True (PyTorch's candidate); drop reset_after=False")
        options.setdefault("batch_first", gru.batch_first)
        options.setdefault("dropout", gru.dropout)
        w = gru.weight_ih_l0
        ode = cls(gru.input_size, gru.hidden_size, gru.num_layers, reset_after=True,
                  **options).to(device=w.device, dtype=w.dtype)
        with torch.no_grad():
            for i, cell in enumerate(ode.cells):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    src, dst = getattr(gru, f"{name}_l{i}", None), getattr(cell, name)
                    if src is None:                     # nn.GRU(bias=False): zero biases
                        dst.zero_()
                    else:
                        dst.copy_(src)
        return ode

    def to_gru(self) -> nn.GRU:
        """An nn.GRU with this layer's weights (tau and the solver are dropped): the discrete GRU
        that equals this GRU-ODE under one Euler step with dt = tau."""
        if not self.config.reset_after:
            raise InputError("to_gru needs reset_after=True: nn.GRU has PyTorch's candidate only")
        w = self.cells[0].weight_ih
        gru = nn.GRU(self.input_size, self.hidden_size, self.num_layers, batch_first=self.batch_first,
                     dropout=self.dropout).to(device=w.device, dtype=w.dtype)
        with torch.no_grad():
            for i, cell in enumerate(self.cells):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(gru, f"{name}_l{i}").copy_(getattr(cell, name))
        return gru
