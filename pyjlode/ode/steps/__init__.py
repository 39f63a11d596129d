"""Step functions, one per solver family: ``(problem, method, t, y, f0, dt, cache) -> StepResult``."""
from .explicit import erk_step

__all__ = ["erk_step"]
