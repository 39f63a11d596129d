"""Write (or check) the reference end values of the stiff regression suite.

Each problem of tests/stiff_problems.py is solved with scipy's Radau IIA(5) at rtol 1e-12 with its
analytic Jacobian; the end values go to tests/fixtures/stiff_references.json. Where the IVP test set
publishes a reference (HIRES, OREGO, POLLU, ROBER to 1e11) the agreement is printed.

    python scripts/make_stiff_references.py            # regenerate the fixture (~3 min)
    python scripts/make_stiff_references.py --check    # recompute and compare, exit 1 on a mismatch
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import scipy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from stiff_problems import FIXTURE, PROBLEMS, REF_RTOL, radau_reference  # noqa: E402

# Two Radau runs on different machines agree to ~1e-13 relative; a definition change moves far more.
CHECK_RTOL = 1e-10


def _max_rel(y, ref, floor: float) -> float:
    return float(np.max(np.abs(np.asarray(y) - ref) / (np.abs(ref) + floor)))


def compute() -> dict:
    out = {}
    for name, p in PROBLEMS.items():
        y, nsteps = radau_reference(p)
        entry = {"y": [float(v) for v in y], "y0": list(p.y0), "t_end": p.t_end, "ref_atol": p.ref_atol,
                 "radau_steps": int(nsteps)}
        note = ""
        if p.published is not None:
            entry["max_rel_diff_published"] = _max_rel(y, np.array(p.published), p.ref_atol)
            note = f"; vs the IVP test set: max relative difference {entry['max_rel_diff_published']:.1e}"
        print(f"{name}: {nsteps} Radau steps{note}", flush=True)
        out[name] = entry
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the fixture instead of writing it")
    args = parser.parse_args()
    problems = compute()
    if args.check:
        stored = json.loads(FIXTURE.read_text())["problems"]
        bad = [name for name, e in problems.items() if name not in stored
               or _max_rel(e["y"], np.array(stored[name]["y"]), e["ref_atol"]) > CHECK_RTOL]
        for name in bad:
            print(f"MISMATCH {name}: the fixture no longer matches the problem; regenerate it")
        print("fixture OK" if not bad else f"{len(bad)} mismatch(es)")
        return 1 if bad else 0
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    doc = {"method": f"scipy {scipy.__version__} solve_ivp Radau, rtol={REF_RTOL:g}, analytic Jacobian",
           "problems": problems}
    FIXTURE.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {FIXTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
