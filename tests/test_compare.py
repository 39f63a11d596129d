"""`compare`: every model trained and evaluated under one budget, tables with a row per model, plots of
the expected size that show data, resumability, and one failing model marked while the others report."""
from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner
from exp_helpers import TINY, colored_fraction, png_pixels, single_thread, write_corpus

from pyjlode.cli import cli
from pyjlode.evaluation.config import EvalConfig
from pyjlode.experiments import compare as compare_mod
from pyjlode.experiments import plots, runs

MODELS = ["rnn", "gru", "lstm", "gru-ode"]
EVAL = EvalConfig(prompts=3, prompt_len=4, gen_len=4, device="cpu")


def _options(corpus) -> dict:
    opts = {k: v for k, v in TINY.items() if k != "seed"}
    # RK4 with a fixed step keeps the GRU-ODE cheap while still going through the solver and adjoint.
    return {**opts, "corpus": str(corpus), "token_budget": 6 * opts["batch_size"] * opts["bptt"], "solver": "RK4"}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    corpus = write_corpus(root / "text.txt")
    out = root / "out"
    with single_thread():
        result = compare_mod.compare(MODELS, _options(corpus), seeds=[1], out_dir=str(out),
                                     evaluation=EVAL, log=lambda line: None)
    return corpus, out, result


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_every_model_has_a_finished_row(compared):
    _, out, result = compared
    rows = {r["label"]: r for r in _rows(out / "results.csv")}
    assert sorted(rows) == sorted(MODELS)
    for label, row in rows.items():
        assert row["status"] == "ok", (label, row["errors"])
        assert float(row["test_ppl"]) > 1 and int(float(row["params"])) > 0
        assert 0 <= float(row["bleu4"]) <= 1 and 0 <= float(row["rougeL"]) <= 1
    assert float(rows["gru-ode"]["nfe_fwd_per_token"]) > 0
    assert rows["gru"]["nfe_fwd_per_token"] == ""            # baselines have no solver
    table = (out / "results.md").read_text()
    for model in MODELS:
        assert f"| {model} | ok" in table


@pytest.mark.parametrize("name", ["ppl_vs_time.png", "ppl_vs_tokens.png", "nfe_per_token.png"])
def test_plots_have_the_expected_size_and_show_data(compared, name):
    _, out, result = compared
    img = png_pixels(out / name)
    assert img.shape[:2] == (plots.PIXELS[1], plots.PIXELS[0])
    assert colored_fraction(img) > 0.002                      # lines were drawn, not just axes


def test_an_empty_plot_would_fail_the_data_check(tmp_path):
    # The check above can fail: a plot without data has (almost) no coloured pixels.
    path = plots.plot_ppl_curves({"gru": []}, str(tmp_path / "empty.png"), xlabel="tokens")
    assert colored_fraction(png_pixels(path)) < 0.002


def test_second_run_reuses_finished_runs(compared, monkeypatch):
    corpus, out, _ = compared
    calls = []
    monkeypatch.setattr(runs, "train_run", lambda *a, **k: calls.append(a) or {})
    monkeypatch.setattr(runs, "evaluate_run", lambda *a, **k: calls.append(a) or {})
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/last.pt")}
    result = compare_mod.compare(MODELS, _options(corpus), seeds=[1], out_dir=str(out),
                                 evaluation=EVAL, log=lambda line: None)
    assert calls == []
    assert all(r.get("skipped") for r in result["runs"])
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/last.pt")}


def test_one_failing_model_is_marked_and_the_others_reported(compared, monkeypatch, tmp_path):
    corpus, out, _ = compared
    (out / "runs" / "lstm-seed1" / "result.json").unlink()       # lstm must run again...
    real = runs.train_run

    def train_run(run_dir, options, echo=None):
        if options["model"] == "lstm":
            raise RuntimeError("simulated crash in lstm")        # ...and now it fails
        return real(run_dir, options, echo)

    monkeypatch.setattr(runs, "train_run", train_run)
    args = ["compare", "--models", ",".join(MODELS), "--seeds", "1", "--out", str(out), "--corpus", str(corpus),
            "--solver", "RK4", "--max-steps", "6", "--prompts", "3", "--prompt-len", "4", "--gen-len", "4"]
    for key in ("embed_size", "hidden_size", "batch_size", "bptt", "eval_tokens", "eval_interval",
                "eval_seconds", "time_budget", "lr", "device"):
        args += ["--" + key.replace("_", "-"), str(TINY[key])]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output
    rows = {r["label"]: r for r in _rows(out / "results.csv")}
    assert rows["lstm"]["status"] == "failed" and "simulated crash in lstm" in rows["lstm"]["errors"]
    assert all(rows[m]["status"] == "ok" and rows[m]["test_ppl"] for m in ("rnn", "gru", "gru-ode"))
    md = (out / "results.md").read_text()
    assert "| lstm | **FAILED**" in md and "simulated crash in lstm" in md
    saved = json.loads((out / "runs" / "lstm-seed1" / "result.json").read_text())
    assert saved["status"] == "failed"


