"""The solver registry: names (DifferentialEquations.jl spelling) to tableau + stepper."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, replace
from typing import Union

from ...errors import InputError
from ..dense import HERMITE, Interpolant
from ..steppers import ESDIRK, ExplicitRK, Rosenbrock, Stepper
from ..steppers.composite import STABILITY_SIZE, Composite
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
        interpolant: its dense output between step ends (name, order, the stages it keeps); the cubic
            Hermite of (y, f) at the step ends where the tableau has none.
    """

    name: str
    tableau: Union[ButcherTableau, RosenbrockTableau]
    stepper: Stepper
    order: int
    adaptive_order: int | None
    stiff: bool
    aliases: tuple[str, ...] = ()
    interpolant: Interpolant = HERMITE

    @property
    def adaptive(self) -> bool:
        return self.adaptive_order is not None


def _from_tableau(tab, family, stiff, aliases=()) -> Method:
    interp = HERMITE if tab.dense is None else Interpolant.from_dense(tab.dense, tab.b, tab.kind == "explicit")
    return Method(tab.name, tab, family(tab), tab.order, tab.embedded_order, stiff, tuple(aliases), interp)


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


def _composite(explicit: Method, stiff: Method, aliases=()) -> Method:
    """``Auto<explicit>(<stiff>)``: OrdinaryDiffEq's AutoTsit5(Rosenbrock23()) and its siblings."""
    name = f"Auto{explicit.name}({stiff.name})"
    return Method(name, explicit.tableau, Composite(name, explicit, stiff), explicit.order,
                  explicit.adaptive_order, True, tuple(aliases))


# "auto": the stiff partner measured fastest on the GRU-ODE (docs/benchmarks.md): KenCarp4 reuses its
# Jacobian and LU across steps, where Rosenbrock23 needs both at every step.
AUTO = "AutoTsit5(KenCarp4)"
# Composites are looked up like solvers but kept out of SOLVERS, the table of single methods.
COMPOSITES: dict[str, Method] = {}
for _e in STABILITY_SIZE:
    for _s in (m for m in _methods if m.stiff):
        _c = _composite(SOLVERS[_e], _s)
        COMPOSITES[_c.name] = _c
COMPOSITES[AUTO] = _composite(SOLVERS["Tsit5"], SOLVERS["KenCarp4"], aliases=("auto",))
_LOOKUP.update({alias.lower(): m for m in COMPOSITES.values() for alias in (m.name, *m.aliases)})

_LINSOLVES = ("dense", "krylov")
_VARIANTS: dict = {}


def get_method(name: str | Method) -> Method:
    """The registered solver called ``name`` (case-insensitive, aliases accepted).

    Composites are ``"auto"`` and ``"Auto<Tsit5|DP5>(<stiff solver>)"`` (a trailing ``()`` inside,
    as in Julia, is accepted).
    A stiff solver takes its linear solver after a colon, as OrdinaryDiffEq's ``linsolve=``:
    ``"KenCarp4:krylov"`` (GMRES on J v products, see ``pyjlode.ode.krylov``) or ``":dense"``
    (per-row LU, the default).

    Raises:
        InputError: unknown name or linear solver; the message lists the valid ones.
    """
    if isinstance(name, Method):
        return name
    base, _, linsolve = str(name).partition(":")
    key = base.lower().replace(" ", "").replace("()", "")
    m = _LOOKUP.get(key)
    if m is None:
        raise InputError(_unknown(str(name), key))
    linsolve = linsolve.strip().lower()
    if not linsolve or linsolve == "dense":
        return m
    if linsolve not in _LINSOLVES or not m.stiff or m.name in COMPOSITES:
        why = (f"linsolve must be one of {', '.join(_LINSOLVES)}" if linsolve not in _LINSOLVES
               else f"{m.name} takes no linsolve (give it to a single stiff solver)" if m.stiff
               else f"{m.name} solves no linear systems")
        raise InputError(f"solver {name!r}: {why}")
    key = (m.name, linsolve)
    if key not in _VARIANTS:
        stepper = copy.copy(m.stepper)
        stepper.plan = replace(stepper.plan, linsolve=linsolve)
        _VARIANTS[key] = replace(m, name=f"{m.name}:{linsolve}", stepper=stepper, aliases=())
    return _VARIANTS[key]


def _unknown(name: str, key: str) -> str:
    found = re.fullmatch(r"auto(\w+)\((\w*)\)", key)
    stiff = ", ".join(n for n, m in SOLVERS.items() if m.stiff)
    if found:
        explicit, member = found.groups()
        if explicit not in {e.lower() for e in STABILITY_SIZE}:
            return (f"unknown solver {name!r}: a composite's explicit member is one of "
                    f"{', '.join(STABILITY_SIZE)}, as in AutoTsit5(Rosenbrock23)")
        return f"unknown solver {name!r}: a composite's stiff member is one of {stiff}"
    return (f"unknown solver {name!r}; choose one of: {', '.join(sorted(SOLVERS))}, auto, "
            f"Auto{{{'|'.join(STABILITY_SIZE)}}}(<stiff: {stiff}>)")


__all__ = ["Method", "SOLVERS", "COMPOSITES", "AUTO", "get_method"]
