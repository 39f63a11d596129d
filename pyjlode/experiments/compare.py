"""`pyjlode compare`: train several models under one budget and data, evaluate each, tabulate and plot.

Layout of the output folder::

    DIR/runs/<label>-seed<k>/     one training run (its checkpoints and metrics.jsonl, as `pyjlode train`)
    DIR/runs/<label>-seed<k>/result.json   written last; status "ok" marks the run finished (never retrained)
    DIR/results.csv, results.md, runs.csv, ppl_vs_time.png, ppl_vs_tokens.png, nfe_per_token.png,
    ppl_vs_compute.png (with several GRU-ODE variants: perplexity against NFE and time per token)

A run that raises is recorded with status "failed" and its one-line error; the other runs go on, and the
next `compare` with the same folder retries only runs that are not finished.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Mapping, NamedTuple, Sequence

from ..errors import InputError
from ..evaluation.config import EvalConfig
from ..training.checkpoint_io import save_json
from ..training.rundir import RunDir
from . import plots, runs, tables


@dataclass(frozen=True)
class RunSpec:
    """One training run of the comparison."""

    label: str                 # row of the table: model name, or "gru-ode Tsit5/KenCarp4"
    model: str                 # CELLS key
    seed: int
    options: dict = field(default_factory=dict, hash=False)  # TrainConfig overrides for this run
    run_dir: str = ""


class Variant(NamedTuple):
    """A GRU-ODE solver setting compared as its own row: forward solver, backward solver, tolerance."""

    solver: str
    backward_solver: str | None = None   # None: the forward solver
    rtol: float | None = None            # None: the shared rtol/atol; else atol = rtol * ATOL_PER_RTOL

    @property
    def label(self) -> str:
        tol = f" rtol={self.rtol:g}" if self.rtol is not None else ""
        return f"gru-ode {self.solver}/{self.backward_solver or self.solver}{tol}"

    def options(self) -> dict:
        """The `train` options this variant sets."""
        opts = {"solver": self.solver, "backward_solver": self.backward_solver}
        if self.rtol is not None:
            opts.update(rtol=self.rtol, atol=self.rtol * ATOL_PER_RTOL)
        return opts


# A variant's tolerance moves rtol and atol together, at the ratio of the defaults (1e-3 and 1e-5): the
# tolerance is then one knob, and the hidden state (|h| < 1) makes both terms of the error norm matter.
ATOL_PER_RTOL = 1e-2


def parse_variants(text: str | Sequence[str] | None) -> list[Variant]:
    """"Tsit5/KenCarp4,Tsit5@1e-2,RK4" -> [Variant("Tsit5", "KenCarp4"), Variant("Tsit5", None, 0.01),
    Variant("RK4")]: each entry SOLVER[/BACKWARD_SOLVER][@RTOL].

    Raises:
        InputError: an empty or malformed entry.
    """
    if not text:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        pair, at, tol = item.strip().partition("@")
        parts = [p.strip() for p in pair.split("/")]
        try:
            rtol = float(tol) if at else None
        except ValueError:
            rtol = math.nan
        if (not parts[0] or len(parts) > 2 or (len(parts) == 2 and not parts[1])
                or (rtol is not None and not rtol > 0)):
            raise InputError(f"bad `variants` entry {item!r}; write SOLVER[/BACKWARD_SOLVER][@RTOL], "
                             "comma-separated, e.g. 'Tsit5/KenCarp4,Tsit5@1e-2,RK4'")
        out.append(Variant(parts[0], parts[1] if len(parts) == 2 else None, rtol))
    return out


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", label).strip("_")


def plan_runs(models: Sequence[str], seeds: Sequence[int], variants, train_options: Mapping,
              out_dir: str, hidden_sizes: Mapping[str, int] | None = None) -> list[RunSpec]:
    """Every (model or GRU-ODE variant) x seed run, with its folder and TrainConfig overrides."""
    specs = []
    for model in models:
        kinds: list[tuple[str, dict]] = [(model, {})]
        if model == "gru-ode" and variants:
            kinds = [(v.label, v.options()) for v in map(lambda v: Variant(*v), variants)]
        for label, extra in kinds:
            for seed in seeds:
                opts = dict(train_options, model=model, seed=int(seed), **extra)
                if hidden_sizes and model in hidden_sizes:
                    opts["hidden_size"] = int(hidden_sizes[model])
                run_dir = os.path.join(out_dir, "runs", f"{_slug(label)}-seed{seed}")
                specs.append(RunSpec(label, model, int(seed), opts, run_dir))
    return specs


def match_hidden_sizes(models: Sequence[str], base_hidden: int,
                       count_params: Callable[[str, int], int]) -> dict[str, int]:
    """Hidden size per model whose parameter count is closest to the reference model's.

    The reference is the GRU-ODE at ``base_hidden`` when it is compared, else the first model.

    Args:
        models: CELLS keys.
        base_hidden: the configured hidden size (the reference keeps it).
        count_params: (model, hidden) -> parameter count (runs.param_counter builds the LanguageModel).
    """
    ref_model = "gru-ode" if "gru-ode" in models else models[0]
    target = count_params(ref_model, base_hidden)
    return {m: base_hidden if m == ref_model else _closest_hidden(lambda h, m=m: count_params(m, h), target)
            for m in models}


def _closest_hidden(count: Callable[[int], int], target: int) -> int:
    """Hidden size with the parameter count nearest ``target``: counts grow with the hidden size, so
    double until past the target, then bisect."""
    hi = 1
    while count(hi) < target and hi < (1 << 16):
        hi *= 2
    lo = max(1, hi // 2)
    while lo < hi:
        mid = (lo + hi) // 2
        if count(mid) < target:
            lo = mid + 1
        else:
            hi = mid
    return min((h for h in (lo - 1, lo) if h >= 1), key=lambda h: abs(count(h) - target))


def load_result(run_dir: str) -> dict | None:
    """The run's result.json, or None when the run has not finished (or the file is unreadable)."""
    try:
        with open(RunDir(run_dir).result, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def run_one(spec: RunSpec, evaluation: EvalConfig, log: Callable[[str], None] = print) -> dict:
    """Train and evaluate one run unless it already finished; never raises (a failure is a row)."""
    done = load_result(spec.run_dir)
    if done and done.get("status") == "ok":
        log(f"[compare] {spec.label} seed {spec.seed}: finished earlier, not retrained")
        return dict(done, skipped=True)
    row: dict = {"label": spec.label, "model": spec.model, "seed": spec.seed, "run_dir": spec.run_dir}
    log(f"[compare] {spec.label} seed {spec.seed}: training in {spec.run_dir}")
    try:
        started = time.time()
        runs.train_run(spec.run_dir, spec.options, echo=log)
        row.update(runs.evaluate_run(spec.run_dir, evaluation))
        row.update(status="ok", wall_s=time.time() - started)
    except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the others
        row.update(status="failed", error=_one_line(exc))
        log(f"[compare] {spec.label} seed {spec.seed} FAILED: {row['error']}")
        _write_text(RunDir(spec.run_dir).error, traceback.format_exc())
    # KeyboardInterrupt is not caught: Ctrl-C stops the whole comparison, finished runs stay finished.
    save_json(row, RunDir(spec.run_dir).result)
    return row


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _write_text(path, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def compare(models: Sequence[str], train_options: Mapping, seeds: Sequence[int] = (1,),
            match_params: bool = False, variants=None, out_dir: str = "runs/compare",
            evaluation: EvalConfig | None = None, log: Callable[[str], None] = print) -> dict:
    """Train each model (and each GRU-ODE variant) per seed, evaluate, and write tables and plots.

    Args:
        models: CELLS keys, e.g. ["rnn", "gru", "lstm", "gru-ode"].
        train_options: TrainConfig fields shared by every run (corpus, budget, sizes, optimiser ...).
        seeds: one run per seed and model.
        match_params: size each model's hidden layer so its parameter count matches the GRU-ODE's
            (or the first model's).
        variants: "SOLVER[/BACKWARD][@RTOL],..." or a list of :class:`Variant` for the GRU-ODE.
        out_dir: output folder (resumable: finished runs are reused).
        evaluation: how each run's best.pt is scored (the `evaluate` protocol; default: its defaults).
        log: where progress lines go.

    Returns:
        {"runs": per-run rows, "aggregated": per-label rows, "files": {name: path}}.
    """
    if not models:
        raise InputError("no models to compare; pass e.g. `models` rnn,gru,lstm,gru-ode")
    variants = (parse_variants(variants) if isinstance(variants, str) or variants is None
                else [Variant(*v) for v in variants])
    hidden = None
    if match_params:
        if train_options.get("tie_weights"):
            raise InputError("`match_params` changes hidden sizes, so it cannot be combined with `tie_weights`")
        count = runs.param_counter(train_options, runs.vocab_size_for(train_options))
        hidden = match_hidden_sizes(list(models), runs.base_hidden_size(train_options), count)
        log("[compare] hidden sizes matched on parameter count: " +
            ", ".join(f"{m}={h}" for m, h in hidden.items()))
    specs = plan_runs(models, seeds, variants, train_options, out_dir, hidden)
    for spec in specs:  # bad names or sizes: one line now, not a table of identical failures later
        runs.check_options(spec.options)
    evaluation = (evaluation or EvalConfig()).validate()
    rows = [run_one(s, evaluation, log) for s in specs]
    files = write_outputs(specs, rows, out_dir)
    return {"runs": rows, "aggregated": tables.aggregate(rows), "files": files}


def write_outputs(specs: Sequence[RunSpec], rows: Sequence[Mapping], out_dir: str) -> dict[str, str]:
    """Tables (results.csv/md, runs.csv) and plots from the runs' results and metrics logs."""
    agg = tables.aggregate(rows)
    notes = _notes(specs, rows, out_dir)
    files = {
        "results.csv": tables.write_csv(agg, os.path.join(out_dir, "results.csv")),
        "runs.csv": tables.write_runs_csv(rows, os.path.join(out_dir, "runs.csv")),
        "results.md": tables.write_markdown(agg, os.path.join(out_dir, "results.md"),
                                            title="pyjlode compare", notes=notes),
    }
    by_time: dict[str, list] = {}
    by_tokens: dict[str, list] = {}
    nfe: dict[str, list] = {}
    for spec in specs:
        c = runs.read_curves(spec.run_dir)
        by_time.setdefault(spec.label, []).append(c["ppl_vs_time"])
        by_tokens.setdefault(spec.label, []).append(c["ppl_vs_tokens"])
        if spec.model == "gru-ode":
            nfe.setdefault(f"{spec.label} fwd", []).append(c["nfe_fwd"])
            nfe.setdefault(f"{spec.label} bwd", []).append(c["nfe_bwd"])
    files["ppl_vs_time.png"] = plots.plot_ppl_curves(
        by_time, os.path.join(out_dir, "ppl_vs_time.png"), xlabel="wall-clock training time (s)")
    files["ppl_vs_tokens.png"] = plots.plot_ppl_curves(
        by_tokens, os.path.join(out_dir, "ppl_vs_tokens.png"), xlabel="training tokens")
    if nfe:
        files["nfe_per_token.png"] = plots.plot_nfe(nfe, os.path.join(out_dir, "nfe_per_token.png"))
    solved = [a for a in agg if a.get("nfe_fwd_per_token") is not None]
    if len(solved) > 1:     # several GRU-ODE settings: quality against the compute each one spends
        files["ppl_vs_compute.png"] = plots.plot_tradeoff(solved, os.path.join(out_dir, "ppl_vs_compute.png"))
    return files


def _notes(specs: Sequence[RunSpec], rows: Sequence[Mapping], out_dir: str) -> list[str]:
    """What the table's numbers mean: the shared budget, the hidden sizes, the evaluation protocol."""
    o = specs[0].options if specs else {}
    budget = ", ".join(f"{k}={o[k]}" for k in ("time_budget", "token_budget", "max_steps", "epochs") if o.get(k))
    notes = [f"Budget per run (whichever ends first): {budget or 'train defaults'}; every run uses the same "
             "corpus, tokenisation, batch and optimiser options."]
    sizes = {s.label: s.options.get("hidden_size") for s in specs}
    if len(set(sizes.values())) > 1:
        notes.append("Hidden sizes: " + ", ".join(f"{k}={v}" for k, v in sizes.items()) + ".")
    for r in rows:
        path = RunDir(str(r.get("run_dir", ""))).evaluation
        if r.get("status") == "ok" and os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                ev = json.load(fh)
            p = ev.get("protocol", {})
            notes.append(f"Test columns: perplexity on the {ev.get('split')} split of best.pt; {p.get('prompts')} "
                         f"prompts of {p.get('prompt_len')} tokens, {p.get('gen_len')} tokens sampled each "
                         f"(temperature {p.get('temperature')}, seed {p.get('seed')}); BLEU-4: {p.get('bleu')}; "
                         f"ROUGE: {p.get('rouge')}; distinct-n over the generations.")
            break
    notes.append(f"Run folders: {os.path.join(out_dir, 'runs')}; per-seed rows in runs.csv; "
                 "tokens/s and NFE per token are means over the logged training windows.")
    return notes
