"""Claims about the recurrent cores: one interface for all four, each owning its state's shape."""
import pytest
import torch

from pyjlode.models import CELLS, RecurrentCell, detach_state, make_cell

NAMES = sorted(CELLS)


def _build(name, num_layers=2, **kw):
    opts = dict(solver="Euler") if name == "gru-ode" else {}    # fast path: shapes, not solver work
    return make_cell(name, 3, 5, num_layers=num_layers, dropout=0.1, **opts, **kw)


def _leaves(state):
    return [state] if isinstance(state, torch.Tensor) else [t for s in state for t in _leaves(s)]


def test_registry_has_the_four_cells():
    assert NAMES == ["gru", "gru-ode", "lstm", "rnn"]
    assert all(issubclass(cls, RecurrentCell) for cls in CELLS.values())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_shapes_and_state_round_trip(name, num_layers):
    cell = _build(name, num_layers)
    x = torch.randn(4, 2, 3)                                     # (T, B, E)
    out, state = cell(x)                                         # state None -> zeros
    assert out.shape == (4, 2, 5)
    for leaf in _leaves(state):
        assert leaf.shape == (num_layers, 2, 5)
    init = cell.init_state(2)
    assert type(init) is type(state) and all(t.abs().sum() == 0 for t in _leaves(init))
    # carrying the state across two halves equals one pass over the whole sequence
    cell.eval()
    full, _ = cell(x, init)
    first, mid = cell(x[:2], init)
    second, _ = cell(x[2:], mid)
    torch.testing.assert_close(torch.cat([first, second]), full, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_detach_state_cuts_the_graph(name):
    cell = _build(name)
    _, state = cell(torch.randn(3, 2, 3))
    assert all(t.requires_grad for t in _leaves(state))
    cut = cell.detach_state(state)
    assert type(cut) is type(state)
    assert all(not t.requires_grad for t in _leaves(cut))
    assert all(torch.equal(a, b) for a, b in zip(_leaves(cut), _leaves(state)))
    out, _ = cell(torch.randn(3, 2, 3), cut)                    # TBPTT: a second window trains alone
    out.sum().backward()


@pytest.mark.parametrize("name", NAMES)
def test_solver_stats_only_for_gru_ode(name):
    cell = _build(name)
    cell(torch.randn(3, 2, 3))
    stats = cell.solver_stats()
    if name == "gru-ode":
        assert stats["nfe_fwd_per_token"] == 2                  # one Euler step per layer
    else:
        assert stats == {}


def test_detach_state_nested():
    h = torch.ones(2, requires_grad=True) * 2
    out = detach_state((h, (h, h)))
    assert not out[0].requires_grad and not out[1][1].requires_grad


def test_make_cell_errors_name_the_fix():
    with pytest.raises(ValueError, match="gru, gru-ode, lstm, rnn"):
        make_cell("transformer", 3, 5)
    with pytest.raises(ValueError, match="does not take option"):
        make_cell("gru", 3, 5, solver="Tsit5")
    assert isinstance(make_cell("GRU_ODE", 3, 5, solver="Euler"), CELLS["gru-ode"])


def test_gru_and_gru_ode_have_equal_parameter_counts():
    counts = {n: sum(p.numel() for p in make_cell(n, 7, 9, 2).parameters()) for n in ("gru", "gru-ode")}
    assert counts["gru"] == counts["gru-ode"]
