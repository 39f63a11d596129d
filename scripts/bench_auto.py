"""Automatic stiffness switching on the GRU-ODE: ``auto`` against fixed forward/backward solver pairs.

The problem is scripts/bench_adjoint.py's (its inputs, token sequence and loss are imported from it):
a batch of GRU-ODE states carried through T tokens, each an adjoint solve over t in [0, 1] of
dh/dt = (1 - z)(g - h)/tau, warm-started from the previous token's last step proposal. For each tau
every forward/backward pair is timed (forward + backward of the whole sequence) in one process, the
pairs interleaved within each repeat, and the median kept; the gradient of (U, c) is compared with a
float64 reference (pyjlode at rtol 1e-7: Tsit5 for tau >= 0.1, Rodas5P below).

    python scripts/bench_auto.py                          # B=32, H=256, 10 tokens, float32, 1 thread
    python scripts/bench_auto.py --batch 8 --hidden 64    # a quick run
    python scripts/bench_auto.py --write docs/benchmarks.md   # refresh the docs section
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import re
import signal
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_adjoint import make_inputs, sequence  # noqa: E402  (the same problem, by import)

from pyjlode.ode.adjoint import AdjointStats, odeint_adjoint  # noqa: E402

TAUS = (1.0, 0.1, 0.01, 0.003, 0.001)
# (forward, backward) pairs; "auto" is AutoTsit5(KenCarp4)
PAIRS = (("Tsit5", "Tsit5"), ("Tsit5", "KenCarp4"), ("Tsit5", "Rosenbrock23"), ("Tsit5", "auto"),
         ("auto", "auto"), ("AutoTsit5(Rosenbrock23)", "AutoTsit5(Rosenbrock23)"), ("Rosenbrock23", "Rosenbrock23"),
         ("KenCarp4", "KenCarp4"))
AUTO = ("auto", "auto")
START, END = "<!-- bench_auto:start -->", "<!-- bench_auto:end -->"
SECTION = "## Automatic stiffness switching (scripts/bench_auto.py)"


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def token_step(solver, backward_solver, stats, rtol, atol):
    state = {"dt0": None}

    def step(f, h):
        out = odeint_adjoint(f, h, [0.0, 1.0], params=f.params, jac=f.jac, vjp=f.vjp, rtol=rtol, atol=atol,
                             solver=solver, backward_solver=backward_solver, dt0=state["dt0"], stats=stats,
                             max_steps=200_000)[-1]
        state["dt0"] = stats.dt_next            # warm start, as the GRU-ODE layer does
        return out
    return step


def grads(args, tau, dtype, solver, backward, rtol, atol):
    """(seconds, gradient, stats) of one forward + backward of the sequence."""
    U, drive, readout = make_inputs(args, dtype)
    U.requires_grad_()
    drive.requires_grad_()
    stats = AdjointStats()
    t0 = time.perf_counter()
    loss = sequence(token_step(solver, backward, stats, rtol, atol), U, drive, readout, tau)
    gU, gc = torch.autograd.grad(loss, (U, drive))
    seconds = time.perf_counter() - t0
    return seconds, torch.cat([gU.flatten(), gc.flatten()]).double(), stats


def measure(args, tau):
    solver = "Tsit5" if tau >= 0.1 else "Rodas5P"
    ref = grads(args, tau, torch.float64, solver, solver, 1e-7, 1e-9)[1]
    rows = {p: {"s": [], "fail": ""} for p in PAIRS}
    for _ in range(args.repeats):
        for pair in PAIRS:                       # interleaved: every pair once per repeat
            row = rows[pair]
            if row["fail"]:
                continue
            signal.alarm(args.max_seconds)
            try:
                s, g, st = grads(args, tau, torch.float32, *pair, args.rtol, args.atol)
            except Timeout:
                row["fail"] = f"timeout (>{args.max_seconds}s)"
                continue
            finally:
                signal.alarm(0)
            row["s"].append(s)
            row["err"] = float((g - ref).norm() / ref.norm())
            row["stats"] = st
    return rows


def table(results, args) -> list[str]:
    lines = [f"| tau | forward / backward | seconds (median of {args.repeats}) | x best fixed | NFE fwd | NFE bwd "
             "| switches fwd / bwd | stiff steps fwd / bwd | grad rel. error |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for tau, rows in results.items():
        med = {p: statistics.median(r["s"]) for p, r in rows.items() if r["s"] and not r["fail"]}
        fixed = [v for p, v in med.items() if "auto" not in (p[0] + p[1]).lower()]
        best = min(fixed) if fixed else math.nan
        for p, r in rows.items():
            if p not in med:
                lines.append(f"| {tau:g} | {p[0]} / {p[1]} | {r['fail']} | | | | | | |")
                continue
            fw, bw = r["stats"].forward, r["stats"].backward
            lines.append(f"| {tau:g} | {p[0]} / {p[1]} | {med[p]:.3f} | {med[p] / best:.2f} | {fw.nfe} | {bw.nfe} "
                         f"| {fw.nswitch} / {bw.nswitch} | {fw.nstiff} / {bw.nstiff} | {r['err']:.1e} |")
    return lines


def targets(results) -> list[str]:
    """auto/auto within 1.25x of the best fixed pair at every tau, and within 1.1x of Tsit5/Tsit5 at tau 1."""
    out = []
    for tau, rows in results.items():
        med = {p: statistics.median(r["s"]) for p, r in rows.items() if r["s"] and not r["fail"]}
        if AUTO not in med:
            out.append(f"- tau = {tau:g}: auto/auto did not finish: missed")
            continue
        best = min(v for p, v in med.items() if "auto" not in (p[0] + p[1]).lower())
        ratio = med[AUTO] / best
        out.append(f"- tau = {tau:g}: auto/auto at {ratio:.2f}x the best fixed pair (<= 1.25): "
                   f"{'met' if ratio <= 1.25 else 'missed'}")
        if tau == 1.0 and ("Tsit5", "Tsit5") in med:
            r1 = med[AUTO] / med[("Tsit5", "Tsit5")]
            out.append(f"- tau = 1: auto/auto at {r1:.2f}x Tsit5/Tsit5 (<= 1.1): {'met' if r1 <= 1.1 else 'missed'}")
    return out


def write_section(path, body):
    text = Path(path).read_text()
    section = f"{START}\n{body}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda m: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{section}\n"
    Path(path).write_text(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--tokens", type=int, default=10)
    ap.add_argument("--taus", type=float, nargs="+", default=list(TAUS))
    ap.add_argument("--rtol", type=float, default=1e-3)
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=int, default=60, help="per run; a slower pair is reported as a timeout")
    ap.add_argument("--pairs", nargs="+", metavar="FWD/BWD", help="only these forward/backward pairs")
    ap.add_argument("--write", metavar="MD", help="replace the bench_auto section of this markdown file")
    args = ap.parse_args(argv)
    if args.pairs:
        global PAIRS
        PAIRS = tuple(tuple(p.split("/")) for p in args.pairs)
    torch.set_num_threads(1)
    signal.signal(signal.SIGALRM, _alarm)
    results = {}
    for tau in args.taus:
        results[tau] = measure(args, tau)
        print("\n".join(table({tau: results[tau]}, args)), file=sys.stderr, flush=True)   # partial results
    command = " ".join(argv if argv is not None else sys.argv[1:])
    head = (f"`python scripts/bench_auto.py {command}`: B={args.batch}, H={args.hidden}, {args.tokens} tokens, "
            f"float32, rtol {args.rtol:g}, atol {args.atol:g}, 1 thread; torch {torch.__version__}, "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}.")
    body = "\n".join([head, "", *table(results, args), "", "Targets:", "", *targets(results)])
    print(body)
    if args.write:
        write_section(args.write, body)


if __name__ == "__main__":
    main()
