"""pyjlode: continuous-time recurrent text models (GRU-ODE) with adaptive explicit and stiff ODE solvers
and adjoint gradients in PyTorch, plus an optional Julia (SciML) engine.

The public names below are re-exported lazily (PEP 562): ``import pyjlode`` stays cheap and does not import
torch, so the command line can load juliacall before torch when the Julia engine is asked for.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> defining module
_EXPORTS = {
    # the ODE engine
    "solve": "pyjlode.ode.api", "odeint": "pyjlode.ode.api", "Solution": "pyjlode.ode.solution",
    "SolveStats": "pyjlode.ode.problem", "SOLVERS": "pyjlode.ode.methods", "get_method": "pyjlode.ode.methods",
    "ButcherTableau": "pyjlode.ode.tableaus", "RosenbrockTableau": "pyjlode.ode.tableaus",
    "odeint_adjoint": "pyjlode.ode.adjoint", "AdjointConfig": "pyjlode.ode.adjoint",
    "AdjointStats": "pyjlode.ode.adjoint",
    "SolverError": "pyjlode.ode.errors", "StepSizeUnderflow": "pyjlode.ode.errors",
    "MaxStepsExceeded": "pyjlode.ode.errors", "NewtonFailure": "pyjlode.ode.errors",
    "NonFiniteState": "pyjlode.ode.errors",
    # models
    "GRUODE": "pyjlode.models", "GRUODECell": "pyjlode.models", "GRUODEField": "pyjlode.models",
    "CELLS": "pyjlode.models", "RecurrentCell": "pyjlode.models", "make_cell": "pyjlode.models",
    "detach_state": "pyjlode.models", "LanguageModel": "pyjlode.models", "ModelConfig": "pyjlode.models",
    # training and evaluation, as the command line runs them
    "TrainConfig": "pyjlode.train", "evaluate_checkpoint": "pyjlode.evaluate",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'pyjlode' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return __all__


if TYPE_CHECKING:  # static tools see ordinary imports
    from .models import (CELLS, GRUODE, GRUODECell, GRUODEField, LanguageModel, ModelConfig,
                         RecurrentCell, detach_state, make_cell)
    from .ode.adjoint import AdjointConfig, AdjointStats, odeint_adjoint
    from .ode.api import odeint, solve
    from .ode.errors import (MaxStepsExceeded, NewtonFailure, NonFiniteState, SolverError,
                             StepSizeUnderflow)
    from .ode.solution import Solution
    from .ode.methods import SOLVERS, get_method
    from .ode.problem import SolveStats
    from .ode.tableaus import ButcherTableau, RosenbrockTableau
    from .evaluate import evaluate_checkpoint
    from .train import TrainConfig
