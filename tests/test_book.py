"""The book's structure: table of contents, notebooks' conventions, environment files."""

import ast
import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _toc_files(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        if "file" in node:
            files.append(node["file"])
        if "root" in node:
            files.append(node["root"])
        for value in node.values():
            files.extend(_toc_files(value))
    elif isinstance(node, list):
        for item in node:
            files.extend(_toc_files(item))
    return files


TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
TOC_FILES = _toc_files(TOC)


def test_every_page_and_notebook_is_in_the_table_of_contents():
    pages = [f"book/{path.stem}" for path in (ROOT / "book").glob("*.md")]
    notebooks = [f"notebooks/{path.stem}" for path in NOTEBOOKS]
    missing = sorted(set(pages + notebooks) - set(TOC_FILES))
    assert not missing, f"add these to _toc.yml: {missing}"


def test_every_table_of_contents_entry_exists():
    for entry in TOC_FILES:
        assert any((ROOT / f"{entry}{suffix}").is_file() for suffix in (".md", ".ipynb")), entry
    assert len(TOC_FILES) == len(set(TOC_FILES)), "an entry appears twice in _toc.yml"


def test_config_renders_without_executing():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert all((ROOT / bib).is_file() for bib in config["bibtex_bibfiles"])
    assert config["launch_buttons"]["colab_url"] and config["launch_buttons"]["binderhub_url"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebooks_are_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count)
    ]
    assert not dirty, f"{path.name}: clear the outputs of cells {dirty}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_first_code_cell_holds_the_parameters(path):
    notebook = nbformat.read(path, as_version=4)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])
    assert "SMOKE = handbook.smoke_mode()" in first.source
    assert re.search(r"^SEED = \d+", first.source, re.MULTILINE)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_every_chapter_has_three_self_checked_exercises(path):
    notebook = nbformat.read(path, as_version=4)
    solutions = [cell for cell in notebook.cells if "solution" in cell.metadata.get("tags", [])]
    assert len(solutions) >= 3
    for cell in solutions:
        assert "hide-input" in cell.metadata["tags"]
        position = notebook.cells.index(cell)
        check = notebook.cells[position + 1]
        assert check.cell_type == "code" and ".check_" in check.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebooks_define_no_reusable_functions_outside_exercises(path):
    # Allowed outside exercises: code the lesson builds in cells, which a later guard cell
    # (tagged remove-cell) compares with the package, and a find-the-bug exercise's buggy_*.
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or "solution" in cell.metadata.get("tags", []):
            continue
        tree = ast.parse(cell.source)
        guards = [
            later.source
            for later in notebook.cells[index + 1 :]
            if "remove-cell" in later.metadata.get("tags", [])
        ]
        definitions = [
            node.name
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and not node.name.startswith("buggy_")
            and not any(re.search(rf"\b{node.name}\b", guard) for guard in guards)
        ]
        assert not definitions, f"{path.name} cell {index}: move {definitions} into handbook"


def _requirement_floors(requirements) -> dict[str, str]:
    floors = {}
    for requirement in requirements:
        match = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?(.*)", requirement.replace(" ", ""))
        name, _extras, specifier = match.groups()  # conda has no extras: it names a package
        floors[name.lower().replace("_", "-")] = specifier
    return floors


def test_environment_yml_matches_pyproject():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # a dev dependency on Python 3.10 (see pyproject.toml)
        import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # conda's environment pins Python 3.11: requirements for older Pythons only do not apply
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    expected = _requirement_floors(r for r in requirements if "python_version" not in r)
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_names = {"pytorch": "torch", "uvicorn-standard": "uvicorn"}
    (pip_section,) = [item["pip"] for item in environment["dependencies"] if isinstance(item, dict)]
    listed = _requirement_floors(
        [
            item
            for item in environment["dependencies"]
            if isinstance(item, str) and item != "pip" and not item.startswith("python=")
        ]
        + [item for item in pip_section if item != "-e ."]  # packages conda-forge lacks
    )
    listed = {conda_names.get(name, name): floor for name, floor in listed.items()}
    assert listed == expected
    assert pip_section[-1] == "-e ."
    assert "conda-forge" in environment["channels"]


