"""The four recurrent cores behind one interface: rnn (tanh), gru, lstm (torch's fused kernels) and
gru-ode (ours). Each owns the shape of its state, so callers never branch on the cell type."""
from __future__ import annotations

from typing import Union

import torch
from torch import Tensor, nn

from ..errors import InputError
from .config import CELL_NAMES, canonical_cell
from .gru_ode import GRUODE

State = Union[Tensor, tuple]


def detach_state(state: State) -> State:
    """Cut the graph behind a state (truncated backprop through time); tuples are detached per item."""
    if isinstance(state, Tensor):
        return state.detach()
    return tuple(detach_state(s) for s in state)


class RecurrentCell(nn.Module):
    """A stack of recurrent layers over a (T, B, E) sequence.

    Subclasses set ``self.rnn`` (called as ``out, state = rnn(x, state)``) and may override
    :meth:`init_state` when their state is not a single (num_layers, B, H) tensor.
    """

    solver_settings = False   # True for a core configured by a SolverConfig (it takes config=/settings)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.dropout = float(dropout)
        self.between = self.dropout if num_layers > 1 else 0.0   # torch warns on dropout with one layer

    def init_state(self, batch_size: int, device=None, dtype=None) -> State:
        """Zeros of shape (num_layers, batch_size, hidden_size) on the parameters' device/dtype."""
        p = next(self.parameters())
        return torch.zeros(self.num_layers, batch_size, self.hidden_size,
                           device=device or p.device, dtype=dtype or p.dtype)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x (T, B, E) and a state (None: zeros) -> (output (T, B, H), new state)."""
        if state is None:
            state = self.init_state(x.shape[1], x.device, x.dtype)
        return self.rnn(x, state)

    detach_state = staticmethod(detach_state)

    def solver_stats(self) -> dict:
        """Solver work per token of the last forward/backward; {} for the discrete baselines."""
        return {}


class TanhRNNCore(RecurrentCell):
    """Elman RNN with tanh (torch.nn.RNN)."""

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0):
        super().__init__(input_size, hidden_size, num_layers, dropout)
        self.rnn = nn.RNN(input_size, hidden_size, num_layers, nonlinearity="tanh", dropout=self.between)


class GRUCore(RecurrentCell):
    """torch.nn.GRU (gate order r, z, n; PyTorch's reset-after candidate)."""

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0):
        super().__init__(input_size, hidden_size, num_layers, dropout)
        self.rnn = nn.GRU(input_size, hidden_size, num_layers, dropout=self.between)


class LSTMCore(RecurrentCell):
    """torch.nn.LSTM; its state is the pair (h, c), each (num_layers, B, H)."""

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0):
        super().__init__(input_size, hidden_size, num_layers, dropout)
        self.rnn = nn.LSTM(input_size, hidden_size, num_layers, dropout=self.between)

    def init_state(self, batch_size, device=None, dtype=None):
        h = super().init_state(batch_size, device, dtype)
        return h, torch.zeros_like(h)


class GRUODECore(RecurrentCell):
    """The GRU-ODE stack (:class:`~pyjlode.models.gru_ode.GRUODE`), configured by a SolverConfig."""

    solver_settings = True

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0, config=None, **settings):
        super().__init__(input_size, hidden_size, num_layers, dropout)
        self.rnn = GRUODE(input_size, hidden_size, num_layers, dropout=dropout, config=config, **settings)

    def solver_stats(self) -> dict:
        return self.rnn.solver_stats()


# in the order of CELL_NAMES, the names the configs and the command line know
CELLS: dict[str, type] = dict(zip(CELL_NAMES, (TanhRNNCore, GRUCore, LSTMCore, GRUODECore)))


def make_cell(name: str, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
              **settings) -> RecurrentCell:
    """Build the recurrent core called ``name`` (case-insensitive; "gru_ode" works too).

    Args:
        settings: for "gru-ode", ``config=SolverConfig(...)`` and/or SolverConfig fields.

    Raises:
        InputError: unknown name (the message lists CELLS), or settings for a core that takes none
            (solver settings belong to "gru-ode" only).
    """
    key = canonical_cell(name)
    cls = CELLS[key]
    if settings and not cls.solver_settings:
        raise InputError(f"cell {key!r} does not take option(s) {', '.join(sorted(settings))}; "
                         "solver settings belong to 'gru-ode'")
    return cls(input_size, hidden_size, num_layers, dropout, **settings)
