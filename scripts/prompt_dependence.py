"""How much a checkpoint's continuations depend on the prompt, and how much on shared random numbers.

For N prompts taken at evenly spaced positions of a split, this prints:
- the mean total-variation distance between the next-token distributions of two different prompts
  (0: the prompt makes no difference; 1: disjoint predictions), at the first generated position;
- the share of positions where the continuations of two different prompts sample the same token, when
  every prompt uses the same seed (common random numbers, what `pyjlode generate` did before it mixed the
  prompt into the seed) and when each prompt has its own seed (what it does now);
- the same share for one prompt sampled with two different seeds (the noise floor of agreement);
- with ``--other CKPT`` (a model with the same vocabulary): the share for the two models continuing the
  same prompt with the same seed, and with different seeds.

Usage: python scripts/prompt_dependence.py RUN/best.pt [--other RUN2/best.pt] [--prompts 20]
       [--prompt-len 20] [--tokens 20]
"""
from __future__ import annotations

import argparse
import itertools
import statistics

import torch

from pyjlode.evaluation.evaluate import split_ids
from pyjlode.evaluation.generation import prompt_seed
from pyjlode.training.state import load_checkpoint, model_from_checkpoint


def next_token_distribution(model, prompt: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits, _ = model(prompt.view(-1, 1))
    return torch.softmax(logits[-1, 0].double(), dim=-1)


def continuation(model, prompt: torch.Tensor, tokens: int, seed: int) -> list[int]:
    gen = torch.Generator().manual_seed(seed)
    return model.generate(prompt, tokens, generator=gen).tolist()


def agreement(runs: list[list[int]]) -> float:
    """Share of positions at which two of the continuations hold the same token, over all pairs."""
    return statistics.fmean(sum(x == y for x, y in zip(a, b)) / len(a) for a, b in itertools.combinations(runs, 2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--split", default="test")
    ap.add_argument("--prompts", type=int, default=20)
    ap.add_argument("--prompt-len", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--other", default=None, help="a second checkpoint with the same vocabulary")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt).eval()
    ids = split_ids(ckpt, args.split)
    last = len(ids) - args.prompt_len
    prompts = [ids[round(j * last / (args.prompts - 1)):][:args.prompt_len] for j in range(args.prompts)]
    dists = [next_token_distribution(model, p) for p in prompts]
    tv = statistics.fmean(0.5 * (a - b).abs().sum().item() for a, b in itertools.combinations(dists, 2))
    shared = [continuation(model, p, args.tokens, args.seed) for p in prompts]
    own = [continuation(model, p, args.tokens, prompt_seed(args.seed, str(p.tolist()))) for p in prompts]
    one_prompt = [continuation(model, prompts[0], args.tokens, s) for s in range(args.prompts)]
    print(f"{args.checkpoint}: {ckpt['model_config']['cell']}, step {ckpt['progress']['step']}, "
          f"{args.prompts} prompts of {args.prompt_len} tokens from the {args.split} split, {args.tokens} "
          "tokens sampled each (temperature 1)")
    print(f"mean total variation between two prompts' next-token distributions: {tv:.3f}")
    print(f"same token at a position, two prompts, one shared seed:    {agreement(shared):.3f}")
    print(f"same token at a position, two prompts, a seed per prompt:  {agreement(own):.3f}")
    print(f"same token at a position, one prompt, two seeds:           {agreement(one_prompt):.3f}")
    if args.other:
        other_ckpt = load_checkpoint(args.other)
        if other_ckpt["vocab"] != ckpt["vocab"]:
            raise SystemExit(f"{args.other} has another vocabulary; compare models trained on the same one")
        other = model_from_checkpoint(other_ckpt).eval()
        same = [continuation(other, p, args.tokens, args.seed) for p in prompts]
        fresh = [continuation(other, p, args.tokens, args.seed + 1) for p in prompts]
        print(f"{args.other} ({other_ckpt['model_config']['cell']}) against it, same prompt:")
        print(f"  same token at a position, same seed:       "
              f"{statistics.fmean(agreement([a, b]) for a, b in zip(shared, same)):.3f}")
        print(f"  same token at a position, different seeds: "
              f"{statistics.fmean(agreement([a, b]) for a, b in zip(shared, fresh)):.3f}")


if __name__ == "__main__":
    main()
