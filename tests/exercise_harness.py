"""The tests every chapter's exercise checks must pass, written once.

A chapter's test file (``tests/test_exercises_chNN.py``) defines its tables and imports the three
``test_*`` functions below, which pytest then collects in that module:

- ``CHECKS``: exercise id -> check function; ``SOLUTIONS``: exercise id -> reference solution
  (the reference solutions live in the test file, never in the package);
- ``MISTAKES``: ``(exercise_id, implementation, status, message)`` rows (``status`` may be left
  out: then "failed" or "error" both count, unless the module sets ``MISTAKE_STATUS``);
- ``stub`` (a function raising ``NotImplementedError``) or ``STUBS`` (exercise id -> stub);
- optional ``MIN_CASES`` (default 6): how many cases a check must run at least.

``conftest.py``'s ``pytest_generate_tests`` parametrizes ``exercise_id`` and ``mistake`` from
those tables.
"""

from __future__ import annotations

from handbook.exercises.checks import ExerciseResult


def mistake_rows(module) -> list[tuple]:
    """``(exercise_id, implementation, status or None, message)`` for every row of MISTAKES."""
    default = getattr(module, "MISTAKE_STATUS", None)
    return [
        (row[0], row[1], row[2], row[3]) if len(row) == 4 else (row[0], row[1], default, row[2])
        for row in module.MISTAKES
    ]


def mistake_id(row: tuple) -> str:
    return f"{row[0]}-{getattr(row[1], '__name__', 'pair')}"


def test_the_reference_solution_passes_every_case(exercise_id: str, request, capsys) -> None:
    module = request.module
    result: ExerciseResult = module.CHECKS[exercise_id](module.SOLUTIONS[exercise_id])
    assert (result.id, result.status, result.messages) == (exercise_id, "passed", [])
    assert result.passed == result.total >= getattr(module, "MIN_CASES", 6)
    assert capsys.readouterr().out.startswith(f"✓ Exercise {exercise_id} ")


def test_a_stub_reads_as_not_done(exercise_id: str, request) -> None:
    module = request.module
    stub = getattr(module, "STUBS", {}).get(exercise_id, getattr(module, "stub", None))
    result: ExerciseResult = module.CHECKS[exercise_id](stub)
    assert result.status == "not done"
    assert result.messages[0].startswith(f"Exercise {exercise_id} (")
    assert "replace the `raise NotImplementedError`" in result.messages[0]


def test_a_typical_mistake_fails_with_a_message_saying_what_was_expected(
    mistake: tuple, request
) -> None:
    exercise_id, implementation, status, message = mistake
    result: ExerciseResult = request.module.CHECKS[exercise_id](implementation)
    if status is None:
        assert result.status in ("failed", "error")
    else:
        assert result.status == status
    assert 0 <= result.passed < result.total
    assert len(result.messages) == result.total - result.passed
    assert any(message in line for line in result.messages), result.messages
