"""Vocabulary built on the training split, stored as plain data in checkpoints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from pyjlode.data.errors import DataError
from pyjlode.data.tokenize import EOS, SPECIALS, UNK


class Vocab:
    """Token <-> id map with ``"<unk>"`` (id 0) and ``"<eos>"`` (id 1) always present.

    Build it with ``Vocab.build`` on the training tokens only; words unseen there, or cut
    by ``min_freq``/``max_size``, encode as ``<unk>``.
    """

    def __init__(self, itos: Sequence[str]):
        itos = list(itos)
        if itos[:len(SPECIALS)] != list(SPECIALS) or len(set(itos)) != len(itos):
            raise DataError("vocabulary is malformed (specials missing or duplicate tokens); rebuild it")
        self.itos: list[str] = itos
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(itos)}
        self.unk_id: int = self.stoi[UNK]
        self.eos_id: int = self.stoi[EOS]

    @classmethod
    def build(cls, tokens: Iterable[str], *, min_freq: int = 1, max_size: int | None = None) -> "Vocab":
        """Count ``tokens`` and keep the frequent ones.

        Args:
            tokens: the training tokens.
            min_freq: drop tokens seen fewer times than this.
            max_size: cap on ``len(vocab)``, specials included; the most frequent tokens
                are kept (ties in order of first appearance).

        Raises:
            DataError: ``min_freq < 1`` or ``max_size`` smaller than the two specials.
        """
        if min_freq < 1:
            raise DataError(f"min_freq must be at least 1, got {min_freq}; use `min_freq` 1 or more")
        if max_size is not None and max_size < len(SPECIALS):
            raise DataError(f"max_size {max_size} leaves no room for {', '.join(SPECIALS)}; "
                            f"use `max_vocab` 2 or more")
        counts = Counter(tokens)
        for s in SPECIALS:
            counts.pop(s, None)
        words = [w for w, c in counts.most_common() if c >= min_freq]  # stable: ties keep first appearance
        if max_size is not None:
            words = words[:max_size - len(SPECIALS)]
        return cls(list(SPECIALS) + words)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)})"

    def encode(self, tokens: Iterable[str]) -> torch.LongTensor:
        """Ids of ``tokens`` as a 1-D LongTensor; unknown tokens map to ``unk_id``."""
        get, unk = self.stoi.get, self.unk_id
        return torch.tensor([get(t, unk) for t in tokens], dtype=torch.long)

    def decode(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """Tokens of ``ids`` (a tensor or a sequence of ints)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.reshape(-1).tolist()
        return [self.itos[i] for i in ids]

    def to_dict(self) -> dict:
        """Plain data (a list of strings) for a checkpoint loadable with ``weights_only=True``."""
        return {"itos": list(self.itos)}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocab":
        """Rebuild from ``to_dict()`` output.

        Raises:
            DataError: ``d`` is not such a dict.
        """
        itos = d.get("itos") if isinstance(d, dict) else None
        if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
            raise DataError("vocabulary in the checkpoint is missing or malformed; re-create the checkpoint")
        return cls(itos)
