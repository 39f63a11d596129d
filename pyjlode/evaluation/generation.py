"""Sampling from a model, and the generation protocol of ``pyjlode evaluate`` and ``pyjlode compare``.

Protocol (printed with the numbers): N prompts of K tokens are taken at evenly spaced positions of the
scored text; for each, M tokens are sampled from the model (temperature T, optional top-k, one seeded
generator for the whole run) and compared with the M tokens that truly follow. Texts are compared as the
whitespace-separated words of the detokenised text (so word- and char-level models are scored alike).
BLEU-1..4: nltk corpus_bleu, uniform weights, smoothing method1 (Chen & Cherry 2014); sacreBLEU when
installed; ROUGE-1/2/L F1 with rouge-score and Porter stemming; diversity: distinct-1/2 and self-BLEU of the
generations; and the combined score of :func:`pyjlode.evaluation.metrics.bleu_ha` (docs/metrics.md).

The same seed gives every model the same random numbers (common random numbers), so models are compared
on equal draws; `generate` mixes the prompt into the seed, so two prompts do not share draws.
"""
from __future__ import annotations

import math
import sys
import zlib
from typing import Callable

import torch

from ..errors import InputError
from .config import EvalConfig
from .loading import load_model

BLEU_SPEC = "nltk corpus_bleu, uniform weights, smoothing method1"
ROUGE_SPEC = "rouge-score F1, Porter stemming"


def generation_samples(model, ids: torch.Tensor, cfg: EvalConfig, *,
                       progress: bool = False) -> list[tuple[torch.Tensor, ...]]:
    """(prompt, reference, generated) id tensors for ``cfg.prompts`` evenly spaced positions of ``ids``."""
    from tqdm.auto import tqdm

    from ..data import DataError

    span = cfg.prompt_len + cfg.gen_len
    if len(ids) < span:
        raise DataError(f"the scored text has {len(ids)} tokens, fewer than one prompt plus continuation "
                        f"({span}); lower `prompt_len`/`gen_len`")
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    last = len(ids) - span
    starts = [round(j * last / max(cfg.prompts - 1, 1)) for j in range(cfg.prompts)]
    out = []
    model.eval()
    with torch.no_grad():
        for s in tqdm(starts, desc="generating", unit="prompt", file=sys.stderr, leave=False,
                      disable=None if progress else True):
            prompt, ref = ids[s:s + cfg.prompt_len], ids[s + cfg.prompt_len:s + span]
            new = model.generate(prompt.to(device), cfg.gen_len, temperature=cfg.temperature,
                                 top_k=cfg.top_k or None, generator=gen)
            out.append((prompt, ref, new.cpu()))
    return out


def generation_metrics(hyp_texts: list[str], ref_texts: list[str]) -> dict:
    """BLEU-1..4, sacreBLEU (if installed), ROUGE-1/2/L F1, distinct-1/2, self-BLEU and the combined
    forward/backward BLEU score, on the whitespace words of the texts."""
    from . import metrics

    hyps = [t.split() for t in hyp_texts]
    refs = [t.split() for t in ref_texts]
    result = {"bleu": metrics.bleu(hyps, refs, max_n=4, smoothing="method1"),
              "rouge": metrics.rouge(hyp_texts, ref_texts),
              "distinct_1": metrics.distinct_n(hyps, 1), "distinct_2": metrics.distinct_n(hyps, 2)}
    self_bleu = metrics.self_bleu(hyps, max_n=4)
    result["self_bleu"] = None if math.isnan(self_bleu) else self_bleu   # undefined for one prompt
    result.update(metrics.bleu_ha(hyps, refs))
    sacre = metrics.sacrebleu_score(hyp_texts, ref_texts)
    if sacre is not None:
        result["sacrebleu"] = sacre
    return result


def protocol(cfg: EvalConfig) -> dict:
    """The generation settings, stated for the report and the JSON result."""
    return {"prompts": cfg.prompts, "prompt_len": cfg.prompt_len, "gen_len": cfg.gen_len,
            "temperature": cfg.temperature, "top_k": cfg.top_k or None, "seed": cfg.seed,
            "positions": "evenly spaced over the scored text",
            "compared_as": "whitespace words of the detokenised text, <unk>/<eos> removed",
            "bleu": BLEU_SPEC, "rouge": ROUGE_SPEC}


