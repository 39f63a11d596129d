"""``pyjlode doctor``: what this machine can run, and what is missing.

:func:`run_doctor` prints one line per check and returns 0 when the requested backend can run,
1 otherwise. For the Julia backend it only starts Julia when Julia and the packages are already
installed (starting it otherwise would download them); Julia is checked before torch is
imported, as juliacall asks.
"""
from __future__ import annotations

import importlib.util
import platform
import sys

from . import BACKENDS, BackendUnavailable
from . import _julia_runtime as _rt


def _line(label: str, text: str) -> None:
    print(f"  {label:<16}{text}")


def _find_julia() -> tuple[bool, str]:
    from juliapkg.find_julia import find_julia
    from juliapkg.state import STATE

    try:
        exe, version = find_julia(prefix=STATE["install"], install=False)
    except Exception:
        return False, "not found (the first use downloads it, which needs network)"
    return True, f"{version} at {exe}"


def _packages_resolved() -> tuple[bool, str]:
    import juliapkg
    from juliapkg.deps import load_meta

    try:
        resolved = bool(juliapkg.resolve(dry_run=True))
    except Exception as err:
        return False, f"unknown ({type(err).__name__}: {err})"
    meta = load_meta() or {}
    have = {pkg.get("name") for pkg in meta.get("pkgs", [])}
    missing = sorted(set(_rt.wanted_packages()) - have)
    if resolved and not missing:
        return True, "resolved (" + ", ".join(sorted(_rt.wanted_packages())) + ")"
    what = f"missing {', '.join(missing)}" if missing else "out of date"
    return False, f"not resolved: {what} (the first use runs Pkg.add, which needs network)"


def _julia_checks() -> tuple[bool, str]:
    """Print the Julia lines; (can run, reason)."""
    if not _rt.juliacall_installed():
        _line("juliacall", f"not installed -> {_rt.INSTALL_HINT}")
        return False, "juliacall is not installed"
    _line("juliacall", "installed")
    found, text = _find_julia()
    _line("julia", text)
    resolved, text = _packages_resolved()
    _line("julia packages", text)
    if not (found and resolved):
        _line("julia solvers", "not checked (Julia would have to be downloaded first)")
        return False, "Julia or its packages are not installed yet"
    try:
        from . import julia

        julia.check_available()
        solvers = ", ".join(str(s) for s in _rt.jl_call("solver_names"))
        sensealgs = ", ".join(str(s) for s in _rt.jl_call("sensealg_names"))
    except BackendUnavailable as err:
        _line("julia solvers", "unavailable")
        return False, str(err)
    _line("julia solvers", solvers)
    _line("julia adjoints", sensealgs)
    return True, "PyJlODE loaded"


def _torch_checks() -> tuple[bool, str]:
    try:
        import torch
    except ImportError as err:
        _line("torch", f"not importable ({err})")
        return False, "torch is not installed"
    _line("torch", torch.__version__)
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        _line("cuda", f"available: {names}")
    else:
        _line("cuda", "not available")
    try:
        from ..ode.methods import SOLVERS
    except Exception as err:   # the native engine is reported, not re-raised
        _line("native solvers", f"not importable ({type(err).__name__}: {err})")
        return False, "the native engine does not import"
    _line("native solvers", ", ".join(SOLVERS))
    return True, "native engine imported"


def run_doctor(backend: str = "torch") -> int:
    """Print the environment report for ``backend`` ("torch" or "julia").

    Returns:
        0 if ``backend`` can run here, else 1 (also for an unknown backend name).
    """
    key = str(backend).lower()
    print(f"pyjlode doctor (backend: {key})")
    _line("python", f"{platform.python_version()} ({sys.executable})")
    if key not in BACKENDS:
        print(f"  result: unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        return 1
    julia_ok, julia_reason = True, ""
    if key == "julia":   # before torch: juliacall wants to be imported first
        julia_ok, julia_reason = _julia_checks()
    elif importlib.util.find_spec("juliacall") is not None:
        _line("juliacall", "installed (run with --backend julia to check Julia)")
    torch_ok, torch_reason = _torch_checks()
    ok = torch_ok and julia_ok
    reason = julia_reason if not julia_ok else torch_reason
    print(f"  result: the {key} backend {'can run' if ok else 'cannot run'} ({reason})")
    return 0 if ok else 1
