"""PNG plots for `pyjlode compare` and `pyjlode analyze` (matplotlib, Agg backend, no display).

Every function draws one figure of a fixed pixel size (``FIGSIZE`` inches at ``DPI``; no tight bounding box, so
tests can check the size), writes it to ``path`` and returns the path.
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # never open a window, also on machines with a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogFormatter  # noqa: E402

FIGSIZE = (6.4, 4.0)  # inches
DPI = 100             # -> 640 x 400 pixels
PIXELS = (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))  # (width, height)

Curve = Sequence[tuple[float, float]]  # (x, y) points of one run


def _new_figure(title: str, xlabel: str, ylabel: str):
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _log_y(ax) -> None:
    """Log y axis with plain tick labels ("20", "300"), not "2×10¹", which crowds out the axis label."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(3, 1.2)))


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.91)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _clean(curve: Curve) -> np.ndarray:
    """(n, 2) array of the finite points of a curve, sorted by x."""
    pts = np.array([(float(x), float(y)) for x, y in curve], dtype=float).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    return pts[np.argsort(pts[:, 0], kind="stable")]


def mean_curve(curves: Sequence[Curve]) -> np.ndarray | None:
    """Mean over seeds, point by point: the k-th point of the mean averages the k-th (x, y) of every run.

    Runs of a comparison evaluate on the same schedule, so their k-th points belong together even when
    their wall-clock times differ; the mean stops where the shortest run stops.

    Returns:
        (n, 2) array, or None when no curve has points.
    """
    arrays = [a for a in (_clean(c) for c in curves) if len(a)]
    if not arrays:
        return None
    n = min(len(a) for a in arrays)
    return np.stack([a[:n] for a in arrays]).mean(axis=0)


def _plot_groups(ax, groups: Mapping[str, Sequence[Curve]], *, log_y: bool) -> bool:
    """One thin line per run and a bold mean per group; returns whether anything was drawn."""
    drawn = False
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, curves) in enumerate(groups.items()):
        color = colors[k % len(colors)]
        runs = [a for a in (_clean(c) for c in curves) if len(a)]
        single = len(runs) == 1  # a lone run is its own mean: draw it bold
        for a in runs:
            ax.plot(a[:, 0], a[:, 1], color=color, lw=1.8 if single else 0.8,
                    alpha=1.0 if single else 0.35, marker="." if len(a) < 4 else None)
        mean = mean_curve(runs) if len(runs) > 1 else None
        if mean is not None:
            ax.plot(mean[:, 0], mean[:, 1], color=color, lw=2.0)
        if runs:
            suffix = f" (mean of {len(runs)})" if len(runs) > 1 else ""
            ax.plot([], [], color=color, lw=2.0, label=label + suffix)
            drawn = True
    if drawn:
        ax.legend(fontsize=8)
        if log_y:
            _log_y(ax)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    return drawn


def plot_ppl_curves(groups: Mapping[str, Sequence[Curve]], path: str, *, xlabel: str,
                    title: str = "Validation perplexity") -> str:
    """Validation perplexity against wall-clock time or tokens, one line per run and the mean per group.

    Args:
        groups: label (model or GRU-ODE variant) -> list of curves, one per seed, of (x, ppl) points.
        path: PNG to write.
        xlabel: axis label, e.g. "wall-clock time (s)" or "training tokens".
        title: figure title.

    Returns:
        path.
    """
    fig, ax = _new_figure(title, xlabel, "validation perplexity")
    _plot_groups(ax, groups, log_y=True)
    return _save(fig, path)


def plot_nfe(groups: Mapping[str, Sequence[Curve]], path: str, *,
             title: str = "GRU-ODE solver work over training") -> str:
    """NFE per token over training (x: training tokens), e.g. labels "Tsit5/Tsit5 fwd" and "... bwd".

    Args:
        groups: label -> curves of (tokens, NFE per token), one per seed.
        path: PNG to write.
        title: figure title.

    Returns:
        path.
    """
    fig, ax = _new_figure(title, "training tokens", "NFE per token")
    _plot_groups(ax, groups, log_y=False)
    return _save(fig, path)


