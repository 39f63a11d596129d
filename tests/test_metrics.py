"""Metrics against values computed by hand in the comments."""

import math
import sys

import pytest
import torch

from pyjlode.evaluation.metrics import (bits_per_char, bleu, bleu_ha, distinct_n, format_row, perplexity, rouge,
                             sacrebleu_score, self_bleu)

HYP = "the cat sat on the mat".split()
REF = "the cat is on the mat".split()


# ---------------------------------------------------------------- perplexity, bits per char

def test_perplexity_and_bits_per_char():
    assert perplexity(math.log(10)) == pytest.approx(10)  # exp(ln 10)
    assert perplexity(torch.tensor(0.0)) == 1.0
    assert perplexity(1e4) == math.inf  # overflow is inf, not an exception
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)  # ln 2 nats = 1 bit
    assert bits_per_char(torch.tensor(math.log(8))) == pytest.approx(3.0)


# ---------------------------------------------------------------- BLEU (nltk corpus_bleu, method1)

def test_bleu_identical_is_one_and_disjoint_is_zero():
    assert bleu([HYP], [HYP]) == {f"bleu{n}": pytest.approx(1.0) for n in range(1, 5)}
    assert bleu(["a b c d".split()], ["w x y z".split()]) == {f"bleu{n}": 0.0 for n in range(1, 5)}


def test_bleu_partial_overlap_by_hand():
    # unigrams: the,cat,on,the,mat match (the clipped at 2)       p1 = 5/6
    # bigrams: the-cat, on-the, the-mat of 5                       p2 = 3/5
    # trigrams: on-the-mat of 4                                    p3 = 1/4
    # 4-grams: none of 3; method1 puts epsilon 0.1 on top          p4 = 0.1/3
    # equal lengths: BP = 1; BLEU-n = geometric mean of p1..pn
    p = [5 / 6, 3 / 5, 1 / 4, 0.1 / 3]
    got = bleu([HYP], [REF])
    for n in range(1, 5):
        assert got[f"bleu{n}"] == pytest.approx(math.prod(p[:n]) ** (1 / n))
    assert got["bleu2"] == pytest.approx(math.sqrt(0.5)) and got["bleu3"] == pytest.approx(0.5)
    # without smoothing the zero 4-gram precision drives BLEU-4 to ~0
    assert bleu([HYP], [REF], smoothing=None)["bleu4"] < 1e-10


def test_bleu_brevity_penalty():
    # all n-grams of "the cat" match, c = 2 < r = 4: BP = exp(1 - 4/2) = 1/e
    got = bleu([["the", "cat"]], [["the", "cat", "sat", "down"]], max_n=2)
    assert got == {"bleu1": pytest.approx(math.exp(-1)), "bleu2": pytest.approx(math.exp(-1))}


def test_bleu_ignores_special_tokens_and_checks_arguments():
    assert bleu([HYP + ["<eos>"]], [["<unk>"] + REF]) == bleu([HYP], [REF])
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        bleu([HYP], [REF, REF])
    with pytest.raises(ValueError, match="unknown BLEU smoothing"):
        bleu([HYP], [REF], smoothing="laplace")


# ---------------------------------------------------------------- ROUGE (rouge-score, stemming)

def test_rouge_partial_overlap_by_hand():
    # hyp "the cat sat" (3 words) vs ref "the cat is on the mat" (6 words)
    # ROUGE-1: overlap {the, cat} = 2; P = 2/3, R = 2/6; F1 = 2PR/(P+R) = (4/9)/1 = 4/9
    # ROUGE-2: overlap {the cat} = 1 of 2 hyp / 5 ref bigrams; F1 = 2(1/2)(1/5)/(7/10) = 2/7
    # ROUGE-L: LCS "the cat" = 2, same P and R as ROUGE-1: 4/9
    got = rouge(["the cat sat"], ["the cat is on the mat"])
    assert got == {"rouge1": pytest.approx(4 / 9), "rouge2": pytest.approx(2 / 7), "rougeL": pytest.approx(4 / 9)}


