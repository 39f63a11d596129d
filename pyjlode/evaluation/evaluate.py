"""Measuring a model: validation NLL (also during training); for a checkpoint, perplexity with carried
state and the generation-metric protocol (``pyjlode evaluate``), and sampling (``pyjlode generate``).

Protocol (printed with the numbers): N prompts of K tokens are taken at evenly spaced positions of the split;
for each, M tokens are sampled from the model (temperature T, optional top-k, one seeded generator for the
whole run) and compared with the M tokens that truly follow. Texts are compared as the whitespace-separated
words of the detokenised text (so word- and char-level models are scored alike). BLEU-1..4: nltk
corpus_bleu, uniform weights, smoothing method1 (Chen & Cherry 2014); sacreBLEU when installed; ROUGE-1/2/L
F1 with rouge-score and Porter stemming; diversity: distinct-1/2 and self-BLEU of the generations.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..training.checkpoint_io import resolve_checkpoint
from ..training.state import load_checkpoint, load_vocab, model_from_checkpoint


# --------------------------------------------------------------------------------------------------
# validation NLL (also used during training)


@torch.no_grad()
def evaluate_nll(model, data: torch.Tensor, bptt: int, info=None) -> tuple[float, int]:
    """Mean next-token NLL (nats) over a batchified (T, B) stream, state carried across windows.

    Args:
        model: a LanguageModel; put in eval mode for the call and restored after.
        data: (T, B) token ids.
        bptt: window length (only bounds memory; the state is carried, so the result barely depends on it).
        info: a DistInfo; totals are summed over ranks when several share the work.

    Returns:
        (mean NLL, number of predicted tokens).
    """
    from ..data import get_batch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    state, total, count = None, 0.0, 0
    for i in range(0, data.size(0) - 1, bptt):
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


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("`device` cuda was asked for but CUDA is not available; use `device` cpu")
    return torch.device(device)


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


# --------------------------------------------------------------------------------------------------
# the protocol


def generation_samples(model, ids: torch.Tensor, *, prompts: int, prompt_len: int, gen_len: int,
                       temperature: float, top_k: int | None, seed: int) -> list[tuple[torch.Tensor, ...]]:
    """(prompt, reference, generated) id tensors for ``prompts`` evenly spaced positions of ``ids``."""
    from ..data import DataError

    span = prompt_len + gen_len
    if prompts < 1 or prompt_len < 1 or gen_len < 1:
        raise InputError("`prompts`, `prompt_len` and `gen_len` must be at least 1")
    if len(ids) < span:
        raise DataError(f"split has {len(ids)} tokens, fewer than one prompt plus continuation ({span}); "
                        "lower `prompt_len`/`gen_len`")
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    last = len(ids) - span
    starts = [round(j * last / max(prompts - 1, 1)) for j in range(prompts)]
    out = []
    model.eval()
    with torch.no_grad():
        for s in starts:
            prompt, ref = ids[s:s + prompt_len], ids[s + prompt_len:s + span]
            new = model.generate(prompt.to(device), gen_len, temperature=temperature, top_k=top_k,
                                 generator=gen)
            out.append((prompt, ref, new.cpu()))
    return out


def generation_metrics(hyp_texts: list[str], ref_texts: list[str]) -> dict:
    """BLEU-1..4, sacreBLEU (if installed), ROUGE-1/2/L F1, distinct-1/2, self-BLEU on word lists."""
    from . import metrics

    hyps = [t.split() for t in hyp_texts]
    refs = [t.split() for t in ref_texts]
    result = {"bleu": metrics.bleu(hyps, refs, max_n=4, smoothing="method1"),
              "rouge": metrics.rouge(hyp_texts, ref_texts),
              "distinct_1": metrics.distinct_n(hyps, 1), "distinct_2": metrics.distinct_n(hyps, 2)}
    self_bleu = metrics.self_bleu(hyps, max_n=4)
    result["self_bleu"] = None if math.isnan(self_bleu) else self_bleu   # undefined for one prompt
    sacre = metrics.sacrebleu_score(hyp_texts, ref_texts)
    if sacre is not None:
        result["sacrebleu"] = sacre
    return result


def evaluate_checkpoint(checkpoint, *, split: str = "test", prompts: int = 50, prompt_len: int = 20,
                        gen_len: int = 20, temperature: float = 1.0, top_k: int | None = None, seed: int = 0,
                        device: str = "auto", batch_size: int = 10, corpus: str | None = None,
                        backend: str | None = None) -> dict:
    """Perplexity of a checkpoint on a split, then the generation metrics of the module's protocol.

    Args:
        checkpoint: a ``.pt`` file or a run folder (``best.pt`` preferred).
        split: "train", "valid" or "test" of the corpus the model was trained on (or of ``corpus``).
        prompts, prompt_len, gen_len: N prompts of K tokens, M generated tokens each.
        temperature, top_k, seed: the sampling setup (fixed, so runs are comparable).
        device: "auto", "cpu" or "cuda".
        batch_size: columns for the perplexity pass (state carried through each column).
        corpus: read the split from this corpus instead of the one in the checkpoint.
        backend: run a GRU-ODE on this engine instead of the one it was trained with.

    Returns:
        A JSON-serialisable dict: model facts, ``nll``, ``perplexity`` (``bits_per_char`` at char level),
        ``protocol`` (the settings, stated), the metric values and three ``examples``.
    """
    from . import metrics
    from ..data import DataError, batchify

    path = resolve_checkpoint(checkpoint)
    ckpt = load_checkpoint(path)
    dev = _device(device)
    tokenizer, vocab = load_vocab(ckpt)
    model = model_from_checkpoint(ckpt, dev, backend)
    ids = split_ids(ckpt, split, corpus, tokenizer, vocab)
    try:
        data = batchify(ids, batch_size)
    except DataError as exc:
        raise DataError(f"{split} split: {exc}") from None
    nll, count = evaluate_nll(model, data, ckpt["train_config"]["bptt"])
    level = ckpt["train_config"]["level"]
    result: dict[str, Any] = {
        "checkpoint": str(path), "model": ckpt["model_config"]["cell"], "parameters": model.num_parameters(),
        "step": ckpt["progress"]["step"], "split": split, "level": level, "tokens": count,
        "nll": nll, "perplexity": metrics.perplexity(nll)}
    if level == "char":
        result["bits_per_char"] = metrics.bits_per_char(nll)
    samples = generation_samples(model, ids, prompts=prompts, prompt_len=prompt_len, gen_len=gen_len,
                                 temperature=temperature, top_k=top_k, seed=seed)
    text = [tuple(tokenizer.detokenize(vocab.decode(t.tolist())) for t in s) for s in samples]
    result.update(generation_metrics([t[2] for t in text], [t[1] for t in text]))
    result["protocol"] = {"prompts": prompts, "prompt_len": prompt_len, "gen_len": gen_len,
                          "temperature": temperature, "top_k": top_k, "seed": seed,
                          "positions": "evenly spaced over the split",
                          "compared_as": "whitespace words of the detokenised text, <unk>/<eos> removed",
                          "bleu": "nltk corpus_bleu, uniform weights, smoothing method1",
                          "rouge": "rouge-score F1, Porter stemming"}
    result["examples"] = [{"prompt": p, "reference": r, "generated": g} for p, r, g in text[:3]]
    return result


def format_report(r: dict) -> str:
    """The human-readable report: perplexity, the protocol in words, then each metric."""
    p = r["protocol"]
    lines = [f"checkpoint {r['checkpoint']}: {r['model']}, {r['parameters']:,} parameters, step {r['step']}",
             f"{r['split']}: {r['tokens']:,} tokens, perplexity {r['perplexity']:.2f}"
             + (f", bits per char {r['bits_per_char']:.3f}" if "bits_per_char" in r else ""),
             f"protocol: {p['prompts']} prompts of {p['prompt_len']} tokens at evenly spaced positions of the "
             f"{r['split']} split; {p['gen_len']} tokens sampled per prompt (temperature {p['temperature']}, "
             f"top-k {p['top_k'] or 'off'}, seed {p['seed']}), each scored against the true next "
             f"{p['gen_len']} tokens, compared as {p['compared_as']}; BLEU: {p['bleu']}; ROUGE: {p['rouge']}",
             "BLEU    " + "  ".join(f"{k} {v:.4f}" for k, v in r["bleu"].items())]
    if "sacrebleu" in r:
        lines.append("sacreBLEU " + "  ".join(f"{k} {v}" if isinstance(v, str) else f"{k} {v:.4f}"
                                              for k, v in r["sacrebleu"].items()))
    lines += ["ROUGE   " + "  ".join(f"{k} {v:.4f}" for k, v in r["rouge"].items()),
              f"diversity  distinct-1 {r['distinct_1']:.4f}  distinct-2 {r['distinct_2']:.4f}  self-BLEU "
              + ("n/a (one prompt)" if r["self_bleu"] is None else f"{r['self_bleu']:.4f}")]
    for ex in r["examples"]:
        lines.append(f"  prompt: {ex['prompt']!r}\n    true: {ex['reference']!r}\n     gen: {ex['generated']!r}")
    return "\n".join(lines)


def generate_text(checkpoint, prompt: str, *, max_tokens: int = 50, temperature: float = 1.0,
                  top_k: int | None = None, seed: int = 0, device: str = "auto",
                  backend: str | None = None) -> str:
    """Continue ``prompt`` with a checkpoint's model; returns prompt and continuation, detokenised.

    A prompt not ending in a newline is continued on the same line (its final ``<eos>`` is dropped);
    an empty prompt starts a new line.
    """
    if max_tokens < 1:
        raise InputError(f"`max_tokens` must be at least 1 (got {max_tokens})")
    ckpt = load_checkpoint(checkpoint)
    tokenizer, vocab = load_vocab(ckpt)
    dev = _device(device)
    model = model_from_checkpoint(ckpt, dev, backend).eval()
    tokens = tokenizer.tokenize(prompt) if prompt else []
    if tokens and tokens[-1] == "<eos>" and not prompt.endswith("\n"):
        tokens = tokens[:-1]
    tokens = tokens or ["<eos>"]
    ids = vocab.encode(tokens).to(dev)
    gen = torch.Generator(device=dev).manual_seed(seed)
    with torch.no_grad():
        new = model.generate(ids, max_tokens, temperature=temperature, top_k=top_k, generator=gen)
    shown = tokens if prompt else []
    return tokenizer.detokenize(shown + vocab.decode(new.cpu().tolist()))
