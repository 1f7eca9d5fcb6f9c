"""The student edition of every real chapter: no solution source, and no cell outside the
exercise that needs a solution.

That the student edition, executed in smoke mode, runs to the end with every exercise "not done"
is checked by `make test` itself: nbval runs every chapter's student edition with
``HANDBOOK_EXERCISES_EXPECT="not done"`` (tests/test_book.py checks that the Makefile does), so
no chapter is executed twice by the unit tests."""

import ast

import nbformat
import pytest

from handbook import runner
from handbook.exercises import student

CHAPTERS = runner.chapter_notebooks()


def _solution_body_lines(notebook) -> list[str]:
    lines = []
    for cell in notebook.cells:
        if "solution" not in cell.metadata.get("tags", []):
            continue
        for node in ast.parse(cell.source).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            body = node.body[1:] if ast.get_docstring(node) else node.body
            for statement in body:
                segment = ast.get_source_segment(cell.source, statement) or ""
                lines.extend(line.strip() for line in segment.splitlines() if line.strip())
    return lines


def _defined_functions(source: str) -> set[str]:
    return {node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}


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
