"""The product's modules import each other without cycles (a module that imports another
back is two jobs in the wrong places), counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cli" / "pgallery"


def _module(path: Path) -> str:
    parts = ("pgallery",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in modules}
    return found


def test_no_module_imports_itself_back():
    paths = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: _imports(path, set(paths)) - {name} for name, path in paths.items()}
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
