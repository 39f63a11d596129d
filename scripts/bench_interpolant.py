"""The cost of Tsit5's own interpolant in `pyjlode bench`'s case (c): training-step time and peak memory
with it and with the cubic Hermite forced, interleaved in one process.

    python scripts/bench_interpolant.py --repeats 12
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics

import torch

from pyjlode.experiments import bench_cases as bc
from pyjlode.experiments.bench_config import BenchConfig
from pyjlode.ode import methods
from pyjlode.ode.dense import HERMITE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = BenchConfig()
    w, x64 = bc.make_inputs(cfg)
    own = methods.get_method("Tsit5")
    variants = {"own": own, "hermite": dataclasses.replace(own, interpolant=HERMITE)}
    times = {k: [] for k in variants}

    def run(m):   # the GRU-ODE looks its solver up by name: swap the registry entry
        methods._LOOKUP["tsit5"] = m
        try:
            return bc.run_step("tsit5", w, x64, cfg)
        finally:
            methods._LOOKUP["tsit5"] = own

    for k, m in variants.items():
        run(m)                                       # warm-up
        methods._LOOKUP["tsit5"] = m
        try:
            print(f"{k}: peak {bc.peak_memory_mb('tsit5', w, x64, cfg):.1f} MB")
        finally:
            methods._LOOKUP["tsit5"] = own
    order = list(variants.items())
    for r in range(args.repeats):                    # alternate which goes first
        for k, m in (order if r % 2 == 0 else order[::-1]):
            out = run(m)
            times[k].append(out["fwd_s"] + out["bwd_s"])
    for k, v in times.items():
        print(f"{k}: median step {statistics.median(v):.3f} s over {len(v)} repeats")
    print(f"own / hermite: {statistics.median(times['own']) / statistics.median(times['hermite']):.3f}")


if __name__ == "__main__":
    main()
