"""The public surface: every advertised name resolves, and `import pyjlode` stays light."""
import subprocess
import sys

import pytest

import pyjlode


@pytest.mark.parametrize("name", sorted(pyjlode._EXPORTS))
def test_every_public_name_resolves(name):
    assert getattr(pyjlode, name) is not None


def test_unknown_attribute_raises():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pyjlode.nope


def test_import_does_not_load_torch():
    # The CLI must be able to import juliacall before torch (see docs/julia.md).
    code = "import sys, pyjlode, pyjlode.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
