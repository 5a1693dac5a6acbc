"""The house's import graph: data flows one way, and the imports say so (docs/architecture.md, "The house").

Every module of ``kbcore``, ``ingest``, ``kbqa``, ``web``, ``bench`` and ``app.py`` is parsed with
``ast``. Every import counts, also one inside a function (a lazy import that dodges a cycle is
still a cycle), and importing ``a.b.c`` counts as importing the packages ``a`` and ``a.b`` too
(Python runs their ``__init__``). The test fails on a cycle between files and on an import of a
higher layer, and names the offending edge with its file and line.

The folders say the same: each top-level package (and ``app.py``) stands on a floor, and an
import between two of them runs downward only, so the tree alone shows where a part belongs.
"""

from __future__ import annotations

import ast
import fnmatch
import itertools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("kbcore", "ingest", "kbqa", "web", "bench", "training")

# Bottom to top. A module may import its own layer or a lower one only. Exact names win over
# patterns (``ingest.__main__`` is a face, the rest of ``ingest`` is not). docs/architecture.md's house
# map mirrors this table (``test_the_docs_mirror_the_tables``).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground", ("kbcore", "kbcore.types", "kbcore.settings", "kbcore.text", "kbcore.evidence", "kbcore.markdown",
                "kbcore.extras")),
    ("store", ("kbcore.chroma", "kbcore.store", "kbcore.locks", "kbcore.store_layout", "kbcore.lexical",
               "kbcore.embeddings", "kbcore.model_build", "kbcore.e5_onnx", "kbcore.e5_weights")),
    ("ingest", ("ingest", "ingest.*")),
    ("retrieval", ("kbqa", "kbqa.retrieval", "kbqa.crosslingual", "kbqa.langchain_adapters")),
    ("answering", ("kbqa.answer_model", "kbqa.answering", "kbqa.briefing", "kbqa.llm_answering",
                   "kbqa.conversation", "kbqa.verification", "kbqa.examples", "kbqa.reader", "kbqa.reader.*")),
    ("facade", ("kbqa.knowledge_base",)),
    ("faces", ("app", "ingest.__main__", "web", "web.*")),
    ("bench", ("bench", "bench.*", "training", "training.*")),
]

# The folders (top-level packages, and app.py), bottom to top: an import between two of them
# runs downward only. ``python -m ingest`` is a face that lives in its folder: it may reach the
# ingest service and the ground, never kbqa. README.md and docs/architecture.md mirror this table.
FOLDERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground and index", ("kbcore",)),
    ("ingest", ("ingest",)),
    ("retrieval, answering, facade", ("kbqa",)),
    ("faces", ("app", "web")),
    ("bench, training", ("bench", "training")),
]

# What the faces (app.py, web/) may import from the floors below: the facade, and the ground
# (records, settings, text, Markdown escaping). Never the store, the pipeline, or the answerers'
# internals: what a face needs of those, the facade names (kbqa.knowledge_base.__all__).
FACES = ("app", "web", "web.*")
FACE_REACH = ("kbqa", "kbqa.knowledge_base", *dict(LAYERS)["ground"])

Edges = dict[str, dict[str, str]]  # importer -> imported -> "file:line" of the first import


# --- the graph ----------------------------------------------------------------------------------


