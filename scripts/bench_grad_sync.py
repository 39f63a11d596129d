"""What the trainer's failure agreement costs: a training step's forward, backward and gradient average with
DistributedDataParallel (whose all-reduce overlaps the backward, but hangs the other ranks when one rank's
backward raises) against the trainer's way (backward on each rank alone, one agreement, then a bucketed
all-reduce), alternated in the same processes on the same data. Run it under torchrun:

    torchrun --standalone --nproc_per_node 2 scripts/bench_grad_sync.py --device cpu --repeats 10
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from pyjlode.models import LanguageModel
from pyjlode.training import distributed as dist


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default="gru-ode")
    ap.add_argument("--vocab", type=int, default=10000)
    ap.add_argument("--embed-size", type=int, default=128)
    ap.add_argument("--hidden-size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32, help="global batch, split over the ranks")
    ap.add_argument("--bptt", type=int, default=35)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    info = dist.setup(args.device)
    if not info.enabled:
        raise SystemExit("run this under torchrun with --nproc_per_node 2 or more")
    torch.manual_seed(0)
    model = LanguageModel(args.vocab, cell=args.model, embed_size=args.embed_size,
                          hidden_size=args.hidden_size).to(info.device)
    dist.replicate(model, info)
    on_gpu = info.device.type == "cuda"
    ddp = DistributedDataParallel(model, device_ids=[info.device.index] if on_gpu else None)
    tokens = torch.randint(0, args.vocab, (args.bptt + 1, args.batch_size // info.world_size),
                           generator=torch.Generator().manual_seed(info.rank)).to(info.device)

    def backward(net) -> None:
        model.zero_grad(set_to_none=True)
        logits, _ = net(tokens[:-1])
        F.cross_entropy(logits.reshape(-1, args.vocab), tokens[1:].reshape(-1)).backward()

    def synced() -> None:
        dist.agree_on_failure(None, info)
        dist.average_gradients(model.parameters(), info)

    ways = {"DistributedDataParallel (overlapped all-reduce)": lambda: backward(ddp),
            "backward alone, agreement, bucketed all-reduce": lambda: (backward(model), synced()),
            "  of which the agreement and all-reduce": synced}
    times = {name: [] for name in ways}
    for i in range(args.repeats + 1):           # the first round warms up
        for name, way in ways.items():
            dist.barrier(info)
            if on_gpu:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            way()
            if on_gpu:
                torch.cuda.synchronize()
            if i:
                times[name].append(time.perf_counter() - t0)
    if info.is_main:
        params = sum(p.numel() for p in model.parameters())
        print(f"{args.model}, {params:,} parameters, {info.world_size} ranks ({info.backend}), global batch "
              f"{args.batch_size}, bptt {args.bptt}; median of {args.repeats} (rank 0's clock)")
        base = statistics.median(times[next(iter(ways))])
        for name, ts in times.items():
            print(f"  {name:50s} {statistics.median(ts) * 1e3:9.1f} ms  {statistics.median(ts) / base:5.2f}x")
    dist.cleanup()


if __name__ == "__main__":
    main()
