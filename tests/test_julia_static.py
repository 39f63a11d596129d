"""Static checks of the Julia engine (no Julia runtime needed).

Claims: the Julia sources lint clean under fatou and parse under tree-sitter-julia; every PyJlODE
function the Python bridge calls exists with a matching signature; the field's ODEFunction carries
analytic vjp/vjp_p/tgrad with the arities SciMLSensitivity and OrdinaryDiffEq call, and no AD VJP is
left in the adjoint; the linear solver implements LinearSolve's documented algorithm interface; the
precompile workload covers Float32 and the default path; the Julia solver table mirrors the native
registry and the adjoint table the bridge's; the bridge never hands DLPack a tensor that requires
grad; juliapkg.json, julia/Project.toml and the repo's Project.toml agree.
"""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="Python 3.10 needs tomli to read TOML")

ROOT = Path(__file__).resolve().parents[1]
JULIA_DIR = ROOT / "julia"
SRC = JULIA_DIR / "src"
BRIDGE_DIR = ROOT / "pyjlode" / "backends"
DEPS_FILE = ROOT / "pyjlode" / "juliapkg.json"
JL_FILES = sorted(JULIA_DIR.rglob("*.jl"))


def _parser():
    ts = pytest.importorskip("tree_sitter", reason="tree-sitter is not installed (pip install -e '.[dev]')")
    tsj = pytest.importorskip("tree_sitter_julia", reason="tree-sitter-julia is not installed")
    return ts.Parser(ts.Language(tsj.language()))


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


def _text(node) -> str:
    return node.text.decode()


def _tree(name: str):
    return _parser().parse((SRC / name).read_bytes()).root_node


# ------------------------------------------------------------------------------- lint and syntax
def test_julia_sources_exist():
    names = {p.name for p in JL_FILES}
    assert {"PyJlODE.jl", "rhs.jl", "vjp.jl", "linsolve.jl", "solvers.jl", "failures.jl", "forward.jl",
            "backward.jl", "precompile.jl"} <= names


def test_every_source_is_included():
    included = {_text(n.children[1].children[1]).strip('"') for n in _walk(_tree("PyJlODE.jl"))
                if n.type == "call_expression" and _text(n.children[0]) == "include"}
    assert included == {p.name for p in SRC.glob("*.jl")} - {"PyJlODE.jl"}


def _fatou() -> str | None:
    local = Path(sys.executable).with_name("fatou")
    return str(local) if local.exists() else shutil.which("fatou")


def test_fatou_lint_reports_no_errors():
    exe = _fatou()
    if exe is None:
        pytest.skip("fatou is not installed (pip install -e '.[dev]')")
    run = subprocess.run([exe, "lint", "--color", "never", "--output", "json", str(JULIA_DIR)],
                         capture_output=True, text=True, timeout=120)
    findings = json.loads(run.stdout or "[]")
    errors = [f"{f['path']}: {f['rule']}: {f['message']['body']}" for f in findings
              if f.get("severity") == "error"]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("path", JL_FILES, ids=lambda p: str(p.relative_to(JULIA_DIR)))
def test_tree_sitter_parses_without_error_nodes(path):
    tree = _parser().parse(path.read_bytes())
    bad = [f"{n.type} at {n.start_point}" for n in _walk(tree.root_node) if n.is_error or n.is_missing]
    assert not bad and not tree.root_node.has_error, f"{path.name}: {bad}"


# ------------------------------------------------------------------------------- Julia signatures
def _signature(call) -> tuple[int, float, set | None, set]:
    """(min positional, max positional, keyword names or None for any, required keywords) of a signature."""
    args = next(c for c in call.children if c.type == "argument_list")
    lo, hi, keywords, required, after_semicolon = 0, 0, set(), set(), False
    for arg in args.children:
        if arg.type in ("(", ")", ","):
            continue
        if arg.type == ";":
            after_semicolon = True
            continue
        if after_semicolon and arg.type == "splat_expression":
            keywords = None
        elif after_semicolon:
            name_node = arg.children[0] if arg.type in ("named_argument", "typed_expression") else arg
            while name_node.type == "typed_expression":
                name_node = name_node.children[0]
            if keywords is not None:
                keywords.add(_text(name_node))
            if arg.type != "named_argument":
                required.add(_text(name_node))
        elif arg.type == "splat_expression":
            hi = float("inf")
        else:
            hi += 1
            lo += arg.type != "named_argument"
    return lo, hi, keywords, required