def module_files(root: Path = REPO) -> dict[str, Path]:
    files = {"app": root / "app.py"}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def _imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterable[str]:
    """The known modules an import statement loads, its parent packages included."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: resolved against the importing module's package
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in known:
                yield prefix


def imports_of(source: str, module: str, known: set[str], *, filename: str = "", is_package: bool = False) -> dict[str, str]:
    """The known modules ``source`` imports anywhere (top level, functions, classes, branches),
    each with the place of its first import."""
    found: dict[str, str] = {}
    nodes = [n for n in ast.walk(ast.parse(source, filename or module)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    for node in sorted(nodes, key=lambda n: n.lineno):
        for target in _imported(node, module, is_package, known):
            if target != module:
                found.setdefault(target, f"{filename or module}:{node.lineno}")
    return found


def import_graph(root: Path = REPO) -> Edges:
    files = module_files(root)
    known = set(files)
    return {
        module: imports_of(path.read_text(encoding="utf-8"), module, known,
                           filename=str(path.relative_to(root)), is_package=path.name == "__init__.py")
        for module, path in files.items()
    }


# --- the rules ----------------------------------------------------------------------------------


def layer_of(module: str, layers: list[tuple[str, tuple[str, ...]]] = LAYERS) -> int | None:
    for i, (_, names) in enumerate(layers):
        if module in names:
            return i
    for i, (_, names) in enumerate(layers):
        if any(fnmatch.fnmatchcase(module, pattern) for pattern in names if "*" in pattern):
            return i
    return None


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges.get(node, ()):
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)

    found = []
    for group in groups:  # a shortest way from the group's first module back to itself
        start, members = group[0], set(group)
        paths = {start: [start]}
        queue = [start]
        while queue:
            node = queue.pop(0)
            for target in sorted(edges.get(node, ())):
                if target == start:
                    found.append([*paths[node], start])
                    queue = []
                    break
                if target in members and target not in paths:
                    paths[target] = [*paths[node], target]
                    queue.append(target)
    return found


def upward(edges: Edges, layers: list[tuple[str, tuple[str, ...]]] = LAYERS) -> list[str]:
    """Each import of a higher layer, described with its place."""
    found = []
    for source, targets in sorted(edges.items()):
        for target, where in sorted(targets.items()):
            below, above = layer_of(source, layers), layer_of(target, layers)
            if below is not None and above is not None and above > below:
                found.append(f"{where}: {source} ({layers[below][0]}) imports {target} ({layers[above][0]})")
    return found


def folder_graph(edges: Edges) -> Edges:
    """The import graph between folders: each module edge as an edge between the top-level
    packages of its two ends (the first place it occurs), edges inside a folder left out."""
    folders: Edges = {}
    for source, targets in sorted(edges.items()):
        top = source.split(".")[0]
        folders.setdefault(top, {})
        for target, where in targets.items():  # in the order of their lines
            if target.split(".")[0] != top:
                folders[top].setdefault(target.split(".")[0], where)
    return folders


def reaching_past(edges: Edges, sources: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    """Each import by a module matching ``sources`` of a module that neither matches ``sources``
    nor is one of ``allowed``, described with its place."""
    def matches(module: str) -> bool:
        return any(fnmatch.fnmatchcase(module, pattern) for pattern in sources)

    return [
        f"{where}: {source} imports {target}"
        for source, targets in sorted(edges.items()) if matches(source)
        for target, where in sorted(targets.items()) if not matches(target) and target not in allowed
    ]


def _describe(cycle: list[str], edges: Edges) -> str:
    return " -> ".join(cycle) + "  (" + ", ".join(edges[a][b] for a, b in itertools.pairwise(cycle)) + ")"


# --- the house ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> Edges:
    return import_graph()


def test_every_module_has_a_layer(graph):
    assert [m for m in graph if layer_of(m) is None] == [], "add these modules to LAYERS (and docs/architecture.md)"


def test_no_cycle_between_files(graph):
    found = [_describe(c, graph) for c in cycles(graph)]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_no_import_of_a_higher_layer(graph):
    found = upward(graph)
    assert not found, "imports of a higher layer:\n" + "\n".join(found)


def test_every_folder_has_a_floor(graph):
    assert [f for f in folder_graph(graph) if layer_of(f, FOLDERS) is None] == [], "add these folders to FOLDERS"


def test_no_cycle_between_folders(graph):
    folders = folder_graph(graph)
    found = [_describe(c, folders) for c in cycles(folders)]
    assert not found, "import cycles between folders:\n" + "\n".join(found)


def test_no_import_of_a_higher_folder(graph):
    found = upward(folder_graph(graph), FOLDERS)
    assert not found, "imports of a higher folder:\n" + "\n".join(found)


def test_faces_import_the_facade_and_the_ground_only(graph):
    found = reaching_past(graph, FACES, FACE_REACH)
    assert not found, "faces reaching past the facade:\n" + "\n".join(found)


def test_one_name_along_a_question():
    """A question followed from /api/search by name: the route and the facade ``search``, the
    searcher ``retrieve``s passages, the BM25 index ``rank``s chunks. No lower part reuses the
    facade's word, so a reader never lands on the wrong ``search``."""
    defined = sorted(
        module
        for module, path in module_files().items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "search"
    )
    assert defined == ["kbqa.knowledge_base", "web.api"]


def layer_table(layers: list[tuple[str, tuple[str, ...]]] = LAYERS) -> str:
    """The layer map as docs/architecture.md shows it, top layer first."""
    rows = ["| layer | modules (a module imports its own layer or lower ones only) |", "|---|---|"]
    rows += [f"| {name} | {', '.join(f'`{n}`' for n in names)} |" for name, names in reversed(layers)]
    return "\n".join(rows)


def folder_table(folders: list[tuple[str, tuple[str, ...]]] = FOLDERS) -> str:
    """The folder map as README.md and docs/architecture.md show it, top floor first."""
    rows = ["| floor | folders (a folder imports its own floor or lower ones only) |", "|---|---|"]
    rows += [f"| {name} | {', '.join(f'`{n}/`' if n != 'app' else '`app.py`' for n in names)} |"
             for name, names in reversed(folders)]
    return "\n".join(rows)


