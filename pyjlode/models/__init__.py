"""Recurrent text models: the GRU-ODE layer, the baselines behind one interface, the language model, and
their configs (``ModelConfig``, ``SolverConfig``). The layers load torch on first use; the configs do not."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "CELLS": "pyjlode.models.cells", "RecurrentCell": "pyjlode.models.cells",
    "detach_state": "pyjlode.models.cells", "make_cell": "pyjlode.models.cells",
    "GRUODE": "pyjlode.models.gru_ode", "GRUODECell": "pyjlode.models.gru_ode",
    "GRUODEField": "pyjlode.models.gru_ode_field", "LanguageModel": "pyjlode.models.lm",
    "CELL_NAMES": "pyjlode.models.config", "ModelConfig": "pyjlode.models.config",
    "SolverConfig": "pyjlode.models.solver_config",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static tools see ordinary imports
    from .cells import CELLS, RecurrentCell, detach_state, make_cell
    from .config import CELL_NAMES, ModelConfig
    from .gru_ode import GRUODE, GRUODECell
    from .gru_ode_field import GRUODEField
    from .lm import LanguageModel
    from .solver_config import SolverConfig
