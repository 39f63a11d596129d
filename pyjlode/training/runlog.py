"""The run log: training-time averages, ``metrics.jsonl`` records, one printed line per evaluation, and the
progress bar; and reading the log back.

Each line of ``metrics.jsonl`` is one JSON object: ``{"event": "train", ...}`` averages a window of
``log_interval`` steps (train_loss, train_ppl, tokens_per_s, NFE per token for the GRU-ODE) and
``{"event": "eval", ...}`` records one validation (valid_ppl, best_valid_ppl; valid_bpc, bits per
character, for character-level runs; for the GRU-ODE the stiffness of its field at a few of the states
the validation pass ended in: stiffness_ratio, stiffness_ratio_max, max_abs_re_dt, tau_min, tau_max);
both carry step, epoch, tokens, wall (seconds of training) and lr.
"""
from __future__ import annotations

import json
import math
import os
import sys

from .rundir import RunDir


class RunLog:
    """Training-time reporting: averages over a window of steps, metrics.jsonl records, one printed line
    per evaluation, and the tqdm progress bar (stderr, drawn only on a terminal and only on the main rank).

    Args:
        path: the metrics.jsonl file, or None to write nothing (dry runs, other ranks).
        echo: prints one line (None: print nothing).
        total, initial: progress-bar length and starting step.
        bits_per_char: also report validation bits per character (character-level runs).
    """

    KEYS = ("loss", "n", "tokens", "time", "nfe_fwd", "nfe_bwd")

    def __init__(self, path, echo, total: int, initial: int, bits_per_char: bool = False):
        from tqdm.auto import tqdm

        self.path, self.echo, self.bits_per_char = path, echo or (lambda line: None), bits_per_char
        self.window = dict.fromkeys(self.KEYS, 0.0)
        self.last_train: dict = {}
        self.bar = tqdm(total=total, initial=initial, file=sys.stderr, unit="step", dynamic_ncols=True,
                        leave=False, disable=None if echo else True)

    def step(self, loss: float, tokens: int, seconds: float, solver_stats: dict) -> None:
        """Add one training step to the window."""
        w = self.window
        for key, value in (("loss", loss), ("n", 1), ("tokens", tokens), ("time", seconds),
                           ("nfe_fwd", solver_stats.get("nfe_fwd_per_token", 0.0)),
                           ("nfe_bwd", solver_stats.get("nfe_bwd_per_token", 0.0))):
            w[key] += value
        self.bar.update(1)

    def flush(self, base: dict) -> dict:
        """Write a "train" record averaging the window (loss, ppl, tokens/s, NFE per token) and reset it."""
        w, n = self.window, self.window["n"]
        if not n:
            return {}
        row = {"train_loss": w["loss"] / n, "train_ppl": _ppl(w["loss"] / n),
               "tokens_per_s": w["tokens"] / max(w["time"], 1e-9)}
        if w["nfe_fwd"]:
            row.update(nfe_fwd=w["nfe_fwd"] / n, nfe_bwd=w["nfe_bwd"] / n)
        self.last_train = row
        self.window = dict.fromkeys(self.KEYS, 0.0)
        short = {"train_loss": "loss", "train_ppl": "ppl", "tokens_per_s": "tok/s", "nfe_fwd": "nfe_f",
                 "nfe_bwd": "nfe_b"}
        self.bar.set_postfix({short[k]: f"{v:.4g}" for k, v in row.items()}, refresh=False)
        return self.record("train", base, row)

    def evaluation(self, base: dict, valid_nll: float, best_nll: float, extra: dict | None = None) -> dict:
        """Write an "eval" record (with the latest training figures and ``extra``) and print its line."""
        row = {"train_ppl": self.last_train.get("train_ppl"), "valid_ppl": _ppl(valid_nll),
               "best_valid_ppl": _ppl(best_nll)}
        if self.bits_per_char:
            row["valid_bpc"] = valid_nll / math.log(2)
        row.update({k: self.last_train[k] for k in ("nfe_fwd", "nfe_bwd") if k in self.last_train})
        row.update(extra or {})
        row = self.record("eval", base, row)
        self.echo(format_eval_line(row))
        return row

    def record(self, event: str, base: dict, values: dict) -> dict:
        row = {"event": event, **base, **values}
        if self.path is not None:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
        return row

    def close(self) -> None:
        self.bar.close()


def format_eval_line(row: dict) -> str:
    """One fixed-width line per evaluation (word_language_model style)."""
    parts = [f"step {row['step']:6d}", f"epoch {row['epoch'] + 1:2d}", f"tokens {row['tokens']:9,d}",
             f"time {row['wall']:7.1f}s", f"lr {row['lr']:.2e}"]
    if row.get("train_ppl") is not None:
        parts.append(f"train ppl {row['train_ppl']:8.2f}")
    parts.append(f"valid ppl {row['valid_ppl']:8.2f}")
    if "valid_bpc" in row:
        parts.append(f"valid bpc {row['valid_bpc']:6.3f}")
    if "nfe_fwd" in row:
        parts.append(f"nfe/token fwd {row['nfe_fwd']:5.1f} bwd {row['nfe_bwd']:5.1f}")
    if "stiffness_ratio" in row:
        parts.append(f"stiffness ratio {row['stiffness_ratio']:7.3g} max|Re λ|·dt {row['max_abs_re_dt']:6.3g}")
    return "| " + " | ".join(parts) + " |"


def _ppl(nll: float) -> float:
    return math.exp(min(nll, 50.0))  # capped so a diverged model prints a number, not an overflow


def start_log(run: RunDir) -> None:
    """Create the run folder with an empty log: a fresh run starts a fresh log."""
    run.path.mkdir(parents=True, exist_ok=True)
    run.metrics.write_text("")


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """The run's metrics.jsonl records (empty when missing); unreadable lines are skipped."""
    rows = []
    try:
        with open(RunDir(run_dir).metrics, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        pass
    return rows
