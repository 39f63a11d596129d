"""Shared helpers of the experiments, DDP and fault tests: a tiny learnable corpus, tiny runs, PNG checks."""
from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

# A few fixed sentences in random order: the next word is nearly determined, so a tiny model learns in a
# few dozen steps (and noise on its embeddings then visibly hurts it).
SENTENCES = ["the king loves the queen", "the queen loves the night", "a lord draws his sword",
             "my lady keeps the crown", "the fool speaks of the day", "thy sword is fair and foul"]


def write_corpus(path: Path, lines: int = 600, seed: int = 0) -> Path:
    rng = random.Random(seed)
    path.write_text("\n".join(rng.choice(SENTENCES) for _ in range(lines)) + "\n", encoding="utf-8")
    return path


TINY = dict(embed_size=8, hidden_size=8, batch_size=4, bptt=6, eval_tokens=120, eval_interval=3,
            eval_seconds=0, time_budget=0, log_interval=1, device="cpu", seed=0, lr=0.01)


def train_tiny(out: Path, corpus: Path, resume: bool = False, **opts) -> dict:
    """In-process `train` with tiny sizes; returns its summary."""
    from pyjlode.training.config import build_configs
    from pyjlode.training.loop import train

    mcfg, tcfg = build_configs({**TINY, "corpus": str(corpus), "out": str(out), **opts})
    return train(mcfg, tcfg, resume=resume, echo=lambda line: None)


def state_dict(path: Path) -> dict:
    from pyjlode.training.state import load_checkpoint

    return load_checkpoint(path)["state_dict"]


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def tiny_cli_args(corpus: Path, out: Path, **opts) -> list[str]:
    """`train` command-line arguments for the tiny setup (booleans become flags)."""
    merged = {**TINY, "corpus": str(corpus), "out": str(out), **opts}
    args: list[str] = []
    for key, value in merged.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not False and value is not None:
            args += [flag, str(value)]
    return args


def subprocess_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("PYJLODE_TRACEBACK", None)
    return env


def run_python(args: list[str], timeout: float = 240, env_extra: dict | None = None,
               **kw) -> subprocess.CompletedProcess:
    """``python ARGS`` in the repository with one thread per process; returns the finished process."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env={**subprocess_env(), **(env_extra or {})}, cwd=str(REPO), **kw)


def png_pixels(path) -> np.ndarray:
    """The image as an (H, W, C) float array in [0, 1] (read back with matplotlib)."""
    import matplotlib.image as mpimg

    return mpimg.imread(str(path))


def colored_fraction(img: np.ndarray) -> float:
    """Share of pixels that are clearly coloured (not white, grey or black): the plotted data.

    Axes, ticks and text are greyscale, so an empty plot scores about 0.
    """
    rgb = img[..., :3]
    return float(((rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.25).mean())



@contextlib.contextmanager
def single_thread():
    """Run tiny models on one intra-op thread: on a busy 2-core machine torch's default thread pool
    makes each small matmul wait milliseconds for a descheduled worker (10x slower training here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
