"""The Python side of the Julia backend, and (where Julia runs) its agreement with the native engine.

Without Julia: backend lookup, lazy imports, the one-line error when juliacall/Julia is missing,
argument validation before Julia starts, solver names equal to the native registry, and the
(B, H) torch <-> (H, B) Julia layout round trip. With Julia (skipped, with the reason, when
juliacall cannot start it): forward states and gradients equal to the native engine and
torchdiffeq within 1e-6 relative in float64, the stiff adjoint case, Euler == GRU cell, CUDA.
"""
from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from pyjlode.backends import BackendUnavailable, _julia_runtime, get_backend, julia

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
    out = _run_python("import sys, pyjlode; before = 'torch' in sys.modules; "
                      "import pyjlode.backends.julia; print(before, 'torch' in sys.modules)")
    before, after = out.split()
    assert after == before


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
    monkeypatch.setattr(_julia_runtime, "declare_dependencies", lambda cuda=False: False)
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

    def broken(cuda=False):
        raise ImportError("No module named 'juliapkg'")
    monkeypatch.setattr(_julia_runtime, "declare_dependencies", broken)
    assert julia.preload() is False


def test_doctor_exit_codes(julia_absent, capsys):
    from pyjlode.backends.doctor import run_doctor

    assert run_doctor("julia") == 1
    assert INSTALL in capsys.readouterr().out
    assert run_doctor("no-such-backend") == 1
    pytest.importorskip("pyjlode.ode.methods", reason="the native engine is not importable yet")
    assert run_doctor("torch") == 0


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


def test_stiff_solvers_on_cuda_are_rejected():
    with pytest.raises(ValueError, match="CPU"):
        julia.make_config(dt=1.0, tau=1.0, reset_after=False, solver="Tsit5", backward_solver="KenCarp4",
                          sensealg="gauss", rtol=1e-3, atol=1e-5, device="cuda")


def test_valid_options_give_canonical_config():
    cfg = julia.make_config(dt=0.5, tau=torch.tensor(2.0), reset_after=1, solver="tsit5",
                            backward_solver="KENCARP4", sensealg="Gauss", rtol=1e-4, atol=1e-6)
    assert (cfg.solver, cfg.backward_solver, cfg.sensealg) == ("Tsit5", "KenCarp4", "gauss")
    assert (cfg.tau, cfg.reset_after, cfg.backward_rtol, cfg.backward_atol) == (2.0, True, 1e-4, 1e-6)


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
    models = pytest.importorskip("pyjlode.models.gru_ode_field", reason="MODELS' field not importable yet")
    native = models.GRUODEField(U, c, b, 0.5, True)
    terms = julia.gruode_terms(native)
    assert terms.U is U and terms.drive is c and terms.b_hn is b and terms.reset_after


# ------------------------------------------------------------------------------- names
def test_solver_lookup_is_case_insensitive_with_aliases():
    for name in julia.SOLVER_NAMES:
        assert julia.canonical_solver(name.upper()) == julia.canonical_solver(name.lower()) == name
    assert julia.canonical_solver("Dopri5") == "DP5"
    with pytest.raises(ValueError, match="choose one of: Euler, RK4"):
        julia.canonical_solver("ode45")


def test_solver_names_equal_the_native_registry():
    methods = pytest.importorskip("pyjlode.ode.methods", reason="the native registry is not importable yet")
    native = {m.name: (m.stiff, tuple(sorted(a.lower() for a in m.aliases))) for m in methods.SOLVERS.values()}
    ours = {n: (n in julia.STIFF_SOLVERS, tuple(sorted(a for a, t in julia.SOLVER_ALIASES.items() if t == n)))
            for n in julia.SOLVER_NAMES}
    assert ours == native
    for name, method in methods.SOLVERS.items():
        for spelling in (name, *method.aliases):
            assert julia.canonical_solver(spelling) == methods.get_method(spelling).name


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
        return h0 + dt * _field(U, C, 0.0 if bhn is None else bhn, tau, reset_after)(0.0, h0)

    def forward_b(self, h1, h0, Ut, C, bhn, *, dt, tau, reset_after, solver, rtol, atol, dense):
        self.calls.append(("forward!", solver, dense))
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


@pytest.fixture
def fake_julia(monkeypatch):
    fake = FakePyJlODE()
    monkeypatch.setattr(_julia_runtime, "load", lambda: fake)
    return fake


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
    assert fake_julia.calls == [("forward!", "RK4", True), ("backward!", "Kvaerno5", "gauss")]
    assert stats == {"nfe_forward": 4, "naccept": 1, "nreject": 0, "njac": 0, "solves": 1}


def test_bridge_keeps_no_dense_solution_without_grad(fake_julia):
    with torch.no_grad():
        julia.gruode_solve(*_tensors()[:3])
    assert fake_julia.calls == [("forward!", "Tsit5", False)]


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


