"""Text pipeline: corpora, markdown stripping, tokenisation, vocabulary, batching, bad input."""

import json

import pytest
import torch

from pyjlode.data import (CORPORA, EOS, UNK, DataError, Tokenizer, Vocab, batchify, get_batch,
                          load_splits)
from pyjlode.data.shakespeare import TEST_PLAYS, VALID_PLAYS, load_plays, strip_markdown


def assert_one_line(err: pytest.ExceptionInfo, *fragments: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg and msg.strip() == msg
    for frag in fragments:
        assert frag in msg, (frag, msg)


# ---------------------------------------------------------------- built-in Shakespeare

@pytest.fixture(scope="module")
def shakespeare():
    return load_splits("shakespeare")


def test_builtin_has_three_nonempty_splits(shakespeare):
    assert set(shakespeare) == {"train", "valid", "test"}
    assert all(len(t) > 10_000 for t in shakespeare.values())


def test_builtin_is_split_by_play_about_90_5_5(shakespeare):
    words = {k: len(v.split()) for k, v in shakespeare.items()}
    total = sum(words.values())
    assert 0.03 < words["valid"] / total < 0.07 and 0.03 < words["test"] / total < 0.07
    plays = load_plays()
    assert len(plays) == 38
    # every play's text lies in exactly one split: the held-out ones in theirs, the rest in train
    for name, text in plays.items():
        home = "valid" if name in VALID_PLAYS else "test" if name in TEST_PLAYS else "train"
        assert text in shakespeare[home]
    assert "Out, damned spot" in shakespeare["test"] and "Out, damned spot" not in shakespeare["train"]


def test_builtin_is_deterministic(shakespeare):
    load_plays.cache_clear()
    assert load_splits("Shakespeare") == shakespeare


def test_builtin_markup_is_stripped_to_spoken_and_stage_text(shakespeare):
    hamlet = load_plays()["hamlet"].splitlines()
    assert hamlet[:3] == ["FRANCISCO at his post. Enter to him BERNARDO", "Who's there?",
                          "Nay, answer me: stand, and unfold yourself."]
    text = "".join(shakespeare.values())
    for mark in ("**", "_", "\\", "#", "&amp;", "[ ]"):
        assert mark not in text, mark
    assert all(line == line.strip() and line for line in text.splitlines())


def test_strip_markdown_handles_every_kind_of_markup():
    md = ("# Play\n\n## ACT I\n\n### SCENE I. A heath.\n\n"
          "_Thunder. Enter three\nWitches_\n\n"
          "**FIRST WITCH**  \nWhen shall we three meet again  \nIn thunder, lightning, or in rain?\n\n"
          "**SECOND WITCH**  \n_\\[Aside]_  \nTo-night \\--they say &amp; more, he'll __\\[ ]_  \n1\\. the end\n\n"
          "*Exit Audley.*\n")
    assert strip_markdown(md) == ("Thunder. Enter three Witches\nWhen shall we three meet again\n"
                                  "In thunder, lightning, or in rain?\n[Aside]\n"
                                  "To-night --they say & more, he'll\n1. the end\nExit Audley.\n")


# ---------------------------------------------------------------- user files and folders

def write_lines(path, n):
    path.write_text("".join(f"line {i}\n" for i in range(n)), encoding="utf-8")
    return path


@pytest.mark.parametrize("n, sizes", [(100, (90, 5, 5)), (3, (1, 1, 1)), (40, (36, 2, 2))])
def test_single_file_is_split_by_lines_90_5_5_in_order(tmp_path, n, sizes):
    splits = load_splits(str(write_lines(tmp_path / "c.txt", n)))
    lines = {k: v.splitlines() for k, v in splits.items()}
    assert tuple(len(lines[k]) for k in ("train", "valid", "test")) == sizes
    assert lines["train"] + lines["valid"] + lines["test"] == [f"line {i}" for i in range(n)]


@pytest.mark.parametrize("naming", [("train.txt", "valid.txt", "test.txt"),
                                    ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"),
                                    ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")])
def test_folder_with_split_files(tmp_path, naming):
    for split, name in zip(("train", "valid", "test"), naming):
        (tmp_path / name).write_text(f"{split} text\n", encoding="utf-8")
    assert load_splits(str(tmp_path)) == {s: f"{s} text\n" for s in ("train", "valid", "test")}


def test_corpora_registry_names_and_levels():
    assert set(CORPORA) == {"shakespeare", "wikitext-2", "ptb", "tiny-shakespeare"}
    assert all(info.level in ("word", "char", "space") for info in CORPORA.values())


# ---------------------------------------------------------------- bad input: one line each

def test_missing_path(tmp_path):
    with pytest.raises(DataError) as err:
        load_splits(str(tmp_path / "nope.txt"))
    assert_one_line(err, "does not exist", "nope.txt", "shakespeare")


def test_unknown_corpus_name_lists_valid_names():
    with pytest.raises(DataError) as err:
        load_splits("shakespear")
    assert_one_line(err, "unknown corpus 'shakespear'", *CORPORA)


@pytest.mark.parametrize("content", [b"", b"  \n\n\t\n"])
def test_empty_corpus(tmp_path, content):
    (tmp_path / "e.txt").write_bytes(content)
    with pytest.raises(DataError) as err:
        load_splits(str(tmp_path / "e.txt"))
    assert_one_line(err, "e.txt", "empty")


def test_non_utf8_names_file_and_byte_offset(tmp_path):
    (tmp_path / "latin.txt").write_bytes("caf".encode() + "\u00e9 au lait\n".encode("latin-1") * 3)
    with pytest.raises(DataError) as err:
        load_splits(str(tmp_path / "latin.txt"))
    assert_one_line(err, "latin.txt", "not UTF-8", "0xe9", "offset 3", "iconv")


def test_non_utf8_in_a_folder_names_the_split_file(tmp_path):
    for name in ("train.txt", "valid.txt"):
        (tmp_path / name).write_text("ok\n", encoding="utf-8")
    (tmp_path / "test.txt").write_bytes(b"ok\n\xff\n")
    with pytest.raises(DataError) as err:
        load_splits(str(tmp_path))
    assert_one_line(err, "test.txt", "offset 3")


def test_too_few_lines_to_split(tmp_path):
    with pytest.raises(DataError) as err:
        load_splits(str(write_lines(tmp_path / "two.txt", 2)))
    assert_one_line(err, "2 line(s)", "at least 3")


def test_folder_without_or_with_partial_split_files(tmp_path):
    with pytest.raises(DataError) as err:
        load_splits(str(tmp_path))
    assert_one_line(err, "no split files", "train.txt/valid.txt/test.txt")
    (tmp_path / "train.txt").write_text("x\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_splits(str(tmp_path))
    assert_one_line(err, "lacks valid.txt, test.txt")


# ---------------------------------------------------------------- tokenisation

def test_one_eos_per_line_including_empty_lines():
    for level in ("word", "char", "space"):
        toks = Tokenizer(level).tokenize("ab\n\nc\r\n")
        assert toks.count(EOS) == 3 and toks[-1] == EOS
        assert Tokenizer(level).tokenize("ab") == Tokenizer(level).tokenize("ab\n")
    assert Tokenizer("char").tokenize("ab\n\nc") == ["a", "b", EOS, EOS, "c", EOS]


def test_word_level_splits_punctuation_keeps_words_and_specials():
    toks = Tokenizer("word").tokenize("'Tis appear'd to-night, <unk> said: 1 @,@ 000--O!")
    assert toks == ["'Tis", "appear'd", "to-night", ",", "<unk>", "said", ":", "1", "@,@", "000",
                    "--", "O", "!", EOS]


def test_word_level_equals_nltk_regexp_tokenizer():
    from nltk.tokenize import RegexpTokenizer

    from pyjlode.data.tokenize import _WORD_PATTERN

    text = load_plays()["macbeth"][:20_000]
    expected = [EOS if t == "\n" else t for t in RegexpTokenizer(_WORD_PATTERN).tokenize(text)]
    assert Tokenizer("word").tokenize(text) == expected


def test_lowercase_and_space_level():
    assert Tokenizer("word", lowercase=True).tokenize("The KING") == ["the", "king", EOS]
    assert Tokenizer("space").tokenize("mr. <unk> 's  N") == ["mr.", "<unk>", "'s", "N", EOS]


@pytest.mark.parametrize("level, text", [("word", "Who's there? Nay, answer me (stand).\nGood night."),
                                         ("char", "Who's there?\n  x"), ("space", "a b\nc")])
def test_detokenize_inverts_tokenize_on_plain_text(level, text):
    tok = Tokenizer(level)
    assert tok.detokenize(tok.tokenize(text)) == text


def test_tokenizer_settings_round_trip_and_bad_level():
    tok = Tokenizer("char", lowercase=True)
    assert Tokenizer.from_dict(json.loads(json.dumps(tok.to_dict()))) == tok
    with pytest.raises(DataError) as err:
        Tokenizer("sentence")
    assert_one_line(err, "'sentence'", "word, char")


# ---------------------------------------------------------------- vocabulary

def test_vocab_specials_frequency_order_and_unknowns():
    v = Vocab.build("b a b c b a <eos>".split())
    assert v.itos == [UNK, EOS, "b", "a", "c"] and (v.unk_id, v.eos_id) == (0, 1)
    assert v.encode(["a", "zzz", EOS]).tolist() == [3, 0, 1]
    assert v.encode(["a"]).dtype == torch.long
    assert v.decode(torch.tensor([2, 3])) == ["b", "a"]


def test_vocab_min_freq_and_max_size():
    toks = "a a a b b c".split()
    assert Vocab.build(toks, min_freq=2).itos == [UNK, EOS, "a", "b"]
    assert len(Vocab.build(toks, max_size=3)) == 3 and "a" in Vocab.build(toks, max_size=3)
    with pytest.raises(DataError):
        Vocab.build(toks, min_freq=0)
    with pytest.raises(DataError):
        Vocab.build(toks, max_size=1)


def test_vocab_is_plain_data_and_round_trips():
    v = Vocab.build("x y y z".split())
    d = json.loads(json.dumps(v.to_dict()))  # only lists/str survive json
    assert Vocab.from_dict(d) == v
    for bad in (None, {}, {"itos": ["a", "b"]}, {"itos": [UNK, EOS, 3]}):
        with pytest.raises(DataError):
            Vocab.from_dict(bad)


# ---------------------------------------------------------------- batching

def test_batchify_columns_are_contiguous_and_tail_dropped():
    src = batchify(torch.arange(23), 4)
    assert src.shape == (5, 4)
    assert src[:, 1].tolist() == [5, 6, 7, 8, 9]


def test_batchify_fewer_tokens_than_one_batch():
    with pytest.raises(DataError) as err:
        batchify(torch.arange(7), 4, split="valid")
    assert_one_line(err, "valid split has 7 tokens", "`batch_size`")
    with pytest.raises(DataError):
        batchify(torch.arange(7), 0)


def test_get_batch_targets_are_next_tokens_and_last_window_short():
    src = batchify(torch.arange(40), 2)  # (20, 2)
    x, y = get_batch(src, 0, 7)
    assert x.shape == y.shape == (7, 2) and torch.equal(y, src[1:8])
    x, y = get_batch(src, 14, 7)
    assert x.shape == (5, 2) and y[-1].tolist() == [19, 39]
    with pytest.raises(IndexError):
        get_batch(src, 19, 7)


def test_builtin_pipeline_end_to_end(shakespeare):
    tok = Tokenizer("word")
    vocab = Vocab.build(tok.tokenize(shakespeare["train"]), min_freq=2)
    ids = vocab.encode(tok.tokenize(shakespeare["valid"]))
    assert 0 < (ids == vocab.unk_id).float().mean() < 0.05  # held-out plays have a few unseen words
    assert batchify(ids, 20).shape[1] == 20
