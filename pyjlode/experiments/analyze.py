"""`pyjlode analyze`: what a trained GRU-ODE does on held-out text.

Three studies, written as CSV + markdown tables and PNG plots into the output folder:

1. the spectrum of the vector field's Jacobian at the token-end states (per token: max |Re λ| and
   max |Re λ|·dt, the stiffness ratio over the decaying modes), per checkpoint, with the layer's range of
   time constants, and its evolution over training when several checkpoints are given;
2. solver work per (solver, backward solver) pair: forward/backward NFE and accepted/rejected steps per
   token over a few forward+backward windows;
3. perplexity under Gaussian noise on the input embeddings of growing relative σ, the GRU-ODE against
   baseline checkpoints (``--baseline``).
"""
from __future__ import annotations

import glob
import os
from typing import Callable, Sequence

import numpy as np
import torch

from ..evaluation.evaluate import split_ids
from . import plots, probes, tables
from .analyze_config import AnalyzeConfig
from .spectrum import gruode_cells, per_token_series, trajectory_spectrum

SPECTRUM_COLS = ("checkpoint", "step", "layer", "tokens", "tau_min", "tau_max", "max_abs_re_median",
                 "max_abs_re_p95", "max_abs_re_max", "max_abs_re_dt_median", "max_abs_re_dt_max",
                 "ratio_median", "ratio_p95", "ratio_max", "frac_expanding")
PAIR_COLS = ("pair", "status", "nfe_fwd_per_token", "nfe_bwd_per_token", "steps_fwd_per_token",
             "rejects_fwd_per_token", "steps_bwd_per_token", "rejects_bwd_per_token", "njac_per_token",
             "seconds_per_token", "loss", "error")


def expand_checkpoints(paths: Sequence[str]) -> list[str]:
    """Files as given; a run folder becomes every ``*.pt`` in it. Duplicates are dropped, order kept."""
    out: list[str] = []
    for p in paths:
        found = sorted(glob.glob(os.path.join(p, "*.pt"))) if os.path.isdir(p) else [p]
        if not found:
            from ..training.checkpoint_io import CheckpointError
            raise CheckpointError(f"no .pt checkpoints in {p}; pass a checkpoint written by 'pyjlode train'")
        out += [f for f in found if f not in out]
    return out


def load_model(path: str, device: str = "cpu"):
    """(model in eval mode, checkpoint dict) from a checkpoint file or run folder."""
    from ..training.state import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(path)
    return model_from_checkpoint(ckpt, device).eval(), ckpt


def _batched(ids: torch.Tensor, batch_size: int, max_tokens: int) -> torch.Tensor:
    from ..data import batchify

    return batchify(ids[:max_tokens] if max_tokens else ids, batch_size, split="held-out")


def spectrum_study(ckpts: Sequence[tuple[str, object, dict]], ids_of, out_dir: str, *,
                   max_tokens: int, every: int) -> tuple[list[dict], dict[str, str]]:
    """Spectrum of every checkpoint; per-token CSV and plots for the last one, evolution plot if several."""
    rows, files, last = [], {}, None
    for path, model, ckpt in ckpts:
        spectra = trajectory_spectrum(model, ids_of(ckpt), max_tokens=max_tokens, every=every)
        step = ckpt.get("progress", {}).get("step")
        rows += [{"checkpoint": os.path.basename(path), "step": step, **s.summary()} for s in spectra]
        last = spectra
    per_token = [{"layer": s.layer, "position": p, "max_abs_re": a, "min_abs_re": b, "ratio": r, "max_re": m}
                 for s in last for p, a, b, r, m in zip(s.positions, s.max_abs_re, s.min_abs_re, s.ratio,
                                                        s.max_re)]
    files["spectrum_tokens.csv"] = tables.generic_csv(per_token, os.path.join(out_dir, "spectrum_tokens.csv"))
    files["spectrum.csv"] = tables.generic_csv(rows, os.path.join(out_dir, "spectrum.csv"), SPECTRUM_COLS)
    files["spectrum.png"] = plots.plot_spectrum(per_token_series(last), os.path.join(out_dir, "spectrum.png"),
                                                positions=last[0].positions)
    files["eigenvalues.png"] = plots.plot_eigenvalues(
        np.concatenate([e for s in last for e in s.eigs]) if any(s.eigs for s in last) else np.zeros(0),
        os.path.join(out_dir, "eigenvalues.png"), title="Jacobian eigenvalues at sampled token-end states")
    steps = sorted({r["step"] for r in rows if r["step"] is not None})
    if len(steps) > 1:
        first = [r for r in rows if r["layer"] == 0]
        by_step = {r["step"]: r for r in first}
        series = {name: [by_step[s][key] for s in steps] for name, key in (
            ("median max |Re λ|", "max_abs_re_median"), ("p95 max |Re λ|", "max_abs_re_p95"),
            ("median stiffness ratio", "ratio_median"))}
        files["spectrum_evolution.png"] = plots.plot_evolution(
            steps, series, os.path.join(out_dir, "spectrum_evolution.png"))
    return rows, files


