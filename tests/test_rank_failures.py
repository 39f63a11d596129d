"""Several ranks stop together, with one message, when one rank's forward or backward fails: nothing talks
to another rank until all agree on how the step went, so no rank is left waiting in a collective, and no
rank updates or writes a checkpoint after the failed step."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
import torch
from exp_helpers import REPO, subprocess_env, tiny_cli_args, write_corpus

import pyjlode.training.loop as T
from pyjlode.models import LanguageModel
from pyjlode.ode.errors import StepSizeUnderflow
from pyjlode.training import distributed as dist


def _trainer():
    t = T.Trainer.__new__(T.Trainer)  # only what step() reads
    t.model = LanguageModel(11, cell="gru", embed_size=4, hidden_size=4)
    t.mcfg, t.tcfg = t.model.config, T.TrainConfig(state_reset=0.0, batch_size=2)
    t.progress, t.info, t.carry = T.Progress(), dist.DistInfo(), None
    t.opt = torch.optim.SGD(t.model.parameters(), lr=0.1)
    return t


def _batch():
    x = torch.randint(0, 11, (5, 2))
    return x, x.roll(-1, 0)


def _params(t):
    return [p.detach().clone() for p in t.model.parameters()]


class _FailsInBackward(torch.autograd.Function):
    """Identity whose backward fails like an adjoint solve that cannot meet its tolerance."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        raise StepSizeUnderflow("step size underflow", solver="Tsit5", t=0.5, dt=1e-14)


def test_a_failure_elsewhere_stops_this_rank_with_that_ranks_message_and_no_update(monkeypatch):
    t = _trainer()
    before = _params(t)
    elsewhere = dist.RankFailure((1,), 2, "solver RK4 failed (step size underflow at t=0.5)")
    monkeypatch.setattr(T.dist, "agree_on_failure", lambda message, info: elsewhere)
    with pytest.raises(T.TrainingStopped, match=r"^training stopped at step 1 on rank 1 of 2: solver RK4"):
        t.step(*_batch())
    assert all(torch.equal(a, p) for a, p in zip(before, t.model.parameters()))


def test_a_solver_failure_in_backward_is_reported_to_the_agreement_not_raised_past_it(monkeypatch):
    t = _trainer()
    before, told = _params(t), []
    real_agree, real_forward = dist.agree_on_failure, t.model.forward
    monkeypatch.setattr(T.dist, "agree_on_failure",
                        lambda message, info: told.append(message) or real_agree(message, info))
    monkeypatch.setattr(t.model, "forward",
                        lambda x, state: (_FailsInBackward.apply(real_forward(x, state)[0]), None))
    with pytest.raises(T.TrainingStopped, match=r"^training stopped at step 1: solver Tsit5") as caught:
        t.step(*_batch())
    (message,) = told
    assert "step size underflow at t=0.5" in message and "`backward_solver` KenCarp4" in message
    assert "\n" not in str(caught.value)
    assert all(torch.equal(a, p) for a, p in zip(before, t.model.parameters()))


def test_success_on_every_rank_is_no_failure_and_the_origin_names_the_lowest_failing_rank():
    assert dist.agree_on_failure(None, dist.DistInfo()) is None
    assert dist.agree_on_failure("boom", dist.DistInfo()).origin() == ""          # one process: no rank
    assert dist.RankFailure((1,), 2, "boom").origin() == " on rank 1 of 2"
    assert dist.RankFailure((0, 3), 4, "boom").origin() == " on rank 0 of 4 (and 1 more)"


def test_gradient_buckets_keep_order_and_split_on_size_and_dtype(monkeypatch):
    monkeypatch.setattr(dist, "BUCKET_BYTES", 40)                       # ten float32 values
    ts = [torch.zeros(4)] * 3 + [torch.zeros(1, dtype=torch.float64), torch.zeros(20)]
    sizes = [[t.numel() for t in b] for b in dist._buckets(ts)]
    assert sizes == [[4, 4], [4], [1], [20]]                            # an oversized one goes alone


# --------------------------------------------------------------------------------------------------
# two gloo ranks under torchrun, rank 1's adjoint solve failing in the backward of step 4

# Runs the real CLI. After the first checkpoint (step 3) rank 0 keeps a copy of it and rank 1's adjoint
# vector-Jacobian product raises from then on, i.e. inside backward(), where DistributedDataParallel's
# gradient all-reduce would have been running on the other rank.
DRIVER = textwrap.dedent("""
    import os, shutil, sys
    import pyjlode.training.loop as T
    from pyjlode.models.gru_ode_field import GRUODEField
    from pyjlode.ode.errors import StepSizeUnderflow
    real_save, real_vjp, armed = T.Trainer.save, GRUODEField.vjp, []
    def save(self, *args, **kwargs):
        real_save(self, *args, **kwargs)
        if not armed and self.info.is_main:
            shutil.copy(self.run_dir.last, os.environ["BEFORE"])
        armed.append(True)
    def vjp(self, t, h, a, **kwargs):
        if armed and os.environ["RANK"] == "1":
            raise StepSizeUnderflow("step size underflow", solver="RK4", t=0.5, dt=1e-13)
        return real_vjp(self, t, h, a, **kwargs)
    T.Trainer.save, GRUODEField.vjp = save, vjp
    from pyjlode.cli import main
    main(sys.argv[1:])
""")
# Far more than the run needs (about 15 s on a busy 2-core machine): reaching it means a rank hung.
HANG_SECONDS = 240


@pytest.mark.slow
def test_a_backward_failure_on_one_rank_stops_every_rank_with_one_message(tmp_path):
    corpus, out, before = write_corpus(tmp_path / "text.txt"), tmp_path / "run", tmp_path / "before.pt"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    args = tiny_cli_args(corpus, out, model="gru-ode", solver="RK4", max_steps=9)
    # --tee prefixes each rank's lines with its rank.
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node=2", "--tee=3", str(driver), "train", *args],
                            cwd=str(REPO), env={**subprocess_env(), "BEFORE": str(before)}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = proc.communicate(timeout=HANG_SECONDS)
    except subprocess.TimeoutExpired:
        proc.terminate()  # torchrun passes it on to the ranks and kills those that do not stop
        output, _ = proc.communicate(timeout=120)
        pytest.fail(f"the ranks were still running after {HANG_SECONDS} s:\n{output[-3000:]}")
    assert proc.returncode != 0, output[-3000:]
    errors = {int(rank): line for rank, line in re.findall(r"^\[\D*(\d+)\]:error: (.*)$", output, re.M)}
    assert sorted(errors) == [0, 1], output[-3000:]                # each rank printed one error line...
    assert errors[0] == errors[1]                                  # ...the same one
    message = errors[0]
    assert message.startswith("training stopped at step 4 on rank 1 of 2: solver RK4 failed")
    assert "--backward-solver" in message and f"last good checkpoint kept: {out / 'last.pt'}" in message
    assert "Traceback" not in "".join(re.findall(r"^\[\D*\d+\]:.*$", output, re.M))
    assert (out / "last.pt").read_bytes() == before.read_bytes()  # nothing written after step 3
