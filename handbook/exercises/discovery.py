"""What there is to grade: a chapter's exercises and their checks, and a submission's cells.

Which check goes with which exercise, and which functions or name it takes, is read from the
book's source notebooks (the cell after a solution cell: ``ch00.check_accuracy(accuracy)``),
never from a submission (:func:`chapter_checks`). A submission offers, for each exercise, the one
code cell tagged ``exercise-<id>``, or a reason why there is none (:func:`read_cells`); a file
that is not a notebook of the chapter is refused with what it is instead.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat

from handbook import config
from handbook.exercises import student
from handbook.exercises.checks import FUNCTION, ExerciseResult
from handbook.exercises.student import cell_tags

_EXERCISE_TAG = re.compile(r"exercise-(?P<id>[0-9]+(?:\.[0-9]+)+)")
_CHECK_CALL = re.compile(r"\b(ch\d\d)\.(check_\w+)\(")


@dataclass(frozen=True)
class ExerciseCheck:
    """One exercise: its id, its check (``module:function``), the learner functions it takes
    (or, for a value exercise, the one name whose value it takes), and its kind
    (``handbook.exercises.checks.KINDS``: "function", "prediction", "derivation", "open")."""

    exercise_id: str
    check: str
    names: tuple[str, ...]
    kind: str = FUNCTION

    @property
    def takes_value(self) -> bool:
        """True when the check takes the value of a name, not a function."""
        return self.kind != FUNCTION

    def check_function(self) -> Callable[..., ExerciseResult]:
        module, _, function = self.check.partition(":")
        return getattr(importlib.import_module(module), function)


@functools.cache
def chapter_checks(chapter: int) -> tuple[ExerciseCheck, ...]:
    """The exercises of ``chapter`` in order, read from the book's source notebook.

    The check of an exercise is the ``chNN.check_*(name, ...)`` call in the first code cell
    after its solution cell; its kind comes from the solution cell's ``kind-*`` tag, and a value
    exercise's check must take the name its solution cell assigns (ValueError otherwise).
    """
    notebooks = config.project_root() / "notebooks"
    matches = sorted(notebooks.glob(f"{chapter:02d}_*.ipynb"))
    if not matches:
        chapters = sorted(int(path.name[:2]) for path in notebooks.glob("[0-9][0-9]_*.ipynb"))
        raise ValueError(
            f"expected one of the book's chapters {chapters[0]} to {chapters[-1]}, got {chapter} "
            "(no notebook)"
        )
    cells = nbformat.read(matches[0], as_version=4).cells
    exercises = []
    for index, cell in enumerate(cells):
        ids = [match["id"] for tag in cell_tags(cell) if (match := _EXERCISE_TAG.fullmatch(tag))]
        if "solution" not in cell_tags(cell) or not ids:
            continue
        check_cell = next(c for c in cells[index + 1 :] if c.cell_type == "code")
        where = f"{matches[0].name}: cell {index}"
        kind = student.exercise_kind(cell, where)
        exercise = _parse_check_call(ids[0], check_cell.source, matches[0].name, kind)
        if exercise.takes_value:
            name = student.assigned_name(cell.source, where=where)
            if exercise.names != (name,):
                raise ValueError(
                    f"{where}: the check of exercise {ids[0]} ({exercise.kind}) takes "
                    f"{exercise.names}; expected the one name its solution cell assigns, {name}"
                )
        exercises.append(exercise)
    return tuple(exercises)


@functools.cache
def book_cells(chapter: int) -> dict[str, tuple[str, ...]]:
    """Exercise id -> the book's own cells for it: its solution cell in the source notebook and
    the student edition's stub (what a copy-finder sets aside: see
    :mod:`handbook.exercises.similarity`)."""
    notebook = next((config.project_root() / "notebooks").glob(f"{chapter:02d}_*.ipynb"))
    cells = {}
    for index, cell in enumerate(nbformat.read(notebook, as_version=4).cells):
        ids = [match["id"] for tag in cell_tags(cell) if (match := _EXERCISE_TAG.fullmatch(tag))]
        if "solution" in cell_tags(cell) and ids:
            stub = student._stub_cell(cell, f"{notebook.name}: cell {index}")
            cells[ids[0]] = (cell.source, stub.source)
    return cells


def _parse_check_call(
    exercise_id: str, source: str, where: str, kind: str = FUNCTION
) -> ExerciseCheck:
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and _CHECK_CALL.match(f"{node.func.value.id}.{node.func.attr}(")
        ):
            names = tuple(argument.id for argument in node.args if isinstance(argument, ast.Name))
            module = f"handbook.exercises.{node.func.value.id}"
            return ExerciseCheck(exercise_id, f"{module}:{node.func.attr}", names, kind)
    raise ValueError(f"{where}: no chNN.check_*(...) call after the solution of {exercise_id}")


def chapter_of(exercise_id: str) -> int:
    return int(exercise_id.split(".")[0])


@dataclass
class SubmissionCells:
    """What a submission offers to grade: exercise id -> (cell number, source)."""

    found: dict[str, tuple[int, str]]
    problems: dict[str, str]
    notes: list[str]


def read_cells(data: bytes, exercises: Sequence[ExerciseCheck]) -> SubmissionCells:
    """The learner's solution cell of each exercise, or why there is none.

    Raises ValueError with the reason when the file is not a notebook of this chapter.
    Cell numbers count from 1, every cell (markdown included) counted.
    """
    if not data.strip():
        raise ValueError(f"empty file ({len(data)} bytes): expected a Jupyter notebook")
    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception as error:  # nbformat raises many kinds; all mean the same thing here
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise ValueError(f"not a Jupyter notebook ({type(error).__name__}: {first})") from error
    wanted = [exercise.exercise_id for exercise in exercises]
    tagged: dict[str, list[int]] = {}
    for number, cell in enumerate(notebook.cells, start=1):
        for tag in cell_tags(cell):
            if match := _EXERCISE_TAG.fullmatch(tag):
                tagged.setdefault(match["id"], []).append(number)
    chapter = chapter_of(wanted[0])
    if tagged and not set(tagged) & set(wanted):
        others = sorted({chapter_of(exercise_id) for exercise_id in tagged})
        raise ValueError(
            f"this is chapter {', '.join(map(str, others))}'s notebook (exercise tags "
            f"{', '.join(sorted(tagged))}); expected chapter {chapter} "
            f"(exercises {', '.join(wanted)})"
        )
    found, problems = {}, {}
    for exercise_id in wanted:
        numbers = tagged.get(exercise_id, [])
        if not numbers:
            problems[exercise_id] = (
                f"no cell is tagged exercise-{exercise_id} (was its tag removed or renamed?)"
            )
        elif len(numbers) > 1:
            problems[exercise_id] = (
                f"exercise-{exercise_id} is tagged on cells {', '.join(map(str, numbers))}; "
                "expected exactly one cell"
            )
        elif notebook.cells[numbers[0] - 1].cell_type != "code":
            problems[exercise_id] = f"cell {numbers[0]} tagged exercise-{exercise_id} is not code"
        else:
            found[exercise_id] = (numbers[0], notebook.cells[numbers[0] - 1].source)
    unknown = sorted(set(tagged) - set(wanted))
    notes = [f"tags of unknown exercises ignored: {', '.join(unknown)}"] if unknown else []
    return SubmissionCells(found, problems, notes)


def infer_chapter(files: Sequence[Path]) -> int:
    """The chapter most submissions' exercise tags belong to (ValueError when none has any)."""
    counts: dict[int, int] = {}
    for file in files:
        with contextlib.suppress(Exception):
            notebook = nbformat.read(file, as_version=4)
            chapters = {
                chapter_of(match["id"])
                for cell in notebook.cells
                for tag in cell_tags(cell)
                if (match := _EXERCISE_TAG.fullmatch(tag))
            }
            for chapter in chapters:
                counts[chapter] = counts.get(chapter, 0) + 1
    if not counts:
        raise ValueError(
            "could not tell the chapter: no submission has a cell tagged exercise-N.M; "
            "give it with --chapter"
        )
    return max(sorted(counts), key=counts.get)