# =============================================================================== with Julia
@pytest.fixture(scope="module")
def jl():
    try:
        return get_backend("julia")
    except BackendUnavailable as err:
        pytest.skip(f"no Julia runtime here, runtime checks not run: {err}")


def _field(U, C, bhn, tau, reset_after):
    """The GRU-ODE right-hand side written from the equations (independent reference)."""
    H = U.shape[1]

    def f(t, h):
        r = torch.sigmoid(C[:, :H] + h @ U[:H].T)
        z = torch.sigmoid(C[:, H:2 * H] + h @ U[H:2 * H].T)
        if reset_after:
            g = torch.tanh(C[:, 2 * H:] + r * (h @ U[2 * H:].T + bhn))
        else:
            g = torch.tanh(C[:, 2 * H:] + (r * h) @ U[2 * H:].T)
        return (1 - z) * (g - h) / tau
    return f


def _problem(B, H, scale=1.0, seed=1):
    g = torch.Generator().manual_seed(seed)
    def make(*shape):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()
    w = torch.randn(B, H, generator=g, dtype=torch.float64)
    return make(B, H), make(3 * H, H), make(B, 3 * H), make(H), w


def _grads(h1, w, inputs):
    return torch.autograd.grad((h1 * w).sum(), inputs)


def _rel(a, b) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _references(h0, U, C, bhn, w, tau, reset_after):
    """(h1, grads) from torchdiffeq dopri5 and from the native engine's Tsit5, both by backprop."""
    torchdiffeq = pytest.importorskip("torchdiffeq")
    from pyjlode.ode.api import odeint

    args = (h0, U, C, bhn) if reset_after else (h0, U, C)
    f = _field(U, C, bhn, tau, reset_after)
    refs = {}
    for name, solve in (("torchdiffeq", lambda: torchdiffeq.odeint(f, h0, torch.tensor([0.0, 1.0]).double(),
                                                                    rtol=1e-12, atol=1e-12, method="dopri5")),
                        ("native", lambda: odeint(f, h0, [0.0, 1.0], solver="Tsit5", rtol=1e-12, atol=1e-12))):
        h1 = solve()[-1]
        refs[name] = (h1.detach(), _grads(h1, w, args))
    return args, refs


@pytest.mark.julia
@pytest.mark.slow
@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("backward_solver,sensealg", [("Tsit5", "interpolating"), ("Tsit5", "gauss"),
                                                      ("KenCarp4", "gauss"), ("Rodas5P", "gauss")])
def test_julia_matches_native_and_torchdiffeq(jl, backward_solver, sensealg, reset_after):
    h0, U, C, bhn, w = _problem(3, 4)
    tau = 0.7
    args, refs = _references(h0, U, C, bhn, w, tau, reset_after)
    h1 = jl.gruode_solve(h0, U, C, bhn if reset_after else None, dt=1.0, tau=tau, reset_after=reset_after,
                         solver="Tsit5", backward_solver=backward_solver, sensealg=sensealg,
                         rtol=1e-12, atol=1e-12)
    grads = _grads(h1, w, args)
    for name, (ref_h1, ref_grads) in refs.items():
        assert _rel(h1.detach(), ref_h1) < 1e-6, name
        for label, g, r in zip(("h0", "U", "drive", "b_hn"), grads, ref_grads):
            assert _rel(g, r) < 1e-6, f"{label} vs {name}"


@pytest.mark.julia
@pytest.mark.slow
@pytest.mark.parametrize("backward_solver", ["KenCarp4", "Rodas5P"])
def test_stiff_adjoint_case_succeeds(jl, backward_solver):
    # The adjoint issue's stiff GRU-ODE (field scaled by 1/tau = 10), at a size this test can afford.
    h0, U, C, bhn, w = _problem(4, 16, scale=2.0, seed=3)
    args, refs = _references(h0, U, C, bhn, w, 0.1, False)
    h1 = jl.gruode_solve(h0, U, C, None, dt=1.0, tau=0.1, solver="Tsit5", backward_solver=backward_solver,
                         sensealg="gauss", rtol=1e-6, atol=1e-8)
    for g, r in zip(_grads(h1, w, args), refs["torchdiffeq"][1]):
        assert torch.isfinite(g).all() and _rel(g, r) < 1e-3


@pytest.mark.julia
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


@pytest.mark.julia
@pytest.mark.cuda
def test_cuda_tensors_match_cpu(jl):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    h0, U, C, bhn, w = (t.detach() for t in _problem(3, 4))
    cpu = jl.gruode_solve(h0, U, C, bhn, reset_after=True, rtol=1e-10, atol=1e-10)
    gpu = jl.gruode_solve(*(t.cuda() for t in (h0, U, C, bhn)), reset_after=True, rtol=1e-10, atol=1e-10)
    assert _rel(gpu.cpu(), cpu) < 1e-8