def plot_tradeoff(rows: Sequence[Mapping], path: str, *, ppl_key: str = "best_val_ppl",
                  title: str = "Accuracy against compute") -> str:
    """Perplexity against solver work (forward + backward NFE per token, left) and training time per token
    (right), one labelled point per row, with error bars when rows carry ``<key>_std``.

    Args:
        rows: compare's aggregated rows (``label``, ``ppl_key``, ``nfe_fwd_per_token``,
            ``nfe_bwd_per_token``, ``ms_per_token`` and their ``_std``).
        path: PNG to write.
    """
    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI, sharey=True)
    fig.suptitle(title, fontsize=10)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, xlabel in zip(axes, ("NFE per token (fwd + bwd)", "training ms per token")):
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(v)[0] in "25" else ""))
        ax.margins(0.15)
    axes[0].set_ylabel("validation perplexity")
    drawn = False
    for k, r in enumerate(rows):
        if r.get(ppl_key) is None:
            continue
        y, yerr = _finite(r[ppl_key]), _finite(r.get(ppl_key + "_std")) or None
        nfe = _finite(r.get("nfe_fwd_per_token")) + _finite(r.get("nfe_bwd_per_token"))
        label = str(r.get("label", "")).removeprefix("gru-ode ")
        for ax, x, xerr in ((axes[0], nfe, None), (axes[1], _finite(r.get("ms_per_token")),
                                                   _finite(r.get("ms_per_token_std")) or None)):
            if x > 0:
                ax.errorbar([x], [y], yerr=yerr, xerr=xerr, fmt="o", ms=5, color=colors[k % len(colors)],
                            label=label if ax is axes[0] else None)
                drawn = True
    if drawn:
        fig.legend(loc="lower center", ncol=4, fontsize=7, frameon=False)
    else:
        axes[0].text(0.5, 0.5, "no data", ha="center", va="center", transform=axes[0].transAxes)
    fig.subplots_adjust(left=0.11, right=0.98, bottom=0.3, top=0.9, wspace=0.08)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_spectrum(per_token: Mapping[str, np.ndarray], path: str, *, positions: Sequence[int] | None = None,
                  title: str = "Jacobian spectrum along held-out text") -> str:
    """Per-token largest |Re λ| and stiffness ratio of the vector field's Jacobian (log scale).

    Args:
        per_token: series name -> 1-D array over token positions (e.g. "max |Re λ|", "stiffness ratio").
        path: PNG to write.
        positions: token position of each value (default 0, 1, ...).
        title: figure title.

    Returns:
        path.
    """
    fig, ax = _new_figure(title, "token position", "value (log scale)")
    drawn = False
    for label, values in per_token.items():
        v = np.asarray(values, dtype=float)
        x = np.arange(v.size) if positions is None or len(positions) != v.size else np.asarray(positions)
        if v.size:
            ax.plot(x, v, lw=1.0, label=label)
            drawn = True
    if drawn:
        _log_y(ax)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_eigenvalues(eigs: np.ndarray, path: str, *, title: str = "Jacobian eigenvalues") -> str:
    """Scatter of complex eigenvalues (all sampled tokens pooled) in the complex plane."""
    eigs = np.asarray(eigs).reshape(-1)
    fig, ax = _new_figure(title, "Re λ", "Im λ")
    if eigs.size:
        ax.scatter(eigs.real, eigs.imag, s=4, alpha=0.4)
        ax.axvline(0.0, color="k", lw=0.6)
    return _save(fig, path)


def plot_evolution(steps: Sequence[float], series: Mapping[str, Sequence[float]], path: str, *,
                   xlabel: str = "training step",
                   title: str = "Jacobian spectrum over training") -> str:
    """Summary statistics of the spectrum (e.g. median/max over tokens) against checkpoint step."""
    fig, ax = _new_figure(title, xlabel, "value (log scale)")
    positive = False
    for label, values in series.items():
        v = np.asarray(values, dtype=float)
        ax.plot(np.asarray(steps, dtype=float), v, marker="o", label=label)
        positive |= bool(np.any(v > 0))
    if series:
        ax.legend(fontsize=8)
        if positive:
            _log_y(ax)
    return _save(fig, path)


def plot_robustness(curves: Mapping[str, Sequence[tuple[float, float]]], path: str, *,
                    title: str = "Perplexity under Gaussian embedding noise") -> str:
    """Perplexity against relative noise sigma, one line per model (after Yan et al. 2020).

    Args:
        curves: label -> (sigma, perplexity) points.
        path: PNG to write.
        title: figure title.

    Returns:
        path.
    """
    fig, ax = _new_figure(title, "noise sigma / embedding RMS", "perplexity")
    _plot_groups(ax, {k: [v] for k, v in curves.items()}, log_y=True)
    return _save(fig, path)


def plot_solver_pairs(rows: Sequence[Mapping], path: str, *,
                      title: str = "Solver work per pair (forward / backward)") -> str:
    """Grouped bars of forward and backward NFE per token for each (solver, backward_solver) pair."""
    fig, ax = _new_figure(title, "solver / backward solver", "NFE per token")
    labels = [str(r["pair"]) for r in rows]
    x = np.arange(len(labels))
    fwd = [_finite(r.get("nfe_fwd_per_token")) for r in rows]
    bwd = [_finite(r.get("nfe_bwd_per_token")) for r in rows]
    ax.bar(x - 0.2, fwd, width=0.4, label="forward")
    ax.bar(x + 0.2, bwd, width=0.4, label="backward")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    if rows:
        ax.legend(fontsize=8)
    return _save(fig, path)


def _finite(v) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0
