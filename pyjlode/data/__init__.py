"""Text pipeline: corpora, tokenisation, vocabulary and batching for the language models.

Names load on first use: the corpus and tokeniser tables can be read without importing torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "batchify": "pyjlode.data.batching", "get_batch": "pyjlode.data.batching",
    "CORPORA": "pyjlode.data.corpora", "CorpusInfo": "pyjlode.data.corpora",
    "load_splits": "pyjlode.data.corpora", "split_lines": "pyjlode.data.corpora",
    "default_cache_dir": "pyjlode.data.download", "DataError": "pyjlode.data.errors",
    "EOS": "pyjlode.data.tokenize", "LEVELS": "pyjlode.data.tokenize", "SPECIALS": "pyjlode.data.tokenize",
    "UNK": "pyjlode.data.tokenize", "Tokenizer": "pyjlode.data.tokenize", "Vocab": "pyjlode.data.vocab",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static tools see ordinary imports
    from .batching import batchify, get_batch
    from .corpora import CORPORA, CorpusInfo, load_splits, split_lines
    from .download import default_cache_dir
    from .errors import DataError
    from .tokenize import EOS, LEVELS, SPECIALS, UNK, Tokenizer
    from .vocab import Vocab
