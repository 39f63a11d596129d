"""Claims of pyjlode.ode.adjoint on non-stiff problems (float64).

- odeint_adjoint's gradients (y0 and parameters) match direct backprop through torchdiffeq's dopri5
  for every backward solver, explicit and stiff, on an MLP field, a GRU-ODE field with an input
  drive, and a loss spread over several output times;
- they pass torch.autograd.gradcheck (both sensealgs, t included);
- backsolve agrees with interpolating; an analytic vjp/jac gives the gradients autograd gives;
- stats are filled; bad settings fail with a one-line ValueError.
"""
from __future__ import annotations

import functools

import pytest
import torch
import torchdiffeq
from torch import nn

from pyjlode.ode.adjoint import AdjointStats, odeint_adjoint

D = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


TOL = dict(rtol=1e-10, atol=1e-10)
BACKWARD_SOLVERS = ["Tsit5", "KenCarp4", "Rodas5P", "TRBDF2"]


class MLPField(nn.Module):
    """A small non-autonomous MLP vector field, batched over rows."""

    def __init__(self, n=3, hidden=8, seed=0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.l1, self.l2 = nn.Linear(n, hidden).to(D), nn.Linear(hidden, n).to(D)

    def forward(self, t, y):
        return self.l2(torch.tanh(self.l1(y))) * (1.0 + 0.5 * torch.sin(t))


class GRUODEField:
    """dh/dt = (1 - z) ⊙ (g - h) with r, z, g from U h + c; the drive c is an explicit parameter."""

    def __init__(self, U, c):
        self.U, self.c, self.H = U, c, U.shape[1]

    def __call__(self, t, h):
        H, U, c = self.H, self.U, self.c
        rz = torch.sigmoid(c[:, :2 * H] + h @ U[:2 * H].T)
        r, z = rz[:, :H], rz[:, H:]
        g = torch.tanh(c[:, 2 * H:] + (r * h) @ U[2 * H:].T)
        return (1 - z) * (g - h)


class TanhField:
    """f = tanh(W y + c) - y with an analytic Jacobian and VJP (and call counters)."""

    def __init__(self, W, c):
        self.W, self.c, self.calls = W, c, {"jac": 0, "vjp": 0}

    def __call__(self, t, y):
        return torch.tanh(y @ self.W.T + self.c) - y

    def jac(self, t, y):
        self.calls["jac"] += 1
        s = 1 - torch.tanh(y @ self.W.T + self.c) ** 2          # (B, n)
        return s.unsqueeze(-1) * self.W - torch.eye(y.shape[-1], dtype=y.dtype)

    def vjp(self, t, y, a):
        self.calls["vjp"] += 1
        u = a * (1 - torch.tanh(y @ self.W.T + self.c) ** 2)
        return u @ self.W - a, (u.T @ y, u)


def _rel(x, ref):
    return float((x - ref).norm() / ref.norm())


def _grads(solve, f, y0, t, params, weights):
    ys = solve(f, y0, t)
    loss = (ys * weights).sum()
    return torch.autograd.grad(loss, (y0, *params))


def _mlp_case(times):
    f = MLPField()
    y0 = torch.randn(2, 3, dtype=D, generator=torch.Generator().manual_seed(1)).requires_grad_()
    t = torch.tensor(times, dtype=D)
    w = torch.randn(len(times), 2, 3, dtype=D, generator=torch.Generator().manual_seed(2))
    return f, y0, t, tuple(f.parameters()), w


def _gru_case(B=3, H=4):
    g = torch.Generator().manual_seed(3)
    U = (torch.randn(3 * H, H, dtype=D, generator=g) / H ** 0.5).requires_grad_()
    c = torch.randn(B, 3 * H, dtype=D, generator=g).requires_grad_()
    h0 = torch.randn(B, H, dtype=D, generator=g).requires_grad_()
    w = torch.randn(2, B, H, dtype=D, generator=g)
    return GRUODEField(U, c), h0, torch.tensor([0.0, 1.0], dtype=D), (U, c), w


CASES = {
    "mlp": lambda: _mlp_case([0.0, 1.0]),
    "gru_ode_drive": _gru_case,
    "mlp_4_outputs": lambda: _mlp_case([0.0, 0.3, 0.7, 1.2]),
}


@functools.lru_cache(maxsize=None)
def _reference(case):
    """Direct backprop through torchdiffeq's dopri5 (computed once per case)."""
    f, y0, t, params, w = CASES[case]()
    return _grads(lambda f_, y, tt: torchdiffeq.odeint(f_, y, tt, method="dopri5", **TOL), f, y0, t, params, w)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("backward_solver", BACKWARD_SOLVERS)
def test_gradients_match_torchdiffeq_backprop(case, backward_solver):
    f, y0, t, params, w = CASES[case]()
    ref = _reference(case)
    got = _grads(lambda f_, y, tt: odeint_adjoint(f_, y, tt, params=params, backward_solver=backward_solver,
                                                  **TOL), f, y0, t, params, w)
    for name, g, r in zip(["y0"] + [f"param{k}" for k in range(len(params))], got, ref):
        assert _rel(g, r) < 1e-6, (name, _rel(g, r))


@pytest.mark.parametrize("sensealg", ["interpolating", "backsolve"])
def test_gradcheck(sensealg):
    g = torch.Generator().manual_seed(4)
    W = torch.randn(2, 2, dtype=D, generator=g).requires_grad_()
    y0 = torch.randn(2, dtype=D, generator=g).requires_grad_()
    t = torch.tensor([0.0, 0.4, 1.0], dtype=D, requires_grad=True)

    def fn(y0, W, t):
        def f(tt, y):
            return torch.tanh(W @ y) * torch.cos(tt)
        # Fixed RK4 steps: an adaptive forward's step sequence jumps under the finite-difference
        # perturbations, which gradcheck would see as noise in the numerical Jacobian.
        return odeint_adjoint(f, y0, t, params=(W,), sensealg=sensealg, solver="RK4", dt0=0.01)

    assert torch.autograd.gradcheck(fn, (y0, W, t), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_backsolve_agrees_with_interpolating():
    f, y0, t, params, w = _mlp_case([0.0, 0.5, 1.0])
    grads = {sa: _grads(lambda f_, y, tt: odeint_adjoint(f_, y, tt, sensealg=sa, **TOL), f, y0, t, params, w)
             for sa in ("interpolating", "backsolve")}
    for a, b in zip(grads["backsolve"], grads["interpolating"]):
        assert _rel(a, b) < 1e-7


@pytest.mark.parametrize("backward_solver", ["Tsit5", "KenCarp4", "Rodas5P"])
def test_analytic_vjp_and_jac_give_autograd_gradients(backward_solver):
    g = torch.Generator().manual_seed(5)
    W = (torch.randn(3, 3, dtype=D, generator=g) * 2).requires_grad_()
    c = torch.randn(2, 3, dtype=D, generator=g).requires_grad_()
    y0 = torch.randn(2, 3, dtype=D, generator=g).requires_grad_()
    f, t = TanhField(W, c), [0.0, 1.0]
    kw = dict(params=(W, c), backward_solver=backward_solver, **TOL)
    auto = torch.autograd.grad(odeint_adjoint(f, y0, t, **kw)[-1].sum(), (y0, W, c))
    analytic = torch.autograd.grad(odeint_adjoint(f, y0, t, jac=f.jac, vjp=f.vjp, **kw)[-1].sum(), (y0, W, c))
    assert f.calls["vjp"] > 0
    assert (f.calls["jac"] > 0) == (backward_solver != "Tsit5")
    for a, b in zip(analytic, auto):
        assert _rel(a, b) < 1e-8


@pytest.mark.parametrize("loss_at", ["every_time", "middle_only"])
def test_time_and_state_gradients_match_backprop(loss_at):
    f, y0, t, params, w = _mlp_case([0.0, 0.5, 1.0])
    if loss_at == "middle_only":   # the adjoint is 0 on the last interval (skipped, not integrated)
        w = w * torch.tensor([0.0, 1.0, 0.0], dtype=D).view(3, 1, 1)
    t = t.clone().requires_grad_()
    ref = torch.autograd.grad((torchdiffeq.odeint(f, y0, t, method="dopri5", **TOL) * w).sum(), (t, y0, *params))
    got = torch.autograd.grad((odeint_adjoint(f, y0, t, **TOL) * w).sum(), (t, y0, *params))
    for g, r in zip(got, ref):
        assert _rel(g, r) < 1e-6


@pytest.mark.parametrize("backward_solver", ["Tsit5", "KenCarp4"])
def test_stats_are_filled_and_accumulate(backward_solver):
    f, y0, t, params, w = _mlp_case([0.0, 1.0])
    stats = AdjointStats()
    ys = odeint_adjoint(f, y0, t, backward_solver=backward_solver, stats=stats)
    assert stats.forward.nfe > 0 and stats.forward.naccept > 0 and stats.backward.nfe == 0
    assert stats.dt_next is not None and stats.dt_next > 0
    (ys * w).sum().backward()
    first = stats.backward.nfe
    assert first > 0 and stats.backward.naccept > 0
    assert (stats.backward.njac > 0) == (backward_solver == "KenCarp4")
    (odeint_adjoint(f, y0, t, backward_solver=backward_solver, stats=stats) * w).sum().backward()
    assert stats.backward.nfe > first


def test_warm_start_dt0_is_used():
    f, y0, t, params, w = _mlp_case([0.0, 1.0])
    cold, warm = AdjointStats(), AdjointStats()
    odeint_adjoint(f, y0, t, stats=cold)
    odeint_adjoint(f, y0, t, stats=warm, dt0=cold.dt_next)
    # A warm start skips the initial-step heuristic, which costs one evaluation.
    assert warm.forward.nfe < cold.forward.nfe


def test_no_grad_call_skips_the_function():
    f, y0, t, params, w = _mlp_case([0.0, 1.0])
    ys = odeint_adjoint(f, y0, t)
    with torch.no_grad():
        plain = odeint_adjoint(f, y0, t)
    assert plain.grad_fn is None and ys.grad_fn is not None
    assert torch.equal(plain, ys.detach())


@pytest.mark.parametrize("kwargs, words", [
    (dict(sensealg="checkpointed"), "unknown sensealg"),
    (dict(backward_solver="Nope"), "unknown solver"),
    (dict(backward_rtol=-1.0), "tolerances"),
])
def test_bad_settings_raise_one_line(kwargs, words):
    f, y0, t, params, w = _mlp_case([0.0, 1.0])
    with pytest.raises(ValueError, match=words) as info:
        odeint_adjoint(f, y0, t, **kwargs)
    assert "\n" not in str(info.value)
