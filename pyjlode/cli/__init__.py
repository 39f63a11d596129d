"""The ``pyjlode`` command line: one module per command group (train, evaluate, experiments, bench,
doctor, odenet), options built from the config dataclasses (options), error reporting (errors); app holds the
group and the entry point."""
from .app import cli, main

__all__ = ["cli", "main"]
