"""One stepper class per solver family: a frozen plan per tableau, a typed State, ``init`` and ``step``."""
from .base import State, Stepper, StepResult
from .esdirk import ESDIRK, ESDIRKState
from .explicit import ExplicitRK
from .rosenbrock import Rosenbrock, RosenbrockState

__all__ = ["Stepper", "State", "StepResult", "ExplicitRK", "ESDIRK", "ESDIRKState", "Rosenbrock",
           "RosenbrockState"]
