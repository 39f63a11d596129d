"""Solver failures: one line naming the solver, t and dt, the cause, and what to try.

A failure carries the context it happened in: the solver's family (``"explicit"``, ``"rosenbrock"``,
``"esdirk"``), and, for the adjoint's backward solve, the ``sensealg``. Its hint is built from that
context, so it never suggests what the user already did (a Rodas5P user is not told to try a stiff
solver) and names the real fix where there is one (a failing ``sensealg="backsolve"`` is pointed to
the interpolating adjoint). Callers that learn more context after the fact (the adjoint) add it with
:meth:`SolverError.with_context`.
"""
from __future__ import annotations

from typing import Optional

from ..errors import PyjlodeError

_STIFF_FAMILIES = ("rosenbrock", "esdirk", "composite")   # a composite has a stiff member
_BACKSOLVE = ("sensealg='backsolve' re-integrates y backwards in time, where decaying modes grow: "
              "use sensealg='interpolating' (the default), which reads y from the forward solve")


class SolverError(PyjlodeError, RuntimeError):
    """Base class for every failure of an ODE solve.

    Attributes are kept so callers (the training loop, the CLI) can react without parsing the
    message: ``what``, ``solver``, ``t``, ``dt``, and the context ``family`` (the solver's family,
    None if unknown), ``sensealg`` and ``backward`` (the failure happened in the adjoint's
    backward solve).
    """

    def __init__(self, what: str, *, solver: str = "?", t: float = float("nan"), dt: float = float("nan"),
                 hint: Optional[str] = None, family: Optional[str] = None, sensealg: Optional[str] = None,
                 backward: bool = False):
        self.what, self.solver, self.t, self.dt = what, solver, float(t), float(dt)
        self.family, self.sensealg, self.backward = family, sensealg, backward
        self._given_hint = hint
        super().__init__(self._message())

    @property
    def stiff(self) -> Optional[bool]:
        """Whether the failing solver was a stiff one (None when the family is unknown)."""
        return None if self.family is None else self.family in _STIFF_FAMILIES

    @property
    def hint(self) -> str:
        """What to try, for this failure in its context."""
        if self._given_hint is not None:
            return self._given_hint
        if self.backward and self.sensealg == "backsolve":
            return _BACKSOLVE
        return self._hint()

    def _hint(self) -> str:
        return ""

    def with_context(self, *, sensealg: Optional[str] = None, backward: bool = False) -> "SolverError":
        """Add what the caller knows (the adjoint's sensealg, a backward solve); rebuilds the message."""
        self.sensealg, self.backward = sensealg, backward
        self.args = (self._message(),)
        return self

    def _message(self) -> str:
        where = f"{self.solver} (adjoint backward solve)" if self.backward else self.solver
        msg = f"{where}: {self.what} at t={self.t:.6g} (dt={self.dt:.3g})"
        hint = self.hint
        return f"{msg}; {hint}" if hint else msg

    def _names(self) -> tuple[str, str]:
        """The setting names this failure's hint uses: solver and tolerance, as the caller spells them."""
        return ("backward_solver", "backward_rtol") if self.backward else ("solver", "rtol/atol")


class StepSizeUnderflow(SolverError):
    """The step size fell below the floor a float can resolve at t, with the solution finite and bounded."""

    def _hint(self) -> str:
        return ("the vector field is probably discontinuous, singular or undefined just past t, or not a "
                "function of (t, y) alone (random, e.g. dropout left on): check the model near that time")


class FiniteTimeBlowUp(StepSizeUnderflow):
    """The solution grows without bound as the step size collapses: y(t) has a singularity at t."""

    def _hint(self) -> str:
        return ("no solver can integrate through a blow-up: check the model (a sign, a missing damping or "
                "saturation term) or end the interval before this time")


class MaxStepsExceeded(SolverError):
    def _hint(self) -> str:
        solver, tol = self._names()
        if self.stiff:
            return f"raise max_steps or loosen {tol}"
        return (f"raise max_steps, loosen {tol}, or, if the steps stayed small while the solution changed "
                f"slowly (stiffness), use a stiff {solver} such as KenCarp4 or Rodas5P")


class NewtonFailure(SolverError):
    def _hint(self) -> str:
        solver, tol = self._names()
        return (f"the implicit stage equations did not converge: loosen {tol}, pass the exact Jacobian "
                f"(jac=), or use {solver} Rodas5P, which needs no Newton iteration")


class NonFiniteState(SolverError):
    """NaN or inf in the solve. ``cause``: ``"field"`` (f returned NaN/inf at a finite state),
    ``"jacobian"`` (the Jacobian did), ``"initial"`` (y0 or f(t0, y0)), ``"domain"`` (f is finite
    at the current state but every step from it met NaN/inf), or ``"state"`` (unknown)."""

    def __init__(self, what: str, *, cause: str = "state", **kwargs):
        self.cause = cause
        super().__init__(what, **kwargs)

    def _hint(self) -> str:
        if self.cause == "field":
            return ("the vector field itself returns NaN or inf there (log, sqrt or division outside its "
                    "domain, an overflow, or NaN parameters after a diverged training update): fix f; "
                    "a smaller step or another solver will not help")
        if self.cause == "jacobian":
            return ("its Jacobian is NaN or inf there (e.g. sqrt or abs at 0, where f is not differentiable): "
                    "pass a finite jac=, smooth f, or use an explicit solver if the problem is not stiff")
        if self.cause == "initial":
            return "check y0 and the vector field at the initial time"
        if self.cause == "domain":
            return ("the solution is leaving the domain where f is defined (e.g. sqrt or log of a quantity "
                    "reaching zero): check the model near that time")
        return "check the vector field and its parameters for NaN or inf"