def test_the_docs_mirror_the_tables():
    """README.md shows the folders; docs/architecture.md the folders and the modules."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    architecture = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert folder_table() in readme, f"put this table in README.md's house section:\n{folder_table()}"
    assert folder_table() in architecture, f"put this table in docs/architecture.md:\n{folder_table()}"
    assert layer_table() in architecture, f"put this table in docs/architecture.md:\n{layer_table()}"


# --- the checker itself can fail ------------------------------------------------------------------


def test_a_synthetic_cycle_and_upward_edge_are_named():
    layers = [("low", ("pkg.a", "pkg.b", "pkg.c")), ("high", ("pkg.d",))]
    edges: Edges = {
        "pkg.a": {"pkg.b": "a.py:1"},
        "pkg.b": {"pkg.c": "b.py:2"},
        "pkg.c": {"pkg.a": "c.py:3", "pkg.d": "c.py:9"},
        "pkg.d": {"pkg.a": "d.py:1"},  # downward: allowed
    }
    assert cycles({"pkg.a": {"pkg.b"}, "pkg.b": set()}) == []
    found = cycles(edges)
    assert len(found) == 1 and found[0][0] == found[0][-1] == "pkg.a"
    assert _describe(found[0], edges).startswith("pkg.a -> pkg.b -> pkg.c -> pkg.a  (a.py:1, b.py:2, c.py:3")
    assert cycles({"pkg.a": {"pkg.a"}}) == [["pkg.a", "pkg.a"]]
    assert upward(edges, layers) == ["c.py:9: pkg.c (low) imports pkg.d (high)"]


def test_a_synthetic_upward_folder_edge_and_folder_cycle_are_named():
    """Each module edge here is allowed by the module layers, yet the folders import each other:
    the folder check fails where the module check passes."""
    layers = [("low", ("low.a", "high.b")), ("high", ("low.c", "high.d"))]
    folders = [("low", ("low",)), ("high", ("high",))]
    edges: Edges = {
        "low.a": {"high.b": "low/a.py:3"},  # same layer, but a lower folder importing a higher one
        "high.b": {},
        "low.c": {"low.a": "low/c.py:1"},
        "high.d": {"low.c": "high/d.py:2"},  # same layer, downward folder
    }
    assert upward(edges, layers) == [] and cycles(edges) == []
    between = folder_graph(edges)
    assert between == {"low": {"high": "low/a.py:3"}, "high": {"low": "high/d.py:2"}}
    assert upward(between, folders) == ["low/a.py:3: low (low) imports high (high)"]
    assert [_describe(c, between) for c in cycles(between)] == ["high -> low -> high  (high/d.py:2, low/a.py:3)"]


def test_a_synthetic_face_reaching_past_the_facade_is_named():
    edges: Edges = {
        "web.api": {"web.errors": "web/api.py:1", "kbqa.knowledge_base": "web/api.py:2", "kbcore.types": "web/api.py:3",
                    "kbcore.chroma": "web/api.py:4"},
        "kbqa.knowledge_base": {"kbcore.chroma": "kbqa/knowledge_base.py:1"},  # not a face: not checked
    }
    assert reaching_past(edges, FACES, FACE_REACH) == ["web/api.py:4: web.api imports kbcore.chroma"]


def test_imports_in_functions_relative_ones_and_parent_packages_count():
    known = {"pkg", "pkg.low", "pkg.high", "pkg.sub", "pkg.sub.leaf", "other"}
    source = (
        "import os\n"
        "from pkg import low\n"
        "def f():\n"
        "    from pkg.high import thing  # lazy, still an edge\n"
        "class C:\n"
        "    def g(self):\n"
        "        import pkg.sub.leaf\n"
        "from . import high\n"
        "from .sub import leaf\n"
    )
    found = imports_of(source, "pkg.mod", known)
    assert set(found) == {"pkg", "pkg.low", "pkg.high", "pkg.sub", "pkg.sub.leaf"}
    assert found["pkg.high"] == "pkg.mod:4"
    assert set(imports_of("from .. import other_name\nfrom ..low import x\n", "pkg.sub.leaf", known)) == {
        "pkg", "pkg.low"
    }


def test_layer_patterns_and_exact_names():
    assert [LAYERS[layer_of(m)][0] for m in ("ingest.__main__", "ingest.loaders", "kbcore", "web.api", "app")] == [
        "faces", "ingest", "ground", "faces", "faces"
    ]
    assert layer_of("kbqa.something_new") is None
    assert re.fullmatch(r"[a-z0-9_.*]+", "".join(n for _, names in LAYERS + FOLDERS for n in names))
    assert layer_of("kbcore", FOLDERS) == 0 and layer_of("kbcore.store", FOLDERS) is None
