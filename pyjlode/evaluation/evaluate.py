"""Measuring a model: validation NLL (also during training); for a checkpoint (``pyjlode evaluate``),
perplexity with carried state on a split or a whole file, then the generation protocol of
:mod:`pyjlode.evaluation.generation`.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..training.state import load_vocab
from . import metrics
from .config import EvalConfig
from .generation import format_generation, generation_metrics, generation_samples, protocol
from .loading import load_model


# --------------------------------------------------------------------------------------------------
# validation NLL (also used during training)


@torch.no_grad()
def evaluate_nll(model, data: torch.Tensor, bptt: int, info=None, progress: bool = False) -> tuple[float, int]:
    """Mean next-token NLL (nats) over a batchified (T, B) stream, state carried across windows.

    Args:
        model: a LanguageModel; put in eval mode for the call and restored after.
        data: (T, B) token ids.
        bptt: window length (only bounds memory; the state is carried, so the result barely depends on it).
        info: a DistInfo; totals are summed over ranks when several share the work.
        progress: show a progress bar on stderr (when it is a terminal).

    Returns:
        (mean NLL, number of predicted tokens).
    """
    from tqdm.auto import tqdm

    from ..data import get_batch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    state, total, count = None, 0.0, 0
    starts = range(0, data.size(0) - 1, bptt)
    for i in tqdm(starts, desc="perplexity", unit="window", file=sys.stderr, leave=False,
                  disable=None if progress else True):
        x, y = get_batch(data, i, bptt)
        logits, state = model(x.to(device), state)
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.to(device).reshape(-1),
                                 reduction="sum").item()
        count += y.numel()
    model.train(was_training)
    if info is not None and info.world_size > 1:
        from ..training.distributed import all_reduce_sum

        total, count = all_reduce_sum([total, float(count)], info)
    return total / max(count, 1), int(count)


def split_ids(ckpt: dict, split: str, corpus: str | None = None, tokenizer=None, vocab=None) -> torch.Tensor:
    """Token ids of a split of the checkpoint's corpus (or of ``corpus``), in the checkpoint's vocabulary."""
    from ..data import load_splits

    if tokenizer is None or vocab is None:
        tokenizer, vocab = load_vocab(ckpt)
    tc = ckpt["train_config"]
    splits = load_splits(corpus or tc["corpus"], cache_dir=tc.get("cache_dir"))
    if split not in splits:
        raise InputError(f"unknown `split` '{split}'; choose one of: {', '.join(splits)}")
    return vocab.encode(tokenizer.tokenize(splits[split]))


def scored_text(ckpt: dict, cfg: EvalConfig) -> tuple[str, str]:
    """The text ``cfg`` asks to score, and a phrase saying what it is (for the report)."""
    from ..data import load_splits
    from ..data.corpora import CORPORA, TEST_FRACTION, VALID_FRACTION, read_text
    from ..data.tokenize import text_lines

    if cfg.file:
        text = read_text(cfg.file)
        return text, f"all {len(text_lines(text)):,} lines of {cfg.file}"
    corpus = cfg.corpus or ckpt["train_config"]["corpus"]
    text = load_splits(corpus, cache_dir=ckpt["train_config"].get("cache_dir"))[cfg.split]
    name = corpus.strip().lower()
    if name in CORPORA:
        return text, f"the {cfg.split} split of the {name} corpus ({CORPORA[name].description})"
    if Path(corpus).expanduser().is_dir():
        return text, f"the {cfg.split} file of {corpus}"
    train = 1 - VALID_FRACTION - TEST_FRACTION
    part = {"train": f"its first {train:.0%} of lines", "valid": f"the {VALID_FRACTION:.0%} of lines after those",
            "test": f"its last {TEST_FRACTION:.0%} of lines"}[cfg.split]
    shares = "/".join(f"{100 * x:.0f}" for x in (train, VALID_FRACTION, TEST_FRACTION))
    return text, f"the {cfg.split} split of {corpus}: {part} (a text file is split by lines {shares}; " \
                 "`file` scores all of it)"


def evaluate_checkpoint(checkpoint, config: EvalConfig | None = None, *, progress: bool = False,
                        **settings) -> dict:
    """Perplexity of a checkpoint on held-out text, then the generation metrics (see
    :mod:`pyjlode.evaluation.generation` for the protocol).

    Args:
        checkpoint: a ``.pt`` file or a run folder (``best.pt`` preferred).
        config: what to score and how to sample (default: :class:`EvalConfig`'s defaults).
        progress: show progress bars on stderr (when it is a terminal).
        **settings: EvalConfig fields that replace ``config``'s, e.g. ``split="valid", prompts=10``.

    Returns:
        A JSON-serialisable dict: model facts, ``scored`` (which text), ``text_tokens`` and ``unknown`` (how
        many of them are outside the vocabulary), ``tokens`` (how many were predicted: the text cut into
        ``batch_size`` streams, less each stream's first), ``nll``, ``perplexity`` (``bits_per_char`` at
        char level), ``protocol`` (the settings, stated), the metric values and three ``examples``.
    """
    from ..data import DataError, batchify

    cfg = replace(config or EvalConfig(), **settings)
    path, ckpt, tokenizer, vocab, model = load_model(checkpoint, cfg)
    text, where = scored_text(ckpt, cfg)
    ids = vocab.encode(tokenizer.tokenize(text))
    try:
        data = batchify(ids, cfg.batch_size)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    nll, count = evaluate_nll(model, data, ckpt["train_config"]["bptt"], progress=progress)
    level = ckpt["train_config"]["level"]
    result: dict[str, Any] = {
        "checkpoint": str(path), "model": ckpt["model_config"]["cell"], "parameters": model.num_parameters(),
        "step": ckpt["progress"]["step"], "split": "file" if cfg.file else cfg.split, "scored": where,
        "level": level, "text_tokens": len(ids), "unknown": int((ids == vocab.unk_id).sum()), "tokens": count,
        "nll": nll, "perplexity": metrics.perplexity(nll)}
    if level == "char":
        result["bits_per_char"] = metrics.bits_per_char(nll)
    samples = generation_samples(model, ids, cfg, progress=progress)
    texts = [tuple(tokenizer.detokenize(vocab.decode(t.tolist())) for t in s) for s in samples]
    result.update(generation_metrics([t[2] for t in texts], [t[1] for t in texts]))
    result["protocol"] = protocol(cfg)
    result["examples"] = [{"prompt": p, "reference": r, "generated": g} for p, r, g in texts[:3]]
    return result


def format_report(r: dict) -> str:
    """The human-readable report: what was scored, perplexity, the protocol in words, then each metric."""
    unknown = r.get("unknown", 0)
    oov = (f"{unknown:,} of them ({unknown / max(r['text_tokens'], 1):.1%}) outside the model's vocabulary, "
           "scored as <unk>" if unknown else "all in the model's vocabulary")
    lines = [f"checkpoint {r['checkpoint']}: {r['model']}, {r['parameters']:,} parameters, step {r['step']}",
             f"scored {r['scored']}: {r['text_tokens']:,} tokens, {oov}",
             f"perplexity {r['perplexity']:.2f} over {r['tokens']:,} predicted tokens"
             + (f", bits per char {r['bits_per_char']:.3f}" if "bits_per_char" in r else "")]
    return "\n".join(lines + [format_generation(r)])
