"""The GRU-ODE benchmark harness (pyjlode.experiments.bench): its cases compute the same model, and it reports
honestly.

Tiny sizes only; no timings are asserted (the benchmark is the judge of speed, not the tests).
"""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from pyjlode.cli.bench import bench as bench_command
from pyjlode.experiments import bench
from pyjlode.experiments import bench_cases as bc

pytest.importorskip("torchdiffeq")

TINY = dict(batch=3, input=5, hidden=6, tokens=3, repeats=1, memory=False)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.tempfile, "gettempdir", lambda: str(tmp_path))


@pytest.mark.parametrize("reset_after", [False, True])
def test_every_ode_case_solves_the_same_field(reset_after, monkeypatch):
    monkeypatch.setattr(bc, "REFERENCE_TOL", (1e-8, 1e-10))
    cfg = bench.BenchConfig(**TINY, reset_after=reset_after, dtype="float64", rtol=1e-6, atol=1e-8)
    w, x = bc.make_inputs(cfg)
    ref = bc.reference_grads(w, x, cfg)
    for case in ("td-adjoint", "td-direct", "tsit5", "kencarp4"):
        out = bc.run_step(case, w, x, cfg)
        assert bc.rel_error(out["grads"], ref) < 1e-4, case
        assert out["nfe"][0] > 1 and out["nfe"][1] > 0


def test_euler_case_is_one_gru_like_step_per_token():
    cfg = bench.BenchConfig(**TINY)
    w, x = bc.make_inputs(cfg)
    out = bc.run_step("euler", w, x, cfg)
    assert out["nfe"] == (1.0, 1.0)
    assert all(torch.isfinite(g).all() for g in out["grads"])


def test_gru_case_uses_the_shared_weights():
    cfg = bench.BenchConfig(**TINY)
    w, x = bc.make_inputs(cfg)
    grads = bc.run_step("gru", w, x, cfg)["grads"]
    assert [tuple(g.shape) for g in grads] == [tuple(w[k].shape) for k in bc.PARAM_NAMES]
    assert all(float(g.abs().sum()) > 0 for g in grads)   # every weight reached the loss


def test_a_failing_case_is_reported_not_raised(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("underflow in dt tensor(1e-20)")
    monkeypatch.setattr(bc, "run_step", boom)
    table = bench.run_table(bench.BenchConfig(**TINY, cases=("td-adjoint",), reference=False), echo=lambda s: None)
    assert table["results"]["td-adjoint"].error == "underflow in dt"
    assert "fails: underflow in dt" in "\n".join(bench.format_table(table))


def _result(case, wall, nfe=(10.0, 8.0), err=1e-5, error=None):
    r = bench.CaseResult(case, fwd_s=[wall / 2], bwd_s=[wall / 2], nfe_fwd=nfe[0], nfe_bwd=nfe[1], grad_err=err)
    r.error = error
    return r


def _table(results, tau=1.0, floor=None):
    cfg = bench.BenchConfig(tau=tau, tokens=10)
    return {"config": cfg, "results": {r.case: r for r in results},
            "floor": floor or {"f": 0.5 / (10 * 10), "vjp": 0.5 / (10 * 8)}}


def test_targets_say_met_or_missed_from_the_ratios():
    main = _table([_result("td-adjoint", 10.0, (20, 20), 4e-5), _result("td-direct", 4.0, (20, 20), 1e-4),
                   _result("tsit5", 1.0, (9, 8), 3e-5), _result("euler", 0.03), _result("gru", 0.02)])
    lines = bench.targets(main, None, {"gru": 3000.0, "gru-ode": 100.0})
    assert lines[0].startswith("1. met") and "10.0×" in lines[0]
    assert lines[1].startswith("2. met")      # 0.5 s over 90 NFE against a floor of 0.5 s / 100
    assert lines[2].startswith("3. met")
    assert lines[3].startswith("4. met")
    assert lines[4].startswith("6. missed") and "1/30.0" in lines[4]
    slow = _table([_result("td-adjoint", 4.0), _result("td-direct", 2.0), _result("tsit5", 1.5, err=1e-3),
                   _result("euler", 0.05), _result("gru", 0.02)])
    lines = bench.targets(slow, None, None)
    assert lines[0].startswith("1. missed") and lines[3].startswith("4. missed")


def test_target_5_needs_a_to_fail_and_d_to_beat_b():
    ok = _table([_result("td-adjoint", 0, error="underflow in dt"), _result("td-direct", 5.0),
                 _result("kencarp4", 4.0)], tau=0.1)
    assert bench.targets(None, ok, None)[0].startswith("5. met")
    finishes = _table([_result("td-adjoint", 9.0), _result("td-direct", 5.0), _result("kencarp4", 4.0)], tau=0.1)
    assert bench.targets(None, finishes, None)[0].startswith("5. missed")


def test_write_section_replaces_only_between_the_markers(tmp_path):
    doc = tmp_path / "benchmarks.md"
    start, end = bench.MARKERS
    doc.write_text(f"# Title\n\nkeep\n{start}\nold\n{end}\nafter\n")
    bench.write_section(doc, "new table")
    assert doc.read_text() == f"# Title\n\nkeep\n{start}\nnew table\n{end}\nafter\n"
    (tmp_path / "bare.md").write_text("no markers\n")
    with pytest.raises(ValueError, match="add the two markers"):
        bench.write_section(tmp_path / "bare.md", "x")


def test_command_runs_end_to_end_and_rejects_unknown_cases(tmp_path):
    runner = CliRunner()
    args = ["--batch", "2", "--input", "3", "--hidden", "4", "--tokens", "2", "--repeats", "1", "--no-memory",
            "--no-reference", "--stiff-tau", "0", "--cases", "tsit5,gru"]
    res = runner.invoke(bench_command, args)
    assert res.exit_code == 0, res.output
    assert "(c) pyjlode Tsit5" in res.output and "Cost floor" in res.output
    bad = runner.invoke(bench_command, ["--cases", "tsit5,nope"])
    assert bad.exit_code == 2 and "unknown case 'nope'" in bad.output
