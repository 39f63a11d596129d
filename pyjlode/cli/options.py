"""Click options built from config dataclasses, and the options several commands share.

An option of a config field takes its flag, help and choices from the field's :class:`~pyjlode.flags.Flag`
metadata and its type and default from the field itself, so adding a setting to a config adds its option.
"""
from __future__ import annotations

import types
import typing
from dataclasses import MISSING, Field

import click

from ..flags import Flag, flagged_fields, option_name
from ..training.rundir import BEST


class ConfigOption(click.Option):
    """A click option generated from a config field: ``field_name`` lets error messages name its flag,
    ``config`` is the dataclass the field belongs to."""

    def __init__(self, *args, field_name: str, config: type, **kwargs):
        super().__init__(*args, **kwargs)
        self.field_name, self.config = field_name, config


class CommaList(click.ParamType):
    """Comma-separated values of one type ("1e-1,1e-3" -> (0.1, 0.001)), for tuple config fields."""

    def __init__(self, item: type):
        self.item, self.name = item, f"{item.__name__},..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return tuple(self.item(v.strip()) for v in str(value).split(",") if v.strip())
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of {self.item.__name__} values", param, ctx)


def config_options(*classes, skip: typing.Collection[str] = ()) -> list[click.Option]:
    """One option per flagged field of the dataclasses ``classes``, in field order, except ``skip``."""
    params = []
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f, spec in flagged_fields(cls):
            if option_name(f) not in skip:
                params.append(_option(cls, f, spec, hints[f.name]))
    return params


def _option(cls: type, f: Field, spec: Flag, hint) -> ConfigOption:
    name = option_name(f)
    flag = "--" + name.replace("_", "-")
    default = f.default if f.default is not MISSING else f.default_factory()
    kind = hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):                  # X | None -> X
        kind = next(a for a in typing.get_args(hint) if a is not type(None))
    if kind is bool:
        decls = [f"{flag}/--no-{flag[2:]}" if default else flag, *spec.aliases, name]
        return ConfigOption(decls, field_name=f.name, config=cls, is_flag=True, default=default, help=spec.help,
                            show_default=bool(default))
    if typing.get_origin(kind) is tuple:                     # tuple[float, ...]: comma-separated values
        kind, default = CommaList(typing.get_args(kind)[0]), ",".join(map(str, default))
    elif spec.choices:
        kind = click.Choice(spec.choices)
    elif spec.folder:
        kind = click.Path(file_okay=False)
    show = spec.default_text or default is not None
    return ConfigOption([flag, *spec.aliases, name], field_name=f.name, config=cls, type=kind, default=default,
                        help=spec.help, show_default=show)


# --------------------------------------------------------------------------------------------------
# options of several commands (decorators)

checkpoint_option = click.option(
    "--checkpoint", required=True, type=click.Path(),
    help=f"A .pt file written by `pyjlode train`, or its run folder (uses {BEST}).")


__all__ = ["ConfigOption", "CommaList", "config_options", "checkpoint_option"]