def test_match_params_picks_the_closest_hidden_size():
    count = runs.param_counter({"embed_size": 8}, vocab_size=50)
    sizes = compare_mod.match_hidden_sizes(MODELS, 16, count)
    target = count("gru-ode", 16)
    assert sizes["gru-ode"] == 16 and sizes["gru"] == 16      # same parameter shapes as a GRU
    for model in ("rnn", "lstm"):
        h = sizes[model]
        err = abs(count(model, h) - target)
        assert err <= abs(count(model, h - 1) - target) and err <= abs(count(model, h + 1) - target)
    assert sizes["rnn"] > 16 > sizes["lstm"]


@pytest.mark.parametrize("text, expected", [
    ("Tsit5/Tsit5,Tsit5/KenCarp4", [("Tsit5", "Tsit5", None), ("Tsit5", "KenCarp4", None)]),
    ("RK4", [("RK4", None, None)]), (None, []),
    ("Tsit5@1e-1, Tsit5/KenCarp4@0.001,Euler", [("Tsit5", None, 0.1), ("Tsit5", "KenCarp4", 1e-3),
                                                ("Euler", None, None)])])
def test_variants_parse(text, expected):
    assert compare_mod.parse_variants(text) == expected


@pytest.mark.parametrize("bad", ["Tsit5/", "/KenCarp4", "a/b/c", "Tsit5@", "Tsit5@fast", "Tsit5@-1e-3"])
def test_bad_variant_is_one_line_error(bad):
    with pytest.raises(ValueError, match="`variants`"):
        compare_mod.parse_variants(bad)


def test_a_tolerance_variant_moves_rtol_and_atol_together():
    v = compare_mod.parse_variants("Tsit5@1e-4")[0]
    assert v.label == "gru-ode Tsit5/Tsit5 rtol=0.0001"
    assert v.options() == {"solver": "Tsit5", "backward_solver": None, "rtol": 1e-4,
                           "atol": pytest.approx(1e-6)}


def test_variants_become_separate_rows(tmp_path):
    specs = compare_mod.plan_runs(["gru", "gru-ode"], [1, 2], [("Tsit5", "Tsit5"), ("Tsit5", "KenCarp4")],
                                  {"corpus": "x"}, str(tmp_path))
    labels = sorted({s.label for s in specs})
    assert labels == ["gru", "gru-ode Tsit5/KenCarp4", "gru-ode Tsit5/Tsit5"]
    kc = [s for s in specs if s.label.endswith("KenCarp4")]
    assert {s.seed for s in kc} == {1, 2} and all(s.options["backward_solver"] == "KenCarp4" for s in kc)
    assert len({s.run_dir for s in specs}) == len(specs)


def test_bad_solver_in_a_variant_stops_before_any_training(tmp_path):
    with pytest.raises(ValueError, match="unknown solver 'Tsit6'"):
        compare_mod.compare(["gru", "gru-ode"], {"corpus": "x"}, variants="Tsit5/Tsit6", out_dir=str(tmp_path),
                            log=lambda s: None)
    assert not (tmp_path / "runs").exists()


def test_the_table_ranks_by_perplexity_and_by_bleu_ha_side_by_side():
    from pyjlode.experiments import tables

    rows = [{"label": "a", "seed": 1, "status": "ok", "test_ppl": 120.0, "bleu_ha": 0.05},
            {"label": "b", "seed": 1, "status": "ok", "test_ppl": 100.0, "bleu_ha": 0.04},
            {"label": "c", "seed": 1, "status": "ok", "test_ppl": 110.0, "bleu_ha": 0.06},
            {"label": "d", "seed": 1, "status": "failed", "error": "x"}]
    agg = {a["label"]: a for a in tables.aggregate(rows)}
    assert [agg[k]["rank_test_ppl"] for k in "abcd"] == [3, 1, 2, None]
    assert [agg[k]["rank_bleu_ha"] for k in "abcd"] == [2, 3, 1, None]
    md = tables.markdown_table(list(agg.values()))
    assert "| ppl rank | BLEU-HA rank |" in md and "| a | ok (1) | 3 | 2 |" in md


def test_accuracy_compute_plot_shows_each_variant(tmp_path):
    rows = [{"label": f"gru-ode Tsit5/Tsit5 rtol={tol}", "best_val_ppl": ppl, "nfe_fwd_per_token": nfe,
             "nfe_bwd_per_token": nfe, "ms_per_token": nfe / 5, "best_val_ppl_std": 2.0}
            for tol, ppl, nfe in ((0.1, 300, 8), (0.001, 290, 12), (1e-5, 289, 30))]
    img = png_pixels(plots.plot_tradeoff(rows, str(tmp_path / "t.png")))
    assert img.shape[:2] == (plots.PIXELS[1], plots.PIXELS[0]) and colored_fraction(img) > 0.001
    empty = png_pixels(plots.plot_tradeoff([{"label": "x"}], str(tmp_path / "e.png")))
    assert colored_fraction(empty) < 0.001


def test_compare_with_a_token_budget_gives_every_model_the_same_tokens(compared):
    _, _, result = compared
    assert {r["tokens"] for r in result["runs"]} == {6 * TINY["batch_size"] * TINY["bptt"]}
