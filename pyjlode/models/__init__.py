"""Recurrent text models: the GRU-ODE layer, the baselines behind one interface, the language model."""
from .cells import (CELLS as CELLS, RecurrentCell as RecurrentCell, detach_state as detach_state,
                    make_cell as make_cell)
from .gru_ode import GRUODE as GRUODE, GRUODECell as GRUODECell
from .gru_ode_field import GRUODEField as GRUODEField
from .lm import LanguageModel as LanguageModel, ModelConfig as ModelConfig

__all__ = ["CELLS", "RecurrentCell", "make_cell", "detach_state", "GRUODE", "GRUODECell", "GRUODEField",
           "LanguageModel", "ModelConfig"]
