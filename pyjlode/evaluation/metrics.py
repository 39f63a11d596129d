"""Evaluation metrics as pure functions, plus one fixed-width row formatter.

Conventions (those of the papers and libraries named below):
- Perplexity is exp(mean NLL in nats over all target tokens); bits per character is NLL/ln 2.
- BLEU-n is nltk's cumulative ``corpus_bleu`` with uniform weights (1/n, ..., 1/n), one
  aligned reference per hypothesis, ``SmoothingFunction().method1`` unless told otherwise
  (unsmoothed BLEU-4 of short continuations is ~0); scores in [0, 1].
- sacrebleu is scored on detokenised text with its defaults (13a, exp smoothing); 0-100.
- ROUGE-1/2/L are mean F1 over pairs from rouge-score with the Porter stemmer, called as
  ``score(target, prediction)`` (the reference comes first).
- distinct-n (Li et al. 2016): distinct n-grams / total generated tokens.
- Self-BLEU (Zhu et al. 2018): mean sentence BLEU of each hypothesis against all the others.
- BLEU-HA (Shi et al. 2018, "Toward Diverse Text Generation with Inverse Reinforcement Learning"): the
  harmonic mean of forward BLEU (each generation against the set of references: quality) and backward
  BLEU (each reference against the set of generations: how much of the references the generations cover,
  which a repetitive generator cannot), both nltk corpus BLEU with method1 smoothing; in [0, 1].
``<unk>`` and ``<eos>`` are removed before every generation metric: rouge-score's tokenizer
would turn ``<unk>`` into a word "unk", and shared specials would count as matches.
nltk and rouge-score are imported inside the functions (nltk takes seconds to import).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence

from ..errors import InputError

SPECIAL_TOKENS = frozenset({"<unk>", "<eos>"})
HA_ORDER = 2           # n-gram order of BLEU-HA: 4-grams are too rare in weak models' samples (docs/metrics.md)
_SPECIAL_RE = re.compile(r"<unk>|<eos>")


def _float(x) -> float:
    return float(x.item()) if hasattr(x, "item") else float(x)


def perplexity(mean_nll) -> float:
    """exp(mean negative log-likelihood in nats); ``inf`` on overflow. Accepts floats or 0-d tensors."""
    try:
        return math.exp(_float(mean_nll))
    except OverflowError:
        return math.inf


def bits_per_char(mean_nll) -> float:
    """Mean NLL per character converted from nats to bits (divide by ln 2)."""
    return _float(mean_nll) / math.log(2)


def strip_specials(tokens: Sequence[str]) -> list[str]:
    """The tokens without ``<unk>`` and ``<eos>``."""
    return [t for t in tokens if t not in SPECIAL_TOKENS]


def _strip_text(text: str) -> str:
    return " ".join(_SPECIAL_RE.sub(" ", text).split())


def _check_pairs(hyps: Sequence, refs: Sequence) -> None:
    if len(hyps) != len(refs):
        raise InputError(f"got {len(hyps)} hypotheses but {len(refs)} references; "
                         f"pass one reference per hypothesis")
    if not hyps:
        raise InputError("no hypotheses to score; generate at least one continuation")


def _smoothing(name: str | None):
    from nltk.translate.bleu_score import SmoothingFunction

    name = name or "method0"
    fn = getattr(SmoothingFunction(), name, None) if re.fullmatch(r"method[0-7]", name) else None
    if fn is None:
        raise InputError(f"unknown BLEU smoothing {name!r}; choose one of: method0 ... method7")
    return fn


def bleu(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]], max_n: int = 4,
         smoothing: str | None = "method1") -> dict[str, float]:
    """Corpus BLEU-1..max_n of tokenised hypotheses against one aligned reference each.

    Args:
        hyps: generated token lists.
        refs: the true continuation of each hypothesis, same length as ``hyps``.
        max_n: highest n-gram order.
        smoothing: nltk ``SmoothingFunction`` method name (``None`` = ``"method0"``, none).

    Returns:
        ``{"bleu1": ..., ..., f"bleu{max_n}": ...}``, each in [0, 1].
    """
    from nltk.translate.bleu_score import corpus_bleu

    _check_pairs(hyps, refs)
    smooth = _smoothing(smoothing)
    h = [strip_specials(x) for x in hyps]
    r = [[strip_specials(x)] for x in refs]
    out = {}
    with warnings.catch_warnings():  # method0 warns on every zero n-gram count
        warnings.simplefilter("ignore")
        for n in range(1, max_n + 1):
            out[f"bleu{n}"] = float(corpus_bleu(r, h, weights=(1.0 / n,) * n, smoothing_function=smooth))
    return out


def sacrebleu_score(hyp_texts: Sequence[str], ref_texts: Sequence[str]) -> dict | None:
    """sacrebleu corpus BLEU on detokenised text, or ``None`` when sacrebleu is not installed.

    Returns:
        ``{"sacrebleu": score in [0, 100], "signature": sacrebleu's signature string}``.
    """
    try:
        from sacrebleu.metrics import BLEU
    except ImportError:
        return None
    _check_pairs(hyp_texts, ref_texts)
    metric = BLEU()
    result = metric.corpus_score([_strip_text(t) for t in hyp_texts], [[_strip_text(t) for t in ref_texts]])
    return {"sacrebleu": float(result.score), "signature": str(metric.get_signature())}


def rouge(hyp_texts: Sequence[str], ref_texts: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 over (hypothesis, reference) pairs, with stemming.

    Returns:
        ``{"rouge1": ..., "rouge2": ..., "rougeL": ...}``, each in [0, 1].
    """
    from rouge_score.rouge_scorer import RougeScorer

    _check_pairs(hyp_texts, ref_texts)
    kinds = ("rouge1", "rouge2", "rougeL")
    scorer = RougeScorer(list(kinds), use_stemmer=True)
    totals = dict.fromkeys(kinds, 0.0)
    for hyp, ref in zip(hyp_texts, ref_texts):
        scores = scorer.score(_strip_text(ref), _strip_text(hyp))  # target first
        for k in kinds:
            totals[k] += scores[k].fmeasure
    return {k: v / len(hyp_texts) for k, v in totals.items()}


def distinct_n(hyps: Sequence[Sequence[str]], n: int) -> float:
    """Distinct n-grams (within each hypothesis) over all hypotheses / total generated tokens."""
    if n < 1:
        raise InputError(f"n must be at least 1, got {n}")
    grams, total = set(), 0
    for hyp in hyps:
        toks = strip_specials(hyp)
        total += len(toks)
        grams.update(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))
    return len(grams) / total if total else 0.0


