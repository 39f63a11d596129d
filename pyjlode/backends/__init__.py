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


__all__ = ["BACKENDS", "BackendUnavailable", "get_backend"]
