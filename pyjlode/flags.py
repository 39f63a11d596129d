"""The command-line face of config fields, kept in the fields' metadata beside their defaults.

A config dataclass marks a field as an option with ``field(default=..., metadata=flag("help"))``; the
command line builds its options from these (flag, help, choices) and the field's type and default, so a
new setting needs one field and nothing else. Nothing here imports click or torch.
"""
from __future__ import annotations

from dataclasses import Field, dataclass, fields


@dataclass(frozen=True)
class Flag:
    """How one config field appears on the command line.

    Attributes:
        help: the option's help text.
        name: the option's name without dashes (default: the field's name); ``--layers`` sets ``num_layers``.
        aliases: other accepted spellings, e.g. ``("--stiff-solver",)``.
        choices: the accepted values, when they are a fixed list.
        default_text: what ``--help`` shows as the default instead of the value (e.g. "same as --solver").
        folder: the value is a folder path.
    """

    help: str
    name: str | None = None
    aliases: tuple[str, ...] = ()
    choices: tuple[str, ...] | None = None
    default_text: str | None = None
    folder: bool = False


def flag(help: str, **kwargs) -> dict:
    """Field metadata that gives a config field a command-line option (keywords: see :class:`Flag`)."""
    return {"flag": Flag(help, **kwargs)}


def flagged_fields(cls) -> list[tuple[Field, Flag]]:
    """The fields of dataclass ``cls`` that have an option, in definition order, with their :class:`Flag`."""
    return [(f, f.metadata["flag"]) for f in fields(cls) if "flag" in f.metadata]


def option_name(f: Field) -> str:
    """The option's name in code (``layers``); its flag is ``--`` plus the name with dashes."""
    return f.metadata["flag"].name or f.name


def option_table(*classes) -> dict[str, tuple[type, str]]:
    """Option name -> (config class, field name) for every flagged field of ``classes``."""
    table: dict[str, tuple[type, str]] = {}
    for cls in classes:
        for f, _ in flagged_fields(cls):
            name = option_name(f)
            if name in table:
                raise TypeError(f"option {name!r} is defined by both {table[name][0].__name__} and {cls.__name__}")
            table[name] = (cls, f.name)
    return table


__all__ = ["Flag", "flag", "flagged_fields", "option_name", "option_table"]
