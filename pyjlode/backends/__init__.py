"""Optional compute backends for the GRU-ODE: the native torch engine or Julia's SciML stack.

``get_backend("torch")`` is None (the native engine needs nothing extra);
``get_backend("julia")`` imports :mod:`pyjlode.backends.julia`, starts Julia through juliacall
and returns the module, or raises :class:`BackendUnavailable` with the install command.
Nothing here imports juliacall at ``import pyjlode`` time.
"""
from __future__ import annotations

from types import ModuleType

from ..errors import PyjlodeError

BACKENDS = ("julia", "torch")


class BackendUnavailable(PyjlodeError, RuntimeError):
    """A backend was requested but cannot run here; the message names what is missing and the fix."""


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


def wants_julia(argv: list[str]) -> bool:
    """True when a command line selects the Julia backend (``--backend julia`` or ``--backend=julia``)."""
    for i, arg in enumerate(argv):
        if arg == "--backend" and i + 1 < len(argv) and argv[i + 1] == "julia":
            return True
        if arg == "--backend=julia":
            return True
    return False


def preload_for(argv: list[str]) -> None:
    """Start Julia now, before anything imports torch, when the command line ``argv`` asks for it.

    juliacall must be imported before torch; the command line calls this first thing. A failure is
    not raised here: the command that needs Julia reports the missing piece in one line.
    """
    if not wants_julia(argv):
        return
    try:
        from . import julia

        julia.preload()
    except Exception:
        pass


__all__ = ["BACKENDS", "BackendUnavailable", "get_backend", "preload_for", "wants_julia"]
