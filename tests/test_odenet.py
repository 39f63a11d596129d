"""ODE-Net vs ResNet: the models have the parameters their architecture implies, the adjoint ODE-Net's
gradient is the one backprop through the solver gives, the adjoint's saved memory does not grow with the
function evaluations while backprop's does, the memory measures count what they claim, and a tiny run
writes its tables and plots."""
from __future__ import annotations

import csv
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from exp_helpers import colored_fraction, png_pixels
from click.testing import CliRunner

from pyjlode.cli import cli
from pyjlode.experiments import plots
from pyjlode.experiments.odenet import OdeNetConfig, load_digits_split, run_odenet, tolerance_sweep
from pyjlode.experiments.odenet_measure import SavedTensorMeter, peak_allocated, step_memory
from pyjlode.experiments.odenet_models import ODENet, ResNet, SolverSettings, count_parameters
from pyjlode.experiments.odenet_plots import plot_error_vs_nfe

pytestmark = pytest.mark.usefixtures("one_thread")


def expected_params(width: int, depth: int | None, classes: int = 10) -> int:
    """By hand: stem (3x3 conv 1->w, GroupNorm, strided 4x4 conv w->w), feature part, head (GroupNorm,
    linear w->classes). A residual function has three GroupNorms and two 3x3 convolutions, whose inputs
    include the time channel in the ODE version (``depth=None``)."""
    w = width
    stem = (9 * w + w) + 2 * w + (16 * w * w + w)
    head = 2 * w + (w * classes + classes)
    block = 2 * (9 * w * w + w) + 3 * 2 * w
    ode_block = 2 * (9 * (w + 1) * w + w) + 3 * 2 * w
    return stem + head + (ode_block if depth is None else depth * block)


def images(batch: int, seed: int = 0, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 1, 8, 8, generator=g, dtype=dtype),
            torch.randint(0, 10, (batch,), generator=g))


# --- parameters -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("width,depth", [(8, 3), (16, 6), (6, 1)])
def test_parameter_counts_follow_the_architecture(width, depth):
    assert count_parameters(ResNet(width, depth)) == expected_params(width, depth)
    assert count_parameters(ODENet(width, SolverSettings())) == expected_params(width, None)


def test_odenet_has_the_parameters_of_one_block_plus_the_time_channel():
    w = 16
    resnet1, ode = count_parameters(ResNet(w, 1)), count_parameters(ODENet(w, SolverSettings()))
    assert ode - resnet1 == 2 * 9 * w   # one extra input channel per 3x3 convolution


# --- gradients --------------------------------------------------------------------------------------------

def _grads(model, x, y) -> dict:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


# Softplus, not ReLU: with ReLU the Jacobian jumps wherever a pre-activation changes sign, so gradients of
# the continuous problem and of its discretisation agree only to about 1 % even at tolerance 1e-6 (measured),
# and tight tolerances cost thousands of steps.
@pytest.mark.parametrize("sensealg,backward_solver,tol,match", [
    ("backsolve", None, 1e-8, 1e-7),
    ("interpolating", None, 1e-8, 1e-6),
    ("interpolating", "KenCarp4", 1e-8, 1e-6),
])
def test_adjoint_gradient_matches_backprop_through_the_solver(sensealg, backward_solver, tol, match):
    torch.manual_seed(0)
    settings = SolverSettings(gradient="direct", solver="Tsit5", rtol=tol, atol=tol)
    model = ODENet(4, settings, activation="softplus").double()
    x, y = images(5, dtype=torch.float64)
    direct = _grads(model, x, y)
    settings.gradient, settings.sensealg, settings.backward_solver = "adjoint", sensealg, backward_solver
    # backsolve's adjoint atol is absolute and the cotangents are ~1e-2: scale it as interpolating does
    settings.backward_atol = tol * 1e-3 if sensealg == "backsolve" else None
    adjoint = _grads(model, x, y)
    assert model.nfe.backward > 0
    scale = max(float(g.abs().max()) for g in direct.values())
    worst = max(float((adjoint[n] - direct[n]).abs().max()) for n in direct)
    assert worst <= match * scale, f"largest gradient difference {worst:.2e} (scale {scale:.2e})"
    assert direct["field.g.conv1.conv.weight"].abs().max() > 1e-3 * scale   # the ODE block gets gradient


