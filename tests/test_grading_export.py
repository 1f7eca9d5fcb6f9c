"""Exports of a graded class for a learning management system (handbook.exercises.export):
Canvas's gradebook import file (``canvas.csv``, ids from a roster or left for Canvas to match by
name) and a generic points table (``points.csv``); the real chapter 0 graded through
``handbook grade --roster``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import nbformat
import pytest

from handbook import cli, config
from handbook.exercises import discovery, export, student
from handbook.exercises.checks import (
    FAILED,
    FUNCTION,
    NOT_DONE,
    OPEN,
    PASSED,
    SUBMITTED,
    ExerciseResult,
)
from handbook.exercises.submission import SubmissionGrade

EXERCISES = (
    discovery.ExerciseCheck("3.1", "m:check_a", ("a",)),
    discovery.ExerciseCheck("3.2", "m:check_b", ("b",)),
    discovery.ExerciseCheck("3.3", "m:check_c", ("C",), kind=OPEN),
)


def result(exercise_id: str, status: str, kind: str = FUNCTION) -> ExerciseResult:
    return ExerciseResult(exercise_id, "", status, int(status == PASSED), 1, kind=kind)


def grade(label: str, *statuses: str, error: str | None = None) -> SubmissionGrade:
    results = (
        []
        if error
        else [
            result("3.1", statuses[0]),
            result("3.2", statuses[1]),
            result("3.3", statuses[2], OPEN),
        ]
    )
    return SubmissionGrade(label, "digest", results, error=error)


GRADES = [
    grade("alice/03_data.ipynb", PASSED, PASSED, SUBMITTED),
    grade("bob/03_data.ipynb", PASSED, FAILED, NOT_DONE),
    grade("chen/03_data.ipynb", error="not a Jupyter notebook"),
]


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_the_canvas_file_without_a_roster_leaves_the_ids_to_canvas(tmp_path):
    unmatched = export.write_canvas(
        GRADES, tmp_path / "canvas.csv", chapter=3, scored=export.scored_ids(EXERCISES)
    )
    assert unmatched == []
    assert rows(tmp_path / "canvas.csv") == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Chapter 3 exercises"],
        ["Points Possible", "", "", "", "", "2"],  # the open question is not scored
        ["alice", "", "", "", "", "2"],
        ["bob", "", "", "", "", "1"],
        ["chen", "", "", "", "", "0"],
    ]


def test_a_roster_fills_in_the_canvas_ids_and_names_the_students_it_lacks(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "submission,Student,ID,SIS User ID,SIS Login ID,Section\n"
        'alice,"Liddell, Alice",1001,S-1,aliddell,Section A\n'
        'bob/03_data.ipynb,"Builder, Bob",1002,S-2,bbuilder,Section B\n',
        encoding="utf-8",
    )
    unmatched = export.write_canvas(
        GRADES,
        tmp_path / "canvas.csv",
        chapter=3,
        scored=export.scored_ids(EXERCISES),
        roster=export.read_roster(roster),
    )
    assert unmatched == ["chen/03_data.ipynb"]
    assert rows(tmp_path / "canvas.csv")[2:] == [
        ["Liddell, Alice", "1001", "S-1", "aliddell", "Section A", "2"],
        ["Builder, Bob", "1002", "S-2", "bbuilder", "Section B", "1"],
        ["chen", "", "", "", "", "0"],
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Student,ID\nAlice,1\n", "expected a roster with a 'submission' column"),
        ("submission,Email\nalice,a@x\n", "unknown roster column(s) Email"),
        ("submission,ID\n,1\n", "line 2: the 'submission' cell is empty"),
        ("submission,ID\nalice,1\nalice,2\n", "line 3: 'alice' is on the roster twice"),
    ],
)
def test_a_roster_that_cannot_be_read_says_why(tmp_path, text, problem):
    roster = tmp_path / "roster.csv"
    roster.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        export.read_roster(roster)


def test_the_points_file_has_a_column_per_scored_exercise_and_the_total(tmp_path):
    export.write_points(GRADES, tmp_path / "points.csv", scored=export.scored_ids(EXERCISES))
    assert rows(tmp_path / "points.csv") == [
        ["student", "submission", "3.1", "3.2", "total", "out_of"],
        ["alice", "alice/03_data.ipynb", "1", "1", "2", "2"],
        ["bob", "bob/03_data.ipynb", "1", "0", "1", "2"],
        ["chen", "chen/03_data.ipynb", "0", "0", "0", "2"],
    ]


def test_a_student_is_named_by_folder_or_file():
    assert export.student_key("alice/00_digits.ipynb") == "alice"
    assert export.student_key("bob.ipynb") == "bob"


def test_handbook_grade_writes_the_canvas_and_points_files_for_chapter_0(tmp_path, capsys):
    """The real chapter: Alice answers exercise 0.2 with the book's solution cell, Bob hands in
    the student edition; the roster knows Alice only."""
    source = config.project_root() / "notebooks" / "00_digits.ipynb"
    submissions = tmp_path / "submissions"
    for name in ("alice", "bob"):
        student.make_student_edition(source, submissions / name / "00_digits.ipynb")
    exercises = discovery.chapter_checks(0)
    solution = discovery.read_cells(source.read_bytes(), exercises).found["0.2"][1]
    alice = submissions / "alice" / "00_digits.ipynb"
    edition = nbformat.read(alice, as_version=4)
    for cell in edition.cells:
        if "exercise-0.2" in cell.metadata.get("tags", []):
            cell.source = solution
    nbformat.write(edition, alice)
    roster = tmp_path / "roster.csv"
    roster.write_text("submission,Student,ID,SIS Login ID\nalice,Alice Liddell,1001,al\n")
    out = tmp_path / "grades"
    status = cli.main(["grade", str(submissions), "--out", str(out), "--roster", str(roster)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "the roster has no row for bob/00_digits.ipynb" in printed
    assert "Possible copies: none" in printed  # two copies of the stub are the book's, not theirs
    scored = [exercise.exercise_id for exercise in exercises if exercise.kind != OPEN]
    canvas = rows(out / "canvas.csv")
    assert canvas[0][-1] == "Chapter 0 exercises"
    assert canvas[1:] == [
        ["Points Possible", "", "", "", "", str(len(scored))],
        ["Alice Liddell", "1001", "", "al", "", "1"],
        ["bob", "", "", "", "", "0"],
    ]
    points = rows(out / "points.csv")
    assert points[0] == ["student", "submission", *scored, "total", "out_of"]
    assert points[1] == [
        "alice",
        "alice/00_digits.ipynb",
        *("1" if item == "0.2" else "0" for item in scored),
        "1",
        str(len(scored)),
    ]
    assert points[2][-2:] == ["0", str(len(scored))]
