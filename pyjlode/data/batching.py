"""Batchified token streams for truncated backpropagation through time."""

from __future__ import annotations

import torch

from pyjlode.data.errors import DataError


def batchify(ids: torch.Tensor, batch_size: int, *, split: str = "data") -> torch.Tensor:
    """Cut a 1-D token stream into ``batch_size`` contiguous columns.

    The tail that does not fill a whole row is dropped (as in pytorch/examples), so
    column b holds tokens ``[b*T, (b+1)*T)`` and hidden state carries down each column.

    Args:
        ids: 1-D LongTensor of token ids.
        batch_size: number of columns B.
        split: split name for the error message.

    Returns:
        LongTensor of shape ``(T, B)``.

    Raises:
        DataError: ``batch_size < 1``, or too few tokens for one (input, target) pair per
            column (fewer than ``2 * batch_size``).
    """
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}; use `batch_size` 1 or more")
    ids = ids.reshape(-1)
    T = ids.numel() // batch_size
    if T < 2:
        raise DataError(f"the {split} split has {ids.numel()} tokens, fewer than one batch "
                        f"(2 x batch size {batch_size}); use a smaller `batch_size` or a larger corpus")
    return ids[:T * batch_size].view(batch_size, T).t().contiguous()  # (T, B)


def get_batch(source: torch.Tensor, i: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets for the window starting at row ``i``.

    Args:
        source: ``(T, B)`` from ``batchify``.
        i: first row, ``0 <= i < T - 1``.
        bptt: window length; the last window may be shorter.

    Returns:
        ``(x, y)``, both ``(t, B)`` with ``t = min(bptt, T - 1 - i)``; ``y[k] = source[i + k + 1]``.

    Raises:
        IndexError: ``i`` leaves no target row, or ``bptt < 1``.
    """
    if bptt < 1 or not 0 <= i < len(source) - 1:
        raise IndexError(f"get_batch: need 0 <= i < {len(source) - 1} and bptt >= 1, got i={i}, bptt={bptt}")
    t = min(bptt, len(source) - 1 - i)
    return source[i:i + t], source[i + 1:i + 1 + t]