# --- memory -----------------------------------------------------------------------------------------------

def test_saved_tensor_meter_counts_distinct_storages_and_skips_excluded():
    x = torch.randn(1000, requires_grad=True)
    w = torch.randn(1000, requires_grad=True)
    with SavedTensorMeter(exclude=[w]) as meter:
        e = x.exp()               # saves its output: 4000 bytes
        (e * w).sum()             # saves e (again: counted once) and w (excluded)
    assert meter.bytes == 4000


def test_peak_allocated_sees_a_temporary_freed_before_the_end():
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        big = torch.ones(250_000)   # 1 MB, freed below
        del big
        torch.ones(1000)
    assert 1_000_000 <= peak_allocated(prof) < 1_100_000


def _probe(model: ODENet, gradient: str, sensealg: str, tol: float, x, y) -> tuple[dict, int]:
    s = model.settings
    s.gradient, s.sensealg, s.rtol, s.atol = gradient, sensealg, tol, tol
    model.nfe.reset()
    return step_memory(model, x, y), model.nfe.forward


def test_adjoint_memory_is_flat_in_nfe_while_backprop_grows():
    torch.manual_seed(0)
    width, batch = 8, 16
    model = ODENet(width, SolverSettings(), activation="softplus")   # smooth: few steps at 1e-5
    x, y = images(batch)
    state_mb = batch * width * 16 * 4 / 2 ** 20
    loose, tight = 1e-1, 1e-6
    d_lo, n_lo = _probe(model, "direct", "backsolve", loose, x, y)
    d_hi, n_hi = _probe(model, "direct", "backsolve", tight, x, y)
    b_lo, nb_lo = _probe(model, "adjoint", "backsolve", loose, x, y)
    b_hi, nb_hi = _probe(model, "adjoint", "backsolve", tight, x, y)
    i_hi, _ = _probe(model, "adjoint", "interpolating", tight, x, y)
    assert n_hi >= 2 * n_lo and (nb_lo, nb_hi) == (n_lo, n_hi)
    # backprop keeps at least one state-sized tensor per function evaluation
    assert (d_hi["saved_mb"] - d_lo["saved_mb"]) / (n_hi - n_lo) >= state_mb
    assert d_hi["peak_mb"] - d_lo["peak_mb"] >= (n_hi - n_lo) * state_mb
    # backsolve keeps the same tensors whatever the NFE; its backward temporaries do not grow either
    assert b_hi["saved_mb"] == b_lo["saved_mb"] < d_lo["saved_mb"]
    assert b_hi["peak_mb"] <= 1.25 * b_lo["peak_mb"]
    # the interpolating adjoint stores the forward's dense output: far less than backprop's activations
    assert i_hi["saved_mb"] < d_hi["saved_mb"] / 2


# --- the experiment ---------------------------------------------------------------------------------------

TINY = OdeNetConfig(width=4, depth=2, epochs=1, batch_size=32, limit_train=64, sweep_rtols=(1e-1, 1e-4),
                    memory_rtols=(1e-1, 1e-2), memory_depths=(1, 3))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("odenet")
    return run_odenet(TINY, out, progress=False), out


def _csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_tiny_run_writes_tables_and_plots(tiny_run):
    result, out = tiny_run
    assert sorted(result.files) == ["error_vs_nfe.png", "memory.csv", "memory_vs_nfe.png", "odenet.csv",
                                    "odenet.md", "tolerance.csv"]
    for name in ("error_vs_nfe.png", "memory_vs_nfe.png"):
        img = png_pixels(out / name)
        assert img.shape[:2] == (plots.PIXELS[1], plots.PIXELS[0])
        assert colored_fraction(img) > 0.002, f"{name} shows no data"
    report = (out / "odenet.md").read_text(encoding="utf-8")
    for text in ("ResNet", "ODE-Net", "RK-Net", "error_vs_nfe.png", "saved_mb"):
        assert text in report


