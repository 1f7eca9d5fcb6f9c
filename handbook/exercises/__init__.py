"""Exercises: per-chapter checks, the student edition and the grader.

- :mod:`handbook.exercises.checks`: the check API (:func:`check_exercise`, :class:`Case`,
  ``expect_*`` helpers) that every chapter's checks are written with.
- ``ch00``, ``ch01``, ...: one module of check functions per chapter, called from the notebooks'
  check cells (``ch00.check_accuracy(accuracy)``).
- :mod:`handbook.exercises.student`: builds the student edition (solutions replaced by stubs).
- the grader, one job a module: :mod:`~handbook.exercises.grading` grades a class
  (``handbook grade``: jobs, resume, the store); :mod:`~handbook.exercises.discovery` reads
  which exercises a chapter has and a submission's cells; :mod:`~handbook.exercises.submission`
  grades one submission; :mod:`~handbook.exercises.reports` writes the table, the CSV and the
  feedback; :mod:`~handbook.exercises.sandbox` runs a learner's cell under limits and explains
  how it ended; :mod:`~handbook.exercises.remote` carries calls between the two processes
  (``wire``, ``codec``, ``peer``); :mod:`~handbook.exercises.similarity` finds copies and
  :mod:`~handbook.exercises.export` writes the LMS files.

Importing this package loads only the check API (numpy); ``student`` and the grader's modules
pull in nbformat and are imported explicitly.
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
