"""The student edition: stubs for each kind of exercise (a function, a prediction, a derivation,
an open answer), the concept diagrams beside it, and, for every real chapter, no solution source
and no cell outside the exercise that needs a solution.

That the student edition, executed in smoke mode, runs to the end with every exercise "not done"
is checked by `make test` itself: nbval runs every chapter's student edition with
``HANDBOOK_EXERCISES_EXPECT="not done"`` (tests/test_book.py checks that the Makefile does), so
no chapter is executed twice by the unit tests."""

import ast
from pathlib import Path

import nbformat
import pytest

from handbook import config
from handbook.exercises import student

CHAPTERS = config.chapter_notebooks()


def _solution_body_lines(notebook) -> list[str]:
    """Every line of the solutions that says something (function bodies, the whole assignment of
    a value; not a bare closing quote), and that no cell outside the solutions shows: a
    find-the-bug exercise's buggy function, or a loop the chapter builds in cells, shares lines
    with its solution."""
    shown = {
        line.strip()
        for cell in notebook.cells
        if "solution" not in cell.metadata.get("tags", [])
        for line in cell.source.splitlines()
    }
    lines = []
    for cell in notebook.cells:
        if "solution" not in cell.metadata.get("tags", []):
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.FunctionDef):
                body = node.body[1:] if ast.get_docstring(node) else node.body
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                body = [node]
            else:
                continue
            for statement in body:
                segment = ast.get_source_segment(cell.source, statement) or ""
                lines.extend(
                    line.strip()
                    for line in segment.splitlines()
                    if any(character.isalnum() for character in line) and line.strip() not in shown
                )
    return lines


