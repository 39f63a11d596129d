"""Spectrum of the GRU-ODE vector field's Jacobian along a trajectory through held-out text.

For each token i and layer l the field is f(h) = (1 - z)(g - h)/tau with that token's drive c_i; we take
its analytic Jacobian J = ∂f/∂h (B, H, H) at the token-end state h_i and its eigenvalues λ. Per token we
report max |Re λ| (the fastest time scale, 1/max|Re λ|, sets an explicit solver's stable step) and
max |Re λ|·dt (that step against the token interval: Tsit5's stability region reaches about 3.5 along the
negative real axis, so far above that an explicit solver's steps are set by stability, not accuracy), the
stiffness ratio max|Re λ| / min|Re λ| over the decaying modes (Re λ < 0; Lambert's definition), and
max Re λ (> 0: the flow locally expands). The adjoint's backward pass, da/dt = -Jᵀa run from t1 back to
t0, is da/ds = Jᵀa in reversed time s: it sees the same eigenvalues, so a stiff forward pass means a stiff
backward pass (along the same trajectory).

:func:`watch_last_call` and :func:`last_call_stiffness` give training the same figures for a handful of
the states its validation pass ends in.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import InputError

# eigvals costs O(H³) per state: a training-time probe takes PROBE_WORK // H² states per layer (1 at
# H = 256, 4 at 128, 16 at 64), in the model's precision: about 1 % of an evaluation of the default 8192
# validation tokens in 32 columns (measured on one CPU thread, fixed tau = 1, the cheapest evaluation;
# twice as many states measured 1.5-2 %)
PROBE_WORK = 2 ** 16


def gruode_cells(model) -> list:
    """The GRUODECell layers of a LanguageModel with a gru-ode core.

    Raises:
        InputError: the model is not a GRU-ODE (one line naming the fix).
    """
    from ..models.gru_ode import GRUODE

    rnn = getattr(getattr(model, "core", None), "rnn", None)
    if not isinstance(rnn, GRUODE):
        cell = getattr(getattr(model, "config", None), "cell", type(model).__name__)
        raise InputError(f"the Jacobian spectrum needs a gru-ode checkpoint, got a {cell!r} model; "
                         "pass a checkpoint trained with `model` gru-ode (baselines go in `baseline`)")
    return list(rnn.cells)


def jacobian(cell, drive: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Analytic ∂f/∂h (N, H, H) of ``cell``'s field at states h (N, H) with drives (N, 3H)."""
    return cell.field(drive).jac(None, h)


