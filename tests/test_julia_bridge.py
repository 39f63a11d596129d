"""The Python side of the Julia engine, checked without Julia (a fake PyJlODE stands in).

Claims: backend lookup, lazy imports and the one-line error when juliacall/Julia is missing;
``preload_for`` starts Julia only for commands that will use it; argument validation before Julia
starts, with solver names from the native registry and "gauss" as the default adjoint; the
(B, H) torch <-> (H, B) Julia layout; the autograd Function's marshalling (exact against torch
autograd through the fake); DLPack only ever receives detached tensors (a fake runtime that calls
torch's real ``__dlpack__`` records them); Julia solve failures arrive as SolverError subclasses,
forward and inside ``loss.backward()``; ``warmup`` runs each distinct layer setting once; the
doctor lists both engines and judges a Julia on PATH by the required version.
The checks that need Julia itself are in tests/test_julia_runtime.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from gru_ode_reference import reference_field

from pyjlode.backends import (BackendUnavailable, _julia_layout, _julia_runtime, get_backend, julia,
                              preload_for, warmup)
from pyjlode.backends.doctor import compatible, run_doctor
from pyjlode.ode.errors import MaxStepsExceeded, NewtonFailure, NonFiniteState, SolverError, StepSizeUnderflow

INSTALL = 'pip install "pyjlode[julia]"'


def _run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                          timeout=120).stdout.strip()


@pytest.fixture
def julia_absent(monkeypatch):
    """juliacall not importable, as on a machine without ``pyjlode[julia]``."""
    monkeypatch.setitem(sys.modules, "juliacall", None)
    monkeypatch.setitem(_julia_runtime._state, "module", None)


@pytest.fixture
def no_julia_start(monkeypatch):
    """Fail loudly if anything tries to start Julia."""
    def refuse():
        raise AssertionError("Julia was started before the arguments were validated")
    monkeypatch.setattr(_julia_runtime, "load", refuse)


# ------------------------------------------------------------------------------- backend lookup
def test_torch_backend_is_none():
    assert get_backend("torch") is None


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="choose one of: julia, torch"):
        get_backend("jax")


def test_importing_pyjlode_does_not_import_juliacall():
    out = _run_python("import sys, pyjlode, pyjlode.backends, pyjlode.backends.julia, "
                      "pyjlode.backends.doctor; print('juliacall' in sys.modules)")
    assert out == "False"


def test_importing_the_julia_bridge_does_not_import_torch():
    # preload() must be reachable before torch is imported (juliacall wants to come first).
    out = _run_python("import sys, pyjlode.backends.julia, pyjlode.backends.doctor; "
                      "print('torch' in sys.modules)")
    assert out == "False"


# ------------------------------------------------------------------------------- preloading
@pytest.fixture
def preloads(monkeypatch):
    calls = []
    monkeypatch.setattr(_julia_runtime, "preload", lambda: calls.append(1) or True)
    return calls


@pytest.mark.parametrize("argv", [["train", "--backend", "julia", "--help"], ["train", "-h", "--backend=julia"],
                                  ["--version"], ["doctor", "--backend", "julia"], ["--backend", "julia"],
                                  ["train", "--backend", "torch"], ["train", "--corpus", "julia"], []])
def test_preload_skips_commands_that_will_not_run_julia(argv, preloads):
    assert preload_for(argv) is False and preloads == []


@pytest.mark.parametrize("argv", [["train", "--backend", "julia"], ["train", "--backend=julia", "--dry-run"],
                                  ["evaluate", "--checkpoint", "run", "--backend", "julia"]])
def test_preload_runs_for_commands_on_julia(argv, preloads):
    assert preload_for(argv) is True and preloads == [1]


def test_preload_for_help_does_not_import_juliacall():
    out = _run_python("import sys; from pyjlode.backends import preload_for; "
                      "preload_for(['train', '--backend', 'julia', '--help']); print('juliacall' in sys.modules)")
    assert out == "False"


# ------------------------------------------------------------------------------- Julia missing
def _assert_one_line_with_fix(err: BaseException, *needles: str) -> None:
    message = str(err)
    assert "\n" not in message
    assert INSTALL in message
    for needle in needles:
        assert needle in message


def test_missing_juliacall_is_one_clear_line(julia_absent):
    with pytest.raises(BackendUnavailable) as info:
        get_backend("julia")
    assert isinstance(info.value, RuntimeError)
    _assert_one_line_with_fix(info.value, "juliacall", "network")


def test_julia_that_cannot_start_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "juliacall", types.ModuleType("juliacall"))   # no Main: broken
    monkeypatch.setitem(_julia_runtime._state, "module", None)
    with pytest.raises(BackendUnavailable) as info:
        julia.check_available()
    _assert_one_line_with_fix(info.value, "could not be loaded")
    assert _julia_runtime._state["module"] is None


def test_solving_without_julia_raises_backend_unavailable(julia_absent):
    h0, U, drive = torch.zeros(2, 3), torch.zeros(9, 3), torch.zeros(2, 9)
    with pytest.raises(BackendUnavailable, match="juliacall"):
        julia.gruode_solve(h0, U, drive)


def test_preload_never_raises(julia_absent, monkeypatch):
    assert julia.preload() is False
    monkeypatch.setitem(sys.modules, "juliacall", types.ModuleType("juliacall"))

    def broken():
        raise ImportError("No module named 'juliapkg'")
    monkeypatch.setattr(_julia_runtime, "_start", broken)
    assert julia.preload() is False


def test_cuda_packages_are_declared_only_when_opted_in(monkeypatch):
    added = []
    fake = types.ModuleType("juliapkg")
    fake.add = lambda name, **entry: added.append(name)
    deps = types.ModuleType("juliapkg.deps")
    deps.load_cur_deps = lambda: {"packages": {"DLPack": _julia_runtime.CUDA_PACKAGES["DLPack"]}}
    monkeypatch.setitem(sys.modules, "juliapkg", fake)
    monkeypatch.setitem(sys.modules, "juliapkg.deps", deps)
    monkeypatch.delenv(_julia_runtime.CUDA_ENV, raising=False)
    _julia_runtime.declare_cuda_packages()
    assert added == []
    monkeypatch.setenv(_julia_runtime.CUDA_ENV, "1")
    _julia_runtime.declare_cuda_packages()
    assert added == ["CUDA"]          # DLPack was already declared with the same entry


# ------------------------------------------------------------------------------- doctor
def test_doctor_lists_both_engines(julia_absent, capsys):
    assert run_doctor() == 0
    out = capsys.readouterr().out
    assert "native engine" in out and "julia engine" in out and INSTALL in out
    assert "Julia ~1.10" in out and "torch" in out


def test_doctor_exit_codes(julia_absent, capsys):
    assert run_doctor("julia") == 1
    assert run_doctor("torch") == 0
    assert run_doctor("no-such-backend") == 1


@pytest.mark.parametrize("version, verdict", [("1.11.2", "not usable, pyjlode needs Julia ~1.10"),
                                              ("1.10.4", "compatible")])
def test_doctor_judges_a_julia_on_path_by_version(version, verdict, tmp_path, monkeypatch, julia_absent, capsys):
    exe = tmp_path / "julia"
    exe.write_text(f"#!/bin/sh\necho 'julia version {version}'\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    run_doctor()
    assert f"{version} at {exe}: {verdict}" in capsys.readouterr().out


@pytest.mark.parametrize("version, spec, ok", [
    ("1.10.0", "~1.10", True), ("1.10.7", "~1.10", True), ("1.11.0", "~1.10", False), ("1.9.4", "~1.10", False),
    ("1.10.2", "~1.10.3", False), ("1.12.1", "1.10", True), ("2.0.0", "^1.10", False),
    ("0.3.9", "0.3", True), ("0.4.0", "0.3", False)])
def test_julia_compat_semantics(version, spec, ok):
    assert compatible(version, spec) is ok


# ------------------------------------------------------------------------------- validation
def _tensors(B=2, H=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(B, H, generator=g, dtype=dtype), torch.randn(3 * H, H, generator=g, dtype=dtype),
            torch.randn(B, 3 * H, generator=g, dtype=dtype), torch.randn(H, generator=g, dtype=dtype))


BAD_TENSORS = {
    "h0 not 2-D": lambda h, U, c, b: (h[0], U, c, b),
    "U wrong shape": lambda h, U, c, b: (h, U[:-1], c, b),
    "drive wrong shape": lambda h, U, c, b: (h, U, c[:, :-1], b),
    "b_hn wrong shape": lambda h, U, c, b: (h, U, c, b[:-1]),
    "mixed dtypes": lambda h, U, c, b: (h, U.float(), c, b),
    "integer dtype": lambda h, U, c, b: (h.long(), U.long(), c.long(), b.long()),
}
BAD_OPTIONS = {
    "unknown solver": dict(solver="rk45"),
    "unknown backward solver": dict(backward_solver="Radau"),
    "unknown sensealg": dict(sensealg="adjoint"),
    "negative dt": dict(dt=-1.0),
    "zero tau": dict(tau=0.0),
    "nan rtol": dict(rtol=float("nan")),
    "negative atol": dict(atol=-1e-6),
    "learned tau": dict(tau=torch.tensor(1.0, requires_grad=True)),
    "stiff backward with interpolating": dict(backward_solver="KenCarp4", sensealg="interpolating"),
    "stiff solver with backsolve": dict(solver="Rodas5P", sensealg="backsolve"),
}


@pytest.mark.parametrize("case", sorted(BAD_TENSORS))
def test_bad_tensors_are_rejected_before_julia_starts(case, no_julia_start):
    args = BAD_TENSORS[case](*_tensors())
    with pytest.raises(ValueError) as info:
        julia.gruode_solve(*args, reset_after=True)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bad_options_are_rejected_before_julia_starts(case, no_julia_start):
    with pytest.raises(ValueError) as info:
        julia.gruode_solve(*_tensors(), reset_after=True, **BAD_OPTIONS[case])
    assert "\n" not in str(info.value)


def _cuda_config(**overrides):
    options = dict(dt=1.0, tau=1.0, reset_after=False, solver="Tsit5", backward_solver="KenCarp4",
                   sensealg="gauss", rtol=1e-3, atol=1e-5, device="cuda")
    return julia.make_config(**{**options, **overrides})


def test_stiff_solvers_take_cuda_tensors_through_the_cpu(monkeypatch):
    monkeypatch.delenv(_julia_runtime.CUDA_ENV, raising=False)
    assert _julia_layout.julia_device(torch.device("cuda")) == torch.device("cpu")
    assert _cuda_config().backward_solver == "KenCarp4"


def test_stiff_solvers_on_zero_copy_cuda_are_rejected(monkeypatch):
    monkeypatch.setenv(_julia_runtime.CUDA_ENV, "1")
    assert _julia_layout.julia_device(torch.device("cuda")) == torch.device("cuda")
    with pytest.raises(ValueError, match="CPU"):
        _cuda_config()
    assert _cuda_config(backward_solver="Tsit5").solver == "Tsit5"


def test_valid_options_give_canonical_config():
    cfg = julia.make_config(dt=0.5, tau=torch.tensor(2.0), reset_after=1, solver="tsit5",
                            backward_solver="KENCARP4", sensealg="Gauss", rtol=1e-4, atol=1e-6)
    assert (cfg.solver, cfg.backward_solver, cfg.sensealg) == ("Tsit5", "KenCarp4", "gauss")
    assert (cfg.tau, cfg.reset_after, cfg.backward_rtol, cfg.backward_atol) == (2.0, True, 1e-4, 1e-6)


def test_default_adjoint_is_gauss():
    cfg = julia.make_config(dt=1.0, tau=1.0, reset_after=False, solver="Tsit5", backward_solver="Rodas5P",
                            sensealg=None, rtol=1e-3, atol=1e-5)
    assert cfg.sensealg == julia.DEFAULT_SENSEALG == "gauss"


def test_solver_names_come_from_the_native_registry():
    from pyjlode.ode import SOLVERS, get_method

    assert julia.solver_names() == tuple(SOLVERS)
    for name, method in SOLVERS.items():
        for spelling in (name, name.upper(), *method.aliases):
            assert julia.canonical_solver(spelling) == get_method(spelling).name == name
    with pytest.raises(ValueError, match="unknown solver"):
        julia.canonical_solver("ode45")


def test_odeint_needs_increasing_times_and_a_gruode_field(no_julia_start):
    h0, U, c, b = _tensors()
    terms = julia.GRUODETerms(U, c, b, 1.0, True)
    with pytest.raises(ValueError, match="strictly increasing"):
        julia.julia_odeint_adjoint(terms, h0, [0.0, 1.0, 1.0])
    with pytest.raises(TypeError, match="GRU-ODE fields only"):
        julia.julia_odeint_adjoint(lambda t, y: y, h0, [0.0, 1.0])


def test_gruode_terms_read_the_models_field():
    h0, U, c, b = _tensors()
    field = types.SimpleNamespace(U=U, c=c, b_hn=b, tau=0.5, reset_after=True)
    assert julia.gruode_terms(field) == julia.GRUODETerms(U, c, b, 0.5, True)
    models = pytest.importorskip("pyjlode.models.gru_ode_field", reason="the model's field is not importable")
    native = models.GRUODEField(U, c, b, 0.5, True)
    terms = julia.gruode_terms(native)
    assert terms.U is U and terms.drive is c and terms.b_hn is b and terms.reset_after


# ------------------------------------------------------------------------------- layout
@pytest.mark.parametrize("shape", [(3, 5), (1, 4), (6,), (9, 3)])
def test_layout_round_trip_is_zero_copy(shape):
    x = torch.arange(float(np.prod(shape)), dtype=torch.float64).reshape(shape)
    a = julia.to_julia_layout(x)
    assert a.shape == shape[::-1] and a.flags.f_contiguous
    assert np.shares_memory(a, x.numpy())
    if len(shape) == 2:
        B, H = shape
        assert all(a[i, b] == x[b, i] for b in range(B) for i in range(H))
        # column-major (H, B) order is torch's row-major order: Julia's linear index walks memory
        assert np.array_equal(a.ravel(order="F"), x.numpy().ravel())
    y = julia.from_julia_layout(a)
    assert y.shape == x.shape and y.data_ptr() == x.data_ptr() and torch.equal(y, x)


def test_layout_writes_from_julia_side_land_in_the_tensor():
    out = torch.zeros(2, 3)
    julia.to_julia_layout(out)[2, 1] = 7.0            # Julia's out[3, 2] (1-based) = torch out[1, 2]
    assert out[1, 2] == 7.0


def test_layout_rejects_non_cpu_tensors():
    with pytest.raises(ValueError, match="CPU tensor"):
        julia.to_julia_layout(torch.zeros(2, 2, device="meta"))


# ------------------------------------------------------------------------------- marshalling


class FakePyJlODE:
    """Stands in for the Julia module with the documented array contract: every array arrives with
    torch's dimensions reversed ((H, B) state, Uᵀ (H, 3H), C (3H, B)) and outputs are written in place.
    It takes one explicit Euler step of the reference field, so the bridge's plumbing can be checked
    exactly against torch autograd without Julia."""

    def __init__(self):
        self.calls = []

    @staticmethod
    def _natural(h0, Ut, C, bhn):
        t = lambda a: torch.from_numpy(np.array(a).T.copy())  # noqa: E731  (Julia dims -> torch dims)
        return t(h0), t(Ut), t(C), None if bhn is None else torch.from_numpy(np.array(bhn).copy())

    @staticmethod
    def _step(h0, U, C, bhn, dt, tau, reset_after):
        return h0 + dt * reference_field(U, C, 0.0 if bhn is None else bhn, tau, reset_after)(0.0, h0)

    def forward_b(self, h1, h0, Ut, C, bhn, *, dt, tau, reset_after, solver, rtol, atol, dense):
        self.calls.append(("forward!", solver, dense, np.asarray(h0).dtype))
        inputs = self._natural(h0, Ut, C, bhn)
        h1[...] = self._step(*inputs, dt, tau, reset_after).numpy().T
        return (inputs, dt, tau, reset_after)

    def backward_b(self, gh0, gUt, gC, gbhn, fwd, gh1, *, solver, sensealg, rtol, atol):
        self.calls.append(("backward!", solver, sensealg))
        inputs, dt, tau, reset_after = fwd
        leaves = [None if x is None else x.clone().requires_grad_() for x in inputs]
        with torch.enable_grad():                   # torch runs backward() with grad mode off
            out = self._step(*leaves, dt, tau, reset_after)
            grads = torch.autograd.grad(out, [x for x in leaves if x is not None],
                                        torch.from_numpy(np.array(gh1).T.copy()))
        for dst, g in zip((gh0, gUt, gC, gbhn), grads):
            if dst is not None:
                dst[...] = g.numpy().T

    def forward_stats(self, fwd):
        return (4, 1, 0, 0)

    def failure_info(self, exception):
        return exception.info if isinstance(exception, FakeSolveFailure) else None


@pytest.fixture
def fake_julia(monkeypatch):
    fake = FakePyJlODE()
    monkeypatch.setattr(_julia_runtime, "load", lambda: fake)
    return fake


def _grads(h1, w, inputs):
    return torch.autograd.grad((h1 * w).sum(), inputs)


@pytest.mark.parametrize("reset_after", [False, True])
def test_bridge_marshals_states_and_gradients_exactly(fake_julia, reset_after):
    h0, U, C, bhn = (t.requires_grad_() for t in _tensors(B=3, H=4))
    b = bhn if reset_after else None
    stats = {}
    h1 = julia.gruode_solve(h0, U, C, b, dt=0.3, tau=0.7, reset_after=reset_after, solver="rk4",
                            backward_solver="Kvaerno5", sensealg="gauss", stats=stats)
    ref = FakePyJlODE._step(h0, U, C, b, 0.3, 0.7, reset_after)
    w = torch.randn(3, 4, dtype=torch.float64)
    inputs = [x for x in (h0, U, C, b) if x is not None]
    got, want = _grads(h1, w, inputs), _grads(ref, w, inputs)
    assert torch.equal(h1, ref.detach())
    assert all(torch.allclose(g, r, rtol=1e-14, atol=1e-14) for g, r in zip(got, want))
    assert fake_julia.calls == [("forward!", "RK4", True, np.float64), ("backward!", "Kvaerno5", "gauss")]
    assert stats == {"nfe_forward": 4, "naccept": 1, "nreject": 0, "njac": 0, "solves": 1}


def test_bridge_keeps_no_dense_solution_without_grad(fake_julia):
    with torch.no_grad():
        julia.gruode_solve(*_tensors()[:3])
    assert fake_julia.calls == [("forward!", "Tsit5", False, np.float64)]


def test_bridge_uses_the_default_adjoint(fake_julia):
    h0, U, C, _ = _tensors()
    julia.gruode_solve(h0.requires_grad_(), U, C).sum().backward()
    assert fake_julia.calls[-1] == ("backward!", "Tsit5", "gauss")


def test_bridge_broadcasts_a_shared_drive_and_supports_retain_graph(fake_julia):
    h0, U, C, _ = _tensors()
    c = C[0].clone().requires_grad_()
    h1 = julia.gruode_solve(h0, U, c)
    h1.sum().backward(retain_graph=True)
    first = c.grad.clone()
    assert first.shape == c.shape and torch.isfinite(first).all()
    h1.sum().backward()
    assert torch.allclose(c.grad, 2 * first)


def test_odeint_chains_one_solve_per_interval(fake_julia):
    h0, U, C, bhn = _tensors()
    terms = julia.GRUODETerms(U, C[0], bhn, 1.0, True)
    ys = julia.julia_odeint_adjoint(terms, h0[0], torch.tensor([0.0, 0.5, 2.0]))
    assert ys.shape == (3, 3) and torch.equal(ys[0], h0[0])
    assert [c[0] for c in fake_julia.calls] == ["forward!", "forward!"]


# ------------------------------------------------------------------------------- DLPack
class _FakeDLPack:
    """DLPack.jl's ``from_dlpack(o)`` as far as torch sees it: it calls ``o.__dlpack__()`` and wraps
    the memory with the dimensions reversed. Records what it was given."""

    def __init__(self):
        self.received = []

    def from_dlpack(self, obj):
        self.received.append(obj)
        capsule = obj.__dlpack__()            # torch raises BufferError here for requires_grad tensors
        return torch.from_dlpack(capsule).numpy().T


@pytest.fixture
def fake_dlpack(monkeypatch):
    dlpack = _FakeDLPack()
    main = types.SimpleNamespace(DLPack=dlpack, PythonCall=types.SimpleNamespace(Py=object))
    juliacall = types.ModuleType("juliacall")
    juliacall.convert = lambda T, x: x
    monkeypatch.setitem(sys.modules, "juliacall", juliacall)
    monkeypatch.setitem(_julia_runtime._state, "main", main)
    monkeypatch.setitem(_julia_runtime._state, "cuda", True)
    return dlpack


def test_fake_dlpack_rejects_tensors_that_require_grad_as_torch_does(fake_dlpack):
    with pytest.raises(BufferError, match="detach"):
        fake_dlpack.from_dlpack(torch.ones(2, 2, requires_grad=True))


def test_from_dlpack_exports_a_detached_view(fake_dlpack):
    t = torch.arange(6.0).reshape(2, 3).requires_grad_()
    arr = _julia_runtime.from_dlpack(t)
    (got,) = fake_dlpack.received
    assert not got.requires_grad and got.data_ptr() == t.data_ptr()
    assert arr.shape == (3, 2) and arr[2, 1] == 5.0


def test_whole_solve_through_dlpack_with_tensors_that_require_grad(fake_julia, fake_dlpack, monkeypatch):
    # Route every tensor through DLPack (CPU tensors speak __dlpack__ too), as CUDA tensors go.
    monkeypatch.setattr(_julia_layout, "uses_dlpack", lambda t: True)
    h0, U, C, bhn = (t.requires_grad_() for t in _tensors(B=3, H=4))
    h1 = julia.gruode_solve(h0, U, C, bhn, reset_after=True, solver="Euler")
    grads = _grads(h1, torch.ones(3, 4, dtype=torch.float64), [h0, U, C, bhn])
    ref = FakePyJlODE._step(h0, U, C, bhn, 1.0, 1.0, True)
    assert torch.equal(h1, ref.detach())
    assert all(torch.allclose(g, r) for g, r in zip(grads, _grads(ref, torch.ones(3, 4, dtype=torch.float64),
                                                                   [h0, U, C, bhn])))
    assert len(fake_dlpack.received) == 10     # h1, h0, U, drive, b_hn; gh0, gU, gdrive, gb_hn, gh1
    assert not any(t.requires_grad for t in fake_dlpack.received)


# ------------------------------------------------------------------------------- solve failures
class FakeSolveFailure:
    def __init__(self, *info):
        self.info = info


class FakeJuliaError(Exception):
    @property
    def exception(self):
        return self.args[0]


@pytest.fixture
def failing_julia(fake_julia, monkeypatch):
    juliacall = types.ModuleType("juliacall")
    juliacall.JuliaError = FakeJuliaError
    monkeypatch.setitem(sys.modules, "juliacall", juliacall)
    return fake_julia


@pytest.mark.parametrize("info, cls", [
    (("forward", "Tsit5", "MaxIters", 0.42, 1e-3, False), MaxStepsExceeded),
    (("forward", "Rodas5P", "DtLessThanMin", 0.5, 1e-14, False), StepSizeUnderflow),
    (("forward", "KenCarp4", "ConvergenceFailure", 0.5, 0.1, False), NewtonFailure),
    (("forward", "Tsit5", "Unstable", 0.5, 0.1, True), NonFiniteState),
    (("forward", "Tsit5", "Failure", 0.5, 0.1, False), SolverError),
])
def test_forward_failures_are_solver_errors(failing_julia, monkeypatch, info, cls):
    def fail(*args, **kwargs):
        raise FakeJuliaError(FakeSolveFailure(*info))
    monkeypatch.setattr(failing_julia, "forward_b", fail)
    with pytest.raises(SolverError) as caught:
        julia.gruode_solve(*_tensors()[:3])
    err = caught.value
    assert type(err) is cls and (err.solver, err.t, err.dt) == (info[1], info[3], info[4])
    assert "\n" not in str(err) and info[2] in str(err)


@pytest.mark.parametrize("info, cls, needle", [
    (("adjoint", "Tsit5", "NotReached", 0.61, 0.02, False), SolverError, "stiff backward solver"),
    (("adjoint", "KenCarp4", "NonFiniteGradient", 0.0, 0.1, True), NonFiniteState, "NaN"),
])
def test_adjoint_failures_reach_loss_backward_as_solver_errors(failing_julia, monkeypatch, info, cls, needle):
    def fail(*args, **kwargs):
        raise FakeJuliaError(FakeSolveFailure(*info))
    monkeypatch.setattr(failing_julia, "backward_b", fail)
    h0, U, C, _ = _tensors()
    loss = julia.gruode_solve(h0.requires_grad_(), U, C).sum()
    with pytest.raises(SolverError) as caught:
        loss.backward()
    assert type(caught.value) is cls and caught.value.solver == info[1]
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_other_julia_errors_pass_through(failing_julia, monkeypatch):
    def fail(*args, **kwargs):
        raise FakeJuliaError("MethodError: no method matching ...")
    monkeypatch.setattr(failing_julia, "forward_b", fail)
    with pytest.raises(FakeJuliaError):
        julia.gruode_solve(*_tensors()[:3])


# ------------------------------------------------------------------------------- warm-up
class _Layer(torch.nn.Module):
    def __init__(self, backend="julia", backward_solver=None, reset_after=False):
        super().__init__()
        self.weight_hh = torch.nn.Parameter(torch.zeros(9, 3))
        self.backend, self.solver, self.backward_solver, self.sensealg = backend, "Tsit5", backward_solver, None
        self.rtol, self.atol, self.dt, self.tau, self.reset_after = 1e-3, 1e-5, 1.0, 1.0, reset_after


def test_warmup_runs_each_distinct_julia_setting_once(fake_julia):
    model = torch.nn.Sequential(_Layer(), _Layer(), _Layer(backward_solver="KenCarp4", reset_after=True),
                                _Layer(backend="torch"))
    assert warmup(model) >= 0.0
    assert sorted(c[:2] for c in fake_julia.calls) == [("backward!", "KenCarp4"), ("backward!", "Tsit5"),
                                                       ("forward!", "Tsit5"), ("forward!", "Tsit5")]
    assert all(c[3] == np.float32 for c in fake_julia.calls if c[0] == "forward!")


def test_warmup_reads_a_layers_config(fake_julia):
    layer = torch.nn.Module()
    layer.weight_hh = torch.nn.Parameter(torch.zeros(9, 3, dtype=torch.float64))
    layer.config = types.SimpleNamespace(backend="julia", solver="RK4", backward_solver=None, sensealg="gauss",
                                         rtol=1e-3, atol=1e-5, dt=1.0, tau=1.0, reset_after=True)
    warmup(layer)
    assert [c[:2] for c in fake_julia.calls] == [("forward!", "RK4"), ("backward!", "RK4")]
    assert fake_julia.calls[0][3] == np.float64


def test_warmup_without_julia_layers_starts_nothing(no_julia_start):
    assert warmup(torch.nn.Sequential(_Layer(backend="torch"))) == 0.0
