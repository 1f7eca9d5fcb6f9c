"""The student edition of a chapter notebook: every solution replaced by a stub to fill in.

In a source notebook an exercise's solution is a code cell tagged ``solution``, ``hide-input``
(Jupyter Book collapses it) and ``exercise-<id>`` (``exercise-0.2``), holding only imports and
top-level functions with docstrings. The student edition keeps the imports, each function's
signature and docstring, and replaces the body::

    def accuracy(logits, labels):
        \"\"\"Fraction of rows whose top logit is the label.\"\"\"
        raise NotImplementedError("Exercise 0.2: Fraction of rows whose top logit is the label.")

The stub cell keeps its ``exercise-<id>`` tag and gains ``exercise-stub``; outputs are cleared
everywhere; a note at the top tells the learner what this edition is.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode

SOLUTION_TAG = "solution"
HIDE_INPUT_TAG = "hide-input"
STUB_TAG = "exercise-stub"
#: The project's line length (pyproject.toml): a longer stub line is wrapped.
_MAX_LINE_LENGTH = 100
_EXERCISE_TAG = re.compile(r"exercise-(?P<id>[0-9]+(?:\.[0-9]+)+)")

STUDENT_EDITION_NOTE = (
    "**Student edition.** The solutions of this notebook's exercises have been removed: each "
    "exercise cell holds functions whose body is `raise NotImplementedError(...)`. Replace that "
    "line with your code, run the cell, then run the check cell below it to see your progress "
    "(✓ once every check passes). Run the notebook from the top so that the earlier cells have "
    "defined what the exercises use."
)


def cell_tags(cell: NotebookNode) -> list[str]:
    """The cell's ``metadata.tags`` (an empty list when it has none)."""
    return list(cell.get("metadata", {}).get("tags", []))


def exercise_ids(notebook: NotebookNode) -> list[str]:
    """Exercise ids (``"0.2"``) from the cells' ``exercise-<id>`` tags, in order of appearance.

    Works on source notebooks (solution cells) and student editions (stub cells) alike; an id
    tagged on several cells is listed once.
    """
    ids: list[str] = []
    for cell in notebook.cells:
        for tag in cell_tags(cell):
            match = _EXERCISE_TAG.fullmatch(tag)
            if match and match["id"] not in ids:
                ids.append(match["id"])
    return ids


def stub_source(source: str, exercise_id: str, *, where: str = "solution cell") -> str:
    """Turn a solution cell's code into the stub a learner fills in.

    Imports are kept verbatim; each top-level function keeps its decorators, signature and
    docstring, and its body becomes ``raise NotImplementedError("Exercise <id>: <first line of
    the docstring>")``. Raises ValueError (prefixed with ``where``) for code that does not
    parse, a statement other than an import or a function definition, a function without a
    docstring, or a cell without any function.
    """
    try:
        module = ast.parse(source)
    except SyntaxError as error:
        raise ValueError(
            f"{where}: expected valid Python (imports and functions), got a syntax error on "
            f"line {error.lineno}: {error.msg}"
        ) from error
    lines = source.splitlines(keepends=True)
    pieces: list[tuple[str, str]] = []
    for node in module.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            pieces.append(("import", ast.get_source_segment(source, node) or ""))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            pieces.append(("def", _function_stub(node, source, lines, exercise_id, where)))
        else:
            first_line = (ast.get_source_segment(source, node) or "").splitlines()[0]
            raise ValueError(
                f"{where}: expected only imports and top-level function definitions in a "
                f"solution cell, found `{first_line}` on line {node.lineno}; move it to an "
                "ordinary code cell"
            )
    if not any(kind == "def" for kind, _ in pieces):
        raise ValueError(
            f"{where}: expected at least one function definition in a solution cell, found none"
        )
    return _join_pieces(pieces)


