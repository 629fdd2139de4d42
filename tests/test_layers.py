"""The import graph of the shipped packages, read from their source: no cycles, layers one way.

Every import counts, including one inside a function: a late import that dodges a cycle still
is one. The rules (DESIGN.md, "Layout"):
- storage imports nothing above it; indexer does not import search_api;
- search_api uses the indexer only through its public surface, SEARCH_API_MAY_IMPORT below;
- search_api.cli, the CLI's composition root, may also import the indexer's command modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("storage", "indexer", "search_api")
ABOVE = {"storage": ("indexer", "search_api"), "indexer": ("search_api",), "search_api": ()}
# What the service needs from the indexer, and no more: encoders (the encoding package), the
# encode-then-search step (query), writes (pipeline, with its document type in models), FAQ
# files and matching (faq), settings, file reading (sources), how documents split into passages
# (chunking) and the cross-encoder layer beside the encoders (rerank).
SEARCH_API_MAY_IMPORT = ("indexer.encoding", "indexer.query", "indexer.pipeline", "indexer.faq",
                         "indexer.settings", "indexer.sources", "indexer.models",
                         "indexer.chunking", "indexer.rerank")
COMPOSITION_ROOT = "search_api.cli"
COMMAND_MODULES = ("indexer.cli", "indexer.faq_cli", "indexer.cli_options", "indexer.demo")


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module in the shipped packages under `root`."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The project modules that module `name` imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")[: len(name.split(".")) - node.level + int(is_package)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports, for the shipped packages under `root`."""
    known = modules(root)
    return {name: set(_imported(name, path, known)) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (top := stack.pop()) != node:
                component.append(top)
            if component:
                found.append(sorted([node, *component]))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Each import that goes up a layer, or from search_api past the indexer's public surface."""
    wrong = []
    for source, targets in sorted(graph.items()):
        top = source.partition(".")[0]
        for target in sorted(targets):
            if _within(target, ABOVE[top]):
                wrong.append(f"{source} imports {target}, a layer above it")
            elif top == "search_api" and target.startswith("indexer") \
                    and not _within(target, SEARCH_API_MAY_IMPORT) \
                    and not (source == COMPOSITION_ROOT and target in COMMAND_MODULES):
                wrong.append(f"{source} imports {target}, an indexer internal")
    return wrong


def test_the_shipped_packages_have_no_import_cycle() -> None:
    assert cycles(import_graph(ROOT)) == []


def test_imports_follow_the_layers() -> None:
    assert layer_violations(import_graph(ROOT)) == []


def test_the_graph_sees_the_tree() -> None:
    graph = import_graph(ROOT)
    assert "indexer.pipeline" in graph["search_api.services.documents"]
    assert "storage" in graph["indexer.pipeline"] or any(t.startswith("storage.")
                                                         for t in graph["indexer.pipeline"])


def _write(root: Path, files: dict[str, str]) -> None:
    for package in PACKAGES:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("", encoding="utf-8")
    for name, source in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(source, encoding="utf-8")


def test_a_planted_cycle_is_found_even_behind_a_late_import(tmp_path: Path) -> None:
    _write(tmp_path, {
        "indexer/a.py": "from indexer.b import thing\n",
        "indexer/b.py": "def thing():\n    from indexer import a  # late\n    return a\n",
        "indexer/c.py": "from .a import thing\n",
    })
    assert cycles(import_graph(tmp_path)) == [["indexer.a", "indexer.b"]]


def test_planted_bad_imports_are_found(tmp_path: Path) -> None:
    _write(tmp_path, {
        "indexer/encoding/__init__.py": "",
        "indexer/encoding/encoders.py": "",
        "indexer/internal.py": "",
        "indexer/cli.py": "",
        "storage/low.py": "import indexer.internal\n",
        "search_api/ok.py": "from indexer.encoding.encoders import x\nfrom indexer.encoding import y\n",
        "search_api/bad.py": "from indexer import internal\n",
        "search_api/also_bad.py": "from indexer.cli import cli\n",
        "search_api/cli.py": "from indexer.cli import cli\n",
    })
    assert layer_violations(import_graph(tmp_path)) == [
        "search_api.also_bad imports indexer.cli, an indexer internal",
        "search_api.bad imports indexer.internal, an indexer internal",
        "storage.low imports indexer.internal, a layer above it",
    ]
