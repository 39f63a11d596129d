"""The bridge from `compare` to the training and evaluation code: one run folder in, one result row out.

Kept apart from compare.py so the comparison logic never depends on how a run is trained, and tests can
swap these functions out (e.g. to make one model fail).
"""
from __future__ import annotations

import statistics
from typing import Any, Callable, Mapping

import torch

from ..evaluation.config import EvalConfig
from ..training.checkpoint_io import save_json
from ..training.config import build_configs, validate_run
from ..training.rundir import RunDir
from ..training.runlog import read_metrics


def train_run(run_dir: str, options: Mapping[str, Any], echo: Callable[[str], None] | None = None) -> dict:
    """Train one run into ``run_dir``; continue from its last.pt when an earlier attempt left one.

    Args:
        run_dir: the run folder (``--out`` of `pyjlode train`).
        options: `train` options (CLI names: model, layers, backward_solver, ... and TrainConfig fields).
        echo: where the loop's evaluation lines go.

    Returns:
        train()'s summary dict (also written to run_dir/train_summary.json).

    Raises:
        KeyboardInterrupt: training was interrupted (Ctrl-C); last.pt holds where it stopped.
    """
    from ..training.loop import train

    mcfg, tcfg = build_configs({**options, "out": run_dir})
    resume = RunDir(run_dir).last.is_file()
    summary = train(mcfg, tcfg, resume=resume, echo=echo)
    if summary.get("stopped") == "interrupted":
        # train() turned Ctrl-C into a clean save; the comparison stops too, and this run stays
        # unfinished (no result.json) so the next `compare` resumes it from last.pt.
        raise KeyboardInterrupt
    save_json(summary, RunDir(run_dir).summary)
    return summary


def check_options(options: Mapping[str, Any]) -> None:
    """Raise the one-line error `train` would give for these options, before any data is read."""
    validate_run(*build_configs(dict(options)))


def read_curves(run_dir: str) -> dict[str, list[tuple[float, float]]]:
    """Learning curves from metrics.jsonl: validation perplexity against wall time and tokens, and the
    GRU-ODE's forward/backward NFE per token against tokens."""
    rows = read_metrics(run_dir)
    evals = [r for r in rows if r.get("event") == "eval" and r.get("valid_ppl") is not None]
    trains = [r for r in rows if r.get("event") == "train"]
    return {
        "ppl_vs_time": [(r["wall"], r["valid_ppl"]) for r in evals],
        "ppl_vs_tokens": [(r["tokens"], r["valid_ppl"]) for r in evals],
        "nfe_fwd": [(r["tokens"], r["nfe_fwd"]) for r in trains if "nfe_fwd" in r],
        "nfe_bwd": [(r["tokens"], r["nfe_bwd"]) for r in trains if "nfe_bwd" in r],
    }


def _mean(values) -> float | None:
    values = [float(v) for v in values if v is not None]
    return statistics.fmean(values) if values else None


def evaluate_run(run_dir: str, evaluation: EvalConfig) -> dict:
    """Evaluate a trained run with the `evaluate` protocol (best.pt) and collect the table's columns.

    Throughput and NFE per token are means over the run's logged training windows; the best validation
    perplexity is the training loop's (on its validation subset).
    """
    from ..evaluation.evaluate import evaluate_checkpoint

    r = evaluate_checkpoint(run_dir, evaluation)
    save_json(r, RunDir(run_dir).evaluation)
    rows = read_metrics(run_dir)
    trains = [x for x in rows if x.get("event") == "train"]
    evals = [x for x in rows if x.get("event") == "eval"]
    rouge = r.get("rouge") or {}
    last = (evals or trains or [{}])[-1]
    return {
        "params": r.get("parameters"),
        "train_time_s": last.get("wall"),
        "tokens": last.get("tokens"),
        "tokens_per_s": _mean(x.get("tokens_per_s") for x in trains),
        "best_val_ppl": min((x["valid_ppl"] for x in evals if x.get("valid_ppl") is not None), default=None),
        f"{evaluation.split}_ppl": r.get("perplexity"),
        "bleu4": r["bleu"]["bleu4"],
        "rouge1": rouge.get("rouge1"), "rouge2": rouge.get("rouge2"), "rougeL": rouge.get("rougeL"),
        "distinct1": r.get("distinct_1"), "distinct2": r.get("distinct_2"),
        "self_bleu": r.get("self_bleu"),
        "bleu_f": r["bleu_f"], "bleu_b": r["bleu_b"], "bleu_ha": r["bleu_ha"],
        "ms_per_token": 1000 / tps if (tps := _mean(x.get("tokens_per_s") for x in trains)) else None,
        "nfe_fwd_per_token": _mean(x.get("nfe_fwd") for x in trains),
        "nfe_bwd_per_token": _mean(x.get("nfe_bwd") for x in trains),
    }


def vocab_size_for(train_options: Mapping[str, Any]) -> int:
    """Size of the vocabulary a run with these options builds (reads and tokenises the corpus once)."""
    from ..training.distributed import DistInfo
    from ..training.loop import prepare_corpus

    _, tcfg = build_configs({k: v for k, v in train_options.items()})
    return len(prepare_corpus(tcfg, DistInfo()).vocab)


def param_counter(train_options: Mapping[str, Any], vocab_size: int) -> Callable[[str, int], int]:
    """(model, hidden_size) -> parameter count of the LanguageModel those options build."""
    from dataclasses import replace

    from ..models import LanguageModel

    def count(model: str, hidden: int) -> int:
        mcfg, _ = build_configs({**train_options, "model": model})
        mcfg = replace(mcfg, vocab_size=vocab_size, hidden_size=int(hidden))
        with torch.device("meta"):  # shapes only: no memory for large trial sizes
            return LanguageModel.from_config(mcfg).num_parameters()
    return count


def base_hidden_size(train_options: Mapping[str, Any]) -> int:
    """The hidden size these options give (the ModelConfig default when not set)."""
    return int(build_configs(dict(train_options))[0].hidden_size)
