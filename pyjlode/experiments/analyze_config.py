"""AnalyzeConfig: the settings of ``pyjlode analyze``, each an option of the command, each default once.

Importing this module imports neither torch nor the engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputError
from ..evaluation.config import SPLITS
from ..flags import flag


@dataclass(frozen=True)
class AnalyzeConfig:
    """What :func:`~pyjlode.experiments.analyze.analyze` reads and how much of it it probes."""

    split: str = field(default="valid", metadata=flag("Held-out text to analyse.", choices=SPLITS))
    corpus: str | None = field(default=None, metadata=flag(
        "Read the split from this corpus instead of the checkpoint's."))
    max_tokens: int = field(default=400, metadata=flag("Tokens walked for the Jacobian spectrum."))
    every: int = field(default=1, metadata=flag(
        "Take the spectrum at one token in N (eigenvalues cost O(H^3) each)."))
    pairs: tuple[str, ...] = field(default=("Tsit5/Tsit5", "Tsit5/KenCarp4", "Tsit5/Rodas5P"), metadata=flag(
        "Solver pairs SOLVER/BACKWARD_SOLVER whose work is measured."))
    pair_batches: int = field(default=2, metadata=flag("Forward+backward windows per solver pair."))
    batch_size: int = field(default=4, metadata=flag("Parallel streams for the solver and robustness probes."))
    sigmas: tuple[float, ...] = field(default=(0.0, 0.1, 0.25, 0.5, 1.0, 2.0), metadata=flag(
        "Noise levels, relative to the embedding RMS."))
    robust_tokens: int = field(default=4000, metadata=flag(
        "Held-out tokens scored per noise level (0: the whole split)."))
    seed: int = field(default=0, metadata=flag("Noise seed."))
    device: str = field(default="cpu", metadata=flag("Where to run the models.", choices=("cpu", "cuda")))

    def validate(self) -> AnalyzeConfig:
        """Check the settings before any checkpoint is read.

        Raises:
            InputError: a setting that cannot work, named in backticks, with the fix.
        """
        for name in ("max_tokens", "every", "pair_batches", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"`{name}` must be at least 1 (got {getattr(self, name)})")
        if self.robust_tokens < 0:
            raise InputError(f"`robust_tokens` must be 0 (all) or positive (got {self.robust_tokens})")
        if not self.sigmas or any(not s >= 0 for s in self.sigmas):
            raise InputError(f"`sigmas` must be non-negative numbers, e.g. 0,0.5,1 (got {self.sigmas})")
        self.solver_pairs()
        return self

    def solver_pairs(self) -> list[tuple[str, str | None]]:
        """``pairs`` as (solver, backward solver) tuples."""
        from .compare import parse_variants

        variants = parse_variants(list(self.pairs))
        if any(v.rtol is not None for v in variants):
            raise InputError("`pairs` takes SOLVER/BACKWARD_SOLVER entries; the tolerance is the checkpoint's")
        return [(v.solver, v.backward_solver) for v in variants]


__all__ = ["AnalyzeConfig"]