def eig_summary(J: torch.Tensor, dt: float = 1.0, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """Eigenvalues of a batch of Jacobians (N, H, H), computed in ``dtype``, and their per-matrix statistics.

    max_abs_re (and max_abs_re_dt, times ``dt``) is over every eigenvalue; min_abs_re and the stiffness
    ratio are over the decaying ones (Re λ < 0), NaN for a matrix that has none.
    """
    lam = torch.linalg.eigvals(J.detach().to(dtype))             # (N, H) complex
    re = lam.real
    max_abs = re.abs().max(dim=-1).values
    decay = torch.where(re < 0, -re, torch.nan)
    fastest = decay.nan_to_num(-math.inf).max(dim=-1).values
    slowest = decay.nan_to_num(math.inf).min(dim=-1).values
    none = torch.isinf(slowest)
    ratio = torch.where(none, torch.nan, fastest / slowest)
    return {"eig": lam, "max_abs_re": max_abs, "max_abs_re_dt": max_abs * dt,
            "min_abs_re": torch.where(none, torch.nan, slowest), "ratio": ratio,
            "max_re": re.max(dim=-1).values}


@dataclass
class LayerSpectrum:
    """Per-token statistics of one layer (arrays over the sampled tokens, in text order)."""

    layer: int
    dt: float = 1.0                                           # the token interval, for max_abs_re_dt
    tau_range: tuple[float, float] = (1.0, 1.0)               # smallest and largest tau of the layer
    positions: list[int] = field(default_factory=list)
    max_abs_re: list[float] = field(default_factory=list)
    min_abs_re: list[float] = field(default_factory=list)
    ratio: list[float] = field(default_factory=list)
    max_re: list[float] = field(default_factory=list)
    eigs: list[np.ndarray] = field(default_factory=list)      # a few tokens' full spectra, for plots

    def add(self, positions, summary: dict, keep_eigs: int) -> None:
        self.positions += [int(p) for p in positions]
        for key in ("max_abs_re", "min_abs_re", "ratio", "max_re"):
            getattr(self, key).extend(summary[key].tolist())
        room = keep_eigs - len(self.eigs)
        if room > 0:
            self.eigs += list(summary["eig"][:room].cpu().numpy())

    def summary(self) -> dict:
        """Median / 95th percentile / max over tokens of the per-token statistics (the ratio's over the
        tokens that have a decaying mode)."""
        a = np.asarray(self.max_abs_re, dtype=float)
        r = np.asarray(self.ratio, dtype=float)
        r = r[~np.isnan(r)]
        mr = np.asarray(self.max_re, dtype=float)
        if a.size == 0:
            return {"layer": self.layer, "tokens": 0}
        out = {"layer": self.layer, "tokens": int(a.size), "tau_min": self.tau_range[0],
               "tau_max": self.tau_range[1], "max_abs_re_median": float(np.median(a)),
               "max_abs_re_p95": float(np.percentile(a, 95)), "max_abs_re_max": float(a.max()),
               "max_abs_re_dt_median": float(np.median(a)) * self.dt,
               "max_abs_re_dt_max": float(a.max()) * self.dt,
               "frac_expanding": float((mr > 0).mean())}
        if r.size:
            out.update(ratio_median=float(np.median(r)), ratio_p95=float(np.percentile(r, 95)),
                       ratio_max=float(r.max()))
        return out


def tau_range(cell) -> tuple[float, float]:
    """The smallest and largest time constant of a GRUODECell (learned or fixed)."""
    tau = cell.tau_value()
    if isinstance(tau, torch.Tensor):
        return float(tau.min()), float(tau.max())
    return float(tau), float(tau)


@torch.no_grad()
def trajectory_spectrum(model, ids: torch.Tensor, *, max_tokens: int = 400, every: int = 1,
                        window: int = 64, keep_eigs: int = 50) -> list[LayerSpectrum]:
    """Walk one stream of held-out tokens through the GRU-ODE, state carried, and take the Jacobian
    spectrum at every ``every``-th token-end state of every layer.

    Args:
        model: a LanguageModel with a gru-ode core (eval mode is set here; no dropout).
        ids: 1-D token ids of the held-out text.
        max_tokens: tokens walked (the first ones of ``ids``).
        every: take the spectrum at one token in ``every`` (eigvals cost O(H³) each).
        window: tokens per forward call (the state is carried, so this bounds memory only).
        keep_eigs: how many full spectra per layer to keep for the eigenvalue scatter.

    Returns:
        One LayerSpectrum per layer.
    """
    cells = gruode_cells(model)
    model.eval()
    weight = model.embedding.weight
    device = weight.device
    ids = ids[:max_tokens].to(device)
    out = [LayerSpectrum(layer=l, dt=c.config.dt, tau_range=tau_range(c)) for l, c in enumerate(cells)]
    h = [torch.zeros(1, c.hidden_size, device=device, dtype=weight.dtype) for c in cells]
    every = max(1, int(every))
    for start in range(0, len(ids), window):
        x = model.embedding(ids[start:start + window].view(-1, 1))      # (t, 1, E)
        pick = [k for k in range(x.shape[0]) if (start + k) % every == 0]
        for l, cell in enumerate(cells):
            hs = cell.run(x, h[l])                                      # (t, 1, H) token-end states
            if pick:
                c = cell.drive(x)[pick, 0]                              # (n, 3H)
                out[l].add([start + k for k in pick], eig_summary(jacobian(cell, c, hs[pick, 0])),
                           keep_eigs)
            h[l], x = hs[-1], hs
    return out


def per_token_series(spectra: list[LayerSpectrum]) -> dict[str, np.ndarray]:
    """Series for plots.plot_spectrum: max |Re λ| and stiffness ratio per token, per layer."""
    series = {}
    for s in spectra:
        tag = f" (layer {s.layer})" if len(spectra) > 1 else ""
        series["max |Re λ|" + tag] = np.asarray(s.max_abs_re)
        series["stiffness ratio" + tag] = np.asarray(s.ratio)
    return series




# --------------------------------------------------------------------------------------------------
# during training: the states a validation pass ends in


@contextmanager
def watch_last_call(model):
    """Within the block, remember the tokens and the final recurrent state of ``model``'s last forward
    call (a forward hook, removed on exit); yields the dict they go in."""
    seen: dict = {}

    def hook(module, args, output):
        seen["tokens"], seen["state"] = args[0], output[1]

    handle = model.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def probe_count(hidden_size: int, columns: int) -> int:
    """States per layer the training-time probe takes: PROBE_WORK // H², at least 1, at most ``columns``."""
    return max(1, min(columns, PROBE_WORK // hidden_size ** 2))


@torch.no_grad()
def last_call_stiffness(model, seen: dict) -> dict[str, float]:
    """Stiffness of a GRU-ODE language model at the states its last forward call ended in.

    ``seen`` comes from :func:`watch_last_call`. Per layer, :func:`probe_count` columns evenly spread over
    the batch are taken at the last token: the field of that token's drive, at its token-end state (the
    next layer's input is this layer's state there, as in the model without dropout).

    Returns:
        {} when nothing was seen, else stiffness_ratio (median over the probed states of every layer that
        have a decaying mode), stiffness_ratio_max, max_abs_re_dt (max |Re λ|·dt, the largest over the
        states) and tau_min / tau_max (over every layer).
    """
    if "state" not in seen:
        return {}
    cells = gruode_cells(model)
    state = seen["state"]
    x = model.embedding(seen["tokens"][-1])                          # (B, E)
    pick = torch.linspace(0, x.shape[0] - 1, probe_count(cells[0].hidden_size, x.shape[0])).round().long()
    ratios, fastest, taus = [], [], []
    for l, cell in enumerate(cells):
        h = state[l]
        J = jacobian(cell, cell.drive(x[pick]), h[pick])
        s = eig_summary(J, cell.config.dt, J.dtype)
        ratios.append(s["ratio"])
        fastest.append(s["max_abs_re_dt"])
        taus += tau_range(cell)
        x = h
    r = torch.cat(ratios)
    r = r[~r.isnan()]
    out = {"max_abs_re_dt": float(torch.cat(fastest).max()), "tau_min": min(taus), "tau_max": max(taus)}
    if r.numel():
        out.update(stiffness_ratio=float(r.quantile(0.5)), stiffness_ratio_max=float(r.max()))
    return out
