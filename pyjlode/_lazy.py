"""Names a package exports without importing their modules until first use (PEP 562).

Packages whose modules import torch use this, so that ``import pyjlode`` and the command line's option
definitions stay cheap and Julia can be started before torch.
"""
from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps each name to its defining module."""
    def __getattr__(name: str):
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)   # later look-ups skip this function
        return value

    def __dir__():
        return sorted(exports)

    return __getattr__, __dir__
