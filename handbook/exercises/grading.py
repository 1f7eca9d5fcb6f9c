"""Grade learners' notebooks: execute each one, collect its exercise checks, tabulate, write a CSV.

Each notebook runs in a fresh kernel through :func:`handbook.runner.execute_notebook` with
strict mode off (a wrong answer must not stop the notebook), a throw-away claims ledger (grading
never writes into the book's ledger) and ``HANDBOOK_GRADE_FILE`` pointing at a scratch JSON-lines
file into which every check cell appends its :class:`~handbook.exercises.checks.ExerciseResult`.

Score rule: an exercise counts 1 when every one of its checks passed, 0 otherwise (failed, not
done, error, not reached); no partial credit, the ``2/4`` of a failed exercise is feedback only.
A notebook's score is out of the number of its exercises: the ``exercise-<id>`` tags of its
cells, plus any other exercise whose check reported a result.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import nbformat

from handbook import config, runner
from handbook.exercises.checks import FAILED, NOT_REACHED, PASSED, ExerciseResult
from handbook.exercises.student import exercise_ids


@dataclass
class NotebookGrade:
    """One graded notebook: a result per exercise (notebook order) and the run's error, if any."""

    notebook: Path
    label: str
    executed: Path
    results: list[ExerciseResult]
    error: str | None
    seconds: float

    @property
    def score(self) -> int:
        """How many exercises passed (see the module docstring for the rule)."""
        return sum(result.status == PASSED for result in self.results)

    @property
    def out_of(self) -> int:
        return len(self.results)

    def result(self, exercise_id: str) -> ExerciseResult | None:
        """The result of ``exercise_id``, or None when the notebook has no such exercise."""
        return next((result for result in self.results if result.id == exercise_id), None)


def grade_notebooks(
    notebooks: Sequence[Path],
    *,
    csv_path: Path,
    smoke: bool = True,
    stream: TextIO | None = None,
    executed_dir: Path | None = None,
    timeout_s: int = 1800,
) -> list[NotebookGrade]:
    """Execute and grade each notebook, print a table to ``stream``, write it to ``csv_path``.

    Executed copies go to ``executed_dir`` (default: ``executed/`` next to the CSV) so that an
    instructor can open a learner's notebook with its outputs. Notebooks are named by their
    path relative to their common folder (``alice/00_digits.ipynb``), so submissions with the
    same file name stay apart. ``timeout_s`` limits each cell. The CSV has one row per
    notebook: ``notebook``, one column per exercise id (``passed``, ``2/4`` for a failed one
    with 2 of 4 checks passed, ``not done``, ``error``, ``not reached``, empty when that
    notebook has no such exercise), ``score``, ``out_of`` and ``error`` (why the notebook
    stopped early, empty when it ran to the end). See the module docstring for the score rule.
    """
    stream = stream or sys.stdout
    csv_path = Path(csv_path)
    notebooks = [Path(notebook) for notebook in notebooks]
    _require_notebooks(notebooks)
    labels = notebook_labels(notebooks)
    executed_dir = Path(executed_dir) if executed_dir else csv_path.parent / "executed"
    grades = []
    with tempfile.TemporaryDirectory(prefix="handbook-grading-") as scratch:
        for position, (notebook, label) in enumerate(zip(notebooks, labels, strict=True), 1):
            print(f"[{position}/{len(notebooks)}] {label} ...", end=" ", file=stream, flush=True)
            grade = grade_notebook(
                notebook,
                label=label,
                executed=executed_dir / label,
                scratch_dir=Path(scratch) / str(position),
                smoke=smoke,
                timeout_s=timeout_s,
            )
            print(f"{grade.score}/{grade.out_of} in {grade.seconds:.1f} s", file=stream, flush=True)
            grades.append(grade)
    print(file=stream)
    print(format_table(grades), file=stream)
    write_csv(grades, csv_path)
    print(f"\nwrote {csv_path}", file=stream, flush=True)
    return grades


def grade_notebook(
    notebook: Path,
    *,
    label: str,
    executed: Path,
    scratch_dir: Path,
    smoke: bool,
    timeout_s: int = 1800,
) -> NotebookGrade:
    """Execute one notebook (see :func:`grade_notebooks`) and collect its exercise results.

    ``scratch_dir`` receives the grade file and the throw-away ledger.
    """
    scratch_dir.mkdir(parents=True, exist_ok=True)
    grade_file = scratch_dir / "grades.jsonl"
    grade_file.unlink(missing_ok=True)  # a reused scratch folder must not leak old results
    environment = runner.notebook_environment(
        smoke=smoke, strict_exercises=False, ledger_dir=scratch_dir / "ledger"
    ) | {config.GRADE_FILE_ENV: str(grade_file)}
    run = runner.execute_notebook(notebook, executed, environment=environment, timeout_s=timeout_s)
    results = merge_results(
        _notebook_exercise_ids(notebook), read_grade_file(grade_file), run.error
    )
    return NotebookGrade(notebook, label, executed, results, run.error, run.seconds)


