"""Random state resets during training: which columns restart, and that ranks agree with one process."""
from types import SimpleNamespace

import pytest
import torch

from pyjlode.training.distributed import DistInfo
from pyjlode.training.config import TrainConfig
from pyjlode.training.loop import Trainer
from pyjlode.training.state import Progress


def _trainer(p, rank=0, world=1, step=0):
    t = Trainer.__new__(Trainer)  # only the fields _reset_some reads
    t.tcfg = TrainConfig(state_reset=p, batch_size=8, seed=7)
    t.progress = Progress(step=step)
    t.info = DistInfo(rank=rank, world_size=world)
    return t


def test_some_columns_restart_and_the_rest_are_untouched():
    state = torch.ones(2, 8, 3)                          # (layers, B, H)
    out = _trainer(0.5, step=3)._reset_some(state)
    zeroed = (out == 0).all(dim=(0, 2))
    kept = (out == 1).all(dim=(0, 2))
    assert bool((zeroed | kept).all()) and 0 < int(zeroed.sum()) < 8


def test_off_and_lstm_tuples():
    state = (torch.ones(1, 8, 2), torch.ones(1, 8, 2))
    assert _trainer(0.0)._reset_some(state) is state
    h, c = _trainer(0.9, step=1)._reset_some(state)
    assert torch.equal((h == 0), (c == 0))               # h and c of a column restart together


@pytest.mark.parametrize("step", [0, 5, 11])
def test_two_ranks_reset_the_columns_one_process_would(step):
    full = _trainer(0.5, step=step)._reset_some(torch.ones(1, 8, 1))
    halves = [_trainer(0.5, rank=r, world=2, step=step)._reset_some(torch.ones(1, 4, 1)) for r in (0, 1)]
    assert torch.equal(torch.cat(halves, dim=1), full)