def self_bleu(hyps: Sequence[Sequence[str]], max_n: int = 4) -> float:
    """Mean sentence BLEU-max_n (method1) of each hypothesis against all the others.

    Higher means less diverse. Returns ``nan`` for fewer than two hypotheses.
    """
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    h = [strip_specials(x) for x in hyps]
    if len(h) < 2:
        return math.nan
    weights, smooth = (1.0 / max_n,) * max_n, SmoothingFunction().method1
    total = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, hyp in enumerate(h):
            total += sentence_bleu(h[:i] + h[i + 1:], hyp, weights=weights, smoothing_function=smooth)
    return total / len(h)


def bleu_ha(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]], n: int = HA_ORDER) -> dict[str, float]:
    """Forward BLEU-n, backward BLEU-n and their harmonic mean BLEU-HA (Shi et al. 2018).

    Forward BLEU scores each hypothesis against every reference as a multi-reference set (are the
    generations like real text?); backward BLEU scores each reference against every hypothesis (is real
    text covered by the generations? a generator that repeats itself covers little). The harmonic mean is
    high only when both are.

    Returns:
        ``{"bleu_f": ..., "bleu_b": ..., "bleu_ha": ...}``, each in [0, 1].
    """
    from nltk.translate.bleu_score import corpus_bleu

    _check_pairs(hyps, refs)
    h = [strip_specials(x) for x in hyps]
    r = [strip_specials(x) for x in refs]
    weights, smooth = (1.0 / n,) * n, _smoothing("method1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forward = float(corpus_bleu([r] * len(h), h, weights=weights, smoothing_function=smooth))
        backward = float(corpus_bleu([h] * len(r), r, weights=weights, smoothing_function=smooth))
    both = forward + backward
    return {"bleu_f": forward, "bleu_b": backward, "bleu_ha": 2 * forward * backward / both if both else 0.0}


def _fmt(value) -> str:
    if hasattr(value, "item"):
        value = value.item()
    if value is None:
        return f"{'-':>8}"
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return f"{value:5d}"
    if not math.isfinite(value):
        return f"{value!s:>8}"
    return f"{value:8.2f}" if abs(value) >= 10 else f"{value:8.4f}"


def format_row(row: dict) -> str:
    """One fixed-width line ``| epoch     3 | loss   4.9612 | ppl   142.31 |`` from a dict, in key order."""
    return "| " + " | ".join(f"{k} {_fmt(v)}" for k, v in row.items()) + " |"