def _callee(call) -> str | None:
    """A method's name: ``f``, ``Module.f``, or ``(::T)`` for a callable struct."""
    head = call.children[0]
    if head.type in ("identifier", "field_expression"):
        return _text(head)
    if head.type == "parenthesized_expression":
        typed = next((c for c in head.children if c.type == "typed_expression"), None)
        return None if typed is None else f"(::{_text(typed.children[-1])})"
    return None


def _julia_functions() -> dict[str, list[tuple]]:
    """Every method (long and short form) in julia/ -> its signatures."""
    parser, found = _parser(), {}
    for path in JL_FILES:
        for node in _walk(parser.parse(path.read_bytes()).root_node):
            if node.type == "function_definition":
                head = next(c for c in node.children if c.type == "signature").children[0]
            elif node.type == "assignment" and node.children[0].type in ("call_expression", "where_expression"):
                head = node.children[0]
            else:
                continue
            call = head.children[0] if head.type == "where_expression" else head
            name = _callee(call) if call.type == "call_expression" else None
            if name is not None:
                found.setdefault(name, []).append(_signature(call))
    return found


def _bridge_calls() -> list[tuple[str, int, set, str]]:
    """Every ``jl_call("name", args..., kw=...)`` in pyjlode/backends: (name, npos, keywords, where)."""
    calls = []
    for path in sorted(BRIDGE_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if fname != "jl_call" or not node.args or not isinstance(node.args[0], ast.Constant):
                continue
            assert not any(isinstance(a, ast.Starred) for a in node.args), f"{path.name}: starred jl_call"
            kws = {k.arg for k in node.keywords}
            calls.append((node.args[0].value, len(node.args) - 1, kws, f"{path.name}:{node.lineno}"))
    return calls


def test_bridge_calls_something():
    names = {name for name, *_ in _bridge_calls()}
    assert {"forward!", "backward!", "forward_stats", "solver_names", "sensealg_names"} <= names


def _fits(name: str, npos: int, kws: set = frozenset()) -> bool:
    return any(lo <= npos <= hi and (keywords is None or kws <= keywords) and required <= kws
               for lo, hi, keywords, required in _julia_functions().get(name, []))


@pytest.mark.parametrize("call", _bridge_calls(), ids=lambda c: f"{c[0]}@{c[3]}")
def test_bridge_call_matches_a_julia_method(call):
    name, npos, kws, where = call
    assert name in _julia_functions(), f"{where}: PyJlODE.{name} is not defined in julia/"
    assert _fits(name, npos, kws), f"{where}: PyJlODE.{name} called with {npos} positional + {sorted(kws)}"


def test_failure_info_takes_the_julia_exception():
    # _julia_runtime.jl_call passes `module.failure_info` one argument: JuliaError.exception.
    source = (BRIDGE_DIR / "_julia_runtime.py").read_text()
    assert "translate(err, module.failure_info)" in source
    assert _fits("failure_info", 1)


# ------------------------------------------------------------------------------- adjoint functions
def test_odefunction_gets_analytic_vjps_and_tgrad():
    tree = _tree("vjp.jl")
    fields = {_text(f.children[0]): _text(f.children[2]) for f in _walk(tree) if f.type == "named_field"}
    assert fields["vjp"].startswith("StateVJP(") and fields["vjp_p"].startswith("ParamVJP(")
    assert fields["tgrad"] == "zero_tgrad!"
    rhs = (SRC / "rhs.jl").read_text()
    assert rhs.count("adjoint_functions(field, u0)...") == 2      # CPU and GPU ODEFunctions


@pytest.mark.parametrize("name,arity", [("(::StateVJP)", 5), ("(::ParamVJP)", 5), ("zero_tgrad!", 4),
                                        ("(::GRUODEField)", 4), ("(::GRUODEJacobian)", 4),
                                        ("(::TerminalCotangent)", 5), ("(::ReverseWatch)", 4)])
def test_callbacks_have_the_arity_sciml_calls(name, arity):
    # SciMLBase decides in-place-ness by arity: vjp(dλ, λ, u, p, t), vjp_p(dp, λ, u, p, t),
    # tgrad(dT, u, p, t), f(du, u, p, t), jac(J, u, p, t) (SciMLBase `ODEFunction` docstring);
    # SciMLSensitivity calls dgdu_discrete(out, u, p, t, i) (`ReverseLossCallback`) and
    # OrdinaryDiffEq unstable_check(dt, u, p, t) (DiffEqBase `check_error`).
    assert _fits(name, arity), f"{name} needs a method with {arity} positional arguments"


def test_adjoint_uses_no_ad_vjp():
    # With user vjp and vjp_p, ZygoteVJP is the autojacvec that builds no AD caches; EnzymeVJP would.
    tree = _tree("backward.jl")
    const = next(n for n in _walk(tree) if n.type == "const_statement" and "SENSEALGS" in _text(n))
    constructors = [n for n in _walk(const) if n.type == "call_expression"
                    and _text(n.children[0]).endswith("Adjoint")]
    assert len(constructors) == 4
    assert all("autojacvec = ZygoteVJP()" in _text(c) for c in constructors)
    assert "Enzyme" not in (SRC / "backward.jl").read_text() + (SRC / "PyJlODE.jl").read_text()


def test_reverse_solve_is_watched():
    backward = (SRC / "backward.jl").read_text()
    assert "t = [t0, t1]" in backward and "unstable_check = watch" in backward
    assert "check_adjoint(watch, spec, du0, gp)" in backward


def test_block_lu_implements_linearsolves_algorithm_interface():
    # LinearSolve docs, "Developing New Linear Solvers": needs_concrete_A, an 11-argument
    # init_cacheval and solve!(cache, alg; kwargs...).
    assert _fits("LinearSolve.needs_concrete_A", 1)
    assert _fits("LinearSolve.init_cacheval", 11)
    assert _fits("SciMLBase.solve!", 2)


def test_every_implicit_solver_uses_the_block_solver():
    tree = _tree("solvers.jl")
    for spec in (n for n in _walk(tree) if n.type == "call_expression" and _text(n.children[0]) == "SolverSpec"):
        args = [c for c in spec.children[1].children if c.type not in ("(", ")", ",")]
        if args and args[0].type == "string_literal" and _text(args[2]) == "true":
            assert "implicit_options()..." in _text(args[1]), _text(args[0])
    assert "linsolve = BlockDiagonalLU()" in (SRC / "solvers.jl").read_text()


def test_precompile_workload_covers_float32_and_the_default_path():
    from pyjlode.backends._julia_names import DEFAULT_SENSEALG

    source = (SRC / "precompile.jl").read_text()
    assert "run_workload(Float32" in source and "run_workload(Float64" in source
    assert f'(forward = "Tsit5", backward = "Tsit5", sensealg = "{DEFAULT_SENSEALG}")' in source
    assert 'backward = "KenCarp4"' in source and 'backward = "Rodas5P"' in source


# ------------------------------------------------------------------------------- tables
def _julia_solver_table() -> dict[str, tuple[bool, bool, tuple[str, ...]]]:
    """name -> (stiff, adaptive, aliases) from julia/src/solvers.jl."""
    table = {}
    for node in _walk(_tree("solvers.jl")):
        if node.type == "call_expression" and _text(node.children[0]) == "SolverSpec":
            args = [c for c in node.children[1].children if c.type not in ("(", ")", ",")]
            if args and args[0].type == "string_literal":
                aliases = tuple(sorted(_text(s).strip('"') for s in _walk(args[4]) if s.type == "string_literal"))
                table[_text(args[0]).strip('"')] = (_text(args[2]) == "true", _text(args[3]) == "true", aliases)
    return table


def test_julia_solver_table_mirrors_the_native_registry():
    ode = pytest.importorskip("pyjlode.ode", reason="the native engine is not importable")
    from pyjlode.ode.methods import COMPOSITES

    native = {m.name: (m.stiff, m.adaptive, tuple(sorted(a.lower() for a in m.aliases)))
              for m in (*ode.SOLVERS.values(), *COMPOSITES.values())}
    assert _julia_solver_table() == native


def test_julia_sensealgs_equal_the_bridges():
    from pyjlode.backends._julia_names import DEFAULT_SENSEALG, SENSEALGS

    const = next(n for n in _walk(_tree("backward.jl")) if n.type == "const_statement" and "SENSEALGS" in _text(n))
    names = tuple(_text(f.children[0]) for f in _walk(const) if f.type == "named_field")
    assert names == SENSEALGS and DEFAULT_SENSEALG in names


# ------------------------------------------------------------------------------- DLPack
_DLPACK_CALLS = {"from_dlpack", "__dlpack__", "to_dlpack"}


def _detached(expr, assigned: dict) -> bool:
    """Whether ``expr`` is ``<x>.detach()``, a name bound only to such, or convert(T, <such>)."""
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
        if expr.func.attr == "detach":
            return True
        if expr.func.attr == "convert" and expr.args:
            return _detached(expr.args[-1], assigned)
    if isinstance(expr, ast.Name) and expr.id in assigned:
        return all(_detached(value, {}) for value in assigned[expr.id])
    return False


def _dlpack_exports() -> list[tuple[str, bool]]:
    """(where, detached) for every DLPack call in pyjlode/backends."""
    found = []
    for path in sorted(BRIDGE_DIR.glob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            assigned: dict[str, list] = {}
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            assigned.setdefault(target.id, []).append(node.value)
            for node in ast.walk(fn):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in _DLPACK_CALLS):
                    ok = bool(node.args) and _detached(node.args[-1], assigned)
                    found.append((f"{path.name}:{node.lineno} {fn.name}", ok))
    return found


def test_bridge_exports_only_detached_tensors_to_dlpack():
    # torch's __dlpack__ raises BufferError for a tensor that requires grad.
    exports = _dlpack_exports()
    assert len(exports) >= 2, exports        # the CuArray import and the layout's call into it
    assert all(ok for _, ok in exports), [where for where, ok in exports if not ok]


def test_the_detach_check_can_fail():
    bad = ast.parse("def f(t):\n    x = t.cuda()\n    return main.DLPack.from_dlpack(convert(Py, x))\n")
    call = next(n for n in ast.walk(bad) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "from_dlpack")
    assert not _detached(call.args[-1], {"x": [bad.body[0].body[0].value]})


# ------------------------------------------------------------------------------- packaging
def _toml(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def test_juliapkg_json_agrees_with_the_julia_project():
    project = _toml(JULIA_DIR / "Project.toml")
    spec = json.loads(DEPS_FILE.read_text())
    ours = spec["packages"].pop("PyJlODE")
    assert ours["uuid"] == project["uuid"] and ours["dev"] is True
    for name, entry in spec["packages"].items():
        assert project["deps"][name] == entry["uuid"], name
        assert project["compat"][name] == entry["version"], name


def test_julia_project_declares_linearsolve():
    project = _toml(JULIA_DIR / "Project.toml")
    assert project["deps"]["LinearSolve"] == "7ed4a6bd-45f5-4d41-b270-4a48e9bafcae"
    assert project["compat"]["LinearSolve"] == "3, 4, 5"


def test_bundled_path_resolves_to_the_julia_package():
    # juliapkg resolves `path` relative to the directory holding juliapkg.json, and finds the file
    # one level below a sys.path entry (<site-packages>/pyjlode/juliapkg.json) by itself.
    entry = json.loads(DEPS_FILE.read_text())["packages"]["PyJlODE"]
    bundled = DEPS_FILE.parent / entry["path"]
    assert DEPS_FILE.parent.parent / "pyjlode" == DEPS_FILE.parent
    assert (bundled / "Project.toml").resolve() == (JULIA_DIR / "Project.toml").resolve()
    assert _toml(bundled / "Project.toml")["name"] == "PyJlODE"


def test_wheel_ships_the_deps_file_and_the_julia_sources():
    data = _toml(ROOT / "pyproject.toml")["tool"]["setuptools"]["package-data"]
    assert "juliapkg.json" in data["pyjlode"]
    assert {"julia_src/Project.toml", "julia_src/src/*.jl"} <= set(data["pyjlode.backends"])


def test_repo_project_pulls_in_pyjlode_by_path():
    repo = _toml(ROOT / "Project.toml")
    assert repo["deps"]["PyJlODE"] == _toml(JULIA_DIR / "Project.toml")["uuid"]
    assert (ROOT / repo["sources"]["PyJlODE"]["path"]).resolve() == JULIA_DIR.resolve()
