"""The files of a run folder, each name spelled once.

``pyjlode train --out DIR`` writes the checkpoints and the metrics log; ``pyjlode compare`` adds its
summaries to each run's folder. Everything that reads or writes these files takes the paths from here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LAST = "last.pt"                      # the latest checkpoint (what --resume continues from)
BEST = "best.pt"                      # the checkpoint with the best validation perplexity so far
METRICS = "metrics.jsonl"             # one JSON record per logged training window and per evaluation
SUMMARY = "train_summary.json"        # train()'s summary (written by compare)
EVALUATION = "evaluation.json"        # evaluate_checkpoint's result (written by compare)
RESULT = "result.json"                # compare's row for the run; written last, marks it finished
ERROR = "error.txt"                   # the traceback of a run that failed inside compare


@dataclass(frozen=True)
class RunDir:
    """A run folder and the paths of its files."""

    path: Path

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    @property
    def last(self) -> Path:
        return self.path / LAST

    @property
    def best(self) -> Path:
        return self.path / BEST

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY

    @property
    def evaluation(self) -> Path:
        return self.path / EVALUATION

    @property
    def result(self) -> Path:
        return self.path / RESULT

    @property
    def error(self) -> Path:
        return self.path / ERROR

    def checkpoint(self) -> Path | None:
        """The checkpoint to evaluate: best.pt, else last.pt, else None."""
        return next((p for p in (self.best, self.last) if p.is_file()), None)

    def __str__(self) -> str:
        return str(self.path)


__all__ = ["RunDir", "LAST", "BEST", "METRICS", "SUMMARY", "EVALUATION", "RESULT", "ERROR"]
