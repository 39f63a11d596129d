"""pyjlode's ODE engine: adaptive explicit and stiff Runge-Kutta solvers in PyTorch."""
from .api import odeint as odeint, solve as solve
from .errors import (FiniteTimeBlowUp as FiniteTimeBlowUp, MaxStepsExceeded as MaxStepsExceeded,
                     NewtonFailure as NewtonFailure, NonFiniteState as NonFiniteState,
                     SolverError as SolverError, StepSizeUnderflow as StepSizeUnderflow)
from .loop import integrate as integrate
from .methods import SOLVERS as SOLVERS, Method as Method, get_method as get_method
from .problem import Problem as Problem, SolveStats as SolveStats
from .solution import Solution as Solution
from .steppers import StepResult as StepResult
from .tableaus import ButcherTableau as ButcherTableau, RosenbrockTableau as RosenbrockTableau

__all__ = ["solve", "odeint", "integrate", "Solution", "SOLVERS", "Method", "get_method", "Problem",
           "SolveStats", "StepResult", "ButcherTableau", "RosenbrockTableau", "SolverError",
           "StepSizeUnderflow", "FiniteTimeBlowUp", "MaxStepsExceeded", "NewtonFailure", "NonFiniteState"]