def format_generation(r: dict) -> str:
    """The report's generation part: the protocol in words, each metric, three examples."""
    p = r["protocol"]
    lines = [f"protocol: {p['prompts']} prompts of {p['prompt_len']} tokens at evenly spaced positions of the "
             f"scored text; {p['gen_len']} tokens sampled per prompt (temperature {p['temperature']}, "
             f"top-k {p['top_k'] or 'off'}, seed {p['seed']}), each scored against the true next "
             f"{p['gen_len']} tokens, compared as {p['compared_as']}; BLEU: {p['bleu']}; ROUGE: {p['rouge']}",
             "BLEU    " + "  ".join(f"{k} {v:.4f}" for k, v in r["bleu"].items())]
    if "sacrebleu" in r:
        lines.append("sacreBLEU " + "  ".join(f"{k} {v}" if isinstance(v, str) else f"{k} {v:.4f}"
                                              for k, v in r["sacrebleu"].items()))
    lines += ["ROUGE   " + "  ".join(f"{k} {v:.4f}" for k, v in r["rouge"].items()),
              f"diversity  distinct-1 {r['distinct_1']:.4f}  distinct-2 {r['distinct_2']:.4f}  self-BLEU "
              + ("n/a (one prompt)" if r["self_bleu"] is None else f"{r['self_bleu']:.4f}"),
              f"combined  BLEU-HA {r['bleu_ha']:.4f} (harmonic mean of forward BLEU {r['bleu_f']:.4f}: "
              f"quality, and backward BLEU {r['bleu_b']:.4f}: coverage of the references)"]
    for ex in r["examples"]:
        lines.append(f"  prompt: {ex['prompt']!r}\n    true: {ex['reference']!r}\n     gen: {ex['generated']!r}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# `pyjlode generate`


def prompt_seed(seed: int, prompt: str) -> int:
    """The generator seed for one prompt: ``seed`` mixed with the prompt's text (CRC-32), so each prompt has
    its own reproducible draws instead of every prompt reusing the same random numbers."""
    return (int(seed) * 2**32 + zlib.crc32(prompt.encode("utf-8"))) % 2**63


def generate_text(checkpoint, prompt: str, *, max_tokens: int = 50, config: EvalConfig | None = None,
                  warn: Callable[[str], None] | None = None) -> str:
    """Continue ``prompt`` with a checkpoint's model; returns prompt and continuation, detokenised.

    A prompt not ending in a newline is continued on the same line (its final ``<eos>`` is dropped); an
    empty prompt starts a new line. Prompt words outside the model's vocabulary are read as ``<unk>``;
    ``warn`` (default: stderr) is told which.

    Args:
        config: sampling (temperature, top_k, seed) and run settings (device, backend, threads).
    """
    if max_tokens < 1:
        raise InputError(f"`max_tokens` must be at least 1 (got {max_tokens})")
    cfg = config or EvalConfig()
    _, _, tokenizer, vocab, model = load_model(checkpoint, cfg)
    tokens = tokenizer.tokenize(prompt) if prompt else []
    if tokens and tokens[-1] == "<eos>" and not prompt.endswith("\n"):
        tokens = tokens[:-1]
    unknown = list(dict.fromkeys(t for t in tokens if t not in vocab))
    if unknown:
        (warn or (lambda m: print(m, file=sys.stderr)))(
            f"warning: {len(unknown)} prompt word(s) are not in the model's vocabulary and are read as <unk>: "
            + ", ".join(repr(t) for t in unknown[:10]) + (" ..." if len(unknown) > 10 else ""))
    tokens = tokens or ["<eos>"]
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(prompt_seed(cfg.seed, prompt))
    with torch.no_grad():
        new = model.generate(vocab.encode(tokens).to(device), max_tokens, temperature=cfg.temperature,
                             top_k=cfg.top_k or None, generator=gen)
    shown = tokens if prompt else []
    return tokenizer.detokenize(shown + vocab.decode(new.cpu().tolist()))


__all__ = ["generation_samples", "generation_metrics", "protocol", "format_generation", "prompt_seed",
           "generate_text"]
