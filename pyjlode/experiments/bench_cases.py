"""The cases of the GRU-ODE training-step benchmark (``pyjlode.experiments.bench`` drives them).

One training step = forward over T tokens of a (B, I) batch, loss = sum over tokens of mean(h²),
backward to the four GRU weights (weight_ih, weight_hh, bias_ih, bias_hh). Every case gets copies of
the same float64 master weights and inputs; the torchdiffeq cases solve the same GRU-ODE field per
token over [0, 1] with the drive c = W x + b held fixed, as pyjlode does.
"""
from __future__ import annotations

import math
import platform
import statistics
import time
from dataclasses import replace
from datetime import date

import torch
import torch.nn.functional as F
from torch import Tensor

from .bench_config import BenchConfig

PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
REFERENCE_TOL = (1e-9, 1e-11)          # rtol, atol of the float64 reference gradient


# ---------------------------------------------------------------------------------------------- setup
def make_inputs(cfg: BenchConfig) -> tuple[dict, Tensor]:
    """Float64 CPU master weights (nn.GRU's init) and inputs x (T, B, I); cases cast copies."""
    g = torch.Generator().manual_seed(cfg.seed)
    H, I = cfg.hidden, cfg.input
    bound = 1.0 / math.sqrt(H)
    shapes = {"weight_ih": (3 * H, I), "weight_hh": (3 * H, H), "bias_ih": (3 * H,), "bias_hh": (3 * H,)}
    w = {k: (torch.rand(s, generator=g, dtype=torch.float64) * 2 - 1) * bound for k, s in shapes.items()}
    x = torch.randn(cfg.tokens, cfg.batch, I, generator=g, dtype=torch.float64)
    return w, x


def _leaves(w: dict, x: Tensor, device, dtype) -> tuple[dict, Tensor]:
    p = {k: v.to(device=device, dtype=dtype).requires_grad_(True) for k, v in w.items()}
    return p, x.to(device=device, dtype=dtype)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _drive(p: dict, x: Tensor, reset_after: bool) -> Tensor:
    """c = W x + b (T, B, 3H), the same fold of bias_hh as GRUODECell.drive."""
    H = p["weight_hh"].shape[1]
    if reset_after:
        b = torch.cat([p["bias_ih"][:2 * H] + p["bias_hh"][:2 * H], p["bias_ih"][2 * H:]])
    else:
        b = p["bias_ih"] + p["bias_hh"]
    return F.linear(x, p["weight_ih"], b)


def loss_of(hs: Tensor) -> Tensor:
    """Sum over tokens of mean(h²)."""
    return hs.square().mean(dim=(1, 2)).sum()


# ---------------------------------------------------------------------------------------------- torchdiffeq
class TorchdiffeqField(torch.nn.Module):
    """The GRU-ODE field written as a torchdiffeq user would (plain ops, autograd for everything).

    Counts calls in ``counter[counter["phase"]]`` ("fwd" or "bwd"); with ``hooks`` it counts the
    outputs that receive a gradient as "bwd" (direct backprop's VJPs).
    """

    def __init__(self, U: Tensor, c: Tensor, tau: float, reset_after: bool, b_hn: Tensor | None, counter: dict):
        super().__init__()
        self.U, self.c, self.tau, self.reset_after, self.b_hn = U, c, float(tau), reset_after, b_hn
        self.nfe = counter              # shared by the fields of all tokens
        self.hooks = False

    def _count_bwd(self, grad):
        self.nfe["bwd"] += 1

    def forward(self, t, h: Tensor) -> Tensor:
        self.nfe[self.nfe["phase"]] += 1
        H, U, c = h.shape[-1], self.U, self.c
        if self.reset_after:
            gh = F.linear(h, U, None if self.b_hn is None else torch.cat([self.b_hn.new_zeros(2 * H), self.b_hn]))
            rz = torch.sigmoid(c[:, :2 * H] + gh[:, :2 * H])
            g = torch.tanh(c[:, 2 * H:] + rz[:, :H] * gh[:, 2 * H:])
        else:
            rz = torch.sigmoid(torch.addmm(c[:, :2 * H], h, U[:2 * H].t()))
            g = torch.tanh(torch.addmm(c[:, 2 * H:], rz[:, :H] * h, U[2 * H:].t()))
        out = (1 - rz[:, H:]) * (g - h) / self.tau
        if self.hooks and out.requires_grad:
            out.register_hook(self._count_bwd)
        return out


