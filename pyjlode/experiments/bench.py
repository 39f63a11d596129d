"""GRU-ODE training-step benchmark: pyjlode against torchdiffeq, Euler and nn.GRU.

Runs the cases of :mod:`pyjlode.experiments.bench_cases` interleaved and repeated in one process and
reports medians, the cost floor (one field evaluation and one VJP), a stiff (small tau) table, the
end-to-end training throughput of ``pyjlode train``, and which of the benchmark's targets are met.
``pyjlode bench`` and ``scripts/bench_gruode.py`` call :func:`main_run`.

This module imports torch only inside functions, so the command line can build its options cheaply.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..errors import InputError
from .bench_config import CASE_LABELS, CASES, LINSOLVE_CASES, LINSOLVE_TAUS, MARKERS, STIFF_CASES, BenchConfig

@dataclass
class CaseResult:
    """One case's per-repeat seconds and its warm-up figures (None where it failed or does not apply)."""

    case: str
    fwd_s: list = field(default_factory=list)
    bwd_s: list = field(default_factory=list)
    nfe_fwd: float | None = None    # per token
    nfe_bwd: float | None = None
    peak_mb: float | None = None
    grad_err: float | None = None
    loss: float | None = None
    error: str | None = None

    @property
    def wall(self):
        return statistics.median(a + b for a, b in zip(self.fwd_s, self.bwd_s)) if self.fwd_s else None

    @property
    def fwd(self):
        return statistics.median(self.fwd_s) if self.fwd_s else None

    @property
    def bwd(self):
        return statistics.median(self.bwd_s) if self.bwd_s else None

    def us_per_nfe(self, tokens: int) -> tuple:
        if not self.fwd_s or not self.nfe_fwd:
            return None, None
        bwd = self.bwd / (self.nfe_bwd * tokens) * 1e6 if self.nfe_bwd else None
        return self.fwd / (self.nfe_fwd * tokens) * 1e6, bwd


# ---------------------------------------------------------------------------------------------- running
def run_table(cfg: BenchConfig, echo=print) -> dict:
    """Run ``cfg.cases`` interleaved ``cfg.repeats`` times after one warm-up run each.

    The warm-up run gives the NFE counts, loss and gradient error; a second untimed run the peak
    memory. Returns {"config", "results": {case: CaseResult}, "floor": {"f", "vjp"} seconds}.
    """
    from . import bench_cases as bc

    w, x64 = bc.make_inputs(cfg)
    results = {c: CaseResult(c) for c in cfg.cases}
    ref = None
    if cfg.reference:
        t0 = time.perf_counter()
        ref = _cached_reference(cfg, w, x64)
        echo(f"  reference gradient (float64, rtol 1e-9): {time.perf_counter() - t0:.1f} s")
    for case in cfg.cases:
        r = results[case]
        try:
            out = bc.run_step(case, w, x64, cfg)
        except Exception as exc:                     # a failing solver is a result, not a crash
            r.error = _failure(exc)
            echo(f"  {case}: fails: {r.error}")
            continue
        r.nfe_fwd, r.nfe_bwd = out["nfe"]
        r.loss = out["loss"]
        r.grad_err = bc.rel_error(out["grads"], ref) if ref is not None else None
        if cfg.memory:
            r.peak_mb = bc.peak_memory_mb(case, w, x64, cfg)
        echo(f"  {case}: warm-up {out['fwd_s'] + out['bwd_s']:.3f} s")
    live = [c for c in cfg.cases if results[c].error is None]
    floors = []
    for i in range(cfg.repeats):
        for case in live:
            out = bc.run_step(case, w, x64, cfg)
            results[case].fwd_s.append(out["fwd_s"])
            results[case].bwd_s.append(out["bwd_s"])
        floors.append(bc.cost_floor(cfg, n=200))     # interleaved too: the machine's load drifts
        echo(f"  repeat {i + 1}/{cfg.repeats}: " + ", ".join(
            f"{c} {results[c].fwd_s[-1] + results[c].bwd_s[-1]:.3f}s" for c in live))
    floor = {k: statistics.median(f[k] for f in floors) for k in ("f", "vjp")} if floors else bc.cost_floor(cfg)
    return {"config": cfg, "results": results, "floor": floor}


