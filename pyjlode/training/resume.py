"""Resuming a run: reading its last checkpoint (with advice when there is none or it is damaged), and the
configs it continues with, said in one line (what it keeps from the run, what the command line changes).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..models.config import ModelConfig
from .checkpoint_io import CheckpointError
from .config import RESUME_OVERRIDES, TrainConfig, option_value
from .rundir import LAST, RunDir
from .state import load_checkpoint, model_config, train_config

# What a resume reports keeping or changing (the settings that decide when and how fast it ends).
RESUME_SHOWN = ("epochs", "max_steps", "token_budget", "time_budget", "threads", "device")


def load_for_resume(run: RunDir) -> dict:
    """The run's last checkpoint, or a one-line CheckpointError that says what to do instead."""
    if not run.last.is_file():
        raise CheckpointError(f"nothing to resume in {run}: it has no {LAST}; leave out `resume` to start a "
                              "new run there, or set `out` to the folder of the run to continue")
    try:
        return load_checkpoint(run.last)
    except CheckpointError:
        fallback = (f"{run.best} is intact: copy it over {run.last} to resume from the best evaluation"
                    if _readable(run.best) else "no intact checkpoint is left: leave out `resume` to start again")
        raise CheckpointError(f"cannot resume: {run.last} is damaged or truncated; {fallback}") from None


def _readable(path: Path) -> bool:
    try:
        load_checkpoint(path)
    except CheckpointError:
        return False
    return True


def resume_configs(ckpt: dict, mcfg: ModelConfig, tcfg: TrainConfig, explicit,
                   echo) -> tuple[ModelConfig, TrainConfig]:
    """The configs of a resumed run: the checkpoint's, with the stopping, evaluation and device settings
    of ``tcfg`` that were given (all of them when ``explicit`` is None); says what it keeps and changes."""
    saved_m, saved_t = model_config(ckpt), train_config(ckpt)
    ignored = [k for k in (explicit or ()) if k not in RESUME_OVERRIDES
               and option_value(k, mcfg, tcfg) != option_value(k, saved_m, saved_t)]
    if ignored:
        echo("note: resuming, so these come from the checkpoint instead: "
             + ", ".join(f"`{k}` {option_value(k, saved_m, saved_t)}" for k in ignored))
    given = [k for k in RESUME_OVERRIDES if explicit is None or k in explicit]
    resumed = replace(saved_t, **{k: getattr(tcfg, k) for k in {*given, "out", "dry_run"}})
    shown = [k for k in RESUME_SHOWN if k not in given and (getattr(saved_t, k) or k == "threads")]
    changed = [k for k in RESUME_SHOWN if k in given and getattr(resumed, k) != getattr(saved_t, k)]
    p = ckpt["progress"]
    echo(f"resuming at step {p['step']} ({p['tokens']:,} tokens, {p['train_time']:.0f} s of training so far); "
         "keeps the run's " + (", ".join(f"`{k}` {getattr(saved_t, k)}" for k in shown) or "settings")
         + ("; changes " + ", ".join(f"`{k}` {getattr(saved_t, k)} -> {getattr(resumed, k)}" for k in changed)
            if changed else ""))
    return saved_m, resumed


__all__ = ["load_for_resume", "resume_configs", "RESUME_SHOWN"]
