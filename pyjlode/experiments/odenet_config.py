"""OdeNetConfig: every setting of the ODE-Net against ResNet experiment, each an option of ``pyjlode odenet``.

Importing this module imports neither torch nor the engine (the command line builds its options from the
fields); :mod:`pyjlode.experiments.odenet` runs the experiment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ..errors import InputError
from ..flags import flag

if TYPE_CHECKING:
    from .odenet_models import SolverSettings

MODELS = ("resnet", "odenet", "rknet")
ACTIVATIONS = ("relu", "softplus")


def _help(default, text: str, **kwargs):
    return field(default=default, metadata=flag(text, **kwargs))


@dataclass(frozen=True)
class OdeNetConfig:
    """Every setting of :func:`~pyjlode.experiments.odenet.run_odenet`; each field is an option of
    ``pyjlode odenet`` (a list field takes comma-separated values)."""

    models: tuple[str, ...] = _help(MODELS, "models to train: resnet, odenet (adjoint gradients), rknet "
                                            "(backprop through the solver)")
    width: int = _help(32, "channels of the stem, the residual function and the head")
    depth: int = _help(6, "residual blocks of the ResNet")
    activation: str = _help("relu", "nonlinearity of the residual function: relu (Chen et al.) or softplus "
                                    "(smooth: fewer steps at tight tolerances)", choices=ACTIVATIONS)
    epochs: int = _help(10, "passes over the training images")
    batch_size: int = _help(64, "images per training step (and per evaluation solve)")
    lr: float = _help(3e-3, "peak learning rate of Adam under a one-cycle schedule")
    solver: str = _help("Tsit5", "forward ODE solver (a pyjlode solver name)")
    backward_solver: Optional[str] = _help(None, "adjoint solver, e.g. KenCarp4 (default: the forward solver)")
    sensealg: str = _help("backsolve", "adjoint scheme of the trained ODE-Net: backsolve (constant memory, "
                                       "Chen et al.) or interpolating (stores the forward's dense output)")
    rtol: float = _help(1e-3, "relative tolerance of training solves")
    atol: float = _help(1e-3, "absolute tolerance of training solves")
    sweep_rtols: tuple[float, ...] = _help((1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5),
                                           "tolerances (rtol = atol) at which the trained ODE models are tested")
    memory_rtols: tuple[float, ...] = _help((1e-1, 1e-2, 1e-3, 1e-4),
                                            "tolerances (rtol = atol) of the ODE-Net memory probe")
    memory_depths: tuple[int, ...] = _help((1, 2, 4, 8, 16), "ResNet depths of the memory probe")
    test_size: int = _help(360, "held-out images (of 1797), stratified by digit")
    limit_train: int = _help(0, "train on the first N training images only (0: all)")
    seed: int = _help(0, "seed of the split, the initialisation and the batch order")
    threads: int = _help(1, "torch intra-op threads (1 is fastest for these small convolutions)")

    def __post_init__(self):
        from ..ode.methods import get_method
        from ..ode.adjoint import SENSEALGS

        for name in ("models", "sweep_rtols", "memory_rtols", "memory_depths"):   # lists from a caller
            object.__setattr__(self, name, tuple(getattr(self, name)))
        bad = [m for m in self.models if m not in MODELS]
        if bad or not self.models:
            raise InputError(f"unknown or no `models` {list(bad or self.models)}; "
                             f"choose from: {', '.join(MODELS)}")
        for name in ("width", "depth", "epochs", "batch_size", "test_size", "threads"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"`{name}` must be a positive integer, got {getattr(self, name)}")
        if self.limit_train < 0:
            raise InputError(f"`limit_train` must be 0 (all) or a positive count, got {self.limit_train}")
        for name in ("lr", "rtol", "atol"):
            if not getattr(self, name) > 0:
                raise InputError(f"`{name}` must be positive, got {getattr(self, name)}")
        if not all(r > 0 for r in (*self.sweep_rtols, *self.memory_rtols)):
            raise InputError("`sweep_rtols` and `memory_rtols` must be positive tolerances, e.g. 1e-1,1e-3")
        if not all(int(d) >= 1 for d in self.memory_depths):
            raise InputError("`memory_depths` must be positive integers, e.g. 1,2,4,8")
        if self.activation not in ACTIVATIONS:
            raise InputError(f"unknown `activation` {self.activation!r}; "
                             f"choose one of: {', '.join(ACTIVATIONS)}")
        if self.sensealg not in SENSEALGS:
            raise InputError(f"unknown `sensealg` {self.sensealg!r}; choose one of: {', '.join(SENSEALGS)}")
        for name in ("solver", "backward_solver"):
            if getattr(self, name) is not None:
                try:
                    get_method(getattr(self, name))
                except ValueError as exc:
                    raise InputError(f"`{name}`: {exc}") from None
        if not 10 <= self.test_size <= 1797 - 100:
            raise InputError(f"`test_size` must be between 10 and 1697 of the 1797 digits, "
                             f"got {self.test_size}")

    def settings(self, gradient: str) -> SolverSettings:
        from .odenet_models import SolverSettings

        return SolverSettings(gradient=gradient, solver=self.solver, backward_solver=self.backward_solver,
                              sensealg=self.sensealg, rtol=self.rtol, atol=self.atol)


__all__ = ["OdeNetConfig", "MODELS", "ACTIVATIONS"]
