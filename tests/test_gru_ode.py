"""Claims about the GRU-ODE: the analytic Jacobian/VJP equal autograd's, one Euler step is a GRU update,
the layer behaves like nn.GRU, and adjoint gradients of a GRU-ODE language model equal direct backprop."""
import pytest
import torch
from torch import nn

from pyjlode.models import GRUODE, GRUODECell, GRUODEField, LanguageModel

f64 = torch.float64
VARIANTS = [False, True]                                   # reset_after
TAUS = ["one", "float", "per-unit", "scalar-tensor"]


def _tau(kind, H):
    return {"one": 1.0, "float": 0.3,
            "per-unit": (torch.rand(H, dtype=f64) + 0.2).requires_grad_(),
            "scalar-tensor": torch.tensor(0.7, dtype=f64, requires_grad=True)}[kind]


def _reference_f(h, U, c, b_hn, tau, reset_after):
    """dh/dt written out from the equations (GRUODEField's docstring), for autograd to differentiate."""
    H = h.shape[-1]
    U_r, U_z, U_h = U[:H], U[H:2 * H], U[2 * H:]
    r = torch.sigmoid(c[..., :H] + h @ U_r.T)
    z = torch.sigmoid(c[..., H:2 * H] + h @ U_z.T)
    if reset_after:
        g = torch.tanh(c[..., 2 * H:] + r * (h @ U_h.T + (0 if b_hn is None else b_hn)))
    else:
        g = torch.tanh(c[..., 2 * H:] + (r * h) @ U_h.T)
    return (1 - z) * (g - h) / tau


def _field(reset_after, tau_kind, B=3, H=5, seed=0):
    torch.manual_seed(seed)
    U = torch.randn(3 * H, H, dtype=f64, requires_grad=True)
    c = torch.randn(B, 3 * H, dtype=f64, requires_grad=True)
    b_hn = torch.randn(H, dtype=f64, requires_grad=True) if reset_after else None
    h = torch.randn(B, H, dtype=f64, requires_grad=True)
    return GRUODEField(U, c, b_hn, _tau(tau_kind, H), reset_after), h


# ---------------------------------------------------------------- the vector field
@pytest.mark.parametrize("reset_after", VARIANTS)
@pytest.mark.parametrize("grad_mode", [True, False])
def test_field_matches_equations(reset_after, grad_mode):
    fld, h = _field(reset_after, "float")
    ref = _reference_f(h, fld.U, fld.c, fld.b_hn, fld.tau, reset_after)
    with torch.set_grad_enabled(grad_mode):                # in-place fast path vs autograd-safe path
        got = fld(torch.tensor(0.0), h)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reset_after", VARIANTS)
@pytest.mark.parametrize("tau_kind", TAUS)
def test_analytic_jacobian_equals_autograd(reset_after, tau_kind):
    fld, h = _field(reset_after, tau_kind)
    f_single = lambda hb, cb: _reference_f(hb, fld.U, cb, fld.b_hn, fld.tau, reset_after)
    want = torch.func.vmap(torch.func.jacrev(f_single))(h.detach(), fld.c.detach())   # (B, H, H)
    got = fld.jac(torch.tensor(0.0), h.detach())
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reset_after", VARIANTS)
@pytest.mark.parametrize("tau_kind", TAUS)
def test_analytic_vjp_equals_autograd(reset_after, tau_kind):
    fld, h = _field(reset_after, tau_kind)
    a = torch.randn_like(h)
    f = _reference_f(h, fld.U, fld.c, fld.b_hn, fld.tau, reset_after)
    want = torch.autograd.grad(f, (h, *fld.params), a)
    got_h, got_p = fld.vjp(torch.tensor(0.0), h.detach(), a)
    assert len(got_p) == len(fld.params) == len(want) - 1
    for g, w in zip((got_h, *got_p), want):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reset_after", VARIANTS)
def test_single_system_shapes(reset_after):
    fld, h = _field(reset_after, "one", B=1)
    one = GRUODEField(fld.U, fld.c[0], fld.b_hn, 1.0, reset_after)
    t = torch.tensor(0.0)
    torch.testing.assert_close(one(t, h[0]), fld(t, h)[0])
    torch.testing.assert_close(one.jac(t, h[0].detach()), fld.jac(t, h.detach())[0])
    a = torch.randn(h.shape[1], dtype=f64)
    dh, (dU, dc, *_) = one.vjp(t, h[0].detach(), a)
    assert dh.shape == h[0].shape and dU.shape == fld.U.shape and dc.shape == fld.c[0].shape


