"""Exercises: per-chapter checks, the student edition and the grader.

- :mod:`handbook.exercises.checks`: the check API (:func:`check_exercise`, :class:`Case`,
  ``expect_*`` helpers) that every chapter's checks are written with.
- ``ch00``, ``ch01``, ...: one module of check functions per chapter, called from the notebooks'
  check cells (``ch00.check_accuracy(accuracy)``).
- :mod:`handbook.exercises.student`: builds the student edition (solutions replaced by stubs).
- :mod:`handbook.exercises.grading`: executes students' notebooks and tabulates the results.

Importing this package loads only the check API (numpy); ``student`` and ``grading`` pull in
nbformat and papermill and are imported explicitly.
"""

from handbook.exercises.checks import (
    Case,
    ExerciseFailed,
    ExerciseResult,
    check_exercise,
    expect,
    expect_close,
    expect_equal,
    expect_raises,
    expect_shape,
    expect_type,
)

__all__ = [
    "Case",
    "ExerciseFailed",
    "ExerciseResult",
    "check_exercise",
    "expect",
    "expect_close",
    "expect_equal",
    "expect_raises",
    "expect_shape",
    "expect_type",
]
