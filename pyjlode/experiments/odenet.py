"""ODE-Net against the ResNet it comes from (Chen et al. 2018, Table 1), on scikit-learn's 8x8 digits.

:func:`run_odenet` trains a ResNet, an ODE-Net differentiated by the adjoint method and the same ODE-Net
differentiated by backpropagating through the solver ("RK-Net") on one seeded train/test split, then writes
into ``out_dir``:

- ``odenet.csv``: test error, parameters, memory of a training step, forward/backward NFE, time per epoch;
- ``tolerance.csv`` and ``error_vs_nfe.png``: each trained ODE model evaluated across tolerances;
- ``memory.csv`` and ``memory_vs_nfe.png``: memory of one training step against function evaluations for
  ResNets of growing depth and for the ODE-Net across tolerances under each gradient method;
- ``odenet.md``: all three tables with the settings and what was measured.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ode.errors import SolverError
from ..errors import PyjlodeError
from . import odenet_plots, tables
from .odenet_measure import step_memory
from .odenet_config import OdeNetConfig
from .odenet_models import ODENet, ResNet, SolverSettings, count_parameters

LABELS = {"resnet": "ResNet", "odenet": "ODE-Net", "rknet": "RK-Net"}
MAIN_COLS = ("model", "gradient", "params", "test_error_pct", "test_loss", "saved_mb", "peak_mb", "nfe_forward",
             "nfe_backward", "epoch_s", "final_loss")
TOL_COLS = ("model", "rtol", "atol", "test_error_pct", "test_loss", "nfe_forward", "eval_s", "error")
MEM_COLS = ("model", "gradient", "setting", "evaluations", "nfe_backward", "saved_mb", "peak_mb", "error")


@dataclass
class OdeNetResult:
    """What :func:`run_odenet` measured: the rows of its three tables and the files it wrote."""

    rows: list
    tolerance: list
    memory: list
    files: dict
    wall_s: float


@dataclass
class Digits:
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def load_digits_split(test_size: int = 360, seed: int = 0, limit_train: int = 0) -> Digits:
    """scikit-learn's 8x8 digits (shipped with scikit-learn), scaled to [0, 1], split stratified by digit."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise PyjlodeError("the ODE-Net experiment needs scikit-learn: pip install 'pyjlode[vision]'") from None
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target, dtype=torch.long)
    train, test = train_test_split(np.arange(len(y)), test_size=test_size, random_state=seed,
                                   stratify=digits.target)
    if limit_train:
        train = train[:limit_train]
    return Digits(x[train], y[train], x[test], y[test])


def build_model(name: str, cfg: OdeNetConfig) -> nn.Module:
    """A fresh model (initialised from ``cfg.seed``)."""
    torch.manual_seed(cfg.seed)
    if name == "resnet":
        return ResNet(cfg.width, cfg.depth, activation=cfg.activation)
    return ODENet(cfg.width, cfg.settings("adjoint" if name == "odenet" else "direct"), activation=cfg.activation)


def _nfe(model: nn.Module) -> tuple[Optional[int], Optional[int]]:
    """(forward, backward) NFE since the model's counter was reset; (None, None) for the ResNet."""
    if not isinstance(model, ODENet):
        return None, None
    backward = model.nfe.backward if model.settings.gradient == "adjoint" else None
    return model.nfe.forward, backward


def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> tuple[float, float]:
    """(misclassified share in percent, mean cross-entropy) of (x, y), in eval mode without gradients."""
    model.eval()
    wrong, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            logits, target = model(x[i:i + batch_size]), y[i:i + batch_size]
            wrong += int((logits.argmax(dim=1) != target).sum())
            loss += float(F.cross_entropy(logits, target, reduction="sum"))
    return 100.0 * wrong / len(y), loss / len(y)


