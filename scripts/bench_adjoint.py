"""Adjoint gradients of a GRU-ODE token sequence: torchdiffeq vs pyjlode, as the field gets stiffer.

For each time scale tau, a batch of GRU-ODE hidden states is carried through T tokens, each token an
ODE solve over t in [0, 1] of dh/dt = (1 - z)(g - h)/tau with that token's drive c_i (B, 3H) held fixed,
and the loss is a fixed readout of every h_i. Every method is timed on the same sequence (forward +
backward of the whole sequence), its forward/backward NFE counted, and its gradient of (U, c) compared
with a float64 direct-backprop reference (torchdiffeq dopri5 at rtol 1e-8, backpropagated token by
token so that only one token's graph is alive at a time).

    python scripts/bench_adjoint.py                                  # the full size (slow on 2 cores)
    python scripts/bench_adjoint.py --batch 8 --hidden 64 --tokens 5 # a quick run
    python scripts/bench_adjoint.py --write docs/benchmarks.md       # refresh the docs section
    python scripts/bench_adjoint.py --stiff --tokens 5 --taus 0.01,0.003,0.001 --repeats 2 \
        --methods pj-Tsit5,pj-KenCarp4:krylov,pj-KenCarp4:krylov/KenCarp4:krylov   # stiff linear algebra

Methods ``pj-<Bwd>`` run Tsit5 forward; ``pj-<Fwd>/<Bwd>`` name both solvers (stiff pairs); a solver
name ending in ``:krylov`` uses GMRES for its linear solves and gets the field's matrix-free Jacobian.
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
from dataclasses import dataclass, field

import torch
import torchdiffeq

from pyjlode.ode.adjoint import AdjointStats, odeint_adjoint
from pyjlode.ode.methods import SOLVERS

try:
    from pyjlode.models.gru_ode_field import GRUODEField
except ImportError:  # pragma: no cover - the models package is optional for this script
    GRUODEField = None

START, END = "<!-- bench_adjoint:start -->", "<!-- bench_adjoint:end -->"
STIFF_START, STIFF_END = "<!-- bench_adjoint_stiff:start -->", "<!-- bench_adjoint_stiff:end -->"
STIFF_TITLE = "## Stiff linear algebra (scripts/bench_adjoint.py, tau down to 0.001)"
LOAD_AT_START = os.getloadavg()[0]


class LocalGRUODEField:
    """Fallback field (autograd VJPs, no analytic Jacobian) when pyjlode.models is absent."""

    def __init__(self, U, c, tau):
        self.U, self.c, self.tau, self.params, self.jac, self.vjp = U, c, tau, (U, c), None, None

    def __call__(self, t, h):
        H, U, c = h.shape[-1], self.U, self.c
        rz = torch.sigmoid(c[:, :2 * H] + h @ U[:2 * H].T)
        g = torch.tanh(c[:, 2 * H:] + (rz[:, :H] * h) @ U[2 * H:].T)
        return (1 - rz[:, H:]) * (g - h) / self.tau


def make_field(U, c, tau):
    return GRUODEField(U, c, tau=tau) if GRUODEField is not None else LocalGRUODEField(U, c, tau)


class Counted:
    """Wraps a field to count calls (torchdiffeq reports no NFE of its own)."""

    def __init__(self, f, counter):
        self.f, self.counter = f, counter

    def __call__(self, t, h):
        self.counter[0] += 1
        return self.f(t, h)


@dataclass
class Run:
    """One method's result on one tau."""

    seconds: list = field(default_factory=list)
    seconds_fwd: list = field(default_factory=list)
    seconds_bwd: list = field(default_factory=list)
    nfe_fwd: int = 0
    nfe_bwd: int = 0
    error: float = math.nan
    failure: str = ""


# ------------------------------------------------------------------ the problem

def make_inputs(args, dtype):
    g = torch.Generator().manual_seed(args.seed)
    H = args.hidden
    U = torch.randn(3 * H, H, generator=g, dtype=torch.float64) / math.sqrt(H)
    drive = torch.randn(args.tokens, args.batch, 3 * H, generator=g, dtype=torch.float64)
    readout = torch.randn(H, generator=g, dtype=torch.float64) / math.sqrt(H)
    return [x.to(dtype) for x in (U, drive, readout)]


def sequence(step, U, drive, readout, tau):
    """Loss of the token sequence; ``step(f, h) -> h_next`` solves one token."""
    h = torch.zeros(drive.shape[1], U.shape[1], dtype=U.dtype)
    loss = 0.0
    for c in drive:
        h = step(make_field(U, c, tau), h)
        loss = loss + (h @ readout).square().mean()
    return loss


