"""Optional compute backends for the GRU-ODE: the native torch engine or Julia's SciML stack.

``get_backend("torch")`` is None (the native engine needs nothing extra);
``get_backend("julia")`` imports :mod:`pyjlode.backends.julia`, starts Julia through juliacall
and returns the module, or raises :class:`BackendUnavailable` with the install command.
:func:`preload_for` starts juliacall before torch for command lines that will use Julia, and
:func:`warmup` compiles a model's Julia code paths before a training clock starts.
Nothing here imports juliacall or torch at ``import pyjlode`` time.
"""
from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from ._julia_errors import BackendUnavailable

BACKENDS = ("julia", "torch")

# Options that print something and exit before any command runs.
_INFO_OPTIONS = frozenset({"-h", "--help", "--version"})


def get_backend(name: str) -> ModuleType | None:
    """The module implementing backend ``name``, checked to be runnable.

    Args:
        name: "torch" (native engine) or "julia" (OrdinaryDiffEq + SciMLSensitivity via juliacall).

    Returns:
        None for "torch"; the :mod:`pyjlode.backends.julia` module for "julia".

    Raises:
        ValueError: unknown backend name.
        BackendUnavailable: juliacall, Julia or the Julia packages are missing (one line, with the fix).
    """
    key = str(name).lower()
    if key == "torch":
        return None
    if key == "julia":
        from . import julia

        julia.check_available()
        return julia
    raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")


def wants_julia(argv: Sequence[str]) -> bool:
    """True when a command line selects the Julia engine (``--backend julia`` or ``--backend=julia``)."""
    args = list(argv)
    return any(arg == "--backend=julia" or (arg == "--backend" and args[i + 1:i + 2] == ["julia"])
               for i, arg in enumerate(args))


def preload_for(argv: Sequence[str]) -> bool:
    """Start juliacall before torch if the command line ``argv`` will run the Julia engine.

    juliacall must be imported before torch (PythonCall's advice), and importing it starts Julia,
    which on first use installs Julia and the packages. So this runs only for commands that select
    ``--backend julia`` and will do work: never for ``--help``, ``-h``, ``--version`` or ``doctor``.
    It never raises: the command that needs Julia reports a missing piece in one line.

    Args:
        argv: the arguments after the program name (``sys.argv[1:]``).

    Returns:
        True if juliacall was imported.
    """
    args = list(argv)
    # The group takes only flags, so a command, if any, comes first. `doctor` checks Julia
    # itself and must not install it.
    command = args[0] if args and not args[0].startswith("-") else None
    if command in (None, "doctor") or _INFO_OPTIONS.intersection(args) or not wants_julia(args):
        return False
    from ._julia_runtime import preload

    return preload()


def warmup(model) -> float:
    """Compile the Julia code paths of every Julia-backed GRU-ODE layer in ``model`` now.

    Each distinct setting (dtype, device, solvers, adjoint, tolerances, dt, tau, reset variant)
    gets one tiny forward and backward solve, so Julia's compilation happens here and not inside
    the first training step. A layer is a module whose settings (its ``config``, or the module
    itself) have ``backend == "julia"`` and the fields ``solver``, ``backward_solver``,
    ``sensealg``, ``rtol``, ``atol``, ``dt``, ``tau`` and ``reset_after``; dtype and device come
    from its parameters. A model without such layers costs nothing.

    Returns:
        Seconds spent.
    """
    settings = set()
    for module in model.modules():
        source = getattr(module, "config", module)
        if getattr(source, "backend", None) == "julia":
            settings.add(_julia_settings(source, next(module.parameters())))
    if not settings:
        return 0.0
    julia = get_backend("julia")
    return sum(julia.warmup(**dict(s)) for s in sorted(settings, key=repr))


_SETTINGS = ("solver", "backward_solver", "sensealg", "rtol", "atol", "dt", "tau", "reset_after")


def _julia_settings(source, param) -> tuple:
    values = {name: getattr(source, name) for name in _SETTINGS}
    return tuple(sorted({**values, "dtype": param.dtype, "device": param.device}.items()))


__all__ = ["BACKENDS", "BackendUnavailable", "get_backend", "preload_for", "wants_julia", "warmup"]