def _torchdiffeq_forward(p, x, cfg, adjoint: bool, rtol=None, atol=None, checkpoint=False):
    import torchdiffeq

    H = cfg.hidden
    b_hn = p["bias_hh"][2 * H:] if cfg.reset_after else None
    counter = {"fwd": 0, "bwd": 0, "phase": "fwd"}
    c = _drive(p, x, cfg.reset_after)
    t = torch.tensor([0.0, 1.0], dtype=x.dtype, device=x.device)
    opts = dict(rtol=rtol or cfg.rtol, atol=atol or cfg.atol, method="dopri5")
    h, hs = x.new_zeros(cfg.batch, H), []

    def one(h, c_i):
        # one field per token: the adjoint's backward calls it after every token's forward has run
        fld = TorchdiffeqField(p["weight_hh"], c_i, cfg.tau, cfg.reset_after, b_hn, counter)
        fld.hooks = not adjoint
        if adjoint:
            extra = (b_hn,) if b_hn is not None else ()
            return torchdiffeq.odeint_adjoint(fld, h, t, adjoint_params=(p["weight_hh"], c_i, *extra), **opts)[-1]
        return torchdiffeq.odeint(fld, h, t, **opts)[-1]

    for c_i in c:
        if checkpoint:
            h = torch.utils.checkpoint.checkpoint(one, h, c_i, use_reentrant=False)
        else:
            h = one(h, c_i)
        hs.append(h)
    return torch.stack(hs), counter


# ---------------------------------------------------------------------------------------------- one step
def _module(case: str, w: dict, cfg: BenchConfig, sensealg: str | None = None):
    """The torch module a pyjlode / nn.GRU case runs, holding a copy of the master weights w, and
    its four parameters in PARAM_NAMES order (nn.GRU keeps its flat cuDNN weight layout).
    ``sensealg`` overrides the GRU-ODE's gradient method (e.g. "direct")."""
    if case == "gru":
        mod = torch.nn.GRU(cfg.input, cfg.hidden)
        names = [f"{k}_l0" for k in PARAM_NAMES]
    else:
        from ..models.gru_ode import GRUODE

        solver = {"tsit5": ("Tsit5", "Tsit5"), "kencarp4": ("Tsit5", "KenCarp4"), "euler": ("Euler", None),
                  "kencarp4-krylov": ("Tsit5", "KenCarp4:krylov"), "auto": ("auto", None),
                  "pair-krylov": ("KenCarp4:krylov", "KenCarp4:krylov")}[case]
        extra = {} if sensealg is None else {"sensealg": sensealg}
        mod = GRUODE(cfg.input, cfg.hidden, solver=solver[0], backward_solver=solver[1], rtol=cfg.rtol,
                     atol=cfg.atol, dt=1.0, tau=cfg.tau, reset_after=cfg.reset_after, **extra)
        names = [f"cells.0.{k}" for k in PARAM_NAMES]
    mod = mod.to(device=cfg.device, dtype=cfg.torch_dtype)
    params = dict(mod.named_parameters())
    with torch.no_grad():
        for k, name in zip(PARAM_NAMES, names):
            params[name].copy_(w[k])
    if case == "gru":
        mod.flatten_parameters()
    return mod, [params[name] for name in names]


def run_step(case: str, w: dict, x64: Tensor, cfg: BenchConfig) -> dict:
    """One timed training step of ``case``: seconds forward/backward, NFE per token, loss, grads."""
    dev, T = cfg.device, cfg.tokens
    p, x = _leaves(w, x64, dev, cfg.torch_dtype)
    if case.startswith("td-"):
        params = [p[k] for k in PARAM_NAMES]
    else:
        mod, params = _module(case, w, cfg)
    h0 = x.new_zeros(1, cfg.batch, cfg.hidden)
    _sync(dev)
    t0 = time.perf_counter()
    if case.startswith("td-"):
        hs, counter = _torchdiffeq_forward(p, x, cfg, adjoint=case == "td-adjoint")
        counter["phase"] = "bwd"
    else:
        hs, _ = mod(x, h0)
    loss = loss_of(hs)
    _sync(dev)
    t1 = time.perf_counter()
    grads = torch.autograd.grad(loss, params)
    _sync(dev)
    t2 = time.perf_counter()
    if case.startswith("td-"):
        nfe = (counter["fwd"] / T, counter["bwd"] / T)
    elif case == "gru":
        nfe = (1.0, 1.0)
    else:
        st = mod.solver_stats()
        nfe = (st["nfe_fwd_per_token"], st["nfe_bwd_per_token"])
    return dict(fwd_s=t1 - t0, bwd_s=t2 - t1, nfe=nfe, loss=float(loss.detach()),
                grads=[g.detach() for g in grads])