def test_rouge_stems_averages_pairs_and_strips_specials():
    # Porter stemming: cats -> cat, running -> run, so the pair matches completely
    assert rouge(["cats running"], ["cat run"])["rouge1"] == pytest.approx(1.0)
    # mean over pairs: F1 1 and 0
    assert rouge(["a b", "c d"], ["a b", "x y"])["rouge1"] == pytest.approx(0.5)
    # rouge-score's tokenizer would read <unk> as the word "unk" and match it
    assert rouge(["<unk> cat <eos>"], ["<unk> dog"])["rouge1"] == 0.0


# ---------------------------------------------------------------- sacrebleu

def test_sacrebleu_reports_score_and_signature():
    pytest.importorskip("sacrebleu")
    got = sacrebleu_score(["the cat sat on the mat ."], ["the cat sat on the mat ."])
    assert got["sacrebleu"] == pytest.approx(100.0)
    assert "tok:13a" in got["signature"] and "smooth:exp" in got["signature"]


def test_sacrebleu_absent_gives_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    monkeypatch.setitem(sys.modules, "sacrebleu.metrics", None)
    assert sacrebleu_score(["a"], ["a"]) is None


# ---------------------------------------------------------------- diversity

def test_distinct_n_by_hand():
    # "a b a b": 2 distinct unigrams / 4 tokens; bigrams ab, ba, ab -> 2 distinct / 4 tokens
    assert distinct_n([["a", "b", "a", "b"]], 1) == 0.5
    assert distinct_n([["a", "b", "a", "b"]], 2) == 0.5
    # n-grams do not cross hypotheses: {ab, bc} / 4 tokens; specials do not count
    assert distinct_n([["a", "b", "<eos>"], ["b", "c"]], 2) == 0.5
    assert distinct_n([["a", "b"], ["b", "c"]], 1) == 0.75
    assert distinct_n([[]], 1) == 0.0


def test_self_bleu_by_hand():
    same = "one two three four five".split()
    other = "six seven eight nine ten".split()
    assert self_bleu([same, same, same]) == pytest.approx(1.0)  # each equals its references
    assert self_bleu([same, other]) == 0.0  # no shared unigram
    assert self_bleu([same, same, other]) == pytest.approx(2 / 3)  # scores 1, 1, 0
    assert math.isnan(self_bleu([same]))


# ---------------------------------------------------------------- formatter

def test_format_row_fixed_width():
    row = {"epoch": 3, "lr": 20.0, "loss": 4.9612, "ppl": 142.3149, "bleu4": None, "solver": "Tsit5"}
    assert format_row(row) == ("| epoch     3 | lr    20.00 | loss   4.9612 | ppl   142.31 | bleu4        - "
                               "| solver Tsit5 |")
    assert format_row({"ppl": math.inf, "x": torch.tensor(2.5)}) == "| ppl      inf | x   2.5000 |"


# ---------------------------------------------------------------- BLEU-HA (Shi et al. 2018)

def test_bleu_ha_of_a_generator_that_matches_the_references_is_one():
    refs = ["the king loves the queen".split(), "a lord draws his sword".split()]
    assert bleu_ha(refs, refs) == {"bleu_f": pytest.approx(1.0), "bleu_b": pytest.approx(1.0),
                                   "bleu_ha": pytest.approx(1.0)}


def test_bleu_ha_by_hand_punishes_a_repetitive_generator():
    # n = 1. Forward: each "the king" is all found among the references: p1 = 6/6, BP = 1 -> 1.
    # Backward: of the references' 6 words only "the king" appear among the generations: p1 = 2/6 -> 1/3.
    # Harmonic mean: 2 * 1 * (1/3) / (1 + 1/3) = 1/2.
    hyps = [["the", "king"]] * 3
    refs = [["the", "king"], ["a", "lord"], ["my", "lady"]]
    got = bleu_ha(hyps, refs, n=1)
    assert got == {"bleu_f": pytest.approx(1.0), "bleu_b": pytest.approx(1 / 3), "bleu_ha": pytest.approx(0.5)}
    # the same words spread over three different generations cover the references better
    varied = bleu_ha([["the", "king"], ["a", "lord"], ["my", "queen"]], refs, n=1)
    assert varied["bleu_b"] > got["bleu_b"] and varied["bleu_ha"] > got["bleu_ha"]


def test_bleu_ha_of_disjoint_text_is_near_zero():
    got = bleu_ha([["w", "x", "y", "z"]] * 2, [["a", "b", "c", "d"]] * 2)
    assert got["bleu_f"] == got["bleu_b"] == got["bleu_ha"] == 0.0
