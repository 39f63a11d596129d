"""Errors of the Julia engine: an engine that cannot run, and Julia solve failures as SolverErrors.

A forward or adjoint solve that stops early throws ``PyJlODE.SolveFailure`` in Julia; juliacall
raises it as ``juliacall.JuliaError``. The bridge turns it into the same one-line ``SolverError``
subclasses the native engine raises (naming solver, t and dt, with a hint), so callers that catch
``SolverError`` (the trainer, the CLI) handle both engines alike, including failures raised from
inside ``loss.backward()``. Any other Julia error is left as it is: it is a bug, not a solve failure.
"""
from __future__ import annotations

import sys

from ..errors import PyjlodeError


class BackendUnavailable(PyjlodeError, RuntimeError):
    """A backend was requested but cannot run here; the message names what is missing and the fix."""


# SciML ReturnCode names (SciMLBase `ReturnCode`) -> the native class's name.
_BY_RETCODE = {
    "MaxIters": "MaxStepsExceeded",
    "DtLessThanMin": "StepSizeUnderflow",
    "Unstable": "StepSizeUnderflow",      # dt fell below eps(t); a NaN state is caught first
    "DtNaN": "NonFiniteState",
    "ConvergenceFailure": "NewtonFailure",
    "NonFiniteGradient": "NonFiniteState",
}

_ADJOINT_HINT = ("the adjoint's reverse solve stopped before t=0: try a stiff backward solver "
                 "(backward_solver='KenCarp4' or 'Rodas5P' with sensealg='gauss') or loosen the "
                 "backward tolerances")


def solver_error(stage: str, solver: str, retcode: str, t: float, dt: float, nonfinite: bool):
    """The SolverError for one ``PyJlODE.failure_info`` tuple."""
    from ..ode import errors

    name = "NonFiniteState" if nonfinite else _BY_RETCODE.get(retcode, "SolverError")
    cls = getattr(errors, name)
    what = (f"Julia {stage} solve stopped early (ReturnCode.{retcode})" if stage == "forward"
            else f"Julia adjoint solve failed ({retcode})")
    hint = _ADJOINT_HINT if stage == "adjoint" and cls is errors.SolverError else None
    return cls(what, solver=solver, t=t, dt=dt, hint=hint)


def translate(err: BaseException, failure_info):
    """The SolverError for a ``juliacall.JuliaError`` carrying a SolveFailure, else None.

    Args:
        err: the exception a Julia call raised.
        failure_info: ``PyJlODE.failure_info`` (a tuple for a SolveFailure, None otherwise).
    """
    juliacall = sys.modules.get("juliacall")
    error_type = getattr(juliacall, "JuliaError", None)
    if error_type is None or not isinstance(err, error_type):
        return None
    info = failure_info(err.exception)
    return None if info is None else solver_error(*tuple(info))
