"""Text pipeline: corpora, tokenisation, vocabulary and batching for the language models."""

from pyjlode.data.batching import batchify, get_batch
from pyjlode.data.corpora import CORPORA, CorpusInfo, load_splits, split_lines
from pyjlode.data.download import default_cache_dir
from pyjlode.data.errors import DataError
from pyjlode.data.tokenize import EOS, LEVELS, SPECIALS, UNK, Tokenizer
from pyjlode.data.vocab import Vocab

__all__ = [
    "CORPORA", "CorpusInfo", "DataError", "EOS", "LEVELS", "SPECIALS", "Tokenizer", "UNK", "Vocab",
    "batchify", "default_cache_dir", "get_batch", "load_splits", "split_lines",
]