def _notebook_exercise_ids(notebook: Path) -> list[str]:
    try:
        return exercise_ids(nbformat.read(notebook, as_version=4))
    except Exception:  # a learner's file may be anything; the run reports why it cannot execute
        return []


def read_grade_file(path: Path) -> list[ExerciseResult]:
    """The results appended by the check cells, in the order they ran ([] if none ran)."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ExerciseResult.from_json(json.loads(line)) for line in lines if line.strip()]


def merge_results(
    ids: Sequence[str], reported: Sequence[ExerciseResult], run_error: str | None
) -> list[ExerciseResult]:
    """One result per exercise: ``ids`` in order, then exercises reported without a tagged cell.

    When a check ran more than once its last result counts. An exercise without any result is
    "not reached", with the run's error (or a note that its check cell never ran) as message.
    """
    latest = {result.id: result for result in reported}
    results = [
        latest.pop(exercise_id, None) or _not_reached(exercise_id, run_error) for exercise_id in ids
    ]
    return results + list(latest.values())


def _not_reached(exercise_id: str, run_error: str | None) -> ExerciseResult:
    reason = (
        run_error or "the notebook ran to the end but the check cell of this exercise never ran"
    )
    return ExerciseResult(exercise_id, "", NOT_REACHED, 0, 0, [reason])


def notebook_labels(notebooks: Sequence[Path]) -> list[str]:
    """Each notebook's path relative to the folder that holds them all (``alice/00.ipynb``)."""
    paths = [Path(notebook).resolve() for notebook in notebooks]
    duplicates = sorted({str(path) for path in paths if paths.count(path) > 1})
    if duplicates:
        raise ValueError(f"expected each notebook once, got {duplicates} more than once")
    common = Path(os.path.commonpath([path.parent for path in paths]))
    return [path.relative_to(common).as_posix() for path in paths]


def _require_notebooks(notebooks: Sequence[Path]) -> None:
    if not notebooks:
        raise ValueError("expected at least one notebook to grade, got none")
    missing = [str(notebook) for notebook in notebooks if not notebook.is_file()]
    if missing:
        raise FileNotFoundError(f"no notebook at {', '.join(missing)}")


def all_exercise_ids(grades: Sequence[NotebookGrade]) -> list[str]:
    """Every exercise id of the graded notebooks, in numeric order (``0.2`` before ``0.10``)."""
    ids = {result.id for grade in grades for result in grade.results}
    return sorted(ids, key=_id_sort_key)


def _id_sort_key(exercise_id: str) -> tuple:
    try:
        return (0, tuple(int(part) for part in exercise_id.split(".")), exercise_id)
    except ValueError:
        return (1, (), exercise_id)


def status_text(result: ExerciseResult | None, *, passed_mark: str = "passed") -> str:
    """One exercise's cell: ``passed_mark``, ``2/4`` (failed), ``not done``, ``error``,
    ``not reached``, or "" when the notebook has no such exercise."""
    if result is None:
        return ""
    if result.status == PASSED:
        return passed_mark
    if result.status == FAILED:
        return f"{result.passed}/{result.total}"
    return result.status


def format_table(grades: Sequence[NotebookGrade]) -> str:
    """A plain-text table, one row per notebook, then why each notebook that stopped stopped."""
    ids = all_exercise_ids(grades)
    rows = [["notebook", *ids, "score"]]
    for grade in grades:
        cells = [
            status_text(grade.result(exercise_id), passed_mark="✓") or "-" for exercise_id in ids
        ]
        rows.append([grade.label, *cells, f"{grade.score}/{grade.out_of}"])
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.extend(
        f"{grade.label}: {grade.error.removeprefix(f'{grade.notebook}: ')}"
        for grade in grades
        if grade.error
    )
    return "\n".join(lines)


def write_csv(grades: Sequence[NotebookGrade], csv_path: Path) -> Path:
    """Write the grades as CSV (columns described in :func:`grade_notebooks`)."""
    ids = all_exercise_ids(grades)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["notebook", *ids, "score", "out_of", "error"])
        for grade in grades:
            cells = [status_text(grade.result(exercise_id)) for exercise_id in ids]
            writer.writerow([grade.label, *cells, grade.score, grade.out_of, grade.error or ""])
    return csv_path