def test_field_rejects_bad_shapes():
    U = torch.randn(6, 2)
    with pytest.raises(ValueError, match="drive"):
        GRUODEField(U, torch.randn(3, 5))
    with pytest.raises(ValueError, match="reset_after"):
        GRUODEField(U, torch.randn(3, 6), b_hn=torch.randn(2), reset_after=False)


# ---------------------------------------------------------------- one Euler step is a GRU update
def _seed_gru(x, h0, cells):
    """A GRU written from the seed's (Cho et al.) equations: h' = z h + (1 - z) g, g = tanh(W_h x + U_h (r h) + b_h)."""
    out = x
    h_n = []
    for layer, cell in enumerate(cells):
        H, h, hs = cell.hidden_size, h0[layer], []
        W, U, b = cell.weight_ih, cell.weight_hh, cell.bias_ih + cell.bias_hh
        for x_t in out:
            r = torch.sigmoid(x_t @ W[:H].T + h @ U[:H].T + b[:H])
            z = torch.sigmoid(x_t @ W[H:2 * H].T + h @ U[H:2 * H].T + b[H:2 * H])
            g = torch.tanh(x_t @ W[2 * H:].T + (r * h) @ U[2 * H:].T + b[2 * H:])
            h = z * h + (1 - z) * g
            hs.append(h)
        out = torch.stack(hs)
        h_n.append(h)
    return out, torch.stack(h_n)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_euler_step_equals_torch_gru(batch_first, num_layers):
    torch.manual_seed(1)
    gru = nn.GRU(4, 6, num_layers, batch_first=batch_first).double()
    ode = GRUODE.from_gru(gru, solver="Euler", dt=1.0, tau=1.0)
    x = torch.randn(3, 7, 4, dtype=f64)
    h0 = torch.randn(num_layers, 3 if batch_first else 7, 6, dtype=f64)
    for h in (None, h0):
        (o1, h1), (o2, h2) = gru(x, h), ode(x, h)
        torch.testing.assert_close(o2, o1, rtol=0, atol=1e-6)
        torch.testing.assert_close(h2, h1, rtol=0, atol=1e-6)
    single = x[0] if batch_first else x[:, 0]               # unbatched (T, I)
    torch.testing.assert_close(ode(single)[0], gru(single)[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_euler_step_equals_seed_gru(num_layers):
    torch.manual_seed(2)
    ode = GRUODE(4, 6, num_layers, solver="Euler", reset_after=False).double()
    x, h0 = torch.randn(5, 3, 4, dtype=f64), torch.randn(num_layers, 3, 6, dtype=f64)
    o1, h1 = _seed_gru(x, h0, ode.cells)
    o2, h2 = ode(x, h0)
    torch.testing.assert_close(o2, o1, rtol=0, atol=1e-6)
    torch.testing.assert_close(h2, h1, rtol=0, atol=1e-6)


@pytest.mark.parametrize("reset_after", VARIANTS)
@pytest.mark.parametrize("learn_tau", [False, True])
def test_euler_step_is_h_plus_dt_over_tau_f(reset_after, learn_tau):
    torch.manual_seed(3)
    cell = GRUODECell(3, 4, solver="Euler", dt=0.4, tau=1.7, learn_tau=learn_tau,
                      reset_after=reset_after).double()
    x, h = torch.randn(2, 3, dtype=f64), torch.randn(2, 4, dtype=f64)
    f = cell.field(cell.drive(x))
    torch.testing.assert_close(cell(x, h), h + 0.4 * f(torch.tensor(0.0), h), rtol=1e-12, atol=1e-12)


def test_from_gru_to_gru_round_trip():
    gru = nn.GRU(3, 5, 2, dropout=0.1)
    back = GRUODE.from_gru(gru, solver="Tsit5").to_gru()
    for (n1, p1), (n2, p2) in zip(gru.named_parameters(), back.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2)
    assert back.dropout == 0.1
    no_bias = nn.GRU(3, 5, bias=False).double()
    x = torch.randn(4, 2, 3, dtype=f64)
    torch.testing.assert_close(GRUODE.from_gru(no_bias, solver="Euler")(x)[0], no_bias(x)[0])
    with pytest.raises(ValueError, match="reset_after=True"):
        GRUODE(3, 5, reset_after=False).to_gru()
    with pytest.raises(ValueError, match="reset_after"):
        GRUODE.from_gru(gru, reset_after=False)


# ---------------------------------------------------------------- the layer
@pytest.mark.parametrize("solver", ["Euler", "Tsit5"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_layer_shapes_like_nn_gru(solver, batch_first):
    layer = GRUODE(3, 5, num_layers=2, batch_first=batch_first, dropout=0.2, solver=solver)
    x = torch.randn(2, 4, 3)                                # (B, T, I) or (T, B, I)
    B = 2 if batch_first else 4
    out, h_n = layer(x)
    assert out.shape == (*x.shape[:2], 5) and h_n.shape == (2, B, 5)
    T_last = out[:, -1] if batch_first else out[-1]
    torch.testing.assert_close(h_n[-1], T_last)
    out2, _ = layer(x, torch.zeros(2, B, 5))
    out_u, h_u = layer(x[0] if batch_first else x[:, 0])    # unbatched (T, I)
    assert out_u.shape == (x.shape[1] if batch_first else x.shape[0], 5) and h_u.shape == (2, 5)
    with pytest.raises(ValueError, match="h0 must have shape"):
        layer(x, torch.zeros(1, B, 5))


@pytest.mark.parametrize("kwargs, match", [
    (dict(solver="Nope"), "unknown solver"), (dict(backward_solver="x"), "unknown solver"),
    (dict(sensealg="magic"), "sensealg"), (dict(rtol=0.0), "rtol"), (dict(dt=-1.0), "dt"), (dict(tau=0), "tau"),
    (dict(backend="jax"), "backend"), (dict(dropout=1.0), "dropout"), (dict(num_layers=0), "num_layers")])
def test_bad_options_fail_in_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GRUODE(3, 4, **kwargs)


def test_settings_are_checked_once_per_sequence_not_per_token(monkeypatch):
    from pyjlode.ode import adjoint

    calls = []
    real = adjoint._make_config
    monkeypatch.setattr(adjoint, "_make_config", lambda *a, **k: calls.append(1) or real(*a, **k))
    layer = GRUODE(3, 4, num_layers=2, solver="Tsit5")
    layer(torch.randn(6, 2, 3))[0].sum().backward()               # 6 tokens, 2 layers
    assert len(calls) == 2


def test_solver_stats_forward_and_backward():
    torch.manual_seed(4)
    layer = GRUODE(3, 4, num_layers=2, solver="Tsit5", rtol=1e-4, atol=1e-6).double()
    out, _ = layer(torch.randn(5, 2, 3, dtype=f64))
    st = layer.solver_stats()
    assert st["nfe_fwd_per_token"] >= 2 * 6 and st["steps_fwd_per_token"] >= 2
    assert st["nfe_bwd_per_token"] == 0
    out.pow(2).sum().backward()
    assert layer.solver_stats()["nfe_bwd_per_token"] > 0
    euler = GRUODE(3, 4, num_layers=2, solver="Euler")
    out, _ = euler(torch.randn(5, 2, 3))
    out.sum().backward()
    assert euler.solver_stats()["nfe_fwd_per_token"] == 2 == euler.solver_stats()["nfe_bwd_per_token"]


def test_adjoint_forward_equals_direct_forward():
    """Same solver, tolerances and warm starts: the adjoint's forward pass is the plain solve."""
    torch.manual_seed(5)
    kw = dict(num_layers=2, solver="Tsit5", rtol=1e-5, atol=1e-7, tau=0.5)
    adj, direct = GRUODE(3, 4, **kw).double(), GRUODE(3, 4, sensealg="direct", **kw).double()
    direct.load_state_dict(adj.state_dict())
    x = torch.randn(6, 2, 3, dtype=f64)
    out = adj(x)[0]
    assert out.requires_grad
    with torch.no_grad():   # same evaluation order as the adjoint's forward: bitwise-close steps
        torch.testing.assert_close(out, direct(x)[0], rtol=1e-12, atol=1e-12)
    # with autograd recording, f's rounding differs by ~1 ulp; the error estimate's cancellation
    # amplifies that into ~1e-9 relative changes of the step sizes, far below the tolerance
    torch.testing.assert_close(out, direct(x)[0], rtol=0, atol=1e-7)


# ---------------------------------------------------------------- adjoint gradients of a language model
def _lm_grads(model, tokens, targets):
    model.zero_grad()
    logits, _ = model(tokens)
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("reset_after, learn_tau", [(False, True), (True, False)])
def test_lm_adjoint_gradients_equal_direct_backprop(reset_after, learn_tau):
    """Tsit5 forward, interpolating adjoint with KenCarp4 backward vs backprop through the same Tsit5
    solve (sensealg="direct"), float64 at tight tolerance: both approximate the exact gradient to far
    below the 1e-5 asked, so agreement checks the adjoint, the VJP and the drive's autograd path."""
    torch.manual_seed(6)
    opts = dict(cell="gru-ode", embed_size=4, hidden_size=5, num_layers=2, solver="Tsit5",
                rtol=1e-9, atol=1e-11, tau=0.5, learn_tau=learn_tau, reset_after=reset_after)
    adj = LanguageModel(11, sensealg="interpolating", backward_solver="KenCarp4", **opts).double()
    ref = LanguageModel(11, sensealg="direct", **opts).double()
    ref.load_state_dict(adj.state_dict())
    tokens = torch.randint(0, 11, (4, 2))
    targets = torch.randint(0, 11, (4, 2))
    g_adj, g_ref = _lm_grads(adj, tokens, targets), _lm_grads(ref, tokens, targets)
    assert adj.solver_stats()["nfe_bwd_per_token"] > 0
    for name in g_ref:
        torch.testing.assert_close(g_adj[name], g_ref[name], rtol=0, atol=1e-5, msg=name)
        # the gradients are O(1e-2): also hold the error relative to their size (seen: ~1e-9)
        scale = g_ref[name].abs().max()
        assert (g_adj[name] - g_ref[name]).abs().max() <= 1e-6 * scale, name


@pytest.mark.slow
def test_stiff_layer_gradients_with_analytic_jacobian():
    """tau = 0.02 makes the field stiff: Rodas5P forward (analytic Jacobian every step) and KenCarp4
    backward give the gradients of a tight Tsit5 solve differentiated directly."""
    torch.manual_seed(0)
    x = torch.randn(2, 2, 3, dtype=f64)
    kw = dict(tau=0.02, reset_after=True)
    ref = GRUODE(3, 4, solver="Tsit5", rtol=1e-10, atol=1e-12, sensealg="direct", **kw).double()
    stiff = GRUODE(3, 4, solver="Rodas5P", backward_solver="KenCarp4", rtol=1e-6, atol=1e-8, **kw).double()
    stiff.load_state_dict(ref.state_dict())
    grads = []
    for layer in (ref, stiff):
        out, _ = layer(x)
        out.pow(2).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in layer.parameters()]))
    assert stiff.solver_stats()["njac_per_token"] > 0
    assert (grads[1] - grads[0]).abs().max() <= 1e-5 * grads[0].abs().max()


# ---------------------------------------------------------------- the julia backend
def test_julia_backend_settings_checked_before_julia_starts():
    with pytest.raises(ValueError, match="learn_tau"):
        GRUODE(3, 4, backend="julia", learn_tau=True)
    with pytest.raises(ValueError, match="direct"):
        GRUODE(3, 4, backend="julia", sensealg="direct")


def test_julia_backend_unavailable_is_one_clear_line():
    try:
        import juliacall  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("juliacall is installed: the backend may be available")
    from pyjlode.backends import BackendUnavailable
    with pytest.raises(BackendUnavailable, match="juliacall") as err:
        GRUODE(3, 4, backend="julia")
    assert "\n" not in str(err.value)


@pytest.mark.julia
def test_julia_backend_matches_torch_engine():
    pytest.importorskip("juliacall")
    torch.manual_seed(8)
    kw = dict(num_layers=2, solver="Tsit5", rtol=1e-8, atol=1e-10, tau=0.5, reset_after=True)
    ours, theirs = GRUODE(3, 4, **kw).double(), GRUODE(3, 4, backend="julia", **kw).double()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 2, 3, dtype=f64)
    out_o, out_t = ours(x)[0], theirs(x)[0]
    torch.testing.assert_close(out_t, out_o, rtol=1e-6, atol=1e-6)
    assert theirs.solver_stats()["nfe_fwd_per_token"] > 0


# ---------------------------------------------------------------- CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("solver", ["Euler", "Tsit5"])
def test_layer_runs_on_cuda_like_cpu(solver):
    torch.manual_seed(7)
    cpu = GRUODE(3, 4, num_layers=2, solver=solver, rtol=1e-6, atol=1e-8).double()
    gpu = GRUODE(3, 4, num_layers=2, solver=solver, rtol=1e-6, atol=1e-8).double().cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(5, 2, 3, dtype=f64)
    out_c, out_g = cpu(x)[0], gpu(x.cuda())[0]
    torch.testing.assert_close(out_g.cpu(), out_c, rtol=1e-9, atol=1e-9)
    out_g.sum().backward()
    assert all(p.grad is not None and p.grad.is_cuda for p in gpu.parameters())
