"""Experiments as plain functions (no click): `compare` (train and evaluate several models under one
budget), `analyze` (Jacobian spectrum, solver work per solver pair, robustness to embedding noise of a
trained GRU-ODE) with their tables and plots, and the GRU-ODE training-step benchmark (`bench`).

Nothing is imported here: import ``pyjlode.experiments.compare.compare``,
``pyjlode.experiments.analyze.analyze`` or ``pyjlode.experiments.bench.main_run``. The commands that call
them live in :mod:`pyjlode.cli`.
"""
