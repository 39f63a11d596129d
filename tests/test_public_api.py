"""The public surface: a dozen names that resolve, internals reachable from their modules, and a light
`import pyjlode`."""
import subprocess
import sys

import pytest

import pyjlode


@pytest.mark.parametrize("name", sorted(pyjlode._EXPORTS))
def test_every_public_name_resolves(name):
    assert getattr(pyjlode, name) is not None


def test_the_surface_is_small():
    assert set(pyjlode.__all__) == {
        "GRUODE", "GRUODECell", "LanguageModel", "SolverConfig", "ModelConfig", "TrainConfig", "solve",
        "odeint", "odeint_adjoint", "SOLVERS", "PyjlodeError", "SolverError", "__version__"}
    assert issubclass(pyjlode.SolverError, pyjlode.PyjlodeError)


@pytest.mark.parametrize("module, name", [
    ("pyjlode.models", "CELLS"), ("pyjlode.models", "GRUODEField"), ("pyjlode.models", "make_cell"),
    ("pyjlode.ode", "get_method"), ("pyjlode.ode", "Solution"), ("pyjlode.ode.adjoint", "AdjointStats"),
    ("pyjlode.ode.errors", "StepSizeUnderflow"), ("pyjlode.training.loop", "train"),
    ("pyjlode.evaluation.evaluate", "evaluate_checkpoint"), ("pyjlode.evaluation.metrics", "bleu")])
def test_internals_are_reachable_from_their_modules(module, name):
    import importlib

    assert getattr(importlib.import_module(module), name) is not None
    assert name not in pyjlode.__all__


def test_unknown_attribute_raises():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pyjlode.nope


def test_import_does_not_load_torch():
    # The CLI must be able to import juliacall before torch (see docs/julia.md): neither the package nor
    # the command line with all its generated options may import torch.
    code = "import sys, pyjlode, pyjlode.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
