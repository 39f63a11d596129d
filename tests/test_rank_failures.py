"""Under DDP every rank must stop together when one rank's forward fails (else the others hang)."""
import pytest
import torch

import pyjlode.training.loop as T
from pyjlode.training.distributed import DistInfo
from pyjlode.models import LanguageModel
from pyjlode.ode.errors import StepSizeUnderflow


def _trainer():
    t = T.Trainer.__new__(T.Trainer)  # only what step() reads
    t.model = t.net = LanguageModel(11, cell="gru", embed_size=4, hidden_size=4)
    t.tcfg = T.TrainConfig(state_reset=0.0, batch_size=2)
    t.progress, t.info, t.carry = T.Progress(), DistInfo(), None
    t.opt = torch.optim.SGD(t.model.parameters(), lr=0.1)
    return t


def _batch():
    x = torch.randint(0, 11, (5, 2))
    return x, x.roll(-1, 0)


def test_a_failure_elsewhere_stops_this_rank_before_backward(monkeypatch):
    t = _trainer()
    before = [p.detach().clone() for p in t.model.parameters()]
    monkeypatch.setattr(T.dist, "any_rank", lambda flag, info: True)
    with pytest.raises(T.TrainingStopped, match="another rank failed at step 1"):
        t.step(*_batch())
    assert all(torch.equal(a, p) for a, p in zip(before, t.model.parameters()))  # no update happened


def test_a_local_solver_failure_is_shared_then_raised(monkeypatch):
    t = _trainer()
    seen = []
    monkeypatch.setattr(T.dist, "any_rank", lambda flag, info: seen.append(flag) or flag)

    def boom(*args):
        raise StepSizeUnderflow("step size underflow", solver="Tsit5", t=0.5, dt=1e-14)
    monkeypatch.setattr(t, "net", boom)
    with pytest.raises(StepSizeUnderflow, match="Tsit5"):
        t.step(*_batch())
    assert seen == [True]