def reference_grads(args, tau):
    """float64 direct backprop through dopri5 (rtol 1e-8), one token's graph at a time."""
    U, drive, readout = make_inputs(args, torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    with torch.no_grad():                       # pass 1: the states h_i
        hs = [torch.zeros(args.batch, args.hidden, dtype=torch.float64)]
        for c in drive:
            hs.append(torchdiffeq.odeint(make_field(U, c, tau), hs[-1], t, rtol=1e-8, atol=1e-10)[-1])
    gU, gc, bar = torch.zeros_like(U), torch.zeros_like(drive), torch.zeros_like(hs[0])
    Ur = U.clone().requires_grad_()
    for i in range(args.tokens - 1, -1, -1):    # pass 2: backprop token by token
        h_in = hs[i].clone().requires_grad_()
        c = drive[i].clone().requires_grad_()
        h = torchdiffeq.odeint(make_field(Ur, c, tau), h_in, t, rtol=1e-8, atol=1e-10)[-1]
        loss = (h @ readout).square().mean() + (h * bar).sum()
        dU, dc, bar = torch.autograd.grad(loss, (Ur, c, h_in))
        gU += dU
        gc[i] = dc
    return torch.cat([gU.flatten(), gc.flatten()])


# ------------------------------------------------------------------ the methods

def torchdiffeq_step(adjoint, counter, rtol, atol):
    def step(f, h):
        t = torch.tensor([0.0, 1.0], dtype=h.dtype)
        g = Counted(f, counter)
        if adjoint:
            return torchdiffeq.odeint_adjoint(g, h, t, rtol=rtol, atol=atol, method="dopri5",
                                              adjoint_params=f.params)[-1]
        return torchdiffeq.odeint(g, h, t, rtol=rtol, atol=atol, method="dopri5")[-1]
    return step


def pyjlode_step(sensealg, backward_solver, stats, rtol, atol, max_steps, solver="Tsit5"):
    state = {"dt0": None}
    operator = ":krylov" in f"{solver} {backward_solver}"   # matrix-free J for GMRES

    def step(f, h):
        jac = f.jac_operator if operator and hasattr(f, "jac_operator") else f.jac
        out = odeint_adjoint(f, h, [0.0, 1.0], params=f.params, jac=jac, vjp=f.vjp, rtol=rtol, atol=atol,
                             solver=solver, backward_solver=backward_solver, sensealg=sensealg,
                             dt0=state["dt0"], stats=stats, max_steps=max_steps)[-1]
        state["dt0"] = stats.dt_next            # warm start, as the GRU-ODE layer does
        return out
    return step


# key: (engine, adjoint or sensealg, backward solver, label in the table[, forward solver])
METHODS = {
    "td-backprop": ("td", False, None, "torchdiffeq odeint, backprop (dopri5)"),
    "td-adjoint": ("td", True, None, "torchdiffeq odeint_adjoint (dopri5)"),
    "pj-backsolve": ("pj", "backsolve", "Tsit5", "pyjlode backsolve (Tsit5)"),
    "pj-Tsit5": ("pj", "interpolating", "Tsit5", "pyjlode interpolating, Tsit5 backward"),
    "pj-KenCarp4": ("pj", "interpolating", "KenCarp4", "pyjlode interpolating, KenCarp4 backward"),
    "pj-Rodas5P": ("pj", "interpolating", "Rodas5P", "pyjlode interpolating, Rodas5P backward"),
}
DEFAULT_METHODS = tuple(METHODS)
# --methods also takes pj-<Solver> for every other registered adaptive backward solver
METHODS.update({f"pj-{n}": ("pj", "interpolating", n, f"pyjlode interpolating, {n} backward")
                for n, m in SOLVERS.items() if m.adaptive and f"pj-{n}" not in METHODS})
# Stiff linear algebra: GMRES (linsolve "krylov") backward, and stiff forward/backward pairs.
METHODS.update({
    f"pj-{b}:krylov": ("pj", "interpolating", f"{b}:krylov", f"pyjlode interpolating, {b}:krylov backward")
    for b in ("KenCarp4", "Kvaerno5", "TRBDF2", "Rodas5P", "Rodas4")})
METHODS.update({
    f"pj-{fw}/{b}": ("pj", "interpolating", b, f"pyjlode interpolating, {fw} forward, {b} backward", fw)
    for fw, b in (("KenCarp4", "KenCarp4"), ("KenCarp4:krylov", "KenCarp4:krylov"),
                  ("Rodas5P:krylov", "KenCarp4:krylov"), ("TRBDF2:krylov", "TRBDF2:krylov"),
                  ("KenCarp4:krylov", "TRBDF2:krylov"), ("Tsit5", "Tsit5"))})


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def run_method(name, args, tau, dtype, ref, run=None, repeats=None):
    kind, a, b, *_ = METHODS[name]
    fwd = METHODS[name][4] if len(METHODS[name]) > 4 else "Tsit5"
    run = Run() if run is None else run
    for _ in range(args.repeats if repeats is None else repeats):
        U, drive, readout = make_inputs(args, dtype)
        U.requires_grad_()
        drive.requires_grad_()
        counter, stats = [0], AdjointStats()
        step = (torchdiffeq_step(a, counter, args.rtol, args.atol) if kind == "td"
                else pyjlode_step(a, b, stats, args.rtol, args.atol, args.max_steps, fwd))
        signal.alarm(args.max_seconds)
        try:
            t0 = time.perf_counter()
            loss = sequence(step, U, drive, readout, tau)
            n_fwd = counter[0]
            t1 = time.perf_counter()
            gU, gc = torch.autograd.grad(loss, (U, drive))
            t2 = time.perf_counter()
            run.seconds.append(t2 - t0)
            run.seconds_fwd.append(t1 - t0)
            run.seconds_bwd.append(t2 - t1)
        except Timeout:
            run.failure = f"timeout (>{args.max_seconds}s)"
            return run
        except Exception as exc:  # noqa: BLE001 - a benchmark reports every failure
            what = str(exc).splitlines()[0].split(": tensor(")[0]
            run.failure = f"{type(exc).__name__}: {what[:100]}"
            return run
        finally:
            signal.alarm(0)
        if kind == "td":
            run.nfe_fwd, run.nfe_bwd = n_fwd, counter[0] - n_fwd
        else:
            run.nfe_fwd, run.nfe_bwd = stats.forward.nfe, stats.backward.nfe
        g = torch.cat([gU.flatten(), gc.flatten()]).double()
        run.error = float((g - ref).norm() / ref.norm())
        if not math.isfinite(run.error):
            run.failure = "non-finite gradient"
    return run


# ------------------------------------------------------------------ report

def table(results, args) -> str:
    lines = ["| tau | method | time [s] | NFE fwd | NFE bwd | grad rel. error |", "|---|---|---|---|---|---|"]
    for tau, runs in results.items():
        for key, r in runs.items():
            name = METHODS[key][3]
            if r.failure:
                lines.append(f"| {tau:g} | {name} | — | — | — | **fails**: {r.failure} |")
                continue
            err = f"{r.error:.1e}" + (" (**> 1e-2**)" if r.error > 1e-2 else "")
            bwd = "(graph)" if key == "td-backprop" else str(r.nfe_bwd)
            lines.append(f"| {tau:g} | {name} | {statistics.median(r.seconds):.2f} | {r.nfe_fwd} | {bwd} | {err} |")
    return "\n".join(lines)


def write_section(path, body, append=False):
    text = open(path).read() if _exists(path) else "# Benchmarks\n"
    if append and START in text and END in text:
        old = text[text.index(START) + len(START):text.index(END)].strip("\n")
        body = f"{old}\n\n{body}"
    section = f"{START}\n{body}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda m: section, text, flags=re.S)
    else:
        text += f"\n## Adjoint (scripts/bench_adjoint.py)\n{section}\n"
    with open(path, "w") as fh:
        fh.write(text)


def _exists(path):
    try:
        open(path).close()
        return True
    except OSError:
        return False


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--tokens", type=int, default=35)
    p.add_argument("--taus", default="1,0.3,0.1,0.03")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--rtol", type=float, default=1e-3)
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated subset of: " + ", ".join(METHODS))
    p.add_argument("--max-seconds", type=int, default=300, help="per method and tau; slower runs report a timeout")
    p.add_argument("--max-steps", type=int, default=20_000, help="pyjlode: attempted steps per solve")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write", metavar="MD", help="replace the bench_adjoint section of this markdown file")
    p.add_argument("--append", action="store_true", help="with --write: add this run below the section's content")
    p.add_argument("--stiff", action="store_true",
                   help="interleave the repeats of all methods and report forward/backward times and their "
                        "ratios to pj-Tsit5 (stiff linear-algebra section)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    taus = [float(x) for x in args.taus.split(",")]
    names = [n.strip() for n in args.methods.split(",")]
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from: {', '.join(METHODS)}")
    signal.signal(signal.SIGALRM, _alarm)
    if args.stiff:
        return stiff_main(args, argv, taus, names, dtype)
    results = {}
    for tau in taus:
        t0 = time.perf_counter()
        ref = reference_grads(args, tau)
        print(f"tau={tau:g}: reference in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
        results[tau] = {}
        for name in names:
            results[tau][name] = r = run_method(name, args, tau, dtype, ref)
            print(f"  {name:13s} {r.failure or f'{statistics.median(r.seconds):.2f}s err {r.error:.1e}'}",
                  file=sys.stderr, flush=True)
    body = report(results, args, argv)
    print(body)
    if args.write:
        write_section(args.write, body, args.append)


def stiff_main(args, argv, taus, names, dtype):
    """Round-robin repeats (each method once per round), so every ratio compares like load with like."""
    results = {}
    for tau in taus:
        t0 = time.perf_counter()
        ref = reference_grads(args, tau)
        print(f"tau={tau:g}: reference in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
        runs = results[tau] = {n: Run() for n in names}
        for _ in range(args.repeats):
            for n in names:
                if not runs[n].failure:
                    run_method(n, args, tau, dtype, ref, runs[n], repeats=1)
        for n, r in runs.items():
            print(f"  {n:36s} {r.failure or f'bwd {statistics.median(r.seconds_bwd):.2f}s err {r.error:.1e}'}",
                  file=sys.stderr, flush=True)
    body = "\n".join(report(results, args, argv).splitlines()[:3]) + "\n\n" + stiff_table(results)
    print(body)
    if args.write:
        write_stiff_section(args.write, body)


def stiff_table(results) -> str:
    """Medians per method; ratios are Tsit5's median over the method's (> 1: faster than Tsit5)."""
    lines = ["| tau | method | fwd [s] | bwd [s] | bwd speed-up vs Tsit5 | fwd+bwd speed-up vs Tsit5/Tsit5 "
             "| NFE fwd | NFE bwd | grad rel. error |", "|---|---|---|---|---|---|---|---|---|"]
    for tau, runs in results.items():
        base = runs.get("pj-Tsit5")
        ok = base is not None and not base.failure
        for key, r in runs.items():
            if r.failure:
                lines.append(f"| {tau:g} | {key} | — | — | — | — | — | — | **fails**: {r.failure} |")
                continue
            fw, bw = statistics.median(r.seconds_fwd), statistics.median(r.seconds_bwd)
            sb = f"{statistics.median(base.seconds_bwd) / bw:.2f}x" if ok else "—"
            st = f"{statistics.median(base.seconds) / statistics.median(r.seconds):.2f}x" if ok else "—"
            lines.append(f"| {tau:g} | {key} | {fw:.2f} | {bw:.2f} | {sb} | {st} | {r.nfe_fwd} | {r.nfe_bwd} "
                         f"| {r.error:.1e} |")
    return "\n".join(lines)


def write_stiff_section(path, body):
    text = open(path).read()
    section = f"{STIFF_START}\n{body}\n{STIFF_END}"
    if STIFF_START in text and STIFF_END in text:
        text = re.sub(re.escape(STIFF_START) + ".*?" + re.escape(STIFF_END), lambda m: section, text, flags=re.S)
    else:
        text += f"\n{STIFF_TITLE}\n{section}\n"
    with open(path, "w") as fh:
        fh.write(text)


def report(results, args, argv) -> str:
    cmd = "python scripts/bench_adjoint.py " + " ".join(argv if argv is not None else sys.argv[1:])
    machine = (f"{os.cpu_count()}-core {platform.machine()} CPU (load average {LOAD_AT_START:.1f} at start: "
               f"other jobs shared it), {torch.get_num_threads()} torch thread(s), torch {torch.__version__}, "
               f"torchdiffeq {torchdiffeq.__version__}, Python {platform.python_version()}")
    field_kind = "pyjlode.models GRUODEField (analytic jac/vjp)" if GRUODEField else "local field (autograd)"
    return "\n".join([
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {machine}.  ",
        f"Problem: GRU-ODE, B={args.batch}, H={args.hidden}, {args.tokens} tokens of t in [0, 1], "
        f"rtol={args.rtol:g}, atol={args.atol:g}, {args.dtype}; field: {field_kind}; forward solver Tsit5 "
        "(pyjlode) / dopri5 (torchdiffeq). Time: forward + backward of the whole sequence "
        f"(median of {args.repeats}). Error: relative 2-norm error of d(loss)/d(U, c) against float64 "
        "direct backprop (dopri5, rtol 1e-8).",
        "",
        table(results, args),
    ])


if __name__ == "__main__":
    main()
