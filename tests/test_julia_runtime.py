"""The Julia engine itself, where Julia runs: agreement with torchdiffeq and the native engine.

Claims: forward states and gradients (h0, U, drive, b_hn) equal torchdiffeq's and the native
engine's for every SciML adjoint (interpolating, backsolve, quadrature, gauss), explicit and stiff
backward solvers, both reset variants, in float64 (1e-6 relative) and float32 (1e-3); a stiff
field's adjoint succeeds; an Euler step is a GRU cell; CUDA tensors that require grad give the CPU
result (copied through the CPU, and shared through DLPack with PYJLODE_JULIA_CUDA=1); a forward
solve that runs out of steps is a SolverError; `pyjlode train --backend julia` runs end to end.

Every test skips, saying why, where juliacall or Julia is missing. PythonCall asks for juliacall to
be imported before torch, and tests/conftest.py imports torch, so run these with juliacall loaded
as an early plugin:  python -m pytest -p juliacall -m julia tests/test_julia_runtime.py
(the subprocess tests import juliacall first themselves).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from gru_ode_reference import reference_field

from pyjlode.backends import BackendUnavailable, get_backend
from pyjlode.ode.errors import MaxStepsExceeded

pytestmark = pytest.mark.julia


@pytest.fixture(scope="module")
def jl():
    try:
        return get_backend("julia")
    except BackendUnavailable as err:
        pytest.skip(f"no Julia runtime here, runtime checks not run: {err}")


def _problem(B, H, scale=1.0, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)

    def make(*shape):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype).requires_grad_()
    w = torch.randn(B, H, generator=g, dtype=torch.float64).to(dtype)
    return make(B, H), make(3 * H, H), make(B, 3 * H), make(H), w


def _grads(h1, w, inputs):
    return torch.autograd.grad((h1 * w).sum(), inputs)


def _rel(a, b) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _references(args, w, tau, reset_after, native=True):
    """(h1, grads) from torchdiffeq dopri5 and the native engine's Tsit5, in float64, by backprop."""
    torchdiffeq = pytest.importorskip("torchdiffeq")
    from pyjlode import odeint

    h0, U, C, bhn = (x.detach().double().requires_grad_() for x in args)
    inputs = (h0, U, C, bhn) if reset_after else (h0, U, C)
    f = reference_field(U, C, bhn, tau, reset_after)
    solvers = {"torchdiffeq": lambda: torchdiffeq.odeint(f, h0, torch.tensor([0.0, 1.0]).double(),
                                                         rtol=1e-12, atol=1e-12, method="dopri5")}
    if native:
        solvers["native"] = lambda: odeint(f, h0, [0.0, 1.0], solver="Tsit5", rtol=1e-12, atol=1e-12)
    refs = {}
    for name, solve in solvers.items():
        h1 = solve()[-1]
        refs[name] = (h1.detach(), _grads(h1, w.double(), inputs))
    return refs


CASES = [("Tsit5", "interpolating"), ("Tsit5", "backsolve"), ("Tsit5", "quadrature"), ("Tsit5", "gauss"),
         ("KenCarp4", "gauss"), ("Rodas5P", "gauss"), ("Rodas5P", "quadrature")]


