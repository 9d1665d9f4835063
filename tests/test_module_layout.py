"""The product's modules import each other without cycles (a module that imports another
back is two jobs in the wrong places), and the layers keep to their jobs: the front ends
(commands/, web/) call the core and never each other, and rendering/ runs no SQL. Every
import counts: inside functions, relative ones, and the parent packages an import runs
(`import pgallery.commands.search` runs pgallery/commands/__init__.py)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cli" / "pgallery"


def _module(path: Path) -> str:
    parts = ("pgallery",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path, modules: set[str]) -> set[str]:
    """Every module of the package that ``path`` imports, with the parent packages each
    import runs (the root package pgallery, whose __init__ imports nothing, left out)."""
    own = _module(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            found |= {".".join(parts[:i]) for i in range(2, len(parts) + 1)}
    return found & modules


def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_module_imports_itself_back():
    paths = {_module(p): p for p in PACKAGE.rglob("*.py")}
    # A package an importer sits in is already being imported: no edge to it.
    graph = {name: _imported(path, set(paths)) - {name} - _ancestors(name)
             for name, path in paths.items()}
    cycles = []

    def visit(name, trail):
        for other in sorted(graph[name]):
            if other in trail:
                cycles.append(" -> ".join(trail[trail.index(other):] + [other]))
            elif other not in done:
                visit(other, trail + [other])
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert not cycles, cycles


def _layer(name: str) -> str:
    return name.split(".")[1] if name.count(".") >= 1 else ""


def test_the_front_ends_use_the_core_never_each_other():
    """commands/ (the CLI) and web/ (the server) are adapters over the core: web/ never
    imports commands/, the core imports neither, and of the CLI only `pgallery serve`
    (which starts the server) imports web/."""
    paths = {_module(p): p for p in PACKAGE.rglob("*.py")}
    entry_points = {"pgallery.__main__", "pgallery.commands.serve"}
    wrong = []
    for name, path in sorted(paths.items()):
        layer = _layer(name)
        for other in sorted(_imported(path, set(paths))):
            target = _layer(other)
            if target in ("commands", "web") and target != layer and name not in entry_points:
                wrong.append(f"{name} imports {other}")
    assert wrong == []


def test_rendering_runs_no_sql():
    """rendering/ turns data into tables and pages; the database is the core's: no module
    there imports psycopg, the database, the search layer or the core, nor calls
    execute/cursor on anything."""
    banned = ("psycopg", "pgallery.database", "pgallery.search", "pgallery.flow",
              "pgallery.gallery", "pgallery.tuning")
    wrong = []
    for path in sorted((PACKAGE / "rendering").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            wrong += [f"{path.name} imports {n}" for n in names
                      if n.startswith(banned) and (n in banned or n.startswith(
                          tuple(b + "." for b in banned)))]
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("execute", "cursor", "fetchone", "fetchall")):
                wrong.append(f"{path.name}:{node.lineno} calls .{node.func.attr}()")
    assert wrong == []


def test_the_import_rules_see_every_form_of_import(tmp_path):
    """The rules are only as good as _imported: each way of importing web/ -> commands/
    is one it reports."""
    modules = {"pgallery.commands", "pgallery.commands.search", "pgallery.web",
               "pgallery.web.service"}
    web = tmp_path / "pgallery" / "web"
    web.mkdir(parents=True)
    forms = ["from pgallery import commands", "import pgallery.commands.search",
             "from pgallery.commands.search import combine",
             "def f():\n    from pgallery.commands import search", "from ..commands import x"]
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "pgallery"
    try:
        for form in forms:
            (web / "service.py").write_text(form + "\n")
            assert "pgallery.commands" in _imported(web / "service.py", modules), form
    finally:
        PACKAGE = saved


def test_every_name_the_benchmarks_import_from_pgallery_exists():
    """bench/ imports inside its functions too, where a renamed or moved function only
    fails once a long benchmark reaches it: every `from pgallery... import name` in bench/
    and its subfolders names something that is there."""
    import importlib

    missing = []
    paths = sorted((PACKAGE.parents[1] / "bench").rglob("*.py"))
    assert len(paths) > 10, "bench/ has moved: this test no longer sees its scripts"
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pgallery"):
                module = importlib.import_module(node.module)
                missing += [f"{path.relative_to(PACKAGE.parents[1])}: {node.module}.{alias.name}"
                            for alias in node.names
                            if not hasattr(module, alias.name)
                            and importlib.util.find_spec(f"{node.module}.{alias.name}") is None]
    assert missing == []
