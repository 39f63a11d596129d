"""What the GRU-ODE training-step benchmark runs: its cases and BenchConfig (sizes, tolerances, settings).

Kept apart from the runner (:mod:`pyjlode.experiments.bench`) and the cases' code
(:mod:`pyjlode.experiments.bench_cases`) so both can use it, and free of torch so the command line can
build its options from the fields.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..flags import flag
from ..models.solver_config import SolverConfig

CASES = ("td-adjoint", "td-direct", "tsit5", "kencarp4", "euler", "gru")
CASE_LABELS = {
    "td-adjoint": "(a) torchdiffeq odeint_adjoint, dopri5",
    "td-direct": "(b) torchdiffeq odeint, dopri5, backprop",
    "tsit5": "(c) pyjlode Tsit5 + interpolating adjoint, Tsit5 backward",
    "kencarp4": "(d) pyjlode Tsit5 + interpolating adjoint, KenCarp4 backward",
    "euler": "(e) pyjlode Euler, dt = 1",
    "gru": "(f) torch.nn.GRU",
    "kencarp4-krylov": "(g) pyjlode Tsit5 + interpolating adjoint, KenCarp4:krylov backward",
    "pair-krylov": "(h) pyjlode KenCarp4:krylov + interpolating adjoint, KenCarp4:krylov backward",
    "auto": "(i) pyjlode auto + interpolating adjoint, auto backward",
}
STIFF_CASES = ("td-adjoint", "td-direct", "kencarp4")
# The stiff linear-algebra tables: Tsit5/Tsit5, Tsit5/stiff (dense LU and GMRES), the stiff pair.
LINSOLVE_CASES = ("tsit5", "kencarp4", "kencarp4-krylov", "pair-krylov")
LINSOLVE_TAUS = (0.01, 0.001)
MARKERS = ("<!-- bench_gruode:start -->", "<!-- bench_gruode:end -->")


@dataclass
class BenchConfig:
    """Sizes, tolerances and run settings of one benchmark table."""

    batch: int = field(default=32, metadata=flag("Batch size B."))
    input: int = field(default=128, metadata=flag("Input size I."))
    hidden: int = field(default=256, metadata=flag("Hidden size H."))
    tokens: int = field(default=35, metadata=flag("Tokens T per step."))
    # the GRU-ODE's training defaults
    rtol: float = field(default=SolverConfig.rtol, metadata=flag("Relative tolerance."))
    atol: float = field(default=SolverConfig.atol, metadata=flag("Absolute tolerance."))
    tau: float = field(default=SolverConfig.tau, metadata=flag("Time constant of the main table."))
    reset_after: bool = field(default=SolverConfig.reset_after, metadata=flag(
        "PyTorch's candidate g = tanh(c + r (U h + b))."))
    device: str = field(default="cpu", metadata=flag("cpu or cuda."))
    dtype: str = field(default="float32", metadata=flag(
        "Floating-point type of every case.", choices=("float32", "float64")))
    repeats: int = field(default=5, metadata=flag("Timed repeats per case."))
    cases: tuple = CASES
    seed: int = 0
    memory: bool = field(default=True, metadata=flag(
        "Measure peak memory (one extra untimed run per case)."))
    reference: bool = field(default=True, metadata=flag(
        "Compute the float64 reference gradient for the error column."))

    @property
    def torch_dtype(self):
        import torch
        return {"float32": torch.float32, "float64": torch.float64}[self.dtype]


__all__ = ["BenchConfig", "CASES", "CASE_LABELS", "STIFF_CASES", "MARKERS"]
