"""Static checks of the Julia engine (no Julia runtime needed).

Claims: the Julia sources lint clean under fatou and parse under tree-sitter-julia; every PyJlODE
function the Python bridge calls exists with a matching signature; the Julia solver and sensealg
tables equal the Python ones; juliapkg.json, julia/Project.toml and the repo's Project.toml agree.
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
BRIDGE_DIR = ROOT / "pyjlode" / "backends"
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


# ------------------------------------------------------------------------------- lint and syntax
def test_julia_sources_exist():
    names = {p.name for p in JL_FILES}
    assert {"PyJlODE.jl", "rhs.jl", "solvers.jl", "forward.jl", "backward.jl", "precompile.jl"} <= names


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
def _signature(call) -> tuple[int, float, set, set]:
    """(min positional, max positional, keyword names, required keyword names) of a call signature."""
    args = next(c for c in call.children if c.type == "argument_list")
    lo, hi, keywords, required, after_semicolon = 0, 0, set(), set(), False
    for arg in args.children:
        if arg.type in ("(", ")", ","):
            continue
        if arg.type == ";":
            after_semicolon = True
            continue
        if after_semicolon:
            name_node = arg.children[0] if arg.type in ("named_argument", "typed_expression") else arg
            while name_node.type == "typed_expression":
                name_node = name_node.children[0]
            keywords.add(_text(name_node))
            if arg.type != "named_argument":
                required.add(_text(name_node))
        elif arg.type == "splat_expression":
            hi = float("inf")
        else:
            hi += 1
            lo += arg.type != "named_argument"
    return lo, hi, keywords, required


def _julia_functions() -> dict[str, list[tuple]]:
    """Every named function (long and short form) in julia/ -> its methods' signatures."""
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
            if call.type == "call_expression" and call.children[0].type == "identifier":
                found.setdefault(_text(call.children[0]), []).append(_signature(call))
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


@pytest.mark.parametrize("call", _bridge_calls(), ids=lambda c: f"{c[0]}@{c[3]}")
def test_bridge_call_matches_a_julia_method(call):
    name, npos, kws, where = call
    methods = _julia_functions().get(name)
    assert methods, f"{where}: PyJlODE.{name} is not defined in julia/"
    fits = [m for m in methods if m[0] <= npos <= m[1] and kws <= m[2] and m[3] <= kws]
    assert fits, f"{where}: PyJlODE.{name} called with {npos} positional + {sorted(kws)}; Julia has {methods}"


# ------------------------------------------------------------------------------- tables
def _julia_solver_table() -> dict[str, tuple[bool, tuple[str, ...]]]:
    tree = _parser().parse((JULIA_DIR / "src" / "solvers.jl").read_bytes())
    table = {}
    for node in _walk(tree.root_node):
        if node.type == "call_expression" and _text(node.children[0]) == "SolverSpec":
            args = [c for c in node.children[1].children if c.type not in ("(", ")", ",")]
            if args and args[0].type == "string_literal":
                aliases = tuple(_text(s).strip('"') for s in _walk(args[4]) if s.type == "string_literal")
                table[_text(args[0]).strip('"')] = (_text(args[2]) == "true", aliases)
    return table


def test_julia_solver_table_equals_python_table():
    from pyjlode.backends import julia

    table = _julia_solver_table()
    assert tuple(table) == julia.SOLVER_NAMES
    assert {n for n, (stiff, _) in table.items() if stiff} == julia.STIFF_SOLVERS
    aliases = {alias: name for name, (_, names) in table.items() for alias in names}
    assert aliases == julia.SOLVER_ALIASES


def test_julia_sensealgs_equal_python_sensealgs():
    from pyjlode.backends import julia

    tree = _parser().parse((JULIA_DIR / "src" / "backward.jl").read_bytes())
    const = next(n for n in _walk(tree.root_node) if n.type == "const_statement" and "SENSEALGS" in _text(n))
    names = tuple(_text(f.children[0]) for f in _walk(const) if f.type == "named_field")
    assert names == julia.SENSEALGS


# ------------------------------------------------------------------------------- packaging
def _toml(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def test_juliapkg_json_agrees_with_the_julia_project():
    project = _toml(JULIA_DIR / "Project.toml")
    spec = json.loads((BRIDGE_DIR / "juliapkg.json").read_text())
    ours = spec["packages"].pop("PyJlODE")
    assert ours["uuid"] == project["uuid"] and ours["dev"] is True
    for name, entry in spec["packages"].items():
        assert project["deps"][name] == entry["uuid"], name
        assert project["compat"][name] == entry["version"], name


def test_bundled_path_resolves_to_the_julia_package():
    from pyjlode.backends import _julia_runtime

    entry = _julia_runtime.wanted_packages()["PyJlODE"]
    bundled = Path(entry["path"])
    assert bundled.is_absolute()
    assert (bundled / "Project.toml").resolve() == (JULIA_DIR / "Project.toml").resolve()
    assert _toml(bundled / "Project.toml")["name"] == "PyJlODE"


def test_repo_project_pulls_in_pyjlode_by_path():
    repo = _toml(ROOT / "Project.toml")
    assert repo["deps"]["PyJlODE"] == _toml(JULIA_DIR / "Project.toml")["uuid"]
    assert (ROOT / repo["sources"]["PyJlODE"]["path"]).resolve() == JULIA_DIR.resolve()
