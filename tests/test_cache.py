"""The execution cache: which chapters a change re-executes, what invalidates a key, and what a
cached run leaves in the ledger."""

import ast
import json
import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from handbook import book, cache, config, runner

ROOT = config.project_root()
CHAPTERS = config.chapter_notebooks()
ENVIRONMENT = book.key_environment(runner.notebook_environment(smoke=True, strict_exercises=True))


def _chapters_using(relative_module: str) -> set[str]:
    """The chapters whose key includes ``handbook/<relative_module>``."""
    using = set()
    for chapter in CHAPTERS:
        components = cache.key_components(chapter, environment=ENVIRONMENT, package_root=ROOT)
        if f"module:handbook/{relative_module}" in components:
            using.add(chapter.stem)
    return using


def _keys(root: Path) -> dict:
    return {
        chapter.stem: cache.digest(
            cache.key_components(chapter, environment=ENVIRONMENT, package_root=root)
        )
        for chapter in CHAPTERS
    }


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    """A copy of the package to edit, and every chapter's key computed over it unedited."""
    root = tmp_path_factory.mktemp("copy") / "root"
    shutil.copytree(ROOT / "handbook", root / "handbook", ignore=shutil.ignore_patterns("*.pyc"))
    return root, _keys(root)


@pytest.fixture
def stale_after_editing(package_copy):
    """``stale_after_editing("plots/ethics.py", ...)``: the chapters whose key changes when
    these modules of the copy are edited; the edits are undone after the test."""
    root, before = package_copy
    originals = {}

    def edit(*relative_modules: str) -> set[str]:
        for relative in relative_modules:
            module = root / "handbook" / relative
            originals.setdefault(module, module.read_text())
            module.write_text(originals[module] + "\n# an edit\n")
        after = _keys(root)
        return {stem for stem, key in after.items() if key != before[stem]}

    yield edit
    for module, text in originals.items():
        module.write_text(text)


def test_editing_a_chapter_module_reexecutes_exactly_the_chapters_that_import_it(
    stale_after_editing,
):
    assert stale_after_editing("multimodal.py") == {"08_multimodal"}


def test_an_edit_reaches_chapters_that_import_the_module_indirectly(stale_after_editing):
    """models/transformer.py is imported by chapter 1 and, through translation.py and other
    chapter modules, by later chapters: every one of them must run again, and only those."""
    expected = _chapters_using("models/transformer.py")
    assert {"01_attention", "02_optimization"} <= expected
    assert "00_digits" not in expected and "09_ethics" not in expected
    assert stale_after_editing("models/transformer.py") == expected


def test_a_figure_module_invalidates_only_the_chapter_that_draws_it(stale_after_editing):
    assert stale_after_editing("plots/ethics.py") == {"09_ethics"}
    everything = {chapter.stem for chapter in CHAPTERS}
    assert stale_after_editing("plots/ethics.py", "plots/style.py") == everything


def test_a_changed_package_version_or_mode_invalidates_the_key(monkeypatch):
    chapter = ROOT / "notebooks" / "00_digits.ipynb"
    components = cache.key_components(chapter, environment=ENVIRONMENT, package_root=ROOT)
    assert "package:torch" in components and "package:scikit-learn" in components
    full = book.key_environment(runner.notebook_environment(smoke=False, strict_exercises=True))
    in_full_mode = cache.key_components(chapter, environment=full, package_root=ROOT)
    assert cache.digest(in_full_mode) != cache.digest(components)
    assert cache.explain_change(components, in_full_mode) == "mode or parameters changed"

    real_versions = cache.package_versions

    def newer_torch(names):
        versions = real_versions(names)
        if "torch" in versions:
            versions["torch"] += ".post1"
        return versions

    monkeypatch.setattr(cache, "package_versions", newer_torch)
    upgraded = cache.key_components(chapter, environment=ENVIRONMENT, package_root=ROOT)
    assert cache.digest(upgraded) != cache.digest(components)
    assert "torch" in cache.explain_change(components, upgraded)


def test_outputs_and_execution_counts_do_not_change_the_key(tmp_path):
    notebook = new_notebook(cells=[new_code_cell("x = 1"), new_markdown_cell("# Title")])
    executed = nbformat.from_dict(json.loads(json.dumps(notebook)))
    executed.cells[0].outputs = [nbformat.v4.new_output("stream", text="noise")]
    executed.cells[0].execution_count = 7
    assert cache.notebook_digest(executed) == cache.notebook_digest(notebook)
    executed.cells[1].source = "# Another title"
    assert cache.notebook_digest(executed) != cache.notebook_digest(notebook)


# Reading imports, on a small package of its own ------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> cache.Package:
    for relative, source in files.items():
        path = tmp_path / "handbook" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return cache.Package(tmp_path)


PACKAGE_FILES = {
    "__init__.py": "from handbook.config import smoke_mode\n",
    "config.py": "def smoke_mode():\n    return False\n",
    "figures/__init__.py": (
        "from handbook.figures.alpha import draw_alpha\n"
        "from handbook.figures.beta import draw_beta\n"
    ),
    "figures/style.py": "def pyplot():\n    return None\n",
    "figures/alpha.py": "from .style import pyplot\n\ndef draw_alpha():\n    return pyplot()\n",
    "figures/beta.py": "import numpy as np\n\ndef draw_beta():\n    return np.zeros(1)\n",
    "lesson.py": "from handbook import figures\n\ndef run():\n    return figures.draw_alpha()\n",
}