@pytest.mark.slow
@pytest.mark.parametrize("dtype, bound, tol", [(torch.float64, 1e-6, 1e-12), (torch.float32, 1e-3, 1e-6)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("backward_solver,sensealg", CASES)
def test_julia_matches_native_and_torchdiffeq(jl, backward_solver, sensealg, reset_after, dtype, bound, tol):
    h0, U, C, bhn, w = _problem(3, 4, dtype=dtype)
    tau = 0.7
    refs = _references((h0, U, C, bhn), w, tau, reset_after)
    inputs = (h0, U, C, bhn) if reset_after else (h0, U, C)
    h1 = jl.gruode_solve(h0, U, C, bhn if reset_after else None, dt=1.0, tau=tau, reset_after=reset_after,
                         solver="Tsit5", backward_solver=backward_solver, sensealg=sensealg, rtol=tol, atol=tol)
    assert h1.dtype == dtype
    grads = _grads(h1, w, inputs)
    for name, (ref_h1, ref_grads) in refs.items():
        assert _rel(h1.detach(), ref_h1) < bound, name
        for label, g, r in zip(("h0", "U", "drive", "b_hn"), grads, ref_grads):
            assert _rel(g, r) < bound, f"{label} vs {name}"


@pytest.mark.slow
@pytest.mark.parametrize("dtype, bound", [(torch.float64, 1e-3), (torch.float32, 1e-2)], ids=["float64", "float32"])
@pytest.mark.parametrize("backward_solver", ["KenCarp4", "Rodas5P"])
def test_stiff_adjoint_case_succeeds(jl, backward_solver, dtype, bound):
    # The GRU-ODE made stiff (field scaled by 1/tau = 10, weights doubled), at a size a test can afford.
    h0, U, C, bhn, w = _problem(4, 16, scale=2.0, seed=3, dtype=dtype)
    refs = _references((h0, U, C, bhn), w, 0.1, False, native=False)
    h1 = jl.gruode_solve(h0, U, C, None, dt=1.0, tau=0.1, solver="Tsit5", backward_solver=backward_solver,
                         sensealg="gauss", rtol=1e-6, atol=1e-8)
    for g, r in zip(_grads(h1, w, (h0, U, C)), refs["torchdiffeq"][1]):
        assert torch.isfinite(g).all() and _rel(g, r) < bound


def test_euler_step_is_a_gru_cell(jl):
    torch.manual_seed(0)
    cell = torch.nn.GRUCell(5, 4).double()
    x, h = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    H = 4
    b_hh = cell.bias_hh.detach()
    drive = x @ cell.weight_ih.detach().T + cell.bias_ih.detach() + torch.cat([b_hh[:2 * H], 0 * b_hh[2 * H:]])
    h1 = jl.gruode_solve(h, cell.weight_hh.detach(), drive, b_hh[2 * H:], dt=1.0, tau=1.0, reset_after=True,
                         solver="Euler")
    assert _rel(h1, cell(x, h).detach()) < 1e-12


def test_running_out_of_steps_is_a_solver_error(jl):
    # tau = 1e-6 makes the field stiff: Tsit5's stable step needs more than SciML's maxiters steps.
    h0, U, C, _, _ = _problem(2, 3)
    with pytest.raises(MaxStepsExceeded) as caught:
        jl.gruode_solve(h0, U, C, dt=1.0, tau=1e-6, solver="Tsit5", rtol=1e-8, atol=1e-8)
    assert caught.value.solver == "Tsit5" and 0 < caught.value.t < 1 and "\n" not in str(caught.value)


def test_warmup_runs_the_default_path(jl):
    assert jl.warmup(dtype=torch.float32, solver="Tsit5", backward_solver="KenCarp4") > 0


# ------------------------------------------------------------------------------- CUDA
def _cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")


@pytest.mark.cuda
def test_cuda_tensors_that_require_grad_match_cpu(jl, monkeypatch):
    _cuda()
    monkeypatch.delenv("PYJLODE_JULIA_CUDA", raising=False)     # copied through the CPU
    h0, U, C, bhn, w = _problem(3, 4)
    options = dict(reset_after=True, rtol=1e-10, atol=1e-10, backward_solver="KenCarp4")
    cpu_h1 = jl.gruode_solve(h0, U, C, bhn, **options)
    cpu = _grads(cpu_h1, w, (h0, U, C, bhn))
    leaves = [x.detach().cuda().requires_grad_() for x in (h0, U, C, bhn)]
    gpu_h1 = jl.gruode_solve(*leaves, **options)
    assert gpu_h1.device.type == "cuda" and _rel(gpu_h1.detach().cpu(), cpu_h1.detach()) < 1e-8
    for g, r in zip(_grads(gpu_h1, w.cuda(), leaves), cpu):
        assert g.device.type == "cuda" and _rel(g.cpu(), r) < 1e-8


@pytest.mark.cuda
def test_cuda_zero_copy_with_tensors_that_require_grad(jl):
    _cuda()
    child = textwrap.dedent("""
        import os, sys
        os.environ["PYJLODE_JULIA_CUDA"] = "1"
        from pyjlode.backends import julia
        assert julia.preload(), "juliacall did not start"
        import torch
        julia.check_available()
        g = torch.Generator().manual_seed(1)
        args = [torch.randn(*s, generator=g, dtype=torch.float64) for s in ((3, 4), (12, 4), (3, 12), (4,))]
        cpu = [a.clone().requires_grad_() for a in args]
        gpu = [a.cuda().requires_grad_() for a in args]
        h_cpu = julia.gruode_solve(*cpu, reset_after=True, rtol=1e-10, atol=1e-10)
        h_gpu = julia.gruode_solve(*gpu, reset_after=True, rtol=1e-10, atol=1e-10)
        h_cpu.sum().backward(); h_gpu.sum().backward()
        err = max(float((b.grad.cpu() - a.grad).abs().max()) for a, b in zip(cpu, gpu))
        err = max(err, float((h_gpu.detach().cpu() - h_cpu.detach()).abs().max()))
        print("max difference", err)
        sys.exit(0 if err < 1e-8 else 1)
    """)
    run = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr


# ------------------------------------------------------------------------------- end to end
def test_train_backend_julia_end_to_end(jl, tmp_path):
    corpus = tmp_path / "text.txt"
    corpus.write_text("the king and the queen went to london to see a play\n" * 40)
    command = [sys.executable, "-m", "pyjlode", "train", "--backend", "julia", "--model", "gru-ode",
               "--corpus", str(corpus), "--level", "char", "--embed-size", "8", "--hidden-size", "8",
               "--batch-size", "2", "--bptt", "4", "--device", "cpu", "--dry-run"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "dry run" in run.stdout and "Traceback" not in run.stderr