def train_model(name: str, model: nn.Module, data: Digits, cfg: OdeNetConfig, progress: bool = True) -> dict:
    """Adam with a one-cycle learning rate over ``cfg.epochs``; returns the model's row of the main table
    (memory columns excluded) with per-step NFE averaged over all training steps."""
    from tqdm.auto import tqdm

    n, bs = len(data.y_train), cfg.batch_size
    steps_per_epoch = math.ceil(n / bs)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    order = torch.Generator().manual_seed(cfg.seed)
    nfe_f, nfe_b, epoch_times, loss = [], [], [], float("nan")
    bar = tqdm(total=cfg.epochs * steps_per_epoch, desc=LABELS[name], unit="step", disable=not progress,
               dynamic_ncols=True)
    for _ in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, generator=order)
        start = time.perf_counter()
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            if isinstance(model, ODENet):
                model.nfe.reset()
            out = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            out.backward()
            opt.step()
            sched.step()
            loss = out.item()
            f, b = _nfe(model)
            nfe_f.append(f)
            nfe_b.append(b)
            bar.update()
            bar.set_postfix(loss=f"{loss:.3f}", nfe=f)
        epoch_times.append(time.perf_counter() - start)
    bar.close()
    err, test_loss = evaluate(model, data.x_test, data.y_test, bs)
    return {"model": LABELS[name], "gradient": _gradient_label(model), "params": count_parameters(model),
            "test_error_pct": err, "test_loss": test_loss,
            "nfe_forward": _mean(nfe_f), "nfe_backward": _mean(nfe_b),
            "epoch_s": sum(epoch_times) / len(epoch_times), "final_loss": loss}


def _gradient_label(model: nn.Module) -> str:
    if not isinstance(model, ODENet):
        return "backprop"
    s = model.settings
    if s.gradient == "direct":
        return "backprop through solver"
    return f"adjoint ({s.sensealg}, {s.solver}/{s.backward_solver or s.solver})"


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _mean(values) -> Optional[float]:
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def tolerance_sweep(name: str, model: ODENet, data: Digits, rtols, batch_size: int) -> list[dict]:
    """Test error, test loss and forward NFE per solve of a trained ODE model at each rtol (= atol)."""
    s = model.settings
    kept = (s.rtol, s.atol)
    rows = []
    try:
        for rtol in rtols:
            s.rtol = s.atol = float(rtol)
            model.nfe.reset()
            start = time.perf_counter()
            row = {"model": LABELS[name], "rtol": s.rtol, "atol": s.atol}
            try:
                err, loss = evaluate(model, data.x_test, data.y_test, batch_size)
            except SolverError as exc:   # a failed setting is a row that says so; the others go on
                rows.append({**row, "error": _one_line(exc)})
                continue
            rows.append({**row, "test_error_pct": err, "test_loss": loss,
                         "nfe_forward": model.nfe.forward / math.ceil(len(data.y_test) / batch_size),
                         "eval_s": time.perf_counter() - start})
    finally:
        s.rtol, s.atol = kept
    return rows


def memory_sweep(ode: ODENet, cfg: OdeNetConfig, x: Tensor, y: Tensor) -> list[dict]:
    """Memory of one training step against function evaluations: ResNets of ``cfg.memory_depths`` blocks,
    and ``ode``'s weights under each gradient method at each of ``cfg.memory_rtols``."""
    rows = []
    for depth in cfg.memory_depths:
        torch.manual_seed(cfg.seed)
        m = step_memory(ResNet(cfg.width, int(depth), activation=cfg.activation), x, y)
        rows.append({"model": "ResNet", "gradient": "backprop", "setting": f"depth {depth}",
                     "evaluations": int(depth), "nfe_backward": None, **m})
    kept = asdict(ode.settings)
    methods = (("direct", None), ("adjoint", "backsolve"), ("adjoint", "interpolating"))
    try:
        for gradient, sensealg in methods:
            for rtol in cfg.memory_rtols:
                ode.settings.gradient, ode.settings.rtol, ode.settings.atol = gradient, float(rtol), float(rtol)
                ode.settings.sensealg = sensealg or kept["sensealg"]
                ode.nfe.reset()
                row = {"model": "ODE-Net", "gradient": _gradient_label(ode), "setting": f"rtol {rtol:g}"}
                try:
                    m = step_memory(ode, x, y)
                except SolverError as exc:
                    rows.append({**row, "error": _one_line(exc)})
                    continue
                f, b = _nfe(ode)
                rows.append({**row, "evaluations": f, "nfe_backward": b, **m})
    finally:
        for k, v in kept.items():
            setattr(ode.settings, k, v)
    return rows


