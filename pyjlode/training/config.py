"""TrainConfig, and a run's configs built from option names.

Each training setting's default, command-line help and check live here, in TrainConfig's fields (the
model's in :class:`~pyjlode.models.config.ModelConfig` and
:class:`~pyjlode.models.solver_config.SolverConfig`); the command line builds its options from them.
Importing this module does not import torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..data.corpora import CORPORA
from ..data.tokenize import LEVELS
from ..errors import InputError
from ..flags import flag, option_table
from ..models.config import ModelConfig, canonical_cell
from ..models.solver_config import SolverConfig
from .rundir import BEST, LAST, METRICS

OPTIMIZERS = ("adam", "adamw", "sgd")
DEVICES = ("auto", "cpu", "cuda")
# One intra-op thread: the recurrent models' small operations gain little from more, and on a machine
# shared with other work torch's default (one thread per core) made `pyjlode train` 4-10x slower.
DEFAULT_THREADS = 1
THREADS_HELP = ("CPU threads for torch's operations (0: torch's default, one per core); more than one only "
                "pays on an otherwise idle machine.")
# Settings a resumed run may take from the command line (when given there); everything else, these
# included when not given, comes from the checkpoint.
RESUME_OVERRIDES = ("epochs", "max_steps", "token_budget", "time_budget", "device", "threads", "out",
                    "dry_run", "log_interval", "eval_interval", "eval_seconds")


@dataclass
class TrainConfig:
    """How to train: data, optimisation, stopping, evaluation cadence, and where the run lives.

    Defaults make the bare ``pyjlode train`` finish in about four minutes on a 2-core CPU.
    """

    # data
    corpus: str = field(default="shakespeare", metadata=flag(
        f"Built-in corpus ({', '.join(CORPORA)}), a UTF-8 text file (split by lines 90/5/5) or a folder "
        "with train/valid/test files."))
    level: str = field(default="word", metadata=flag(
        "Tokenise into words, characters, or whitespace-separated tokens (for pre-tokenised corpora such "
        "as ptb and wikitext-2).", choices=LEVELS))
    lowercase: bool = field(default=False, metadata=flag("Lower-case the text before tokenising."))
    min_freq: int = field(default=1, metadata=flag("Tokens seen fewer times in train become <unk>."))
    max_vocab: int = field(default=10000, metadata=flag(
        "Keep at most this many most frequent tokens (0: no limit)."))
    cache_dir: str | None = field(default=None, metadata=flag(
        "Folder for downloaded corpora.", folder=True, default_text="the user's cache folder"))
    # optimisation
    batch_size: int = field(default=32, metadata=flag(
        "Parallel token streams (the global batch, split over all processes)."))
    bptt: int = field(default=35, metadata=flag("Tokens per truncated-backprop window."))
    lr: float = field(default=2e-3, metadata=flag("Initial learning rate."))
    optimizer: str = field(default="adam", metadata=flag("Optimisation algorithm.", choices=OPTIMIZERS))
    weight_decay: float = field(default=0.0, metadata=flag("Weight decay."))
    clip: float = field(default=1.0, metadata=flag("Clip the global gradient norm to this (0: off)."))
    state_reset: float = field(default=0.1, metadata=flag(
        "Chance that a stream's carried state restarts from zero before a training window (teaches "
        "recovery from cold starts; 0: off)."))
    lr_factor: float = field(default=0.5, metadata=flag(
        "Multiply the learning rate by this when validation stops improving."))
    lr_patience: int = field(default=1, metadata=flag(
        "Scheduled evaluations without improvement before the learning rate drops."))
    # stopping: whichever comes first
    epochs: int = field(default=10, metadata=flag("Passes over the training split."))
    max_steps: int = field(default=0, metadata=flag(
        "Stop after this many optimisation steps in total (0: no limit)."))
    token_budget: int = field(default=0, metadata=flag(
        "Stop once this many training tokens have been seen, counted over resumes (0: no limit); "
        "runs of different models then see the same data."))
    time_budget: float = field(default=240.0, metadata=flag(
        "Stop after this many seconds of training, counted over resumes (0: no limit); the run stops "
        "before a step that would end past it."))
    # evaluation and logging
    eval_interval: int = field(default=0, metadata=flag(
        "Evaluate every N steps (0: off). Step-based evaluation keeps --resume exact."))
    eval_seconds: float = field(default=30.0, metadata=flag("Also evaluate every S seconds of training (0: off)."))
    eval_tokens: int = field(default=8192, metadata=flag(
        "Validation tokens used by each evaluation during training (0: the whole split)."))
    eval_batch_size: int = field(default=32, metadata=flag(
        "Parallel validation streams during training (state carried down each)."))
    log_interval: int = field(default=10, metadata=flag(
        f"Steps between training records in {METRICS} and progress-bar updates."))
    # the run
    device: str = field(default="auto", metadata=flag(
        "Where to train; auto picks CUDA when available.", choices=DEVICES))
    threads: int = field(default=DEFAULT_THREADS, metadata=flag(THREADS_HELP))
    seed: int = field(default=1234, metadata=flag("Random seed."))
    out: str | None = field(default=None, metadata=flag(
        f"Run folder for {LAST}, {BEST} and {METRICS}.", folder=True, default_text="runs/MODEL"))
    dry_run: bool = field(default=False, metadata=flag(
        "Run one training batch and one validation batch; write nothing."))

    def validate(self) -> TrainConfig:
        """Check names and sizes before any data is read.

        Raises:
            InputError: a setting that cannot work, named in backticks, with the fix.
        """
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown `optimizer` '{self.optimizer}'; choose one of: {', '.join(OPTIMIZERS)}")
        for name in ("batch_size", "bptt", "eval_batch_size", "epochs", "log_interval", "min_freq"):
            if getattr(self, name) < 1:
                raise InputError(f"`{name}` must be at least 1 (got {getattr(self, name)})")
        for name in ("max_vocab", "max_steps", "token_budget", "time_budget", "eval_interval", "eval_seconds",
                     "eval_tokens", "threads", "clip", "weight_decay", "lr_patience"):
            value = getattr(self, name)
            if not value >= 0:      # NaN fails too
                raise InputError(f"`{name}` must be 0 (off) or positive (got {value})")
        if not self.lr > 0:
            raise InputError(f"`lr` must be positive (got {self.lr})")
        if not 0 < self.lr_factor < 1:
            raise InputError(f"`lr_factor` must be between 0 and 1 (got {self.lr_factor})")
        if not 0 <= self.state_reset < 1:
            raise InputError(f"`state_reset` must be in [0, 1) (got {self.state_reset})")
        return self


# --------------------------------------------------------------------------------------------------
# option names (as the command line spells them, without dashes) -> configs

CONFIGS = (ModelConfig, SolverConfig, TrainConfig)


def build_configs(options: Mapping[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """(ModelConfig, TrainConfig) from option names: ``model``, ``layers``, ``backward_solver``, ``lr``...

    Unknown names raise; ``None`` values keep the defaults. Solver settings reach the model only for the
    gru-ode, the one core that solves an ODE. ``vocab_size`` is 0 here; training sets it from the
    vocabulary.

    Raises:
        InputError: an unknown option name.
    """
    table = option_table(*CONFIGS)
    unknown = sorted(set(options) - set(table))
    if unknown:
        raise InputError(f"unknown training option(s): {', '.join(unknown)}")
    given: dict[type, dict] = {cls: {} for cls in CONFIGS}
    for name, value in options.items():
        if value is not None:
            cls, field_name = table[name]
            given[cls][field_name] = value
    mcfg = ModelConfig(vocab_size=0, **given[ModelConfig])
    if _solves_an_ode(mcfg.cell):
        mcfg.ode = SolverConfig(**given[SolverConfig])
    return mcfg, TrainConfig(**given[TrainConfig])


def validate_run(mcfg: ModelConfig, tcfg: TrainConfig) -> tuple[ModelConfig, TrainConfig]:
    """Both configs checked (and made canonical) before any data is read, the engine they need included.

    Raises:
        InputError: a setting that cannot work. BackendUnavailable: the Julia engine is asked for but
            cannot run here.
    """
    mcfg, tcfg = mcfg.validate(), tcfg.validate()
    if mcfg.cell == "gru-ode" and mcfg.ode.backend != "torch":
        from ..backends import get_backend

        get_backend(mcfg.ode.backend)
    return mcfg, tcfg


def option_value(name: str, mcfg: ModelConfig, tcfg: TrainConfig):
    """The value the option ``name`` (as in :func:`build_configs`) has in a pair of configs."""
    cls, field_name = option_table(*CONFIGS)[name]
    return getattr({ModelConfig: mcfg, SolverConfig: mcfg.ode, TrainConfig: tcfg}[cls], field_name)


def _solves_an_ode(cell: str) -> bool:
    try:
        return canonical_cell(cell) == "gru-ode"
    except InputError:
        return False          # ModelConfig.validate reports the unknown name


def apply_threads(threads: int) -> int:
    """Set torch's intra-op threads (0 leaves torch's default); returns the number now in use."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


__all__ = ["TrainConfig", "OPTIMIZERS", "DEVICES", "DEFAULT_THREADS", "THREADS_HELP", "RESUME_OVERRIDES",
           "apply_threads", "CONFIGS", "build_configs",
           "validate_run", "option_value"]
