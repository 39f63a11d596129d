"""Markdown table of the stiff regression suite (problem x solver x rtol: error, steps, NFE) on stdout.

Runs the same cases as tests/test_stiff_regression.py; the error is max_i |y_i - ref_i| / (atol +
rtol |ref_i|) against the Radau reference. ``--peers`` adds scipy's Radau, BDF and LSODA at the same
tolerances (with the analytic Jacobian) as reference rows.

    python scripts/stiff_regression_table.py [--problems vanderpol,orego] [--solvers TRBDF2] [--peers]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from stiff_problems import (PROBLEMS, CaseResult, cases, load_references, markdown_table,  # noqa: E402
                            run_case, scaled_error, scipy_solve)

PEERS = ("Radau", "BDF", "LSODA")


def peer_case(problem: str, method: str, rtol: float, references: dict) -> CaseResult:
    p = PROBLEMS[problem]
    res = CaseResult(problem, f"scipy {method}", rtol, bound=float("nan"))
    sol = scipy_solve(p, method, rtol, p.atol(rtol))
    if not sol.success:
        res.failure = sol.message
        return res
    ref = np.array(references[problem]["y"])
    res.error, res.component = scaled_error(sol.y[:, -1], ref, rtol, p.atol(rtol))
    res.naccept, res.nreject, res.nfe, res.njac = sol.t.size - 1, -1, sol.nfev, sol.njev
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", help="comma-separated subset of: " + ", ".join(PROBLEMS))
    parser.add_argument("--solvers", help="comma-separated subset of the stiff solvers")
    parser.add_argument("--peers", action="store_true", help="add scipy Radau/BDF/LSODA rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    problems = args.problems.split(",") if args.problems else list(PROBLEMS)
    solvers = args.solvers.split(",") if args.solvers else None
    refs = load_references()
    results = []
    for problem in problems:
        rows = [c for c in cases() if c[0] == problem and (solvers is None or c[1] in solvers)]
        results += [run_case(*c, refs) for c in rows]
        if args.peers:
            rtols = sorted({c[2] for c in rows}, reverse=True)
            results += [peer_case(problem, m, rtol, refs) for m in PEERS for rtol in rtols]
    print("\n".join(markdown_table(results)))
    failed = [r for r in results if not r.solver.startswith("scipy") and not r.ok]
    summary = (f"{len(failed)} of {len(results)} cases exceed their bound" if failed
               else "all cases within bound")
    print("\n" + summary, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