def test_readme_shows_the_two_commands_first():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make book", "make test"]
    for target in ("make lab", "make student", "make bench", "handbook grade"):
        assert target in readme
    makefile = (ROOT / "Makefile").read_text()
    for target in ("book:", "test:", "lab:", "student:", "bench:"):
        assert f"\n{target}" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _make_recipe(target: str) -> str:
    """The recipe lines of ``target`` in the Makefile, continuation lines joined."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert match, f"no {target} target in the Makefile"
    return match.group(1)


def test_make_test_executes_each_chapter_once_and_the_student_edition_under_nbval():
    recipe = _make_recipe("test")
    assert "-m handbook book --smoke" in recipe  # papermill: the source notebooks, strict
    student = next(line for line in recipe.splitlines() if "--nbval-lax" in line)
    assert 'HANDBOOK_EXERCISES_EXPECT="not done"' in student and "HANDBOOK_SMOKE=1" in student
    assert "/student" in student and "--nbval-lax notebooks" not in recipe
    # what the student editions write (chapter 10's MLflow runs and saved model, chapter 5's
    # model) goes under the smoke folder, never over the full-mode book of `make book`
    assert "HANDBOOK_BUILD_DIR=$(SMOKE)/" in student and "HANDBOOK_LEDGER_DIR=$(SMOKE)/" in student
    assert "-m handbook student --out" in recipe
    assert "--ignore=tests/browser" in recipe and "-m pytest tests/browser" in recipe


def _code(cell) -> str:
    """A code cell's Python, without IPython's magics and shell lines."""
    return "\n".join(
        line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))
    )


def _assert_lines(cell) -> list[str]:
    """The ``assert`` statements of a code cell (found in its syntax tree), as written."""
    lines = _code(cell).splitlines()
    return [
        lines[node.lineno - 1].strip()
        for node in ast.walk(ast.parse(_code(cell)))
        if isinstance(node, ast.Assert)
    ]


def test_build_guards_are_out_of_the_reading_path():
    """A code cell that asserts guards the build: tagged ``remove-cell``, Jupyter Book leaves it
    off the site (tests/test_book_site.py checks that it does) and the notebook still runs it."""
    left = {}
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type == "code" and "remove-cell" not in cell.metadata.get("tags", []):
                for line in _assert_lines(cell):
                    left.setdefault(path.name, []).append(f"  cell {index}: {line[:90]}")
    count = sum(len(lines) for lines in left.values())
    assert not left, (
        f"{count} assert statements in the reading path (tag their cells remove-cell):\n"
        + "\n".join(f"{name}: {len(lines)}\n" + "\n".join(lines) for name, lines in left.items())
    )


def test_hidden_cells_show_nothing_the_reader_needs():
    """The site drops a ``remove-cell`` cell with its outputs: it must not print or display."""
    showing = []
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code" or "remove-cell" not in cell.metadata.get("tags", []):
                continue
            tree = ast.parse(_code(cell))
            calls = {
                node.func.id
                for node in ast.walk(tree)
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            }
            if calls & {"print", "display"}:
                showing.append(f"{path.name} cell {index}: {sorted(calls & {'print', 'display'})}")
    assert not showing, "hidden on the site but printing for the reader:\n" + "\n".join(showing)


def _page_title(entry: str) -> str | None:
    page = ROOT / f"{entry}.md"
    if not page.is_file():
        return None  # a notebook: its title is its first cell's heading, never a caption
    return next(
        (line[2:].strip() for line in page.read_text().splitlines() if line.startswith("# ")),
        None,
    )


def test_the_sidebar_names_each_part_once():
    """A caption and a page of the same title would show a part twice in the site's sidebar."""
    captions = [part["caption"] for part in TOC.get("parts", []) if "caption" in part]
    titles = {_page_title(entry) for entry in TOC_FILES} - {None}
    twice = sorted(set(captions) & titles)
    assert not twice, f"both a caption and a page title in _toc.yml: {twice}"
    assert len(captions) == len(set(captions)), "a caption appears twice"
