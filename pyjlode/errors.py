"""The errors pyjlode raises on purpose.

Every deliberate failure derives from :class:`PyjlodeError`, so callers can tell a reported problem from
a bug: the command line prints a ``PyjlodeError`` as one line (exit status 2) and lets anything else
show its traceback.

A message is one line naming the problem and the fix. It names a setting by its field or argument name
in backticks (```rtol```); the command line shows its own flag there instead (``--rtol``).
"""
from __future__ import annotations


class PyjlodeError(Exception):
    """Base of every error pyjlode raises on purpose; the message is one line naming the problem and the fix."""


class InputError(PyjlodeError, ValueError):
    """A setting, argument or input that cannot work (also a ``ValueError``)."""


__all__ = ["PyjlodeError", "InputError"]
