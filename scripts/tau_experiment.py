"""Fixed tau = 1 against a learned per-unit tau, at an equal token budget, for each (solver, backward solver).

Every run trains the same GRU-ODE language model (same seed, so the same initial weights: the learned tau's
log-uniform grid draws no random numbers) on the same corpus for the same number of steps of the same
batch and window, so every run sees exactly the same tokens. The table has, per run: validation perplexity
at the end and the best one, the stiffness ratio and max |Re λ|·dt of the field at the first and the last
evaluation, the learned time constants' range at the end, forward and backward NFE per training token,
the seconds of training (evaluations included), and any extra work counters the solver reports (a
composite solver's switches: which solver it chose), from a forward + backward probe of two validation
windows after training. docs/training.md has the results and the commands behind them.

    python scripts/tau_experiment.py                                  # Tsit5/Tsit5, the sizes below
    python scripts/tau_experiment.py --pairs Tsit5/Tsit5,Tsit5/KenCarp4 --tokens 60000 --out runs/tau-experiment

Finished runs (their summary.json) are reused when the script is run again with the same folder, so new
solver pairs can be added to a table later without training the old ones again.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
from pathlib import Path

import torch

from pyjlode.data import batchify
from pyjlode.evaluation.evaluate import split_ids
from pyjlode.experiments.compare import parse_variants
from pyjlode.experiments.probes import solver_pair_work
from pyjlode.training.config import build_configs
from pyjlode.training.loop import train
from pyjlode.training.runlog import read_metrics
from pyjlode.training.state import load_checkpoint, model_from_checkpoint

# the work counters every solver reports; anything else a solver adds (a composite's switches) is shown
STANDARD_STATS = {"nfe_fwd_per_token", "nfe_bwd_per_token", "steps_fwd_per_token", "rejects_fwd_per_token",
                  "steps_bwd_per_token", "rejects_bwd_per_token", "njac_per_token", "seconds_per_token"}
COLUMNS = ("run", "tokens", "valid ppl", "best ppl", "stiffness first", "stiffness last",
           "max abs Re λ·dt first", "max abs Re λ·dt last", "tau range at end", "nfe/token fwd", "nfe/token bwd",
           "train s", "solver counters")


def arms(args) -> dict[str, dict]:
    return {"fixed tau=1": {"tau": 1.0},
            f"learned tau {args.tau_min:g}..{args.tau_max:g}": {"learn_tau": True, "tau_min": args.tau_min,
                                                                "tau_max": args.tau_max}}


def run_one(folder: Path, options: dict, pair: tuple[str, str | None], fresh: bool) -> dict:
    """Train one run (or reuse a finished one) and return its summary with the probe's counters."""
    done = folder / "summary.json"
    if done.exists() and not fresh:
        return json.loads(done.read_text())
    summary = train(*build_configs({**options, "out": str(folder)}),
                    echo=lambda line: print("   ", line, flush=True))
    ckpt = load_checkpoint(folder / "last.pt")
    model = model_from_checkpoint(ckpt)
    valid = batchify(split_ids(ckpt, "valid")[:4 * 2 * options["bptt"] + 1], 4, split="valid")
    (probe,) = solver_pair_work(model, valid, [pair], bptt=options["bptt"], batches=2)
    summary["probe"] = probe
    done.write_text(json.dumps(summary, indent=1))
    return summary


def table_row(label: str, folder: Path, summary: dict) -> dict:
    rows = read_metrics(folder)
    evals = [r for r in rows if r.get("event") == "eval"]
    trains = [r for r in rows if r.get("event") == "train" and "nfe_fwd" in r]
    probe = summary.get("probe", {})
    extra = {k: v for k, v in probe.items() if k.endswith("_per_token") and k not in STANDARD_STATS}

    def first_last(key):
        vals = [r[key] for r in evals if key in r]
        return (vals[0], vals[-1]) if vals else (math.nan, math.nan)

    ratio, fast = first_last("stiffness_ratio"), first_last("max_abs_re_dt")
    last = evals[-1]
    return {"run": label, "tokens": summary["tokens"], "valid ppl": last["valid_ppl"],
            "best ppl": summary["best_valid_ppl"], "stiffness first": ratio[0], "stiffness last": ratio[1],
            "max abs Re λ·dt first": fast[0], "max abs Re λ·dt last": fast[1],
            "tau range at end": f"{last.get('tau_min', math.nan):.3g}..{last.get('tau_max', math.nan):.3g}",
            "nfe/token fwd": sum(r["nfe_fwd"] for r in trains) / max(len(trains), 1),
            "nfe/token bwd": sum(r["nfe_bwd"] for r in trains) / max(len(trains), 1),
            "train s": summary["train_time"],
            "solver counters": ", ".join(f"{k[:-len('_per_token')]} {v:.3g}" for k, v in extra.items()) or "-"}


def markdown(rows: list[dict]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default="Tsit5/Tsit5", help="SOLVER/BACKWARD_SOLVER, comma-separated")
    ap.add_argument("--tau-min", type=float, default=0.01)
    ap.add_argument("--tau-max", type=float, default=1.0)
    ap.add_argument("--tokens", type=int, default=80_000, help="training tokens of every run")
    ap.add_argument("--corpus", default="shakespeare")
    ap.add_argument("--embed-size", type=int, default=32)
    ap.add_argument("--hidden-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bptt", type=int, default=35)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--evals", type=int, default=4, help="evaluations per run (the last at the end)")
    ap.add_argument("--eval-tokens", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", default="runs/tau-experiment")
    ap.add_argument("--fresh", action="store_true", help="train again even where a finished run exists")
    args = ap.parse_args()
    torch.set_num_threads(1)
    window = args.batch_size * args.bptt
    steps = max(1, args.tokens // window)              # whole windows: every run sees the same tokens
    common = dict(corpus=args.corpus, embed_size=args.embed_size, hidden_size=args.hidden_size,
                  batch_size=args.batch_size, bptt=args.bptt, lr=args.lr, max_steps=steps,
                  eval_interval=max(1, steps // args.evals), eval_tokens=args.eval_tokens, eval_seconds=0,
                  time_budget=0, threads=1, seed=args.seed)
    print(f"{steps} steps of {args.batch_size} x {args.bptt} tokens = {steps * window:,} tokens per run; "
          f"{platform.processor() or platform.machine()}, load {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for solver, back in parse_variants(args.pairs):
        pair = f"{solver}/{back or solver}"
        for label, tau in arms(args).items():
            folder = Path(args.out) / f"{pair.replace('/', '-')}_{'learned' if tau.get('learn_tau') else 'fixed'}"
            print(f"== {pair}, {label}", flush=True)
            summary = run_one(folder, {**common, **tau, "solver": solver, "backward_solver": back},
                              (solver, back), args.fresh)
            rows.append(table_row(f"{pair}, {label}", folder, summary))
    text = markdown(rows)
    print(text)
    Path(args.out, "results.md").write_text(text + "\n")
    print(f"wrote {Path(args.out, 'results.md')}; load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