def peak_memory_mb(case: str, w: dict, x64: Tensor, cfg: BenchConfig) -> float:
    """Peak bytes allocated above the step's start: CUDA's allocator statistics, or on CPU the running
    sum of torch.profiler's allocation events (torch's CPU allocator only; Python objects excluded)."""
    if torch.device(cfg.device).type == "cuda":
        _sync(cfg.device)
        base = torch.cuda.memory_allocated(cfg.device)
        torch.cuda.reset_peak_memory_stats(cfg.device)
        run_step(case, w, x64, cfg)
        return (torch.cuda.max_memory_allocated(cfg.device) - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    from .memory import peak_allocated

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run_step(case, w, x64, cfg)
    return peak_allocated(prof) / 2**20


def reference_grads(w: dict, x64: Tensor, cfg: BenchConfig) -> list:
    """Float64 gradients from torchdiffeq dopri5 at rtol 1e-9, atol 1e-11, backprop through the
    solver (checkpointed per token); pyjlode's Tsit5 at the same tolerances without torchdiffeq."""
    p, x = _leaves(w, x64, "cpu", torch.float64)
    try:
        hs, _ = _torchdiffeq_forward(p, x, replace(cfg, device="cpu"), adjoint=False, rtol=REFERENCE_TOL[0],
                                     atol=REFERENCE_TOL[1],
                                     checkpoint=True)
    except ImportError:
        ref = replace(cfg, device="cpu", dtype="float64", rtol=REFERENCE_TOL[0], atol=REFERENCE_TOL[1])
        mod, params = _module("tsit5", w, ref, sensealg="direct")
        hs, _ = mod(x, x.new_zeros(1, cfg.batch, cfg.hidden))
        return list(torch.autograd.grad(loss_of(hs), params))
    return list(torch.autograd.grad(loss_of(hs), [p[k] for k in PARAM_NAMES]))


def rel_error(grads: list, ref: list) -> float:
    num = sum(float((g.double().cpu() - r).square().sum()) for g, r in zip(grads, ref))
    den = sum(float(r.square().sum()) for r in ref)
    return math.sqrt(num / den)


# ---------------------------------------------------------------------------------------------- floor
def cost_floor(cfg: BenchConfig, n: int = 200) -> dict:
    """Median seconds of one batched GRU-ODE field evaluation f(h) and of its analytic VJP (no grad):
    the cost of one NFE that no solver can avoid."""
    from ..models.gru_ode_field import GRUODEField

    w, x64 = make_inputs(cfg)
    dt, dev = cfg.torch_dtype, cfg.device
    U = w["weight_hh"].to(dev, dt)
    c = _drive({k: v.to(dev, dt) for k, v in w.items()}, x64[0].to(dev, dt), cfg.reset_after)
    b_hn = w["bias_hh"][2 * cfg.hidden:].to(dev, dt) if cfg.reset_after else None
    fld = GRUODEField(U, c, b_hn, cfg.tau, cfg.reset_after)
    h = torch.randn(cfg.batch, cfg.hidden, dtype=dt, device=dev).mul_(0.5)
    a = torch.randn_like(h)
    out = {}
    with torch.no_grad():
        for name, fn in (("f", lambda: fld(None, h)), ("vjp", lambda: fld.vjp(None, h, a))):
            for _ in range(5):
                fn()
            times, chunk = [], max(n // 10, 1)
            for _ in range(10):
                _sync(dev)
                t0 = time.perf_counter()
                for _ in range(chunk):
                    fn()
                _sync(dev)
                times.append((time.perf_counter() - t0) / chunk)
            out[name] = statistics.median(times)
    return out


def machine() -> str:
    """One line naming the hardware and the torch build."""
    cores = len(__import__("os").sched_getaffinity(0))
    text = f"{cores}-core {platform.machine()} CPU ({torch.get_num_threads()} torch threads)"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return f"{text}, torch {torch.__version__}, {date.today().isoformat()}"
