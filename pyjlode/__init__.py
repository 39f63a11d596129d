"""pyjlode: continuous-time recurrent text models (GRU-ODE) with adaptive explicit and stiff ODE solvers
and adjoint gradients in PyTorch, plus an optional Julia (SciML) engine.

The names below are the public surface; everything else is reachable from its module (``pyjlode.models``,
``pyjlode.ode``, ``pyjlode.training``, ``pyjlode.evaluation``, ``pyjlode.experiments``). They load on
first use (PEP 562): ``import pyjlode`` does not import torch, so the command line can start Julia first.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # the layers and the model
    "GRUODE": "pyjlode.models.gru_ode", "GRUODECell": "pyjlode.models.gru_ode",
    "LanguageModel": "pyjlode.models.lm",
    # their configs, and training's
    "SolverConfig": "pyjlode.models.solver_config", "ModelConfig": "pyjlode.models.config",
    "TrainConfig": "pyjlode.training.config",
    # the ODE engine
    "solve": "pyjlode.ode.api", "odeint": "pyjlode.ode.api", "odeint_adjoint": "pyjlode.ode.adjoint",
    "SOLVERS": "pyjlode.ode.methods",
    # errors: the base of every deliberate one, and a failed solve
    "PyjlodeError": "pyjlode.errors", "SolverError": "pyjlode.ode.errors",
}
__all__ = sorted(_EXPORTS) + ["__version__"]
__getattr__, _ = lazy_exports(__name__, _EXPORTS)


def __dir__():
    return __all__


if TYPE_CHECKING:  # static tools see ordinary imports
    from .errors import PyjlodeError
    from .models.config import ModelConfig
    from .models.gru_ode import GRUODE, GRUODECell
    from .models.lm import LanguageModel
    from .models.solver_config import SolverConfig
    from .ode.adjoint import odeint_adjoint
    from .ode.api import odeint, solve
    from .ode.errors import SolverError
    from .ode.methods import SOLVERS
    from .training.config import TrainConfig
