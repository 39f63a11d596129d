"""Spectrum of the GRU-ODE vector field's Jacobian along a trajectory through held-out text.

For each token i and layer l the field is f(h) = (1 - z)(g - h)/tau with that token's drive c_i; we take
its analytic Jacobian J = ∂f/∂h (B, H, H) at the token-end state h_i and its eigenvalues λ. Per token we
report max |Re λ| (the fastest time scale, 1/max|Re λ|, sets an explicit solver's stable step), the
stiffness ratio max|Re λ| / min|Re λ|, and max Re λ (> 0: the flow locally expands). The adjoint's
backward pass, da/dt = -Jᵀa run from t1 back to t0, is da/ds = Jᵀa in reversed time s: it sees the same
eigenvalues, so a stiff forward pass means a stiff backward pass (along the same trajectory).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import InputError

TINY = 1e-12  # floor for min |Re λ| so a purely imaginary pair gives a large, finite ratio


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


def eig_summary(J: torch.Tensor) -> dict[str, torch.Tensor]:
    """Eigenvalues (float64) of a batch of Jacobians (N, H, H) and their per-matrix statistics."""
    lam = torch.linalg.eigvals(J.detach().double())               # (N, H) complex128
    re = lam.real
    abs_re = re.abs()
    max_abs = abs_re.max(dim=-1).values
    min_abs = abs_re.min(dim=-1).values.clamp_min(TINY)
    return {"eig": lam, "max_abs_re": max_abs, "min_abs_re": min_abs, "ratio": max_abs / min_abs,
            "max_re": re.max(dim=-1).values}


@dataclass
class LayerSpectrum:
    """Per-token statistics of one layer (arrays over the sampled tokens, in text order)."""

    layer: int
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
        """Median / 95th percentile / max over tokens of the per-token statistics."""
        a = np.asarray(self.max_abs_re, dtype=float)
        r = np.asarray(self.ratio, dtype=float)
        mr = np.asarray(self.max_re, dtype=float)
        if a.size == 0:
            return {"layer": self.layer, "tokens": 0}
        return {"layer": self.layer, "tokens": int(a.size),
                "max_abs_re_median": float(np.median(a)), "max_abs_re_p95": float(np.percentile(a, 95)),
                "max_abs_re_max": float(a.max()), "ratio_median": float(np.median(r)),
                "ratio_p95": float(np.percentile(r, 95)), "ratio_max": float(r.max()),
                "frac_expanding": float((mr > 0).mean())}


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
    device = model.embedding.weight.device
    ids = ids[:max_tokens].to(device)
    out = [LayerSpectrum(layer=l) for l in range(len(cells))]
    h = [torch.zeros(1, c.hidden_size, device=device) for c in cells]
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


