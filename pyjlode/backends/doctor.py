"""``pyjlode doctor``: both engines, what each needs, and whether it can run here.

:func:`run_doctor` prints one report. The Julia part is gathered first, before torch is imported
(juliacall wants to come first), and starts Julia only when asked for the julia backend and when
Julia and the packages are installed already (starting it otherwise would download them).
"""
from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys

from . import BACKENDS, BackendUnavailable
from . import _julia_runtime as _rt


def _line(label: str, text: str) -> str:
    return f"  {label:<16}{text}"


# ---------------------------------------------------------------------------------- Julia versions
def julia_version(exe: str) -> str | None:
    """``X.Y.Z`` from ``exe --version``, or None if it is not a working Julia."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.match(r"\s*julia version (\d+)\.(\d+)\.(\d+)", out)
    return ".".join(found.groups()) if found else None


def compatible(version: str, spec: str) -> bool:
    """Whether Julia ``version`` (X.Y.Z) meets a compat ``spec``: ``~X.Y[.Z]`` or ``[^]X[.Y[.Z]]``.

    The semantics of Julia's Pkg (and juliapkg): ``~1.10`` is [1.10.0, 1.11.0), ``1.10`` and
    ``^1.10`` are [1.10.0, 2.0.0); for a 0.x bound the first nonzero component is held fixed.
    """
    have = tuple(int(x) for x in version.split("."))
    tilde = spec.startswith("~")
    parts = [int(x) for x in spec.lstrip("~^").split(".")]
    low = tuple(parts + [0] * (3 - len(parts)))
    if tilde:
        fixed = min(len(parts), 2)
    else:
        fixed = next((i + 1 for i, x in enumerate(parts) if x != 0), len(parts))
    return low <= have and have[:fixed] == low[:fixed]


# ---------------------------------------------------------------------------------- Julia engine
def _julia_for_juliacall(required: str) -> str:
    """Which compatible Julia juliapkg would use, without installing one."""
    try:
        from juliapkg.compat import Compat
        from juliapkg.find_julia import find_julia
        from juliapkg.state import STATE

        exe, version = find_julia(compat=Compat.parse(required), prefix=STATE["install"], install=False)
    except Exception:
        return ""
    return f"{version} at {exe}"


def _packages_resolved(names) -> tuple[bool, str]:
    import juliapkg
    from juliapkg.deps import load_meta

    try:
        resolved = bool(juliapkg.resolve(dry_run=True))
    except Exception as err:
        return False, f"unknown ({_rt.one_line(err)})"
    have = {pkg.get("name") for pkg in (load_meta() or {}).get("pkgs", [])}
    missing = sorted(set(names) - have)
    if resolved and not missing:
        return True, "installed (" + ", ".join(sorted(names)) + ")"
    what = f"missing {', '.join(missing)}" if missing else "out of date"
    return False, f"not installed: {what} (the first use installs them, which needs network)"


def julia_report(start: bool) -> tuple[bool, str, list[str]]:
    """(can run, reason, lines) for the Julia engine; loads PyJlODE only if ``start`` and installed."""
    spec = _rt.julia_requirements()
    required, names = spec["julia"], sorted(spec["packages"])
    registered = [name for name in names if not spec["packages"][name].get("dev")]
    lines = [_line("needs", f"{_rt.INSTALL_HINT} (juliacall), Julia {required}, and network on first "
                            f"use to install {', '.join(registered)}")]
    on_path = shutil.which("julia")
    version = julia_version(on_path) if on_path else None
    if version is None:
        lines.append(_line("julia on PATH", "none (juliapkg downloads a compatible Julia on first use)"))
    else:
        fit = "compatible" if compatible(version, required) else (
            f"not usable, pyjlode needs Julia {required} (juliapkg downloads one on first use)")
        lines.append(_line("julia on PATH", f"{version} at {on_path}: {fit}"))
    cuda = ("shared without copies" if _rt.cuda_zero_copy() else
            f"copied through the CPU (set {_rt.CUDA_ENV}=1 before starting to share them)")
    if not _rt.juliacall_installed():
        lines += [_line("juliacall", f"not installed -> {_rt.INSTALL_HINT}"), _line("cuda tensors", cuda)]
        return False, "juliacall is not installed", lines
    lines.append(_line("juliacall", "installed"))
    usable = _julia_for_juliacall(required)
    lines.append(_line("julia for it", usable or f"none installed yet (the first use downloads Julia {required})"))
    resolved, text = _packages_resolved(names)
    lines += [_line("julia packages", text), _line("cuda tensors", cuda)]
    if not (usable and resolved):
        return False, "Julia or its packages are not installed yet (the first use installs them)", lines
    if not start:
        return True, "installed (run `pyjlode doctor --backend julia` to load it)", lines
    try:
        from . import julia

        julia.check_available()
        solvers = ", ".join(str(s) for s in _rt.jl_call("solver_names"))
        sensealgs = ", ".join(str(s) for s in _rt.jl_call("sensealg_names"))
    except BackendUnavailable as err:
        return False, str(err), lines + [_line("julia solvers", "unavailable")]
    return True, "PyJlODE loaded", lines + [_line("julia solvers", solvers), _line("julia adjoints", sensealgs)]


# ---------------------------------------------------------------------------------- native engine
def native_report() -> tuple[bool, str, list[str]]:
    """(can run, reason, lines) for the native torch engine."""
    try:
        import torch
    except ImportError as err:
        return False, "torch is not installed", [_line("torch", f"not importable ({err})")]
    lines = [_line("torch", torch.__version__)]
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        lines.append(_line("devices", f"cpu, cuda: {names}"))
    else:
        lines.append(_line("devices", "cpu (no CUDA device)"))
    try:
        from ..ode import SOLVERS
    except Exception as err:   # the native engine is reported, not re-raised
        return False, "the native engine does not import", lines + [
            _line("solvers", f"not importable ({type(err).__name__}: {err})")]
    return True, "imported", lines + [_line("solvers", ", ".join(SOLVERS))]


def run_doctor(backend: str | None = None) -> int:
    """Print the report on both engines.

    Args:
        backend: None (both engines, Julia not started), "torch" (the same, judged on the native
            engine) or "julia" (also starts Julia when it is installed, and loads PyJlODE).

    Returns:
        0 if the native engine (or, for "julia", the Julia engine) can run here, else 1; 1 for an
        unknown backend name.
    """
    key = None if backend is None else str(backend).lower()
    print("pyjlode doctor")
    print(_line("python", f"{platform.python_version()} ({sys.executable})"))
    if key is not None and key not in BACKENDS:
        print(f"  result: unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        return 1
    julia_ok, julia_reason, julia_lines = julia_report(start=key == "julia")   # before torch
    native_ok, native_reason, native_lines = native_report()
    print("native engine (torch, always available)", *native_lines, sep="\n")
    print("julia engine (optional: OrdinaryDiffEq + SciMLSensitivity through juliacall)", *julia_lines, sep="\n")
    print(f"  result: native engine {'can run' if native_ok else 'cannot run'} ({native_reason}); "
          f"julia engine {'can run' if julia_ok else 'cannot run'} ({julia_reason})")
    ok = native_ok and (julia_ok or key != "julia")
    return 0 if ok else 1