def analyze(checkpoints: Sequence[str], config: AnalyzeConfig | None = None, *, baselines: Sequence[str] = (),
            out_dir: str | None = None, log: Callable[[str], None] = print) -> dict:
    """Run the three studies on GRU-ODE checkpoint(s) and write tables and plots.

    Args:
        checkpoints: GRU-ODE checkpoint files or run folders, in training order (the last one is probed).
        config: held-out text, probe sizes, solver pairs, noise levels and device (default: the defaults).
        baselines: checkpoints of other models for the robustness comparison.
        out_dir: output folder (default: an ``analysis`` folder next to the last checkpoint).
        log: where progress lines go.

    Returns:
        {"spectrum": rows, "solver_pairs": rows, "robustness": rows, "files": {name: path}}.
    """
    cfg = (config or AnalyzeConfig()).validate()
    split, corpus, device, pairs = cfg.split, cfg.corpus, cfg.device, cfg.solver_pairs()
    by_step: dict = {}
    for p in expand_checkpoints(checkpoints):
        model, ckpt = load_model(p, device)
        # one checkpoint per training step: a run folder's best.pt and last.pt are often the same state
        by_step[ckpt.get("progress", {}).get("step", len(by_step))] = (p, model, ckpt)
    ckpts = [by_step[s] for s in sorted(by_step)]
    for path, model, _ in ckpts:
        gruode_cells(model)                                         # one-line error for a baseline here
    out_dir = out_dir or os.path.join(os.path.dirname(os.path.abspath(ckpts[-1][0])), "analysis")
    os.makedirs(out_dir, exist_ok=True)
    text_cache: dict = {}

    def ids_of(ckpt):  # same text for every model, in each one's own vocabulary
        key = (id(ckpt["vocab"]), split, corpus)
        if key not in text_cache:
            text_cache[key] = split_ids(ckpt, split, corpus)
        return text_cache[key]

    log(f"[analyze] Jacobian spectrum over {cfg.max_tokens} tokens of {len(ckpts)} checkpoint(s)")
    spec_rows, files = spectrum_study(ckpts, ids_of, out_dir, max_tokens=cfg.max_tokens, every=cfg.every)

    path, model, ckpt = ckpts[-1]
    bptt = int(ckpt["train_config"].get("bptt", 35))
    log(f"[analyze] solver pairs: {', '.join(f'{s}/{b or s}' for s, b in pairs)}")
    pair_rows = probes.solver_pair_work(model, _batched(ids_of(ckpt), cfg.batch_size, 0), pairs,
                                        bptt=bptt, batches=cfg.pair_batches)
    files["solver_pairs.csv"] = tables.generic_csv(pair_rows, os.path.join(out_dir, "solver_pairs.csv"),
                                                   PAIR_COLS)
    files["solver_pairs.png"] = plots.plot_solver_pairs([r for r in pair_rows if r["status"] == "ok"],
                                                        os.path.join(out_dir, "solver_pairs.png"))

    sigmas = sorted({0.0, *map(float, cfg.sigmas)})
    subjects = {_label(ckpt, path): (model, _batched(ids_of(ckpt), cfg.batch_size, cfg.robust_tokens))}
    for b in baselines:
        bm, bc = load_model(b, device)
        subjects[_label(bc, b, taken=subjects)] = (bm, _batched(ids_of(bc), cfg.batch_size, cfg.robust_tokens))
    log(f"[analyze] robustness of {', '.join(subjects)} at sigma {sigmas}")
    rob_rows = probes.robustness(subjects, sigmas, bptt=bptt, seed=cfg.seed)
    files["robustness.csv"] = tables.generic_csv(rob_rows, os.path.join(out_dir, "robustness.csv"),
                                                 ("label", "sigma", "status", "ppl", "ppl_rel", "error"))
    curves = {lab: [(r["sigma"], r["ppl"]) for r in rob_rows if r["label"] == lab and r["status"] == "ok"]
              for lab in subjects}
    files["robustness.png"] = plots.plot_robustness(curves, os.path.join(out_dir, "robustness.png"))
    files["analysis.md"] = _write_report(out_dir, ckpts, spec_rows, pair_rows, rob_rows, list(subjects),
                                         sigmas)
    return {"spectrum": spec_rows, "solver_pairs": pair_rows, "robustness": rob_rows, "files": files}


