"""The package's layout: no import cycles, dependencies that point one way, one naming scheme.

The import graph is read from the sources with :mod:`ast` (module-level and function-level
imports alike: a cycle through a function's import is still one a maintainer must untangle).
An import of a package's submodule is an edge to that submodule, not to the packages above it,
as import checkers such as grimp count them. The checker itself is tested on a small fake package
with a cycle, so a broken reader cannot pass in silence.

No module has more than :data:`MAX_MODULE_LINES` lines (issue 24): a longer one is split by
job, as ``handbook/exercises/peer_graders/`` was.

The naming scheme (README, "Layout"): a chapter is ``notebooks/NN_topic.ipynb``; what is
numbered by chapter uses ``NN`` (``handbook/exercises/chNN.py``, ``tests/test_exercises_chNN.py``,
``notebooks/figures/chNN-*.svg``); what is named by subject uses ``topic`` (``handbook/<topic>.py``
or ``handbook/<topic>/``, ``handbook/plots/<topic>.py``, ``tests/test_<topic>*.py``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "handbook"
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

#: Modules a lesson must not import: they run notebooks and build the book.
PIPELINE = ("handbook.runner", "handbook.book", "handbook.cli")
#: The one way a lesson may reach the pipeline, and why: chapter 10 measures it (claim C23).
LESSON_PIPELINE_USES = {
    ("handbook.toolchain", "handbook.book"): {"chapter_intervals"},
}
#: Chapters whose figures come from modules other chapters share, not a plots module of their own.
NO_PLOTS_MODULE = {
    "digits": "chapter 0 draws with the common plots (plots/common.py: learning curves, "
    "confusion matrix), which later chapters reuse",
}


# Reading the import graph --------------------------------------------------------------------


def module_names(source_root: Path, package: str) -> dict[str, Path]:
    """``{module name: file}`` for every module of ``package`` under ``source_root``."""
    modules = {}
    for path in sorted((source_root / package).rglob("*.py")):
        parts = path.relative_to(source_root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _absolute(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = current.split(".") if is_package else current.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, node.module] if node.module else parts)


def imports_of(tree: ast.AST, current: str, is_package: bool, modules: Iterable[str]):
    """``[(imported module, names taken from it)]`` for every import in ``tree``, at any depth,
    restricted to ``modules``; ``names`` is empty for ``import x`` and for a submodule taken by
    ``from package import submodule``."""
    known = set(modules)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, set()) for alias in node.names if alias.name in known]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, current, is_package)
            names = set()
            for alias in node.names:
                if f"{source}.{alias.name}" in known:
                    found.append((f"{source}.{alias.name}", set()))
                else:
                    names.add(alias.name)
            if names and source in known:
                found.append((source, names))
    return found


def import_graph(source_root: Path, package: str) -> dict[str, dict[str, set[str]]]:
    """``{module: {imported module: names it takes}}`` for the package's own modules."""
    modules = module_names(source_root, package)
    graph: dict[str, dict[str, set[str]]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = graph.setdefault(module, {})
        for target, names in imports_of(tree, module, path.name == "__init__.py", modules):
            if target != module:
                edges.setdefault(target, set()).update(names)
    return graph


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) through each group of modules that import each other
    (Tarjan's strongly connected components, then a path around each group)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:  # recursion depth is bounded by the package's size
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                connect(target)
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
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_within(graph, group) for group in sorted(groups)]


