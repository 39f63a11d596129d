"""The ODE-Net experiment's two figures, in the size and style of :mod:`pyjlode.experiments.plots`."""
from __future__ import annotations

from typing import Mapping, Sequence

from .plots import _new_figure, _save, plt


def _by(rows: Sequence[Mapping], key: str) -> dict[str, list[Mapping]]:
    groups: dict[str, list[Mapping]] = {}
    for r in rows:
        groups.setdefault(str(r[key]), []).append(r)
    return groups


def plot_error_vs_nfe(tol_rows: Sequence[Mapping], path: str,
                      references: Sequence[tuple[str, float, float]] = ()) -> str:
    """Test error against forward NFE per solve: one line per trained ODE model across tolerances (points
    labelled by rtol), and ``references`` as single points ``(label, evaluations, error)``, e.g. a ResNet
    at its depth."""
    fig, ax = _new_figure("Test error against function evaluations", "forward NFE per solve (log scale)",
                          "test error (%)")
    for label, rows in _by([r for r in tol_rows if not r.get("error")], "model").items():
        pts = sorted((r["nfe_forward"], r["test_error_pct"], r["rtol"]) for r in rows)
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{label} (rtol sweep)")
        for nfe, err, rtol in pts:
            ax.annotate(f"{rtol:g}", (nfe, err), textcoords="offset points", xytext=(3, 4), fontsize=7,
                        color=line.get_color())
    for label, evaluations, err in references:
        ax.plot([evaluations], [err], marker="s", ls="", color="k", label=label)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.2 * ax.get_ylim()[1])   # room for the rtol labels
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_memory_vs_nfe(mem_rows: Sequence[Mapping], path: str) -> str:
    """Memory of one training step against forward evaluations, one colour per model/gradient method:
    solid = peak allocated, dashed = saved for backward."""
    fig, ax = _new_figure("Memory of a training step", "forward evaluations of the residual function (log)",
                          "MB")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, rows) in enumerate(_by([r for r in mem_rows if not r.get("error")], "gradient").items()):
        name = f"{rows[0]['model']}, {label}"
        pts = sorted((r["evaluations"], r["peak_mb"], r["saved_mb"]) for r in rows)
        x = [p[0] for p in pts]
        color = colors[k % len(colors)]
        ax.plot(x, [p[1] for p in pts], marker="o", color=color, label=f"{name}: peak")
        ax.plot(x, [p[2] for p in pts], marker=".", ls="--", color=color, label=f"{name}: saved")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=6)
    return _save(fig, path)
