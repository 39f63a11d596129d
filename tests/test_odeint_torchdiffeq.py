"""pyjlode.odeint takes torchdiffeq.odeint's calls: the same call gives the same states and gradients as
torchdiffeq (within the tolerances asked for), and an option it cannot honour is an error, not a warning."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pyjlode
from pyjlode.errors import InputError

torchdiffeq = pytest.importorskip("torchdiffeq")
f64 = torch.float64


class Spiral(nn.Module):
    """The vector field of torchdiffeq's examples/ode_demo.py: dy/dt = y³ A."""

    def __init__(self):
        super().__init__()
        self.A = nn.Parameter(torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=f64))

    def forward(self, t, y):
        return torch.mm(y ** 3, self.A)


Y0 = torch.tensor([[0.8, 0.0]], dtype=f64)
T = torch.linspace(0.0, 5.0, 26, dtype=f64)


def both(*args, **kwargs):
    return pyjlode.odeint(*args, **kwargs), torchdiffeq.odeint(*args, **kwargs)


def rel(a, b) -> float:
    return float((a - b).detach().norm() / b.detach().norm())


@pytest.mark.parametrize("call", [
    dict(),                                                              # dopri5, rtol 1e-7, atol 1e-9
    dict(method="dopri5", rtol=1e-3, atol=1e-4),
    dict(method="dopri5", options=dict(first_step=1e-3, max_num_steps=10_000)),
], ids=["defaults", "dopri5-loose", "first-step"])
def test_adaptive_calls_are_as_accurate_as_torchdiffeq(call):
    ours, theirs = both(Spiral(), Y0, T, **call)
    assert ours.shape == theirs.shape == (len(T), 1, 2)
    exact = torchdiffeq.odeint(Spiral(), Y0, T, rtol=1e-11, atol=1e-13)
    rtol = call.get("rtol", 1e-7)
    assert rel(ours, exact) < max(3 * rel(theirs, exact), 10 * rtol)


@pytest.mark.parametrize("call, tol", [
    (dict(method="rk4", options=dict(step_size=0.01)), 1e-9),           # classic RK4 against the 3/8 rule
    (dict(method="euler", options=dict(step_size=0.05)), 1e-12),         # the same Euler steps
    (dict(method="euler"), 1e-12),                                       # one step per output interval
], ids=["rk4-step-size", "euler-step-size", "euler-on-t"])
def test_fixed_step_calls_take_torchdiffeqs_steps(call, tol):
    ours, theirs = both(Spiral(), Y0, T, **call)
    assert ours.shape == theirs.shape == (len(T), 1, 2)
    assert rel(ours, theirs) < tol


def test_backwards_in_time_and_batched():
    y0 = torch.tensor([[0.8, 0.0], [0.5, -0.6], [0.3, 0.4]], dtype=f64)
    ours, theirs = both(Spiral(), y0, T.flip(0), rtol=1e-8, atol=1e-10)
    assert rel(ours, theirs) < 1e-6


def test_tuple_state():
    def oscillator(t, state):                   # x'' = -x as (x, v), a tuple in and out
        x, v = state
        return v, -x

    x0, v0 = torch.ones(3, dtype=f64), torch.zeros(3, dtype=f64)
    (xs, vs), (x_ref, v_ref) = both(oscillator, (x0, v0), T)
    assert xs.shape == x_ref.shape == (len(T), 3) and vs.shape == (len(T), 3)
    assert rel(xs, x_ref) < 1e-6 and rel(vs, v_ref) < 1e-6
    torch.testing.assert_close(xs[:, 0], torch.cos(T), rtol=0, atol=1e-6)


def test_gradients_as_torchdiffeq_backprop():
    grads = []
    for solve in (pyjlode.odeint, torchdiffeq.odeint):
        func = Spiral()
        solve(func, Y0, T[:11], rtol=1e-9, atol=1e-11).pow(2).sum().backward()
        grads.append(func.A.grad)
    assert rel(*grads) < 1e-6


def test_what_cannot_be_honoured_is_an_error():
    with pytest.raises(InputError, match="'step_t'.*first_step"):
        pyjlode.odeint(Spiral(), Y0, T, options=dict(step_t=T))
    with pytest.raises(ValueError, match="unknown solver 'bosh3'.*Tsit5"):
        pyjlode.odeint(Spiral(), Y0, T, method="bosh3")
