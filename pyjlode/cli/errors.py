"""How the command line reports failures.

A :class:`~pyjlode.errors.PyjlodeError` (bad input, a solver that cannot go on, a stopped run) becomes one
line on stderr and exit status 2, with each setting the message names in backticks shown as the flag of
the running command (```backward_solver``` becomes ``--backward-solver``). Anything else is a bug and
keeps its traceback; ``PYJLODE_TRACEBACK=1`` shows the traceback of reported errors too.
"""
from __future__ import annotations

import functools
import os
import re
import sys
from typing import Mapping

import click

from ..errors import PyjlodeError

_NAMED = re.compile(r"`([a-z][a-z0-9_]*)`")


def render_flags(message: str, flags: Mapping[str, str]) -> str:
    """``message`` with every `name` that has a flag in ``flags`` written as that flag."""
    return _NAMED.sub(lambda m: flags.get(m.group(1), m.group(0)), message)


def command_flags(command: click.Command) -> dict[str, str]:
    """Setting name -> the flag a user types, for every option of ``command``.

    An option generated from a config field answers to the field's name too (``cell`` -> ``--model``).
    """
    flags = {}
    for param in command.params:
        if isinstance(param, click.Option) and param.opts:
            flags[param.name] = param.opts[0]
            field = getattr(param, "field_name", None)
            if field:
                flags.setdefault(field, param.opts[0])
    return flags


def friendly_errors(fn):
    """Report a PyjlodeError raised by the command ``fn`` as one line on stderr, exit status 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PyjlodeError as exc:
            if os.environ.get("PYJLODE_TRACEBACK"):
                raise
            ctx = click.get_current_context(silent=True)
            message = " ".join(str(exc).split()) or type(exc).__name__
            if ctx is not None:
                message = render_flags(message, command_flags(ctx.command))
            click.echo(f"error: {message}", err=True)
            sys.exit(2)
    return wrapper
