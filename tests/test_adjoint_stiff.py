"""Claims of pyjlode.ode.adjoint where the backward pass is stiff, and about its memory.

- A GRU-ODE batch scaled by 1/tau (tau = 0.03, rtol 1e-3, two tokens): torchdiffeq's
  odeint_adjoint (dopri5 backsolve) fails or is far off, while pyjlode's interpolating adjoint with
  a stiff backward solver is within 1e-3 of float64 direct backprop (the benchmark's failure, smaller).
- The forward pass records no autograd graph: it saves exactly the dense checkpoints.
- The backward's live autograd state does not grow with the number of forward steps.
"""
from __future__ import annotations

import functools
import weakref

import pytest
import torch
import torchdiffeq

from pyjlode.ode.adjoint import AdjointStats, odeint_adjoint
from pyjlode.ode.adjoint_dynamics import MEMO_SIZE
from pyjlode.ode.methods import get_method

D = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


# Found by a sweep: at this size torchdiffeq's adjoint is off by ~1e4 (tau 0.02: ~1e5; 0.05: ~10).
B, H, TOKENS, TAU = 4, 16, 2, 0.03
SOLVE = dict(rtol=1e-3, atol=1e-5)


class StiffGRUODE:
    """dh/dt = (1 - z) ⊙ (g - h) / tau for one token's drive c (a closure, as in the model)."""

    def __init__(self, U, c, tau):
        self.U, self.c, self.tau = U, c, tau

    def __call__(self, t, h):
        n, U, c = h.shape[-1], self.U, self.c
        rz = torch.sigmoid(c[:, :2 * n] + h @ U[:2 * n].T)
        r, z = rz[:, :n], rz[:, n:]
        g = torch.tanh(c[:, 2 * n:] + (r * h) @ U[2 * n:].T)
        return (1 - z) * (g - h) / self.tau


def _inputs():
    g = torch.Generator().manual_seed(0)
    U = (torch.randn(3 * H, H, dtype=D, generator=g) / H ** 0.5).requires_grad_()
    drive = torch.randn(TOKENS, B, 3 * H, dtype=D, generator=g).requires_grad_()
    return U, drive


def _sequence_grads(step):
    """Gradients of a per-token readout of h w.r.t. (U, drive); ``step(f, h, params) -> h_next``."""
    U, drive = _inputs()
    h, loss, w = torch.zeros(B, H, dtype=D), 0.0, torch.linspace(-1, 1, H, dtype=D)
    for i in range(TOKENS):
        h = step(StiffGRUODE(U, drive[i], TAU), h, (U, drive))
        loss = loss + (h * w).sum()
    return torch.autograd.grad(loss, (U, drive))


@functools.lru_cache(maxsize=None)
def _reference():
    """float64 direct backprop through torchdiffeq's dopri5 at rtol 1e-8 (agrees with RK4, dt=2e-3, to 1e-8)."""
    t = torch.tensor([0.0, 1.0], dtype=D)
    return _sequence_grads(lambda f, h, p: torchdiffeq.odeint(f, h, t, method="dopri5", rtol=1e-8, atol=1e-10)[-1])


def _rel(x, ref):
    return float((x - ref).norm() / ref.norm())


def test_torchdiffeq_adjoint_fails_or_is_far_off():
    t = torch.tensor([0.0, 1.0], dtype=D)

    def step(f, h, params):
        return torchdiffeq.odeint_adjoint(f, h, t, method="dopri5", adjoint_params=params, **SOLVE)[-1]

    try:
        grads = _sequence_grads(step)
    except (AssertionError, RuntimeError) as exc:   # "underflow in dt", "non-finite values in state"
        assert any(w in str(exc) for w in ("underflow", "non-finite", "max_num_steps")), str(exc)
        return
    assert max(_rel(g, r) for g, r in zip(grads, _reference())) > 1e-2


