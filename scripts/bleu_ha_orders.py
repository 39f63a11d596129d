"""BLEU-HA at n-gram orders 1-4, and the harmonic mean of BLEU-2 and 1 - self-BLEU, across temperatures.

The numbers behind the choice of bigrams for BLEU-HA in docs/metrics.md: for each checkpoint and sampling
temperature it draws the `pyjlode evaluate` protocol's samples (default settings: 50 prompts of 20 tokens
from the test split, 20 tokens each, seed 0) and prints self-BLEU, distinct-2, the alternative combined
score and BLEU-HA for n = 1..4.

Usage: python scripts/bleu_ha_orders.py CHECKPOINT [CHECKPOINT ...] [--temperatures 0,0.7,1,1.5]
"""
from __future__ import annotations

import argparse

import torch

from pyjlode.evaluation import metrics
from pyjlode.evaluation.config import EvalConfig
from pyjlode.evaluation.evaluate import scored_text
from pyjlode.evaluation.generation import generation_samples
from pyjlode.evaluation.loading import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--temperatures", default="0,0.7,1,1.5")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for path in args.checkpoints:
        for temperature in (float(t) for t in args.temperatures.split(",")):
            cfg = EvalConfig(temperature=temperature, device="cpu")
            _, ckpt, tokenizer, vocab, model = load_model(path, cfg)
            text, _ = scored_text(ckpt, cfg)
            samples = generation_samples(model, vocab.encode(tokenizer.tokenize(text)), cfg)
            words = [[tokenizer.detokenize(vocab.decode(t.tolist())).split() for t in s] for s in samples]
            hyps, refs = [w[2] for w in words], [w[1] for w in words]
            bleu2, self_bleu = metrics.bleu(hyps, refs)["bleu2"], metrics.self_bleu(hyps)
            hm = 2 * bleu2 * (1 - self_bleu) / (bleu2 + 1 - self_bleu)
            ha = "  ".join(f"HA-{n} {metrics.bleu_ha(hyps, refs, n=n)['bleu_ha']:.4f}" for n in (1, 2, 3, 4))
            print(f"{path}  T={temperature:g}  self-BLEU {self_bleu:.3f}  distinct-2 "
                  f"{metrics.distinct_n(hyps, 2):.3f}  HM(BLEU-2, 1-self-BLEU) {hm:.4f}  {ha}", flush=True)


if __name__ == "__main__":
    main()
