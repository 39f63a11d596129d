"""The solver registry: names (DifferentialEquations.jl spelling) to tableau + stepper."""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Union

from ...errors import InputError
from ..steppers import ESDIRK, ExplicitRK, Rosenbrock, Stepper
from ..tableaus import ButcherTableau, RosenbrockTableau
from .esdirk import KENCARP4, KVAERNO5, TRBDF2
from .explicit import DP5, EULER, RK4, TSIT5
from .rosenbrock import RODAS4, RODAS5P, ROSENBROCK23


@dataclass(frozen=True)
class Method:
    """A registered solver.

    Attributes:
        name: canonical name, as in DifferentialEquations.jl ("Tsit5", "KenCarp4", ...).
        tableau: its coefficients.
        stepper: its family's stepper, holding the plan built once from the tableau.
        order: convergence order p; the PI controller's gains are 7/(10p) and 2/(5p).
        adaptive_order: order of the embedded estimate (None: fixed-step only).
        stiff: implicit or linearly implicit.
        aliases: other accepted names (lookup is case-insensitive).
    """

    name: str
    tableau: Union[ButcherTableau, RosenbrockTableau]
    stepper: Stepper
    order: int
    adaptive_order: int | None
    stiff: bool
    aliases: tuple[str, ...] = ()

    @property
    def adaptive(self) -> bool:
        return self.adaptive_order is not None


def _from_tableau(tab, family, stiff, aliases=()) -> Method:
    return Method(tab.name, tab, family(tab), tab.order, tab.embedded_order, stiff, tuple(aliases))


_methods = [
    _from_tableau(EULER, ExplicitRK, False),
    _from_tableau(RK4, ExplicitRK, False),
    _from_tableau(TSIT5, ExplicitRK, False),
    _from_tableau(DP5, ExplicitRK, False, aliases=("dopri5",)),
]

_methods += [_from_tableau(tab, Rosenbrock, True) for tab in (ROSENBROCK23, RODAS4, RODAS5P)]
_methods += [_from_tableau(tab, ESDIRK, True) for tab in (TRBDF2, KENCARP4, KVAERNO5)]

SOLVERS: dict[str, Method] = {m.name: m for m in _methods}
_LOOKUP = {alias.lower(): m for m in _methods for alias in (m.name, *m.aliases)}


_LINSOLVES = ("dense", "krylov")
_VARIANTS: dict = {}


def get_method(name: str | Method) -> Method:
    """The registered solver called ``name`` (case-insensitive, aliases accepted).

    A stiff solver takes its linear solver after a colon, as OrdinaryDiffEq's ``linsolve=``:
    ``"KenCarp4:krylov"`` (GMRES on J v products, see ``pyjlode.ode.krylov``) or ``":dense"``
    (per-row LU, the default).

    Raises:
        InputError: unknown name or linear solver; the message lists the valid ones.
    """
    if isinstance(name, Method):
        return name
    base, _, linsolve = str(name).partition(":")
    m = _LOOKUP.get(base.strip().lower())
    if m is None:
        raise InputError(f"unknown solver {name!r}; choose one of: {', '.join(sorted(SOLVERS))}")
    linsolve = linsolve.strip().lower()
    if not linsolve or linsolve == "dense":
        return m
    if linsolve not in _LINSOLVES or not m.stiff:
        why = f"linsolve must be one of {', '.join(_LINSOLVES)}" if m.stiff else f"{m.name} solves no linear systems"
        raise InputError(f"solver {name!r}: {why}")
    key = (m.name, linsolve)
    if key not in _VARIANTS:
        stepper = copy.copy(m.stepper)
        stepper.plan = replace(stepper.plan, linsolve=linsolve)
        _VARIANTS[key] = replace(m, name=f"{m.name}:{linsolve}", stepper=stepper, aliases=())
    return _VARIANTS[key]


__all__ = ["Method", "SOLVERS", "get_method"]
