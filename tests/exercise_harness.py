"""Assertions shared by every chapter's exercise-check tests (tests/test_exercises_chNN.py).

Each chapter's test file keeps its own reference solutions and typical mistakes; what a right
answer, an untouched stub and a wrong answer must produce is the same for every chapter.
"""

from __future__ import annotations

from collections.abc import Callable

from handbook.exercises.checks import ExerciseResult


def assert_reference_passes(
    check: Callable, solution: Callable, exercise_id: str, capsys, min_cases: int = 6
) -> None:
    """The reference solution passes every case (at least ``min_cases``); the report says so."""
    result: ExerciseResult = check(solution)
    assert (result.id, result.status, result.messages) == (exercise_id, "passed", [])
    assert result.passed == result.total >= min_cases
    assert capsys.readouterr().out.startswith(f"✓ Exercise {exercise_id} ")


def assert_not_done(check: Callable, stub: Callable, exercise_id: str) -> None:
    """A stub raising NotImplementedError reads as "not done", telling the learner what to do."""
    result: ExerciseResult = check(stub)
    assert result.status == "not done"
    assert result.messages[0].startswith(f"Exercise {exercise_id} (")
    assert "replace the `raise NotImplementedError`" in result.messages[0]


def assert_mistake_reported(
    check: Callable, implementation: Callable, message: str, status: str | None = None
) -> ExerciseResult:
    """A wrong answer fails (with ``status`` if given), one message per failed case, and one of
    the messages contains ``message``."""
    result: ExerciseResult = check(implementation)
    if status is None:
        assert result.status in ("failed", "error")
    else:
        assert result.status == status
    assert 0 <= result.passed < result.total
    assert len(result.messages) == result.total - result.passed
    assert any(message in line for line in result.messages), result.messages
    return result
