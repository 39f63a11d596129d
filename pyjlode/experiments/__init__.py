"""Experiments: `compare` (train and evaluate several models under one budget) and `analyze` (Jacobian
spectrum, solver work per solver pair, robustness to embedding noise of a trained GRU-ODE), with their
tables and plots.

Nothing is imported here: ``pyjlode.cli`` imports ``cli_commands`` at start-up and must not pull in torch
(see cli.py). Import ``pyjlode.experiments.compare.compare`` / ``pyjlode.experiments.analyze.analyze``.
"""
