"""GRU-ODE training-step benchmark; the same as `pyjlode bench`.

    python scripts/bench_gruode.py --repeats 5 --train-steps 8 --write docs/benchmarks.md
"""
from pyjlode.cli.bench import bench

if __name__ == "__main__":
    bench(prog_name="scripts/bench_gruode.py")
