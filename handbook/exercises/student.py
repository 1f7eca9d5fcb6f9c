"""The student edition of a chapter notebook: every solution replaced by a stub to fill in.

In a source notebook an exercise's solution is a code cell tagged ``solution``, ``hide-input``
(Jupyter Book collapses it) and ``exercise-<id>`` (``exercise-0.2``), holding only imports and
top-level functions with docstrings. The student edition keeps the imports, each function's
signature and docstring, and replaces the body::

    def accuracy(logits, labels):
        \"\"\"Fraction of rows whose top logit is the label.\"\"\"
        raise NotImplementedError("Exercise 0.2: Fraction of rows whose top logit is the label.")

An exercise whose answer is a value carries one more tag naming its kind (:data:`KIND_TAGS`),
and its solution cell is a single top-level assignment ``NAME = <reference answer>``, stubbed as::

    PREDICTED_PARAMETERS = None  # your prediction           (kind-predict)
    SAVING_AT_RATIO_4 = None  # your derivation               (kind-derive)
    ANSWER_7_4 = ""  # your answer: ...                       (kind-open)

Comment lines above the assignment stay (they say what to write, never the answer); comments on
or below it go with the reference answer. A ``kind-bug`` cell (fix the function shown above it)
is stubbed like any function. No kind tag means "write a function".

The stub cell keeps its ``exercise-<id>`` tag and gains ``exercise-stub``; outputs are cleared
everywhere; a note at the top tells the learner what this edition is. The concept diagrams
(``figures/*.svg`` beside the source notebooks) are copied beside the student notebooks, which
show them as ``figures/NAME.svg``.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from handbook import i18n
from handbook.i18n import _

SOLUTION_TAG = "solution"
HIDE_INPUT_TAG = "hide-input"
STUB_TAG = "exercise-stub"
#: The tag naming an exercise's kind -> the kind (``handbook.exercises.checks.KINDS``); a find-the-
#: bug exercise is answered with a function. No kind tag: write a function.
KIND_TAGS = {
    "kind-predict": "prediction",
    "kind-derive": "derivation",
    "kind-bug": "function",
    "kind-open": "open",
}
_KIND_TAG = re.compile(r"kind-[a-z]+")
#: What a value exercise's stub assigns, and the comment that says what to write there.
_VALUE_STUBS = {
    "prediction": ("None", "your prediction"),
    "derivation": ("None", "your derivation"),
    "open": ('""', 'your answer: a few sentences; """triple quotes""" span lines'),
}
#: The folder of concept diagrams beside the notebooks (``figures/NAME.svg``).
FIGURES_DIR = "figures"
#: The project's line length (pyproject.toml): a longer stub line is wrapped.
_MAX_LINE_LENGTH = 100
_EXERCISE_TAG = re.compile(r"exercise-(?P<id>[0-9]+(?:\.[0-9]+)+)")


def student_edition_note() -> str:
    """The note on top of a student edition, in the language of :mod:`handbook.i18n`."""
    return _(
        "**Student edition.** The solutions of this notebook's exercises have been removed: each "
        "exercise cell holds functions whose body is `raise NotImplementedError(...)` (replace "
        "that line with your code), or a name set to `None` (write your prediction or "
        'derivation, a number) or to `""` (write your answer to an open question). Run the '
        "cell, then run the check cell below it to see your progress (✓ once every check "
        'passes; an open answer is "submitted, see rubric"). Run the notebook from the top so '
        "that the earlier cells have defined what the exercises use."
    )


#: The code cell a translated student edition starts with: the checks speak its language.
LANGUAGE_CELL = "%env {variable}={language}"


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


def exercise_kind(cell: NotebookNode, where: str = "solution cell") -> str:
    """The kind of the exercise whose solution is ``cell``, from its ``kind-*`` tag:
    "prediction", "derivation", "open", or "function" (no kind tag, or ``kind-bug``).

    Raises ValueError (prefixed with ``where``) for an unknown ``kind-*`` tag or for two.
    """
    kind_tags = [tag for tag in cell_tags(cell) if _KIND_TAG.fullmatch(tag)]
    unknown = [tag for tag in kind_tags if tag not in KIND_TAGS]
    if unknown or len(kind_tags) > 1:
        raise ValueError(
            f"{where}: expected at most one kind tag among {sorted(KIND_TAGS)}, got {kind_tags}"
        )
    return KIND_TAGS[kind_tags[0]] if kind_tags else "function"


def assigned_name(source: str, *, where: str = "solution cell") -> str:
    """The NAME of a value exercise's solution cell, which must be one top-level assignment
    ``NAME = ...`` (comments aside); raises ValueError (prefixed with ``where``) otherwise."""
    return _single_assignment(source, where).id


def _single_assignment(source: str, where: str) -> ast.Name:
    shape = "exactly one top-level assignment `NAME = <your answer>`"
    try:
        module = ast.parse(source)
    except SyntaxError as error:
        raise ValueError(
            f"{where}: expected {shape}, got a syntax error on line {error.lineno}: {error.msg}"
        ) from error
    statements = module.body
    if len(statements) != 1:
        found = ", ".join(f"`{_first_line(source, node)}`" for node in statements) or "nothing"
        raise ValueError(
            f"{where}: expected {shape} in a cell tagged with a value kind "
            f"(kind-predict, kind-derive, kind-open), found {len(statements)} statements: {found}"
        )
    (node,) = statements
    target = None
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        target = node.target
    if not isinstance(target, ast.Name):
        raise ValueError(
            f"{where}: expected {shape} (one plain name on the left), found "
            f"`{_first_line(source, node)}`"
        )
    return target


def _first_line(source: str, node: ast.stmt) -> str:
    return (ast.get_source_segment(source, node) or "").splitlines()[0]


def value_stub_source(source: str, kind: str, *, where: str = "solution cell") -> str:
    """Turn a value exercise's solution (``NAME = <reference answer>``) into its stub:
    ``NAME = None  # your prediction`` ("prediction"), ``# your derivation`` ("derivation") or
    ``NAME = ""  # your answer: ...`` ("open"), below the comment lines that preceded the
    assignment. Raises ValueError (prefixed with ``where``) unless the cell is exactly one
    top-level assignment to a plain name.
    """
    if kind not in _VALUE_STUBS:
        raise ValueError(
            f"{where}: expected a value kind among {sorted(_VALUE_STUBS)}, got {kind!r}"
        )
    target = _single_assignment(source, where)
    value, comment = _VALUE_STUBS[kind]
    above = source.splitlines()[: target.lineno - 1]
    kept = [line.rstrip() for line in above if line.strip().startswith("#")]
    return "\n".join([*kept, f"{target.id} = {value}  # {comment}"])


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
    for (previous_kind, _piece), (kind, piece) in zip(pieces, pieces[1:], strict=False):
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
    kind = exercise_kind(cell, where)
    stub = copy.deepcopy(cell)
    if kind in _VALUE_STUBS:
        stub.source = value_stub_source(cell.source, kind, where=where)
    else:
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


def make_student_edition(source: Path, destination: Path, language: str = i18n.ENGLISH) -> Path:
    """Write the student edition of the notebook ``source`` to ``destination`` and return it.

    ``language`` other than English: the markdown from the chapter's catalog
    (:mod:`handbook.i18n`), the note in that language, and a first code cell that sets
    ``HANDBOOK_LANG`` so that the checks print in it.

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
    with i18n.language_of(language):
        notebook.cells.insert(0, nbformat.v4.new_markdown_cell(student_edition_note()))
    if language != i18n.ENGLISH:
        name = i18n.catalog_name(source)
        notebook.cells = [
            nbformat.from_dict(cell)
            for cell in i18n.translate_notebook_cells(notebook.cells, language, name)
        ]
        setting = LANGUAGE_CELL.format(variable=i18n.LANG_ENV, language=language)
        notebook.cells.insert(1, nbformat.v4.new_code_cell(setting))
    destination.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, destination)
    return destination


