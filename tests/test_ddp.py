"""Multi-process training with torchrun (gloo on CPU): both ranks end with the same parameters, equal to
one process on the same global batch, and a run resumes on a different number of ranks. Each torchrun here
starts two Python processes, so the module is marked slow."""
from __future__ import annotations

import textwrap

import pytest
import torch
from exp_helpers import (max_diff, run_python, single_thread, state_dict, tiny_cli_args, train_tiny,
                         write_corpus)

from pyjlode.training import distributed as dist

pytestmark = pytest.mark.slow

# Runs `pyjlode` (the real CLI) and, after the loop, saves this rank's parameters to $DUMP.rank<r>.pt
# (only rank 0 writes checkpoints, so this is how the test sees rank 1), with the results of the
# collective helpers called while the process group is still up.
DRIVER = textwrap.dedent("""
    import os, sys, torch
    import pyjlode.training.loop as T
    from pyjlode.training import distributed as D
    _run = T.Trainer.run
    def run(self):
        try:
            return _run(self)
        finally:
            info = self.info
            failed = D.agree_on_failure(f"rank {info.rank} failed" if info.rank else None, info)
            checks = {"failed": [failed.message, failed.origin()],
                      "sum": D.all_reduce_sum([1.0, 2.0], info),
                      "gathered": D.gather_state(torch.full((1, 2, 1), float(info.rank)), info).flatten().tolist()}
            torch.save({"params": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                        "checks": checks}, f"{os.environ['DUMP']}.rank{info.rank}.pt")
    T.Trainer.run = run
    from pyjlode.cli import main
    main(sys.argv[1:])
""")
# The GRU-ODE (fixed-step RK4, adjoint backward) checks gradient averaging through the custom autograd
# Function; the LSTM's resume checks that a tuple state (h, c) is gathered and re-split across a change of
# rank count.
ODE = dict(model="gru-ode", solver="RK4", max_steps=6)
LSTM = dict(model="lstm", max_steps=6)


def torchrun(tmp_path, nproc: int, args: list[str], dump: str):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = run_python(["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                       str(driver), "train", *args], env_extra={"DUMP": dump})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("ddp") / "text.txt")


def single(tmp_path, corpus, opts: dict) -> dict:
    """One process, global batch 4, six steps: the reference."""
    with single_thread():
        train_tiny(tmp_path / "single", corpus, **opts)
    return state_dict(tmp_path / "single" / "last.pt")


def test_two_ranks_agree_with_each_other_and_with_one_process(tmp_path, corpus):
    out = tmp_path / "two"
    proc = torchrun(tmp_path, 2, tiny_cli_args(corpus, out, **ODE), str(tmp_path / "p"))
    d0, d1 = (torch.load(tmp_path / f"p.rank{r}.pt", weights_only=True) for r in (0, 1))
    r0, r1 = d0["params"], d1["params"]
    assert max_diff(r0, r1) == 0.0                    # the replicas stay bit-identical
    assert max_diff(r0, single(tmp_path, corpus, ODE)) < 1e-5   # same update as one process, whole batch
    assert max_diff(state_dict(out / "last.pt"), r0) == 0.0
    lines = proc.stdout.splitlines()                  # only rank 0 logs: evaluations at steps 3 and 6
    assert sum(line.startswith("| step") for line in lines) == 2
    assert sum(line.startswith("done (") for line in lines) == 1
    for d in (d0, d1):                                # the helpers agree on every rank
        assert d["checks"] == {"failed": ["rank 1 failed", " on rank 1 of 2"], "sum": [2.0, 4.0],
                               "gathered": [0.0, 0.0, 1.0, 1.0]}


def test_resume_on_a_different_number_of_ranks(tmp_path, corpus):
    out = tmp_path / "resumed"
    with single_thread():
        train_tiny(out, corpus, **{**LSTM, "max_steps": 3})      # 3 steps on one process...
    args = tiny_cli_args(corpus, out, **LSTM) + ["--resume"]
    torchrun(tmp_path, 2, args, str(tmp_path / "q"))             # ...3 more on two
    assert max_diff(state_dict(out / "last.pt"), single(tmp_path, corpus, LSTM)) < 1e-5


def test_sharding_takes_contiguous_column_blocks():
    data = torch.arange(24).view(3, 8)
    parts = [dist.shard_columns(data, dist.DistInfo(rank=r, world_size=4)) for r in range(4)]
    assert torch.equal(torch.cat(parts, dim=1), data)
    assert all(p.shape == (3, 2) for p in parts)
    state = torch.randn(1, 8, 5), torch.randn(1, 8, 5)
    halves = [dist.shard_state(state, dist.DistInfo(rank=r, world_size=2)) for r in range(2)]
    assert torch.equal(torch.cat([h[1] for h in halves], dim=1), state[1])


def test_batch_that_does_not_split_is_a_clear_error():
    with pytest.raises(ValueError, match="`batch_size` 6 does not split over 4 processes"):
        dist.shard_columns(torch.zeros(3, 6), dist.DistInfo(rank=0, world_size=4))