@pytest.mark.parametrize("backward_solver", ["KenCarp4"])
def test_interpolating_adjoint_with_stiff_backward_solver_is_accurate(backward_solver):
    stats = AdjointStats()

    def step(f, h, params):
        return odeint_adjoint(f, h, [0.0, 1.0], params=params, backward_solver=backward_solver,
                              stats=stats, **SOLVE)[-1]

    grads = _sequence_grads(step)
    for name, g, r in zip(("U", "drive"), grads, _reference()):
        assert _rel(g, r) < 1e-3, (name, _rel(g, r))
    assert stats.backward.njac > 0


# ---------------------------------------------------------------- memory

class _SavedCounter:
    """Counts tensors autograd saves while active, and the peak number alive at once."""

    def __init__(self):
        self.packed = self.alive = self.peak = 0

    def _gone(self):
        self.alive -= 1

    def pack(self, x):
        # Hold a detached alias: boxing an op's own output would tie output -> node -> box -> output
        # in a cycle the garbage collector cannot see, and nothing would ever look freed.
        box = _Box(x.detach())
        self.packed += 1
        self.alive += 1
        self.peak = max(self.peak, self.alive)
        weakref.finalize(box, self._gone)
        return box

    @staticmethod
    def unpack(box):
        return box.x

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)


class _Box:
    __slots__ = ("x", "__weakref__")

    def __init__(self, x):
        self.x = x


def _mlp():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).to(D)


def _y0():
    return torch.randn(2, 3, dtype=D, generator=torch.Generator().manual_seed(1)).requires_grad_()


class _Field(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _mlp()

    def forward(self, t, y):
        return self.net(y)


def test_forward_saves_only_the_dense_checkpoints():
    f, stats, counter = _Field(), AdjointStats(), _SavedCounter()
    y0 = _y0()
    with counter.hooks():
        ys = odeint_adjoint(f, y0, [0.0, 2.0], stats=stats, rtol=1e-8, atol=1e-8)
    n_params = len(list(f.parameters()))
    # ys, the parameters, y and f at every accepted step boundary and each step's dense-output
    # vectors (Tsit5's interpolant: 3): nothing from f's graph.
    n_dense = len(get_method("Tsit5").interpolant.M)
    assert counter.packed == 1 + n_params + 2 * (stats.forward.naccept + 1) + n_dense * stats.forward.naccept
    assert stats.forward.nfe > counter.packed   # f's own graph would save >= 2 tensors per evaluation
    assert type(ys.grad_fn).__name__ == "_OdeintAdjointBackward"
    assert ys.grad_fn.next_functions  # connected to y0 and the parameters only through the Function


def _saved_per_evaluation(f, y):
    counter = _SavedCounter()
    with counter.hooks(), torch.enable_grad():
        f(torch.tensor(0.0, dtype=D), y.detach().requires_grad_(True))
    return counter.packed


@pytest.mark.parametrize("backward_solver", ["Tsit5", "KenCarp4"])
def test_backward_live_state_does_not_grow_with_forward_steps(backward_solver):
    for span in (1.0, 8.0):
        f, stats, counter = _Field(), AdjointStats(), _SavedCounter()
        y0 = _y0()
        ys = odeint_adjoint(f, y0, [0.0, span], backward_solver=backward_solver, stats=stats, rtol=1e-8, atol=1e-8)
        with counter.hooks():
            ys[-1].sum().backward()
        # At most the memoised graphs (one per recent stage time) plus one Jacobian's are alive.
        bound = (MEMO_SIZE + 2) * _saved_per_evaluation(f, y0)
        assert counter.peak <= bound, (span, counter.peak, bound)
        assert counter.alive == 0                        # nothing retained after the backward
    assert counter.packed > 3 * bound                    # the long solve would break the bound if kept


@pytest.mark.cuda
def test_backward_peak_cuda_memory_does_not_grow_with_forward_steps(cuda_device):
    extra = []
    for span in (1.0, 8.0):
        f = _Field().to(cuda_device)
        y0 = torch.randn(64, 3, dtype=D, device=cuda_device, requires_grad=True)
        ys = odeint_adjoint(f, y0, [0.0, span], rtol=1e-8, atol=1e-8)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        ys[-1].sum().backward()
        torch.cuda.synchronize()
        extra.append(torch.cuda.max_memory_allocated() - base)
    assert extra[1] <= 1.5 * extra[0] + 2 ** 20