def test_tiny_run_table_rows(tiny_run):
    result, out = tiny_run
    rows = {r["model"]: r for r in _csv(out / "odenet.csv")}
    assert set(rows) == {"ResNet", "ODE-Net", "RK-Net"}
    assert int(rows["ResNet"]["params"]) == expected_params(4, 2)
    assert int(rows["ODE-Net"]["params"]) == int(rows["RK-Net"]["params"]) == expected_params(4, None)
    assert rows["ResNet"]["nfe_forward"] == "" and rows["RK-Net"]["nfe_backward"] == ""
    assert float(rows["ODE-Net"]["nfe_forward"]) > 0 and float(rows["ODE-Net"]["nfe_backward"]) > 0
    for r in rows.values():
        assert 0 <= float(r["test_error_pct"]) <= 100 and float(r["epoch_s"]) > 0
        assert 0 < float(r["saved_mb"]) <= float(r["peak_mb"])


def test_tiny_run_sweeps(tiny_run):
    result, _ = tiny_run
    for model in ("ODE-Net", "RK-Net"):
        nfe = {r["rtol"]: r["nfe_forward"] for r in result.tolerance if r["model"] == model}
        assert nfe[1e-4] > nfe[1e-1] > 0          # tighter tolerance, more evaluations
    depths = [r for r in result.memory if r["model"] == "ResNet"]
    assert [r["evaluations"] for r in depths] == [1, 3]
    assert depths[1]["saved_mb"] > depths[0]["saved_mb"]
    assert len(result.memory) == 2 + 3 * 2      # ResNet depths + 3 gradient methods x 2 tolerances


def test_a_failing_solve_is_a_row_that_says_so(tmp_path):
    model = ODENet(4, SolverSettings())
    with torch.no_grad():
        model.field.g.conv2.conv.bias.fill_(float("nan"))
    data = load_digits_split(limit_train=10)
    rows = tolerance_sweep("odenet", model, data, (1e-1,), 64)
    assert rows[0]["error"].startswith("NonFiniteState") and "test_error_pct" not in rows[0]
    assert model.settings.rtol == 1e-3                       # the sweep restores the training tolerance
    good = {"model": "ODE-Net", "rtol": 1e-2, "atol": 1e-2, "test_error_pct": 5.0, "nfe_forward": 30}
    with_failed = colored_fraction(png_pixels(plot_error_vs_nfe([good, *rows], str(tmp_path / "a.png"))))
    assert with_failed == colored_fraction(png_pixels(plot_error_vs_nfe([good], str(tmp_path / "b.png")))) > 0


def test_config_fields_are_the_commands_options():
    options = {getattr(p, "field_name", None): p for p in cli.commands["odenet"].params}
    for f in dataclasses.fields(OdeNetConfig):
        assert f.metadata["flag"].help, f"OdeNetConfig.{f.name} has no help text"
        assert options[f.name].help == f.metadata["flag"].help


def test_the_command_runs_a_tiny_experiment(tmp_path):
    args = ["odenet", "--out", tmp_path, "--width", "4", "--depth", "2", "--epochs", "1", "--batch-size", "32",
            "--limit-train", "64", "--models", "resnet,odenet", "--sweep-rtols", "1e-1", "--memory-rtols", "1e-1",
            "--memory-depths", "1"]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    rows = _csv(tmp_path / "odenet.csv")
    assert [r["model"] for r in rows] == ["ResNet", "ODE-Net"]
    assert "ODE-Net" in result.output and (tmp_path / "error_vs_nfe.png").is_file()
    bad = CliRunner().invoke(cli, ["odenet", "--out", str(tmp_path), "--models", "resnet,vgg"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: unknown or no --models ['vgg']")


@pytest.mark.parametrize("bad,message", [
    (dict(models=("resnet", "vgg")), "unknown or no `models`"),
    (dict(solver="Nope"), "unknown solver"),
    (dict(activation="gelu"), "unknown `activation`"),
    (dict(sensealg="checkpointing"), "unknown `sensealg`"),
    (dict(width=0), "`width` must be a positive integer"),
    (dict(sweep_rtols=(1e-3, -1.0)), "positive tolerances"),
])
def test_bad_config_is_a_one_line_error(bad, message):
    with pytest.raises(ValueError, match=message) as info:
        OdeNetConfig(**bad)
    assert "\n" not in str(info.value)