def make_student_editions(
    notebooks: Sequence[Path], out_dir: Path, language: str = i18n.ENGLISH
) -> list[Path]:
    """Write the student edition of each notebook into ``out_dir`` under the same file name, and
    copy the concept diagrams (``figures/*.svg`` beside the notebooks; not their sources in
    ``figures/src/``) into ``out_dir/figures/``, where the notebooks' markdown finds them.

    An SVG of the same name in ``out_dir/figures/`` is replaced; nothing else there is touched.
    ``language``: see :func:`make_student_edition`. Returns the notebooks written.
    """
    names = [Path(notebook).name for notebook in notebooks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"expected notebooks with distinct file names for {out_dir}, got {duplicates} twice"
        )
    written = [
        make_student_edition(Path(notebook), Path(out_dir) / Path(notebook).name, language)
        for notebook in notebooks
    ]
    for folder in dict.fromkeys(Path(notebook).parent / FIGURES_DIR for notebook in notebooks):
        copy_diagrams(folder, Path(out_dir) / FIGURES_DIR)
    return written


def copy_diagrams(figures: Path, destination: Path) -> list[Path]:
    """Copy the SVGs directly in ``figures`` (not ``figures/src/``) into ``destination`` and
    return the copies; nothing when ``figures`` does not exist."""
    svgs = sorted(path for path in Path(figures).glob("*.svg") if path.is_file())
    if svgs:
        destination.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(svg, destination / svg.name)) for svg in svgs]
