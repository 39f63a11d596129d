"""Starting Julia for the julia backend: juliacall, the PyJlODE module, calls into it.

How the bundled Julia package is found. ``pyjlode/juliapkg.json`` declares PyJlODE as
``{"dev": true, "path": "backends/julia_src"}``; ``julia_src`` is a symlink to the repository's
``julia/`` folder and is shipped inside the wheel as package data. juliapkg finds the file by itself
(it reads ``<site-packages>/<package>/juliapkg.json`` and, for editable installs, the same file
through setuptools' finder) and resolves ``path`` relative to it, so nothing is written into the
environment: uninstalling or moving pyjlode leaves no stale entry behind.

CUDA tensors are copied through the CPU unless ``PYJLODE_JULIA_CUDA=1`` was set before Julia
started: then CUDA.jl and DLPack.jl are declared as packages before juliacall resolves the
environment (never while Julia runs) and CUDA tensors are shared without copies.

Rules from PythonCall's documentation and issues (see docs/julia.md): juliacall must be imported
before torch where possible (:func:`preload`), and every Julia call happens on the main thread.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
from pathlib import Path

from ._julia_errors import BackendUnavailable, translate

INSTALL_HINT = 'pip install "pyjlode[julia]"'
NETWORK_NOTE = "the first use downloads Julia and its packages, which needs network"
DEPS_FILE = Path(__file__).parents[1] / "juliapkg.json"
CUDA_ENV = "PYJLODE_JULIA_CUDA"

# Declared only with PYJLODE_JULIA_CUDA=1 (CUDA.jl is a large download).
CUDA_PACKAGES = {
    "CUDA": {"uuid": "052768ef-5323-5732-b1bb-66c8b64840ba", "version": "5"},
    "DLPack": {"uuid": "53c2dc0f-f7d5-43fd-8906-6c0220547083", "version": "0.3"},
}

_state: dict = {"module": None, "main": None, "cuda": False}


def juliacall_installed() -> bool:
    """Whether juliacall can be imported (checked without importing it: that would start Julia)."""
    if "juliacall" in sys.modules:           # None there means "blocked", as import treats it
        return sys.modules["juliacall"] is not None
    return importlib.util.find_spec("juliacall") is not None


def julia_requirements() -> dict:
    """The Julia version and packages pyjlode declares to juliapkg (``pyjlode/juliapkg.json``)."""
    return json.loads(DEPS_FILE.read_text())


def cuda_zero_copy() -> bool:
    """Whether CUDA tensors go to Julia without copies (``PYJLODE_JULIA_CUDA=1``)."""
    return os.environ.get(CUDA_ENV, "").strip().lower() in ("1", "yes", "true")


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def unavailable(what: str) -> BackendUnavailable:
    """The one-line error for a missing piece, with the install command."""
    return BackendUnavailable(f"julia backend unavailable: {what}; it needs {INSTALL_HINT}, and "
                              f"{NETWORK_NOTE}")


def require_main_thread(what: str) -> None:
    """Julia calls from other Python threads can hang or crash (PythonCall #578, #627)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            f"julia backend: {what} ran off the main thread; call backward() from the main thread "
            "with torch.autograd.set_multithreading_enabled(False) (get_backend('julia') sets it)")


def declare_cuda_packages() -> None:
    """Add CUDA.jl and DLPack.jl to juliapkg's requirements (before Julia starts) when opted in."""
    if not cuda_zero_copy():
        return
    import juliapkg
    from juliapkg.deps import load_cur_deps

    current = load_cur_deps().get("packages", {})
    for name, entry in CUDA_PACKAGES.items():
        if current.get(name) != entry:
            juliapkg.add(name, **entry)


def _start() -> None:
    """Import juliacall, which resolves the Julia environment and starts Julia.

    Requirements are declared only before that: changing them under a running Julia would make
    juliapkg re-resolve package versions behind the loaded session.
    """
    if "juliacall" not in sys.modules:
        declare_cuda_packages()
    import juliacall  # noqa: F401


def preload() -> bool:
    """Import juliacall now, before torch, if it is installed; never raises.

    juliacall starts Julia at import and warns (and may crash) when torch was imported first
    (PythonCall #215, #384). The command line calls this through
    :func:`pyjlode.backends.preload_for` when the command will use the Julia engine.

    Returns:
        True if juliacall was imported, False if it is missing or failed (the next :func:`load`
        tries again and raises the one-line error).
    """
    try:
        if not juliacall_installed():
            return False
        _start()
        return True
    except Exception:   # a preload must never stop the program; load() reports the problem
        return False


def load():
    """The PyJlODE Julia module (juliacall handle), starting Julia on first use.

    Raises:
        BackendUnavailable: juliacall missing, Julia not installable, or packages not loadable.
    """
    if _state["module"] is not None:
        return _state["module"]
    require_main_thread("loading Julia")
    if not juliacall_installed():
        raise unavailable("the Python package juliacall is not installed")
    try:
        _start()
        from juliacall import Main

        Main.seval("using PyJlODE")
        if cuda_zero_copy():
            Main.seval("using CUDA, DLPack")
    except Exception as err:
        raise unavailable(f"Julia or its packages could not be loaded ({one_line(err)})") from err
    _state["main"], _state["module"], _state["cuda"] = Main, Main.PyJlODE, cuda_zero_copy()
    return _state["module"]


def from_dlpack(tensor):
    """Zero-copy CuArray over a CUDA tensor's memory, dimensions reversed ((B, H) -> (H, B)).

    torch refuses to export a tensor that requires grad (``__dlpack__`` raises BufferError), so
    the tensor is detached first: the same memory, without the autograd history.
    """
    if not _state["cuda"]:
        raise BackendUnavailable(f"CUDA tensors reach Julia without copies only when {CUDA_ENV}=1 is "
                                 "set before Julia starts")
    import juliacall

    main = _state["main"]
    exported = tensor.detach()
    return main.DLPack.from_dlpack(juliacall.convert(main.PythonCall.Py, exported))


def jl_call(name: str, *args, **kwargs):
    """Call ``PyJlODE.<name>`` on the main thread (``!`` is spelled ``_b`` on the Python side).

    Raises:
        SolverError: the Julia solve failed (its subclass names the cause, the solver, t and dt).
    """
    require_main_thread(f"PyJlODE.{name}")
    module = load()
    try:
        return getattr(module, name.replace("!", "_b"))(*args, **kwargs)
    except Exception as err:
        failure = translate(err, module.failure_info)
        if failure is None:
            raise
        raise failure from None
