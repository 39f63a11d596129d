"""GRU-ODE training-step benchmark (issue 7); the same as `pyjlode bench`.

    python scripts/bench_gruode.py --repeats 5 --train-steps 8 --write docs/benchmarks.md
"""
from pyjlode.experiments.bench import bench_command

if __name__ == "__main__":
    bench_command(prog_name="scripts/bench_gruode.py")
