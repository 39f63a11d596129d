"""Cost of the stiffness figures `pyjlode train` logs at each evaluation, against the evaluation itself.

For an untrained GRU-ODE language model with fixed tau = 1 (the cheapest evaluation, so the largest share)
at each hidden size, times one validation pass of the default 8,192 tokens in 32 columns, then the probe on
the states that pass ended in (see docs/training.md), and prints the share.

    python scripts/stiffness_probe_cost.py --hidden 64,128,256
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from pyjlode.evaluation.evaluate import evaluate_nll
from pyjlode.experiments.spectrum import last_call_stiffness, probe_count, watch_last_call
from pyjlode.models import LanguageModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", default="64,128,256", help="hidden sizes (embedding: half of each)")
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--columns", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="probe timings averaged")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = torch.randint(0, 10_000, (args.tokens // args.columns + 1, args.columns))
    print(f"one thread, load average {os.getloadavg()[0]:.1f}")
    for H in (int(h) for h in args.hidden.split(",")):
        model = LanguageModel(10_000, "gru-ode", embed_size=H // 2, hidden_size=H)
        with watch_last_call(model) as seen:
            t = time.perf_counter()
            evaluate_nll(model, data, 35)
            t_eval = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(args.repeats):
            last_call_stiffness(model, seen)
        t_probe = (time.perf_counter() - t) / args.repeats
        print(f"H = {H:4d}: {probe_count(H, args.columns):2d} states, evaluation {t_eval:6.2f} s, "
              f"probe {1e3 * t_probe:6.1f} ms = {100 * t_probe / t_eval:.2f} %")


if __name__ == "__main__":
    main()
