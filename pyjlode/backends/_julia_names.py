"""Names the Julia engine accepts, validated before Julia starts.

Solver names come from the native engine's registry (``pyjlode.ode.SOLVERS``), the one table of
solver names: ``julia/src/solvers.jl`` mirrors it (same names, aliases, stiffness and fixed-step
methods), which a static test checks. The adjoint names are the Julia engine's own, mirrored by
``julia/src/backward.jl``. Importing this module imports neither torch nor juliacall; the registry
is read when a name is looked up.
"""
from __future__ import annotations

SENSEALGS = ("interpolating", "backsolve", "quadrature", "gauss")
# gauss: a λ-only reverse ODE on the dense forward solution with the parameter gradient by
# quadrature, like the native engine's interpolating adjoint, and the one SciML recommends.
DEFAULT_SENSEALG = "gauss"
# SciML's Interpolating/Backsolve adjoints carry the parameter integral in the ODE state, so a
# stiff reverse solver would factor (HB + p)² matrices; Gauss/Quadrature keep it out.
STATE_CARRYING = frozenset({"interpolating", "backsolve"})


def _registry():
    from ..ode import SOLVERS, get_method

    return SOLVERS, get_method


def solver_names() -> tuple[str, ...]:
    """Canonical solver names, in registry order."""
    return tuple(_registry()[0])


def canonical_solver(name: str) -> str:
    """The registry spelling of ``name`` (case-insensitive; aliases such as ``dopri5`` accepted).

    Raises:
        ValueError: unknown name; the message lists the choices.
    """
    return _registry()[1](name).name


def is_stiff(name: str) -> bool:
    """Whether the solver called ``name`` is implicit (needs the CPU's analytic Jacobian here)."""
    return _registry()[1](name).stiff


def check_sensealg(sensealg: str | None, backward_solver: str) -> str:
    """The canonical adjoint name (``None`` means the default); one-line ValueError otherwise."""
    key = DEFAULT_SENSEALG if sensealg is None else str(sensealg).lower()
    if key not in SENSEALGS:
        raise ValueError(f"unknown sensealg {sensealg!r} for the julia backend; choose one of: "
                         f"{', '.join(SENSEALGS)}")
    if key in STATE_CARRYING and is_stiff(backward_solver):
        raise ValueError(f"sensealg={key!r} with the stiff backward solver {backward_solver} makes SciML "
                         f"factor Jacobians over all parameters; use sensealg='gauss' (or 'quadrature')")
    return key
