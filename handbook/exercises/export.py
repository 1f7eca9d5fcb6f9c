"""A graded class, exported for a learning management system: Canvas's gradebook import file and
a generic points table.

``canvas.csv`` has the columns Canvas's gradebook import documents, ``Student``, ``ID``,
``SIS User ID``, ``SIS Login ID``, ``Section``, then one column per assignment (here one:
``Chapter 0 exercises``), preceded by a ``Points Possible`` row; a student's points are the
exercises passed. A roster (``--roster roster.csv``: a ``submission`` column holding the student's
folder, file name or label, and any of the Canvas columns) fills in the ids; without it they stay
empty and Canvas matches each row by the student's name.

``points.csv`` has one row per student, one column per scored exercise (1 passed, 0 not), the
total and what it is out of: the chapter's scored exercises (open questions are read against
their rubric and never scored, so they have no column).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from handbook.exercises.checks import OPEN, PASSED

#: The identity columns of a Canvas gradebook import, in Canvas's order.
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
#: The roster's column naming the submission a row belongs to.
ROSTER_KEY = "submission"


@dataclass(frozen=True)
class Student:
    """One row of the roster: who a submission belongs to, as Canvas knows them."""

    name: str
    canvas_id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""

    def canvas_cells(self) -> list[str]:
        return [self.name, self.canvas_id, self.sis_user_id, self.sis_login_id, self.section]


def assignment_title(chapter: int) -> str:
    """The Canvas assignment a chapter's exercises are graded as: ``Chapter 0 exercises``."""
    return f"Chapter {chapter} exercises"


def student_key(label: str) -> str:
    """The student a submission label names: its first folder (``alice/00_digits.ipynb`` ->
    ``alice``), or the file's name without its suffix (``alice.ipynb`` -> ``alice``)."""
    path = PurePosixPath(label)
    return path.parts[0] if len(path.parts) > 1 else path.stem


def read_roster(path: Path) -> dict[str, Student]:
    """The roster file: ``submission`` (a student's folder, file name or label) -> Student.

    Its header has ``submission`` and any of :data:`CANVAS_COLUMNS`; ValueError names what is
    missing, unknown or repeated.
    """
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        if ROSTER_KEY not in header:
            raise ValueError(
                f"{path}: expected a roster with a '{ROSTER_KEY}' column and any of "
                f"{', '.join(CANVAS_COLUMNS)}; got the columns {header or 'none'}"
            )
        unknown = [name for name in header if name not in (ROSTER_KEY, *CANVAS_COLUMNS)]
        if unknown:
            raise ValueError(
                f"{path}: unknown roster column(s) {', '.join(unknown)}; expected "
                f"'{ROSTER_KEY}' and any of {', '.join(CANVAS_COLUMNS)}"
            )
        roster: dict[str, Student] = {}
        for line, row in enumerate(reader, start=2):
            key = (row.get(ROSTER_KEY) or "").strip()
            if not key:
                raise ValueError(f"{path}, line {line}: the '{ROSTER_KEY}' cell is empty")
            if key in roster:
                raise ValueError(f"{path}, line {line}: '{key}' is on the roster twice")
            cells = [(row.get(name) or "").strip() for name in CANVAS_COLUMNS]
            roster[key] = Student(cells[0] or key, *cells[1:])
    return roster


def match_students(
    labels: Sequence[str], roster: dict[str, Student] | None
) -> tuple[list[Student], list[str]]:
    """Each label's Student (by label, then file name, then :func:`student_key`), and the labels
    the roster has no row for (those keep their key as name and empty ids)."""
    roster = roster or {}
    students, unmatched = [], []
    for label in labels:
        for key in (label, PurePosixPath(label).name, student_key(label)):
            if key in roster:
                students.append(roster[key])
                break
        else:
            students.append(Student(student_key(label)))
            if roster:
                unmatched.append(label)
    return students, unmatched


def scored_ids(exercises: Sequence) -> list[str]:
    """The ids of the exercises that are scored (every kind but the open question), in order;
    ``exercises`` are :class:`~handbook.exercises.discovery.ExerciseCheck`."""
    return [exercise.exercise_id for exercise in exercises if exercise.kind != OPEN]


def _passed(grade, exercise_id: str) -> int:
    result = grade.result(exercise_id)
    return int(result is not None and result.status == PASSED)


def write_canvas(
    grades: Sequence,
    path: Path,
    *,
    chapter: int,
    scored: Sequence[str],
    roster: dict[str, Student] | None = None,
) -> list[str]:
    """Write Canvas's gradebook import file; return the labels the roster has no row for.

    ``grades`` are :class:`~handbook.exercises.submission.SubmissionGrade`; points are the
    exercises passed among ``scored`` (:func:`scored_ids`), the ``Points Possible`` row.
    """
    students, unmatched = match_students([grade.label for grade in grades], roster)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*CANVAS_COLUMNS, assignment_title(chapter)])
        writer.writerow(["Points Possible", "", "", "", "", len(scored)])
        for grade, student in zip(grades, students, strict=True):
            points = sum(_passed(grade, item) for item in scored)
            writer.writerow([*student.canvas_cells(), points])
    return unmatched


def write_points(grades: Sequence, path: Path, *, scored: Sequence[str]) -> Path:
    """Write ``student``, ``submission``, one column per scored exercise (1 or 0), ``total`` and
    ``out_of`` (the number of ``scored`` exercises, the same for every row)."""
    students, _ = match_students([grade.label for grade in grades], None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "submission", *scored, "total", "out_of"])
        for grade, student in zip(grades, students, strict=True):
            points = [_passed(grade, item) for item in scored]
            writer.writerow([student.name, grade.label, *points, sum(points), len(scored)])
    return path