def _cycle_within(graph: Mapping[str, Iterable[str]], group: list[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph.get(node, ())):
                if target == start:
                    return [*paths[node], start]
                if target in members and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {group}")  # Tarjan's groups always have one


#: The most lines a module of the package may have (issue 24): past it, split it by job.
MAX_MODULE_LINES = 1000


def long_modules(source_root: Path, package: str, limit: int) -> list[tuple[str, int]]:
    """``[(file relative to source_root, lines)]`` for each module of ``package`` with more than
    ``limit`` lines."""
    counts = [
        (
            path.relative_to(source_root).as_posix(),
            len(path.read_text(encoding="utf-8").splitlines()),
        )
        for path in module_names(source_root, package).values()
    ]
    return [(name, count) for name, count in counts if count > limit]


def _topics() -> dict[str, str]:
    """``{topic: NN}`` of the book's chapters."""
    return {path.stem[3:]: path.stem[:2] for path in CHAPTERS}


def _is_lesson(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 1 and parts[1] in _topics()


GRAPH = import_graph(ROOT, PACKAGE)


# The checker, on a package made to fail ----------------------------------------------------


def _fake_package(root: Path, files: Mapping[str, str]) -> None:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


def test_the_checker_finds_a_cycle_through_a_function_level_and_a_relative_import(tmp_path):
    _fake_package(
        tmp_path,
        {
            "fake/__init__.py": "",
            "fake/a.py": "from fake import b\n",
            "fake/b.py": "def later():\n    from . import c\n",
            "fake/c.py": "import fake.a\nfrom fake.sub.d import value\n",
            "fake/sub/__init__.py": "",
            "fake/sub/d.py": "import json\nvalue = 1\n",
        },
    )
    graph = import_graph(tmp_path, "fake")
    assert graph["fake.c"] == {"fake.a": set(), "fake.sub.d": {"value"}}
    assert find_cycles(graph) == [["fake.a", "fake.b", "fake.c", "fake.a"]]
    (tmp_path / "fake" / "c.py").write_text("from fake.sub.d import value\n")
    assert find_cycles(import_graph(tmp_path, "fake")) == []


def test_the_checker_names_every_separate_cycle():
    graph = {"p": {"q"}, "q": {"p"}, "x": {"y"}, "y": {"z"}, "z": {"x", "p"}}
    assert find_cycles(graph) == [["p", "q", "p"], ["x", "y", "z", "x"]]


def test_the_checker_names_a_module_over_the_line_limit(tmp_path):
    _fake_package(
        tmp_path,
        {"fake/__init__.py": "", "fake/long.py": "x = 1\n" * 4, "fake/short.py": "x = 1\n" * 3},
    )
    assert long_modules(tmp_path, "fake", 3) == [("fake/long.py", 4)]


# The package ---------------------------------------------------------------------------------


def test_the_graph_reads_the_package():
    assert "handbook.config" in GRAPH["handbook.claims"]
    assert {"handbook.cache", "handbook.claims", "handbook.runner"} <= set(GRAPH["handbook.book"])


def test_the_package_has_no_import_cycle():
    cycles = find_cycles(GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_lessons_do_not_import_the_book_pipeline():
    wrong = []
    for module, edges in GRAPH.items():
        if not _is_lesson(module):
            continue
        for target, names in edges.items():
            if target not in PIPELINE:
                continue
            allowed = LESSON_PIPELINE_USES.get((module, target))
            if allowed is None or not names or not names <= allowed:
                wrong.append(f"{module} imports {target} ({', '.join(sorted(names)) or 'all'})")
    assert not wrong, "a lesson that runs notebooks:\n" + "\n".join(wrong)


def test_the_models_layer_imports_no_lesson():
    wrong = [
        f"{module} imports {target}"
        for module, edges in GRAPH.items()
        if module.startswith("handbook.models")
        for target in edges
        if _is_lesson(target)
    ]
    assert not wrong, "the models layer must not depend on a chapter:\n" + "\n".join(wrong)


def test_every_module_says_what_it_is():
    """Each module's docstring starts with a line naming its role; a lesson's names its chapter."""
    for module, path in module_names(ROOT, PACKAGE).items():
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        first = docstring.splitlines()[0].strip() if docstring else ""
        assert first, f"{path.relative_to(ROOT)}: no docstring, or its first line is empty"
        topic = module.split(".")[1] if "." in module else ""
        if module == f"handbook.{topic}" and topic in _topics():
            number = int(_topics()[topic])
            assert re.search(rf"\bchapter {number}\b", first, re.IGNORECASE), (
                f"{path.relative_to(ROOT)}: the first line should name chapter {number}"
            )


def test_no_module_is_over_a_thousand_lines():
    assert len(module_names(ROOT, PACKAGE)) > 1, "no modules found under handbook/"
    long = long_modules(ROOT, PACKAGE, MAX_MODULE_LINES)
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split each by job):\n" + "\n".join(
        f"{name}: {count} lines" for name, count in long
    )


# The naming scheme ---------------------------------------------------------------------------


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda path: path.stem)
def test_a_chapter_s_files_follow_the_naming_scheme(notebook):
    number, topic = notebook.stem[:2], notebook.stem[3:]
    expected = {
        f"handbook/{topic}.py or handbook/{topic}/": (ROOT / "handbook" / f"{topic}.py").is_file()
        or (ROOT / "handbook" / topic / "__init__.py").is_file(),
        f"handbook/exercises/ch{number}.py": (
            ROOT / "handbook" / "exercises" / f"ch{number}.py"
        ).is_file(),
        f"tests/test_exercises_ch{number}.py": (
            ROOT / "tests" / f"test_exercises_ch{number}.py"
        ).is_file(),
        f"notebooks/figures/ch{number}-*.svg": any(
            (ROOT / "notebooks" / "figures").glob(f"ch{number}-*.svg")
        ),
        f"tests/test_{topic}*.py": any((ROOT / "tests").glob(f"test_{topic}*.py")),
    }
    if topic not in NO_PLOTS_MODULE:
        expected[f"handbook/plots/{topic}.py"] = (
            ROOT / "handbook" / "plots" / f"{topic}.py"
        ).is_file()
    missing = [name for name, present in expected.items() if not present]
    assert not missing, f"{notebook.name}: missing {', '.join(missing)}"


def test_the_exceptions_to_the_naming_scheme_are_still_exceptions():
    for topic, reason in NO_PLOTS_MODULE.items():
        assert topic in _topics(), f"{topic} is no chapter's topic any more"
        assert not (ROOT / "handbook" / "plots" / f"{topic}.py").exists(), (
            f"handbook/plots/{topic}.py exists now: drop the exception ({reason})"
        )


def test_nothing_is_numbered_for_a_chapter_that_does_not_exist():
    numbers = set(_topics().values())
    numbered = [
        *(ROOT / "handbook" / "exercises").glob("ch[0-9][0-9].py"),
        *(ROOT / "tests").glob("test_exercises_ch[0-9][0-9].py"),
        *(ROOT / "notebooks" / "figures").glob("ch[0-9][0-9]-*.svg"),
    ]
    strays = [
        str(path.relative_to(ROOT))
        for path in numbered
        if re.search(r"ch(\d\d)", path.name).group(1) not in numbers
    ]
    assert not strays, f"numbered for no chapter: {strays}"


def test_plots_modules_are_named_by_a_chapter_s_topic_or_shared():
    shared = {"__init__", "common", "style", "ledger"}
    names = {path.stem for path in (ROOT / "handbook" / "plots").glob("*.py")}
    strays = sorted(names - shared - set(_topics()))
    assert not strays, f"handbook/plots/ modules named by no chapter's topic: {strays}"