def _dependencies(package: cache.Package, code: str) -> cache.Dependencies:
    return cache.module_dependencies(cache.parse_notebook_code([code]), package)


def test_a_reexported_name_resolves_to_the_module_that_defines_it(tmp_path):
    package = _package(tmp_path, PACKAGE_FILES)
    found = _dependencies(package, "from handbook import lesson\nlesson.run()")
    assert found.modules == {
        "handbook/__init__.py",
        "handbook/lesson.py",
        "handbook/figures/__init__.py",
        "handbook/figures/alpha.py",
        "handbook/figures/style.py",
    }
    assert found.third_party == set()
    direct = _dependencies(package, "from handbook.figures import draw_beta\ndraw_beta()")
    assert "handbook/figures/beta.py" in direct.modules
    assert "handbook/figures/alpha.py" not in direct.modules
    assert direct.third_party == {"numpy"}


def test_a_package_used_as_a_value_counts_whole(tmp_path):
    package = _package(tmp_path, PACKAGE_FILES)
    found = _dependencies(package, "from handbook import figures\nhelp(figures)")
    assert {"handbook/figures/alpha.py", "handbook/figures/beta.py"} <= found.modules
    star = _dependencies(package, "from handbook.figures import *")
    assert {"handbook/figures/alpha.py", "handbook/figures/beta.py"} <= star.modules


def test_import_forms_and_magics(tmp_path):
    package = _package(tmp_path, PACKAGE_FILES)
    code = "%matplotlib inline\n!ls\nimport handbook.config as settings\nsettings.smoke_mode()"
    found = _dependencies(package, code)
    assert "handbook/config.py" in found.modules and "handbook/lesson.py" not in found.modules
    dotted = _dependencies(package, "import handbook\nhandbook.smoke_mode()")
    assert "handbook/config.py" in dotted.modules
    with pytest.raises(SyntaxError, match="code cell 0"):
        cache.parse_notebook_code(["def broken(:"])


def _top_level_only_defines(path: Path) -> list[str]:
    """Statements at a module's top level that do more than define names."""
    allowed = (
        ast.Import,
        ast.ImportFrom,
        ast.FunctionDef,
        ast.AsyncFunctionDef,
        ast.ClassDef,
        ast.Assign,
        ast.AnnAssign,
    )
    tree = ast.parse(path.read_text())
    offending = []
    for index, node in enumerate(tree.body):
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if not isinstance(node, allowed):
            offending.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return offending


@pytest.mark.parametrize("package", ["datasets", "models", "plots"])
def test_reexporting_packages_only_define_names_at_import(package):
    """What makes resolving a name to one submodule exact (see handbook.cache)."""
    files = sorted((ROOT / "handbook" / package).glob("*.py"))
    assert len(files) >= 4
    assert [line for path in files for line in _top_level_only_defines(path)] == []


# The cache around real executions ----------------------------------------------------------------


def _recording_notebook(path: Path, value: float) -> Path:
    code = (
        "from handbook import claims\n"
        f"claims.record('C1', claim='probe', article_value='1', measured={value}, unit='x', "
        f"verdict='reproduced', note='probe', chapter='{path.stem}')"
    )
    nbformat.write(new_notebook(cells=[new_code_cell(code)]), path)
    return path


def test_a_second_run_reuses_the_executed_copy_and_keeps_the_records(tmp_path, capsys):
    notebook = _recording_notebook(tmp_path / "probe.ipynb", 2.0)
    ledger = tmp_path / "ledger"
    environment = runner.notebook_environment(smoke=True, strict_exercises=True, ledger_dir=ledger)
    options = {"environment": environment, "cache_dir": tmp_path / "cache"}
    first = book.execute([notebook], tmp_path / "out", **options)[0]
    assert first.ok and not first.cached, first.error
    record = (ledger / "C1.json").read_text()
    assert "not executed yet" in capsys.readouterr().out

    second = book.execute([notebook], tmp_path / "out", **options)[0]
    assert second.cached and (ledger / "C1.json").read_text() == record
    assert "probe.ipynb ... cached" in capsys.readouterr().out

    (ledger / "C1.json").unlink()  # a record gone: the chapter runs again and writes it back
    third = book.execute([notebook], tmp_path / "out", **options)[0]
    assert not third.cached and (ledger / "C1.json").is_file()
    assert "its ledger record C1 is missing" in capsys.readouterr().out

    _recording_notebook(notebook, 3.0)  # an edit: the chapter's record is replaced
    fourth = book.execute([notebook], tmp_path / "out", **options)[0]
    assert not fourth.cached and "notebook changed" in fourth.reason
    assert json.loads((ledger / "C1.json").read_text())["measured"] == 3.0

    forced = book.execute([notebook], tmp_path / "out", force=True, **options)[0]
    assert not forced.cached and forced.reason == "--force"
