"""Starting Julia for the julia backend: dependency declaration, juliacall, the PyJlODE module.

How the bundled Julia package is found. ``pyjlode/backends/juliapkg.json`` declares PyJlODE as
``{"dev": true, "path": "julia_src"}``; ``julia_src`` is a symlink to the repository's ``julia/``
folder and is shipped inside the wheel as package data, so the relative path works for editable
and wheel installs alike (juliapkg resolves ``path`` relative to the JSON file; ``Pkg.add`` would
need a git repository, ``Pkg.develop`` does not). juliapkg only scans ``<package>/juliapkg.json``
one level below ``site-packages``, so for wheel installs the same entries are written into the
environment's juliapkg project file (``juliapkg.add``, as ``juliapkg add`` would) before juliacall
starts; the write is skipped when the entries are already there.

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

from . import BackendUnavailable

INSTALL_HINT = 'pip install "pyjlode[julia]"'
NETWORK_NOTE = "the first use downloads Julia and its packages, which needs network"
DEPS_FILE = Path(__file__).with_name("juliapkg.json")

# Added to the Julia environment on the first CUDA tensor only (CUDA.jl is a large download).
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


def _one_line(err: BaseException) -> str:
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


def wanted_packages(cuda: bool = False) -> dict:
    """Our juliapkg entries in the form juliapkg stores them, with ``path`` made absolute."""
    spec = json.loads(DEPS_FILE.read_text())
    packages = {}
    for name, info in spec["packages"].items():
        entry = dict(info)
        if "path" in entry:   # juliapkg's rule: relative to the directory of the JSON file
            entry["path"] = os.path.normcase(os.path.normpath(os.path.join(DEPS_FILE.parent, entry["path"])))
        packages[name] = entry
    if cuda:
        packages.update(CUDA_PACKAGES)
    return packages


def declare_dependencies(cuda: bool = False) -> bool:
    """Write our packages into juliapkg's project file when they differ; True if anything changed."""
    import juliapkg
    from juliapkg.deps import load_cur_deps

    current = load_cur_deps()
    changed = False
    for name, entry in wanted_packages(cuda).items():
        if current.get("packages", {}).get(name) != entry:
            juliapkg.add(name, **entry)
            changed = True
    if "julia" not in current:
        juliapkg.require_julia(json.loads(DEPS_FILE.read_text())["julia"])
        changed = True
    return changed


def preload() -> bool:
    """Import juliacall now, before torch, if it is installed; never raises.

    juliacall starts Julia at import and warns (and may crash) when torch was imported first
    (PythonCall #215, #384). The CLI calls this first thing when started with ``--backend julia``.

    Returns:
        True if juliacall was imported, False if it is missing or failed (the next :func:`load`
        tries again and raises the one-line error).
    """
    try:
        if not juliacall_installed():
            return False
        declare_dependencies()
        import juliacall  # noqa: F401  (the import starts Julia)
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
        declare_dependencies()
        from juliacall import Main

        Main.seval("using PyJlODE")
    except Exception as err:
        raise unavailable(f"Julia or its packages could not be loaded ({_one_line(err)})") from err
    _state["main"], _state["module"] = Main, Main.PyJlODE
    return _state["module"]


def ensure_cuda() -> None:
    """Load CUDA.jl and DLPack.jl (adding them to the environment on first use)."""
    if _state["cuda"]:
        return
    main = _state["main"]
    try:
        if declare_dependencies(cuda=True):
            import juliapkg

            juliapkg.resolve()
        main.seval("using CUDA, DLPack")
    except Exception as err:
        raise unavailable(f"CUDA.jl/DLPack.jl could not be loaded for CUDA tensors "
                          f"({_one_line(err)})") from err
    _state["cuda"] = True


def from_dlpack(tensor):
    """Zero-copy CuArray over a CUDA tensor's memory, dimensions reversed ((B, H) -> (H, B))."""
    ensure_cuda()
    import juliacall

    main = _state["main"]
    return main.DLPack.from_dlpack(juliacall.convert(main.PythonCall.Py, tensor))


def jl_call(name: str, *args, **kwargs):
    """Call ``PyJlODE.<name>`` on the main thread (``!`` is spelled ``_b`` on the Python side)."""
    require_main_thread(f"PyJlODE.{name}")
    return getattr(load(), name.replace("!", "_b"))(*args, **kwargs)