def _label(ckpt: dict, path: str, taken=()) -> str:
    mc = ckpt["model_config"]
    label = f"{mc['cell']} (H={mc['hidden_size']})"
    if label in taken:
        label += f" [{os.path.basename(os.path.dirname(os.path.abspath(path)))}]"
    return label


def robustness_wide(rob_rows: Sequence[dict], labels: Sequence[str], sigmas: Sequence[float]) -> list[dict]:
    """One row per sigma, a perplexity column per model (the table of the report)."""
    table = []
    for s in sigmas:
        row: dict = {"sigma": s}
        for lab in labels:
            hit = [r for r in rob_rows if r["label"] == lab and r["sigma"] == s]
            row[lab] = hit[0].get("ppl") if hit and hit[0]["status"] == "ok" else "failed"
        table.append(row)
    return table


def _write_report(out_dir, ckpts, spec_rows, pair_rows, rob_rows, labels, sigmas) -> str:
    mc = ckpts[-1][2]["model_config"]
    lines = ["# pyjlode analyze", "",
             f"Checkpoints: {', '.join(os.path.basename(p) for p, _, _ in ckpts)}; "
             f"model {mc['cell']}, H={mc['hidden_size']}, solver settings {mc.get('ode', {})}.", "",
             "## Jacobian spectrum at token-end states", "",
             "Per token, of the eigenvalues λ of ∂f/∂h (analytic Jacobian): max |Re λ|, max |Re λ|·dt "
             "(far above Tsit5's stability limit of about 3.5, explicit steps are set by stability) and the "
             "stiffness ratio max|Re λ|/min|Re λ| over the decaying modes (Re λ < 0); columns summarise over "
             "tokens (median, 95th percentile, max); tau_min/tau_max = the layer's time constants; "
             "frac_expanding = share of tokens with some Re λ > 0.", "",
             tables.generic_markdown(spec_rows, SPECTRUM_COLS), "",
             "## Solver work per (solver, backward solver) pair", "",
             "Per token, averaged over the probed windows (forward + backward, no update).", "",
             tables.generic_markdown(pair_rows, PAIR_COLS), "",
             "## Perplexity under Gaussian embedding noise", "",
             "sigma is relative to the RMS of each model's embedding table; same noise seed for every model.",
             "", tables.generic_markdown(robustness_wide(rob_rows, labels, sigmas), ["sigma", *labels]), ""]
    path = os.path.join(out_dir, "analysis.md")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    return path
