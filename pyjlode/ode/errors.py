"""Solver failures: one clear line naming the solver, t and dt, and what to try."""
from __future__ import annotations

from ..errors import PyjlodeError


class SolverError(PyjlodeError, RuntimeError):
    """Base class for every failure of an ODE solve.

    Attributes are kept so callers (the training loop, the CLI) can react
    without parsing the message.
    """

    hint = ""

    def __init__(self, what: str, *, solver: str = "?", t: float = float("nan"),
                 dt: float = float("nan"), hint: str | None = None):
        self.what, self.solver, self.t, self.dt = what, solver, float(t), float(dt)
        hint = self.hint if hint is None else hint
        msg = f"{solver}: {what} at t={self.t:.6g} (dt={self.dt:.3g})"
        super().__init__(f"{msg}; {hint}" if hint else msg)


class StepSizeUnderflow(SolverError):
    hint = ("the problem is probably stiff: try a stiff solver such as "
            "KenCarp4, Rodas5P or TRBDF2, or loosen rtol/atol")


class MaxStepsExceeded(SolverError):
    hint = "raise max_steps, loosen rtol/atol, or try a stiff solver (KenCarp4, Rodas5P)"


class NewtonFailure(SolverError):
    hint = "the implicit stage equations did not converge: loosen rtol/atol or try Rodas5P"


class NonFiniteState(SolverError):
    hint = "the state became NaN or inf: check the vector field, lower the learning rate, or try a stiff solver"
