"""What the grader writes for people: the class's table, its CSV, and each student's feedback.

The table and the CSV hold a row per submission (a column per exercise, the score, the reason a
row could not be graded or the limits it broke); a feedback file tells one student each
exercise's verdict and every failing case with what was expected (the checks' messages name
expected values, never the solution). The copy-finder's report and the LMS files are
:mod:`~handbook.exercises.similarity`'s and :mod:`~handbook.exercises.export`'s.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from handbook.exercises import checks
from handbook.exercises.checks import FAILED, FUNCTION, PASSED, SUBMITTED, ExerciseResult
from handbook.exercises.submission import SubmissionGrade
from handbook.i18n import _


def all_exercise_ids(grades: Sequence[SubmissionGrade]) -> list[str]:
    """Every exercise id of the grades, in numeric order (``0.2`` before ``0.10``)."""
    ids = {result.id for grade in grades for result in grade.results}
    return sorted(ids, key=lambda item: tuple(int(part) for part in item.split(".")))


def status_text(result: ExerciseResult | None, *, passed_mark: str = "passed") -> str:
    """One exercise's cell: ``passed_mark``, ``2/4`` (failed), ``not done``, ``error``,
    ``not reached``, ``submitted, see rubric`` (an open question), or "" when the grade has no
    such exercise. A value exercise that failed reads ``failed``, and a prediction or derivation
    adds its gap: ``passed (off by -3, -2.1%)``, ``failed (off by +40, +28.6%)``."""
    if result is None:
        return ""
    gap = f" ({result.summary})" if result.summary else ""
    if result.status == PASSED:
        return passed_mark + gap
    if result.status == FAILED:
        return f"failed{gap}" if result.kind != FUNCTION else f"{result.passed}/{result.total}"
    return checks.status_text(result.status)


def _reason(grade: SubmissionGrade) -> str:
    return "; ".join([grade.error] if grade.error else grade.problems)


def format_table(grades: Sequence[SubmissionGrade]) -> str:
    """A plain-text table, one row per submission, then the reason of each row that has one."""
    ids = all_exercise_ids(grades)
    rows = [["submission", *ids, "score"]]
    for grade in grades:
        cells = [status_text(grade.result(item), passed_mark="✓") or "-" for item in ids]
        rows.append([grade.label, *cells, f"{grade.score}/{grade.out_of}"])
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.extend(f"{grade.label}: {_reason(grade)}" for grade in grades if _reason(grade))
    return "\n".join(lines)


def write_csv(grades: Sequence[SubmissionGrade], csv_path: Path) -> Path:
    """One row per submission: ``submission``, one column per exercise, ``score``, ``out_of``,
    ``reason`` (why it could not be graded, or the limits it broke and other problems)."""
    ids = all_exercise_ids(grades)
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["submission", *ids, "score", "out_of", "reason"])
        for grade in grades:
            cells = [status_text(grade.result(item)) for item in ids]
            writer.writerow([grade.label, *cells, grade.score, grade.out_of, _reason(grade)])
    return csv_path


def feedback_text(grade: SubmissionGrade) -> str:
    """What a student reads: each exercise's verdict and every failing case with what was
    expected (the checks' messages name expected values, never the solution); a prediction's or
    a derivation's gap, passed or not; an open question's rubric. In the language of
    ``HANDBOOK_LANG`` (:mod:`handbook.i18n`), as the checks' messages are."""
    lines = [
        _("# Feedback on {label}").format(label=grade.label),
        "",
        _("Score: {score} of {out_of} exercises passed.").format(
            score=grade.score, out_of=grade.out_of
        ),
        "",
    ]
    if grade.open_questions:
        submitted = sum(result.status == SUBMITTED for result in grade.open_questions)
        lines += [
            _(
                "Open questions: {submitted} of {count} submitted. They are not in the score: "
                "your instructor reads each answer against the rubric shown below it."
            ).format(submitted=submitted, count=len(grade.open_questions)),
            "",
        ]
    if grade.error:
        lines += [_("Your notebook could not be graded: {error}").format(error=grade.error), ""]
    for result in grade.results:
        title = _(" ({title})").format(title=result.title) if result.title else ""
        if result.status == PASSED and result.kind == FUNCTION:
            lines.append(
                _("- Exercise {number}{title}: passed, all {total} checks.").format(
                    number=result.id, title=title, total=result.total
                )
            )
            continue
        if result.status == FAILED and result.kind == FUNCTION:
            verdict = _("{passed} of {total} checks passed").format(
                passed=result.passed, total=result.total
            )
        else:
            verdict = checks.status_words(result.status)
        lines.append(
            _("- Exercise {number}{title}: {verdict}.").format(
                number=result.id, title=title, verdict=verdict
            )
        )
        lines.extend(f"    - {message}".replace("\n", "\n      ") for message in result.messages)
    if grade.problems and not grade.error:
        lines += ["", _("Notes:"), *(f"- {problem}" for problem in grade.problems)]
    return "\n".join(lines) + "\n"


def write_feedback(grades: Sequence[SubmissionGrade], folder: Path) -> list[Path]:
    """``folder/<label>.md`` for each grade (the label's folders kept: ``alice/00_digits.md``)."""
    written = []
    for grade in grades:
        target = Path(folder) / Path(grade.label).with_suffix(".md")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(feedback_text(grade), encoding="utf-8")
        written.append(target)
    return written