def _function_stub(
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    source: str,
    lines: list[str],
    exercise_id: str,
    where: str,
) -> str:
    docstring = ast.get_docstring(node)
    if not docstring:
        raise ValueError(
            f"{where}: function `{node.name}` (line {node.lineno}) has no docstring; expected "
            "a docstring saying what the learner must write (the student edition keeps it)"
        )
    docstring_node = node.body[0]
    start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    header = "".join(lines[start - 1 : docstring_node.lineno - 1])
    # ast offsets count UTF-8 bytes, not characters.
    indent = lines[docstring_node.lineno - 1].encode()[: docstring_node.col_offset].decode()
    if indent.strip():  # `def f(x): """Doc."""` on one line: move the docstring below the def
        header += indent.rstrip() + "\n"
        indent = " " * (node.col_offset + 4)
    first_line = docstring.strip().splitlines()[0]
    message = json.dumps(f"Exercise {exercise_id}: {first_line}", ensure_ascii=False)
    raise_line = f"{indent}raise NotImplementedError({message})"
    if len(raise_line) > _MAX_LINE_LENGTH:
        raise_line = f"{indent}raise NotImplementedError(\n{indent}    {message}\n{indent})"
    return f"{header}{indent}{ast.get_source_segment(source, docstring_node)}\n{raise_line}"


def _join_pieces(pieces: list[tuple[str, str]]) -> str:
    text = pieces[0][1]
    for (previous_kind, _), (kind, piece) in zip(pieces, pieces[1:], strict=False):
        separator = "\n" if previous_kind == kind == "import" else "\n\n\n"
        text += separator + piece
    return text


def _exercise_id_of_solution(cell: NotebookNode, where: str) -> str:
    if cell.cell_type != "code":
        raise ValueError(
            f"{where}: a cell tagged {SOLUTION_TAG!r} must be a code cell, got a "
            f"{cell.cell_type} cell"
        )
    ids = [match["id"] for tag in cell_tags(cell) if (match := _EXERCISE_TAG.fullmatch(tag))]
    if len(ids) != 1:
        raise ValueError(
            f"{where}: a solution cell needs exactly one tag exercise-<id> (such as "
            f"exercise-0.2), got tags {cell_tags(cell)}"
        )
    return ids[0]


def _stub_cell(cell: NotebookNode, where: str) -> NotebookNode:
    exercise_id = _exercise_id_of_solution(cell, where)
    stub = copy.deepcopy(cell)
    stub.source = stub_source(cell.source, exercise_id, where=where)
    kept_tags = [tag for tag in cell_tags(cell) if tag not in (SOLUTION_TAG, HIDE_INPUT_TAG)]
    stub.metadata["tags"] = [*kept_tags, STUB_TAG]
    # JupyterLab's "collapse input" would hide the stub from the learner just like hide-input.
    stub.metadata.get("jupyter", {}).pop("source_hidden", None)
    return stub


def _clear_outputs(cell: NotebookNode) -> None:
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None


def make_student_edition(source: Path, destination: Path) -> Path:
    """Write the student edition of the notebook ``source`` to ``destination`` and return it.

    Raises ValueError, naming the notebook and the cell index, for a malformed solution cell
    (see :func:`stub_source`) and when ``destination`` is ``source`` itself.
    """
    source, destination = Path(source), Path(destination)
    if destination.resolve() == source.resolve():
        raise ValueError(f"the student edition of {source} would overwrite it; choose another path")
    notebook = nbformat.read(source, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if SOLUTION_TAG in cell_tags(cell):
            notebook.cells[index] = _stub_cell(cell, where=f"{source}: cell {index}")
        _clear_outputs(notebook.cells[index])
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell(STUDENT_EDITION_NOTE))
    destination.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, destination)
    return destination


def make_student_editions(notebooks: Sequence[Path], out_dir: Path) -> list[Path]:
    """Write the student edition of each notebook into ``out_dir`` under the same file name."""
    names = [Path(notebook).name for notebook in notebooks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"expected notebooks with distinct file names for {out_dir}, got {duplicates} twice"
        )
    return [
        make_student_edition(Path(notebook), Path(out_dir) / Path(notebook).name)
        for notebook in notebooks
    ]
