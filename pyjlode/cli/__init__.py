"""The ``pyjlode`` command line."""
from .app import cli, main, wants_julia

__all__ = ["cli", "main", "wants_julia"]