def _defined_functions(source: str) -> set[str]:
    """The functions and names a solution cell defines."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def _used_names(source: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.name)
def test_student_edition_holds_no_solution(chapter, tmp_path):
    source = nbformat.read(chapter, as_version=4)
    edition = nbformat.read(student.make_student_edition(chapter, tmp_path / chapter.name), 4)
    student_text = "\n".join(cell.source for cell in edition.cells)
    solution_lines = _solution_body_lines(source)
    assert solution_lines, "the chapter should have solution cells"
    leaked = [line for line in solution_lines if line in student_text]
    assert not leaked, f"solution lines left in the student edition: {leaked}"
    assert student.exercise_ids(edition) == student.exercise_ids(source)
    assert all(not cell.get("outputs") for cell in edition.cells if cell.cell_type == "code")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.name)
def test_solutions_are_used_only_by_their_check_cell(chapter):
    cells = nbformat.read(chapter, as_version=4).cells
    for index, cell in enumerate(cells):
        if "solution" not in cell.metadata.get("tags", []):
            continue
        defined = _defined_functions(cell.source)
        for later_index, later in enumerate(cells[index + 2 :], start=index + 2):
            if later.cell_type != "code" or "solution" in later.metadata.get("tags", []):
                continue
            misuse = defined & _used_names(later.source)
            assert not misuse, (
                f"{chapter.name} cell {later_index} uses {sorted(misuse)}, defined in the "
                f"exercise cell {index}: the student edition would crash there"
            )


# Stubs by kind, on small notebooks ----------------------------------------------------------

FUNCTION_SOLUTION = '''def softmax(scores):
    """Softmax over the last axis; start from `buggy_softmax` above."""
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return secret_exp(shifted)'''


def _cell(source: str, *tags: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="printed\n")]
    cell.execution_count = 3
    return cell


def _solution(exercise_id: str, source: str, *kind_tags: str) -> nbformat.NotebookNode:
    return _cell(source, "solution", "hide-input", f"exercise-{exercise_id}", *kind_tags)


def _write(path: Path, cells) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_each_kind_of_exercise_gets_its_stub(tmp_path):
    source = _write(
        tmp_path / "book" / "07_continual.ipynb",
        [
            _solution(
                "7.1",
                "# How many parameters does the model have?\n"
                "# Count the weights and the biases.\n"
                "PREDICTED_PARAMETERS = 12_345  # secret: 4 * 3086 + 1\n"
                "# secret: the layers add up to this",
                "kind-predict",
            ),
            _cell("check(PREDICTED_PARAMETERS)"),
            _solution("7.2", "SAVING_AT_RATIO_4 = 1 - 1 / 4", "kind-derive"),
            _solution(
                "7.3",
                'ANSWER_7_3 = """Replay keeps secret examples\nso the old task secret-line."""',
                "kind-open",
            ),
            _cell("def buggy_softmax(scores):\n    return scores"),
            _solution("7.4", FUNCTION_SOLUTION, "kind-bug"),
        ],
    )
    edition = nbformat.read(student.make_student_edition(source, tmp_path / "out.ipynb"), 4)
    stubs = [cell for cell in edition.cells if "exercise-stub" in student.cell_tags(cell)]
    assert [cell.source for cell in stubs[:3]] == [
        "# How many parameters does the model have?\n"
        "# Count the weights and the biases.\n"
        "PREDICTED_PARAMETERS = None  # your prediction",
        "SAVING_AT_RATIO_4 = None  # your derivation",
        'ANSWER_7_3 = ""  # your answer: a few sentences; """triple quotes""" span lines',
    ]
    assert stubs[3].source == student.stub_source(FUNCTION_SOLUTION, "7.4")
    assert "raise NotImplementedError" in stubs[3].source and "buggy_softmax" in stubs[3].source
    assert [cell.metadata["tags"] for cell in stubs] == [
        ["exercise-7.1", "kind-predict", "exercise-stub"],
        ["exercise-7.2", "kind-derive", "exercise-stub"],
        ["exercise-7.3", "kind-open", "exercise-stub"],
        ["exercise-7.4", "kind-bug", "exercise-stub"],
    ]
    text = "\n".join(cell.source for cell in edition.cells)
    assert "secret" not in text and "1 / 4" not in text
    assert all(not cell.get("outputs") for cell in edition.cells if cell.cell_type == "code")
    namespace: dict = {}
    for stub in stubs[:3]:
        exec(stub.source, namespace)
    assert (namespace["PREDICTED_PARAMETERS"], namespace["ANSWER_7_3"]) == (None, "")


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ("A = 1\nB = 2", "found 2 statements: `A = 1`, `B = 2`"),
        ("import math\nA = math.pi", "found 2 statements: `import math`, `A = math.pi`"),
        ("A, B = 1, 2", "(one plain name on the left), found `A, B = 1, 2`"),
        ("A = B = 2", "found `A = B = 2`"),
        ("def guess():\n    return 3", "found `def guess():`"),
        ("# only a comment", "found 0 statements: nothing"),
        ("A = (", "got a syntax error on line 1"),
    ],
)
def test_a_value_cell_that_is_not_one_assignment_fails_loudly(tmp_path, source, complaint):
    notebook = _write(
        tmp_path / "a.ipynb", [_cell("x = 1"), _solution("1.5", source, "kind-predict")]
    )
    with pytest.raises(ValueError) as raised:
        student.make_student_edition(notebook, tmp_path / "out.ipynb")
    message = str(raised.value)
    assert message.startswith(f"{notebook}: cell 1: expected exactly one top-level assignment")
    assert complaint in message


@pytest.mark.parametrize(
    "tags", [("kind-guess",), ("kind-predict", "kind-open")], ids=["unknown", "two"]
)
def test_an_unknown_or_second_kind_tag_is_refused(tmp_path, tags):
    notebook = _write(tmp_path / "a.ipynb", [_solution("1.5", "A = 1", *tags)])
    with pytest.raises(ValueError, match=r"cell 0: expected at most one kind tag among"):
        student.make_student_edition(notebook, tmp_path / "out.ipynb")


def test_kinds_and_names_are_read_from_the_tags_and_the_assignment():
    assert student.exercise_kind(_solution("1.5", "A = 1", "kind-derive")) == "derivation"
    assert student.exercise_kind(_solution("1.5", FUNCTION_SOLUTION, "kind-bug")) == "function"
    assert student.exercise_kind(_solution("1.5", FUNCTION_SOLUTION)) == "function"
    assert student.assigned_name("# what?\nANSWER: str = 'x'") == "ANSWER"


def test_the_diagrams_are_copied_beside_the_student_notebooks_and_nothing_else_is_touched(
    tmp_path,
):
    book = tmp_path / "book"
    notebook = _write(
        book / "01_attention.ipynb", [nbformat.v4.new_markdown_cell("![a](figures/ch01-mask.svg)")]
    )
    (book / "figures" / "src").mkdir(parents=True)
    (book / "figures" / "ch01-mask.svg").write_text("<svg>new</svg>")
    (book / "figures" / "src" / "ch01-mask.dot").write_text("digraph {}")
    out = tmp_path / "student"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "ch01-mask.svg").write_text("<svg>old</svg>")
    (out / "figures" / "my-sketch.svg").write_text("<svg>mine</svg>")
    (out / "notes.md").write_text("my notes")

    assert student.make_student_editions([notebook], out) == [out / "01_attention.ipynb"]

    assert (out / "figures" / "ch01-mask.svg").read_text() == "<svg>new</svg>"
    assert (out / "figures" / "my-sketch.svg").read_text() == "<svg>mine</svg>"
    assert (out / "notes.md").read_text() == "my notes"
    assert not (out / "figures" / "src").exists()


def test_a_book_without_diagrams_gets_no_figures_folder(tmp_path):
    notebook = _write(tmp_path / "book" / "a.ipynb", [_cell("1")])
    student.make_student_editions([notebook], tmp_path / "out")
    assert not (tmp_path / "out" / "figures").exists()


def test_the_real_diagrams_reach_the_student_edition(tmp_path):
    svgs = sorted(path.name for path in (CHAPTERS[0].parent / "figures").glob("*.svg"))
    student.make_student_editions(CHAPTERS[:1], tmp_path)
    assert sorted(path.name for path in (tmp_path / "figures").glob("*.svg")) == svgs
