"""SolverConfig: how a GRU-ODE layer integrates and differentiates its per-token ODE.

This dataclass holds the only copy of every solver setting's default and the only check of them
(:meth:`SolverConfig.validate`); the layers, the language model, checkpoints and the command line all take
their settings from it. Importing this module imports neither torch nor the ODE engine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from ..backends import BACKENDS
from ..backends._julia_names import SENSEALGS as JULIA_SENSEALGS
from ..errors import InputError
from ..flags import flag

DIRECT = "direct"   # sensealg: backprop through the solver's operations instead of the adjoint
# Gradient methods per engine, the default first: the option's help and its error both list these. The
# torch engine's adjoints are pyjlode.ode.adjoint.SENSEALGS (a test keeps the two equal).
SENSEALGS = {"torch": ("interpolating", "backsolve", DIRECT),
             "julia": ("gauss", *(n for n in JULIA_SENSEALGS if n != "gauss"))}
# The torch adjoint's dL/dθ error handling (pyjlode.ode.adjoint.QUAD_ERRORS; a test keeps the two equal).
QUAD_ERRORS = ("control", "ignore")
SENSEALG_CHOICES = "; ".join(f"{backend} backend: {', '.join(names)}" for backend, names in SENSEALGS.items())


@dataclass(frozen=True)
class SolverConfig:
    """Settings of every per-token solve of a GRU-ODE layer (plain data: ``asdict`` goes in checkpoints).

    Settings are named as the layers' keyword arguments, e.g. ``GRUODE(128, 256, rtol=1e-4)``.
    """

    solver: str = field(default="Tsit5", metadata=flag(
        "GRU-ODE forward solver, a name in pyjlode.SOLVERS (case-insensitive): Tsit5, DP5 (dopri5), RK4, "
        "Euler, or a stiff one such as KenCarp4, Kvaerno5, TRBDF2, Rodas4, Rodas5P, Rosenbrock23."))
    backward_solver: str | None = field(default=None, metadata=flag(
        "Solver for the adjoint's backward pass, e.g. KenCarp4 (a stiff one), or auto (AutoTsit5(KenCarp4): "
        "Tsit5 that switches to KenCarp4 where the adjoint is stiff).", aliases=("--stiff-solver",),
        default_text="auto after an adaptive explicit --solver on the torch backend, else same as --solver"))
    sensealg: str | None = field(default=None, metadata=flag(
        f"Gradient method, the first of each list being the default ({SENSEALG_CHOICES}); interpolating, "
        "backsolve, gauss and quadrature are adjoints, direct backpropagates through the solver.",
        default_text="the backend's first"))   # None: the backend's default
    rtol: float = field(default=1e-3, metadata=flag("GRU-ODE relative tolerance."))
    atol: float = field(default=1e-5, metadata=flag("GRU-ODE absolute tolerance."))
    dt: float = 1.0                 # length of one token's time interval
    tau: float = field(default=1.0, metadata=flag(
        "GRU-ODE time constant tau (dh/dt is divided by it). With --learn-tau: the end of the initial "
        "range that --tau-min or --tau-max leaves out (alone, every unit starts at tau)."))
    learn_tau: bool = field(default=False, metadata=flag(
        "Learn one time constant per hidden unit (as log tau, so it stays positive), initialised "
        "log-uniformly over [--tau-min, --tau-max]."))
    tau_min: float | None = field(default=None, metadata=flag(
        "Smallest initial tau with --learn-tau.", default_text="same as --tau"))   # None: tau
    tau_max: float | None = field(default=None, metadata=flag(
        "Largest initial tau with --learn-tau.", default_text="same as --tau"))   # None: tau
    reset_after: bool = False       # PyTorch's candidate tanh(c_h + r (U_h h + b_hn)) instead of the seed's
    # torch adjoints: "control" puts dL/dθ's quadrature error into each backward step's error ratio,
    # "ignore" integrates it along the adjoint state's steps unchecked (see odeint_adjoint). "ignore" here:
    # the drive is constant per token, so ∂f/∂θ is as smooth as a(t) and the steps a needs suit the
    # quadrature too; measured (B=32, H=256, 5 tokens, Tsit5, rtol 1e-3) control took 1.74x the time at
    # tau=1 and 1.39x at tau=0.1 (one more backward step per token plus the per-step error) for a
    # gradient change of 2.6e-5 relative.
    quad_error: str = "ignore"
    backend: str = field(default="torch", metadata=flag(
        "Engine for the GRU-ODE solves; julia needs `pip install pyjlode[julia]`.", choices=BACKENDS))

    @classmethod
    def with_options(cls, base: SolverConfig | None = None, **options) -> SolverConfig:
        """``base`` (default: the defaults) with the settings in ``options`` changed.

        Raises:
            InputError: an option that is not a setting.
        """
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise InputError(f"unknown solver setting(s) {', '.join(unknown)}; "
                             f"the settings are: {', '.join(f.name for f in fields(cls))}")
        return replace(base or cls(), **options)

    def validate(self) -> SolverConfig:
        """Check every setting before anything is solved; return the config with canonical solver names.

        Raises:
            InputError: a setting that cannot work, named in backticks, with the fix.
        """
        solver = _canonical("solver", self.solver)
        backward = None if self.backward_solver is None else _canonical("backward_solver", self.backward_solver)
        if backward is None:
            backward = _default_backward(solver, self.backend)
        if self.backend not in BACKENDS:
            raise InputError(f"unknown `backend` {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        sensealg = (self.sensealg or SENSEALGS[self.backend][0]).lower()
        if sensealg not in SENSEALGS[self.backend]:
            other = [b for b, names in SENSEALGS.items() if sensealg in names]
            hint = f"`sensealg` {sensealg} needs `backend` {other[0]}" if other else f"unknown `sensealg` {sensealg!r}"
            raise InputError(f"{hint}; choose from ({SENSEALG_CHOICES})")
        for name in ("rtol", "atol", "dt", "tau", "tau_min", "tau_max"):
            value = getattr(self, name)
            if value is None and name in ("tau_min", "tau_max"):
                continue
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"`{name}` must be a positive number, got {value!r}")
        if self.quad_error not in QUAD_ERRORS:
            raise InputError(f"unknown `quad_error` {self.quad_error!r}; choose one of: {', '.join(QUAD_ERRORS)}")
        self._validate_tau_range()
        if self.backend == "julia":
            self._validate_julia(solver, backward, sensealg)
        return replace(self, solver=solver, backward_solver=backward, sensealg=sensealg,
                       rtol=float(self.rtol), atol=float(self.atol),
                       dt=float(self.dt), tau=float(self.tau),
                       tau_min=None if self.tau_min is None else float(self.tau_min),
                       tau_max=None if self.tau_max is None else float(self.tau_max))

    def tau_range(self) -> tuple[float, float]:
        """The initial (tau_min, tau_max) of a learned tau; an end that is not set is ``tau``."""
        return (self.tau if self.tau_min is None else self.tau_min,
                self.tau if self.tau_max is None else self.tau_max)

    def _validate_tau_range(self) -> None:
        if self.tau_min is None and self.tau_max is None:
            return
        if not self.learn_tau:
            raise InputError("`tau_min`/`tau_max` set the initial spread of a learned tau; "
                             "add `learn_tau` or drop them")
        lo, hi = self.tau_range()
        if lo > hi:
            filled = " (`tau` stands in for the end not given)" if None in (self.tau_min, self.tau_max) else ""
            raise InputError(f"`tau_min` {lo:g} is above `tau_max` {hi:g}{filled}; "
                             "give 0 < `tau_min` <= `tau_max`")

    def _validate_julia(self, solver: str, backward: str | None, sensealg: str) -> None:
        if self.learn_tau:
            raise InputError("`learn_tau` is not supported by the julia backend; use `backend` torch")
        if sensealg == DIRECT:
            raise InputError("`sensealg` direct needs `backend` torch; the julia backend uses SciML's adjoints")
        from ..backends import julia

        try:   # the Julia engine's own checks; Julia itself is not started
            julia.make_config(dt=self.dt, tau=self.tau, reset_after=self.reset_after, solver=solver,
                              backward_solver=backward, sensealg=sensealg, rtol=self.rtol, atol=self.atol)
        except InputError:
            raise
        except ValueError as exc:
            raise InputError(str(exc)) from None


def _default_backward(solver: str, backend: str) -> str | None:
    """auto after Tsit5/DP5 on the torch engine: it costs what Tsit5 costs on a non-stiff adjoint
    (docs/benchmarks.md) and switches to KenCarp4 where the adjoint is stiff. None (the forward
    solver) after a stiff or fixed-step one, and on the Julia engine."""
    from ..ode.methods import AUTO, get_method

    method = get_method(solver)
    return AUTO if backend == "torch" and method.adaptive and not method.stiff else None


def _canonical(name: str, value: str) -> str:
    from ..ode.methods import get_method

    try:
        return get_method(value).name
    except ValueError as exc:
        raise InputError(f"`{name}`: {exc}") from None


__all__ = ["SolverConfig", "DIRECT", "SENSEALGS"]
