"""ModelConfig: everything needed to rebuild a language model, with the only copy of each default and check.

Plain data (``asdict`` goes in checkpoints); importing this module imports neither torch nor the engine, so
the command line can build its options from the fields.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Mapping

from ..errors import InputError
from ..flags import flag
from .solver_config import SolverConfig

CELL_NAMES = ("rnn", "gru", "lstm", "gru-ode")   # the recurrent cores, keys of pyjlode.models.CELLS


def canonical_cell(name: str) -> str:
    """The CELL_NAMES spelling of ``name`` (case-insensitive; "gru_ode" and "gruode" work too).

    Raises:
        InputError: unknown name (the message lists CELL_NAMES).
    """
    key = str(name).lower().replace("_", "-")
    key = "gru-ode" if key == "gruode" else key
    if key not in CELL_NAMES:
        raise InputError(f"unknown `cell` {name!r}; choose one of: {', '.join(sorted(CELL_NAMES))}")
    return key


@dataclass
class ModelConfig:
    """A :class:`~pyjlode.models.lm.LanguageModel`: embedding -> recurrent core -> decoder."""

    vocab_size: int                      # number of token ids (embedding rows, decoder outputs)
    cell: str = field(default="gru-ode", metadata=flag(
        "Recurrent core of the language model.", name="model", choices=CELL_NAMES))
    embed_size: int = field(default=128, metadata=flag("Token embedding size."))
    hidden_size: int = field(default=256, metadata=flag("Recurrent state size."))
    num_layers: int = field(default=1, metadata=flag("Stacked recurrent layers.", name="layers"))
    dropout: float = field(default=0.0, metadata=flag("Dropout on embeddings and between layers."))
    tie_weights: bool = field(default=False, metadata=flag(
        "Share embedding and decoder weights (needs --embed-size equal to --hidden-size)."))
    ode: SolverConfig = field(default_factory=SolverConfig)   # the gru-ode's solver settings

    @classmethod
    def with_options(cls, vocab_size: int, **options) -> ModelConfig:
        """A config from keyword options: ModelConfig fields, and for the gru-ode SolverConfig fields.

        Raises:
            InputError: solver settings for a core that does not solve an ODE, or an unknown option.
        """
        own = {f.name for f in fields(cls)}
        solver = {k: v for k, v in options.items() if k not in own}
        cfg = cls(vocab_size, **{k: v for k, v in options.items() if k in own})
        if solver:
            if canonical_cell(cfg.cell) != "gru-ode":
                raise InputError(f"cell {cfg.cell!r} does not take option(s) {', '.join(sorted(solver))}; "
                                 "solver settings belong to the gru-ode")
            cfg.ode = SolverConfig.with_options(cfg.ode, **solver)
        return cfg

    @classmethod
    def from_dict(cls, data: Mapping) -> ModelConfig:
        """Rebuild from ``asdict(config)``, as a checkpoint stores it."""
        data = dict(data)
        ode = data.pop("ode", {})
        return cls(**data, ode=ode if isinstance(ode, SolverConfig) else SolverConfig(**ode))

    def validate(self) -> ModelConfig:
        """Check names and sizes (and the solver settings, for the gru-ode); return a canonical copy.

        Raises:
            InputError: a setting that cannot work, named in backticks, with the fix.
        """
        cell = canonical_cell(self.cell)
        for name in ("embed_size", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise InputError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"`dropout` must be in [0, 1), got {self.dropout}")
        if self.tie_weights and self.embed_size != self.hidden_size:
            raise InputError(f"`tie_weights` needs `embed_size` equal to `hidden_size` "
                             f"(got {self.embed_size} and {self.hidden_size})")
        return replace(self, cell=cell, ode=self.ode.validate() if cell == "gru-ode" else self.ode)


__all__ = ["CELL_NAMES", "ModelConfig", "canonical_cell"]