def _cached_reference(cfg: BenchConfig, w: dict, x64) -> list:
    """The reference gradient, kept in the temp folder: it depends only on sizes, tau and seed."""
    import torch

    from . import bench_cases as bc

    key = (cfg.batch, cfg.input, cfg.hidden, cfg.tokens, cfg.tau, cfg.reset_after, cfg.seed, bc.REFERENCE_TOL)
    path = Path(tempfile.gettempdir()) / f"pyjlode-bench-ref-{hashlib.sha1(repr(key).encode()).hexdigest()[:16]}.pt"
    if path.exists():
        try:
            return torch.load(path, weights_only=True)
        except Exception:               # a damaged cache file is recomputed
            pass
    ref = bc.reference_grads(w, x64, cfg)
    torch.save(ref, path)
    return ref


def _failure(exc: Exception) -> str:
    msg = " ".join(str(exc).split())
    if isinstance(exc, AssertionError) and msg.startswith("underflow in dt"):
        return "underflow in dt"
    return (msg[:80] + "...") if len(msg) > 80 else (msg or type(exc).__name__)


def train_throughput(models=("gru-ode", "gru"), steps: int = 8, device: str = "cpu", threads: int | None = None,
                     echo=print) -> dict:
    """Tokens per second of ``pyjlode train --model M`` at default settings, one short run per model.

    Each run logs every step (``--log-interval 1``); the figure is the median over the steps after
    the first (warm-up). Evaluation is shrunk (``--eval-tokens 200``, no timed evaluations): it is
    outside the training-time window anyway. ``threads`` sets OMP_NUM_THREADS for the runs.
    Returns {model: tokens/s} (None where a run failed).
    """
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads else {}))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            run_dir = Path(tmp) / model
            cmd = [sys.executable, "-m", "pyjlode", "train", "--model", model, "--max-steps", str(steps),
                   "--log-interval", "1", "--eval-seconds", "0", "--eval-tokens", "200", "--time-budget", "0",
                   "--device", device, "--out", str(run_dir)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            rates = []
            log = run_dir / "metrics.jsonl"
            if proc.returncode == 0 and log.exists():
                rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
                rates = [r["tokens_per_s"] for r in rows if r.get("event") == "train"]
            out[model] = statistics.median(rates[1:] or rates) if rates else None
            tail = proc.stderr.strip().splitlines()[-1:] if proc.returncode else []
            echo(f"  train --model {model}: {out[model] and round(out[model])} tokens/s {' '.join(tail)}")
    return out


# ---------------------------------------------------------------------------------------------- report
def _fmt(v, spec: str, none: str = "–") -> str:
    return none if v is None else format(v, spec)


def format_table(table: dict) -> list[str]:
    """Markdown lines: settings, the case table and the cost floor."""
    cfg, res, floor = table["config"], table["results"], table["floor"]
    T = cfg.tokens
    a, b = res.get("td-adjoint"), res.get("td-direct")
    lines = [f"B = {cfg.batch}, input {cfg.input}, hidden {cfg.hidden}, T = {T} tokens, rtol {cfg.rtol:g}, "
             f"atol {cfg.atol:g}, tau {cfg.tau:g}, {cfg.dtype} on {cfg.device}; medians of {cfg.repeats} "
             "interleaved repeats.", "",
             "| case | step (s) | fwd (s) | bwd (s) | NFE/token fwd | NFE/token bwd | µs/NFE fwd | µs/NFE bwd "
             "| peak MB | grad rel. err | × (a) | × (b) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case, r in res.items():
        if r.error is not None:
            lines.append(f"| {CASE_LABELS[case]} | fails: {r.error} |" + " |" * 11)
            continue
        uf, ub = r.us_per_nfe(T)
        speed = [(o.wall / r.wall) if o is not None and o.wall and r.wall else None for o in (a, b)]
        lines.append(f"| {CASE_LABELS[case]} | {_fmt(r.wall, '.3f')} | {_fmt(r.fwd, '.3f')} | "
                     f"{_fmt(r.bwd, '.3f')} | {_fmt(r.nfe_fwd, '.1f')} | {_fmt(r.nfe_bwd, '.1f')} | "
                     f"{_fmt(uf, '.0f')} | {_fmt(ub, '.0f')} | {_fmt(r.peak_mb, '.1f')} | "
                     f"{_fmt(r.grad_err, '.1e')} | {_fmt(speed[0], '.1f')} | {_fmt(speed[1], '.1f')} |")
    lines += ["", f"Cost floor (one batched GRU-ODE field evaluation, analytic, no autograd): f {floor['f'] * 1e6:.0f} "
              f"µs, VJP {floor['vjp'] * 1e6:.0f} µs."]
    return lines


def speedups(table: dict) -> str:
    """Step and backward time of (c) over each stiff case's (> 1: the stiff case is faster)."""
    res = table["results"]
    c = res.get("tsit5")
    parts = [f"{CASE_LABELS[k].split(' ')[0]} step {_fmt(_ratio(c and c.wall, r.wall), '.2f')}x, backward "
             f"{_fmt(_ratio(c and c.bwd, r.bwd), '.2f')}x" for k, r in res.items() if k != "tsit5" and not r.error]
    return "Speed-up over (c): " + "; ".join(parts) + "." if parts else ""


def _linsolve_cases() -> tuple:
    """LINSOLVE_CASES, plus the automatic stiffness switch where the registry has one."""
    from ..ode.methods import get_method
    try:
        get_method("auto")
    except Exception:  # noqa: BLE001 - InputError: not registered (yet)
        return LINSOLVE_CASES
    return LINSOLVE_CASES + ("auto",)


def _ratio(num, den):
    return num / den if num is not None and den else None


def targets(main: dict | None, stiff: dict | None, train: dict | None) -> list[str]:
    """The benchmark's six targets, each 'met' / 'missed' with the measured ratio."""
    out = []

    def line(n, ok, text):
        out.append(f"{n}. {'n/a' if ok is None else ('met' if ok else 'missed')}: {text}")

    if main:
        res, T, floor = main["results"], main["config"].tokens, main["floor"]
        a, b, c, e, f = (res.get(k) for k in ("td-adjoint", "td-direct", "tsit5", "euler", "gru"))
        wall = {k: (r.wall if r is not None else None) for k, r in zip("abcef", (a, b, c, e, f))}
        ra, rb = _ratio(wall["a"], wall["c"]), _ratio(wall["b"], wall["c"])
        errs = [r.grad_err for r in (a, b) if r is not None and r.grad_err is not None]
        # strict: no worse than the better of the two torchdiffeq gradients
        err_ok = c is not None and c.grad_err is not None and errs and c.grad_err <= min(errs)
        ok1 = None if ra is None or rb is None else (ra >= 5 and rb >= 2 and bool(err_ok))
        line(1, ok1, f"(c) is {_fmt(ra, '.1f')}× faster than (a) (≥ 5), {_fmt(rb, '.1f')}× than (b) (≥ 2); "
             f"grad error {_fmt(c and c.grad_err, '.1e')} vs torchdiffeq {', '.join(f'{x:.1e}' for x in errs)} "
             "(≤ the smaller)")
        uf, ub = c.us_per_nfe(T) if c is not None else (None, None)
        pf, pb = _ratio(uf, floor["f"] * 1e6), _ratio(ub, floor["vjp"] * 1e6)
        line(2, None if pf is None or pb is None else (pf <= 1.5 and pb <= 1.5),
             f"(c) time per NFE is {_fmt(pf, '.2f')}× one f (forward) and {_fmt(pb, '.2f')}× one VJP "
             "(backward) (≤ 1.5)")
        nf = [r.nfe_fwd for r in (a, b) if r is not None and r.nfe_fwd]
        line(3, None if c is None or not nf or c.nfe_fwd is None else c.nfe_fwd <= min(nf),
             f"forward NFE/token {_fmt(c and c.nfe_fwd, '.1f')} vs torchdiffeq {_fmt(min(nf) if nf else None, '.1f')}")
        re = _ratio(wall["e"], wall["f"])
        line(4, None if re is None else re <= 2, f"(e) takes {_fmt(re, '.2f')}× the time of (f) (≤ 2)")
    if stiff:
        res = stiff["results"]
        a, b, d = (res.get(k) for k in ("td-adjoint", "td-direct", "kencarp4"))
        ok = None if d is None or b is None else (
            d.error is None and (b.error is not None or (d.wall or math.inf) <= b.wall)
            and a is not None and a.error is not None)
        line(5, ok, f"tau = {stiff['config'].tau:g}: (a) {('fails: ' + a.error) if a and a.error else 'finishes'}; "
             f"(d) {('fails: ' + d.error) if d and d.error else _fmt(d and d.wall, '.2f') + ' s'}; (b) "
             f"{('fails: ' + b.error) if b and b.error else _fmt(b and b.wall, '.2f') + ' s'}")
    if train:
        g, o = train.get("gru"), train.get("gru-ode")
        r = _ratio(o, g)
        line(6, None if r is None else r >= 1 / 15,
             f"`pyjlode train`: gru-ode {_fmt(o, ',.0f')} tokens/s, gru {_fmt(g, ',.0f')} tokens/s: "
             f"1/{_fmt(1 / r if r else None, '.1f')} (≥ 1/15)")
    return out


def format_report(main, stiff, train, command: str, machine: str, linsolve: list | None = None) -> str:
    """The markdown body of the docs section."""
    lines = [f"Command: `{command}`", "", f"Machine: {machine}.", ""]
    if main:
        lines += [f"### tau = {main['config'].tau:g}", ""] + format_table(main) + [""]
    if stiff:
        lines += [f"### Stiff: tau = {stiff['config'].tau:g}", ""] + format_table(stiff) + [""]
    for table in linsolve or ():
        lines += [f"### Stiff linear algebra: tau = {table['config'].tau:g}", ""] + format_table(table)
        lines += [speedups(table), ""]
    if train:
        lines += ["### End to end (`pyjlode train`, default settings, built-in corpus)", "",
                  "| model | tokens/s |", "|---|---:|"]
        lines += [f"| {m} | {_fmt(v, ',.0f')} |" for m, v in train.items()] + [""]
    lines += ["### Targets", ""] + targets(main, stiff, train)
    lines += ["", "Peak memory: CUDA allocator peak above the step's start on CUDA; on CPU the peak of the running "
              "sum of torch.profiler's allocation events (torch's CPU allocator; Python objects not counted). "
              "Gradient error: relative L2 error of the four weight gradients against float64 torchdiffeq "
              "dopri5 at rtol 1e-9, atol 1e-11 (direct backprop)."]
    return "\n".join(lines)


def write_section(path: str | Path, body: str) -> None:
    """Replace the text between the bench_gruode markers of ``path`` with ``body``."""
    path = Path(path)
    text = path.read_text()
    start, end = MARKERS
    if start not in text or end not in text or text.index(start) > text.index(end):
        raise InputError(f"{path} has no '{start}' ... '{end}' section; add the two markers first")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body.strip()}\n{end}{tail}")


# ---------------------------------------------------------------------------------------------- entry
def main_run(cfg: BenchConfig, *, stiff_tau: float = 0.1, train_steps: int = 0, threads: int | None = None,
             write: str | None = None, json_path: str | None = None, command: str = "pyjlode bench",
             echo=print) -> str:
    """Everything ``pyjlode bench`` does; returns the markdown report."""
    import torch

    from .bench_cases import machine

    if threads:
        torch.set_num_threads(threads)
    echo(f"table: tau = {cfg.tau:g}, cases {', '.join(cfg.cases)}")
    main = run_table(cfg, echo) if cfg.cases else None
    stiff = None
    if stiff_tau:
        echo(f"stiff table: tau = {stiff_tau:g}")
        stiff = run_table(replace(cfg, tau=stiff_tau, cases=STIFF_CASES), echo)
    linsolve = []
    for tau in LINSOLVE_TAUS if stiff_tau else ():
        echo(f"stiff linear algebra table: tau = {tau:g}")
        linsolve.append(run_table(replace(cfg, tau=tau, cases=_linsolve_cases()), echo))
    train = (train_throughput(steps=train_steps, device=cfg.device, threads=threads, echo=echo)
             if train_steps else None)
    body = format_report(main, stiff, train, command, machine(), linsolve)
    if write:
        write_section(write, body)
        echo(f"wrote the bench_gruode section of {write}")
    if json_path:
        dump = {name: _as_json(t) for name, t in (("main", main), ("stiff", stiff)) if t}
        dump["linsolve"] = [_as_json(t) for t in linsolve]
        dump["train"] = train
        Path(json_path).write_text(json.dumps(dump, indent=1))
    return body


def _as_json(table: dict) -> dict:
    res = {c: dict(asdict(r), wall=r.wall, fwd=r.fwd, bwd=r.bwd) for c, r in table["results"].items()}
    return {"config": asdict(table["config"]), "results": res, "floor": table["floor"]}


__all__ = ["BenchConfig", "CaseResult", "CASES", "CASE_LABELS", "run_table", "train_throughput", "targets",
           "format_report", "write_section", "main_run"]
