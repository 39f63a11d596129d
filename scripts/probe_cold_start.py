"""Probe a language-model checkpoint for cold-start traps (see docs/training.md).

Scores one stream at a time, started from a zero state at each given offset of a split, and prints the
mean NLL and the largest |h| per chunk: a trapped stream shows NLL far above the rest and |h| near 1 that
never comes down. Also prints perplexity of the batched evaluation at a few batch sizes.

    python scripts/probe_cold_start.py runs/gru-ode/last.pt --split valid --offsets 0,2048,4096
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from pyjlode.training.state import load_checkpoint, load_vocab, model_from_checkpoint
from pyjlode.data import batchify
from pyjlode.evaluation.evaluate import evaluate_nll, split_ids


def _hidden(state) -> torch.Tensor:
    return state if isinstance(state, torch.Tensor) else state[0]


@torch.no_grad()
def cold_stream(model, ids: torch.Tensor, start: int, length: int, chunk: int) -> None:
    state = None
    for i in range(start, min(start + length, len(ids) - 1), chunk):
        x, y = ids[i:i + chunk], ids[i + 1:i + 1 + chunk]
        logits, state = model(x[:len(y)].unsqueeze(1), state)
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y).item()
        print(f"  offset {start:6d} +{i - start:5d}  nll {nll:6.2f}  max|h| {_hidden(state).abs().max():.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--split", default="valid")
    ap.add_argument("--tokens", type=int, default=8192, help="leading tokens of the split to use")
    ap.add_argument("--offsets", default="0,2048,4096,6144", help="cold-start positions (comma-separated)")
    ap.add_argument("--length", type=int, default=1000, help="tokens scored per cold stream")
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--batch-sizes", default="32,4", help="batched evaluations to report")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt).eval()
    tokenizer, vocab = load_vocab(ckpt)
    ids = split_ids(ckpt, args.split, None, tokenizer, vocab)[:args.tokens]
    for b in (int(v) for v in args.batch_sizes.split(",") if v):
        nll, _ = evaluate_nll(model, batchify(ids, b), 35)
        print(f"batched evaluation, {b} streams: perplexity {torch.tensor(nll).exp():.1f}")
    for start in (int(v) for v in args.offsets.split(",") if v):
        cold_stream(model, ids, start, args.length, args.chunk)


if __name__ == "__main__":
    main()