def run_odenet(config: OdeNetConfig, out_dir: Path, progress: bool = True,
               log: Callable[[str], None] = print) -> OdeNetResult:
    """Train ``config.models`` on the digits, probe memory and tolerance, write tables and plots.

    Args:
        config: the experiment's settings.
        out_dir: folder for odenet.csv/.md, tolerance.csv, memory.csv and the PNG plots (created).
        progress: draw a progress bar per model and log each stage.
        log: where stage lines go when ``progress`` is on.

    Returns:
        :class:`OdeNetResult` with the rows of the three tables and the written files.
    """
    say = log if progress else (lambda _: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    start = time.perf_counter()
    try:
        data = load_digits_split(config.test_size, config.seed, config.limit_train)
        say(f"[odenet] digits: {len(data.y_train)} training, {len(data.y_test)} test images; "
            f"{config.threads} thread(s)")
        trained, rows = {}, []
        for name in config.models:
            model = build_model(name, config)
            rows.append(train_model(name, model, data, config, progress))
            trained[name] = model
            say(f"[odenet] {LABELS[name]}: test error {rows[-1]['test_error_pct']:.2f} %")
        # memory of one training step on the same batch, at the trained weights and training tolerance
        xb, yb = data.x_train[:config.batch_size], data.y_train[:config.batch_size]
        for row, model in zip(rows, trained.values()):
            if isinstance(model, ODENet):
                model.nfe.reset()
            row.update(step_memory(model, xb, yb))
        say("[odenet] tolerance sweep and memory probe")
        tol_rows = [r for name, m in trained.items() if isinstance(m, ODENet)
                    for r in tolerance_sweep(name, m, data, config.sweep_rtols, config.batch_size)]
        odes = [m for m in trained.values() if isinstance(m, ODENet)]
        ode = odes[0] if odes else build_model("odenet", config)
        mem_rows = memory_sweep(ode, config, xb, yb)
        wall = time.perf_counter() - start
        files = write_outputs(config, rows, tol_rows, mem_rows, out_dir, wall)
    finally:
        torch.set_num_threads(threads_before)
    say(f"[odenet] done in {wall:.0f} s; wrote {', '.join(sorted(files))} to {out_dir}")
    return OdeNetResult(rows, tol_rows, mem_rows, files, wall)


def write_outputs(cfg: OdeNetConfig, rows, tol_rows, mem_rows, out_dir: Path, wall_s: float) -> dict:
    """The CSV tables, the two plots and odenet.md; returns {file name: path}."""
    d = str(out_dir)
    files = {
        "odenet.csv": tables.generic_csv(rows, os.path.join(d, "odenet.csv"), MAIN_COLS),
        "tolerance.csv": tables.generic_csv(tol_rows, os.path.join(d, "tolerance.csv"), TOL_COLS),
        "memory.csv": tables.generic_csv(mem_rows, os.path.join(d, "memory.csv"), MEM_COLS),
        "error_vs_nfe.png": odenet_plots.plot_error_vs_nfe(
            tol_rows, os.path.join(d, "error_vs_nfe.png"),
            [(f"ResNet ({cfg.depth} blocks)", cfg.depth, r["test_error_pct"]) for r in rows if r["model"] == "ResNet"]),
        "memory_vs_nfe.png": odenet_plots.plot_memory_vs_nfe(mem_rows, os.path.join(d, "memory_vs_nfe.png")),
    }
    settings = ", ".join(f"{f.name}={getattr(cfg, f.name)}" for f in fields(cfg))
    tol_cols, mem_cols = _shown(tol_rows, TOL_COLS), _shown(mem_rows, MEM_COLS)
    md = ["# ODE-Net vs ResNet on 8x8 digits", "", f"Settings: {settings}.", "",
          f"Wall time of the whole run: {wall_s:.0f} s.", "",
          tables.generic_markdown(rows, MAIN_COLS), "",
          "- test_error_pct: misclassified test images (%) after the last epoch, at the training tolerance.",
          "- saved_mb: tensors the autograd graph holds for backward after the forward pass of one training "
          "step (distinct storages, parameters excluded); peak_mb: peak of the CPU allocator's running total "
          "over that step's forward and backward, from torch.profiler's memory records.",
          "- nfe_forward / nfe_backward: vector-field evaluations per training step (forward solve / adjoint "
          "solve), averaged over training; the ResNet has none.", "",
          "## Test error against forward NFE (trained models across tolerances)", "",
          tables.generic_markdown(tol_rows, tol_cols), "", "![error vs NFE](error_vs_nfe.png)", "",
          "## Memory of one training step against function evaluations", "",
          "evaluations: residual-function evaluations in the forward pass (ResNet: its depth).", "",
          tables.generic_markdown(mem_rows, mem_cols), "", "![memory vs NFE](memory_vs_nfe.png)", ""]
    path = os.path.join(d, "odenet.md")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(md))
    files["odenet.md"] = path
    return files


def _shown(rows, columns) -> tuple:
    """The markdown table's columns: the error column only when some setting failed."""
    return columns if any(r.get("error") for r in rows) else tuple(c for c in columns if c != "error")
