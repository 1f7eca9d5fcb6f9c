"""Every solution cell of every chapter runs on its own, as the grader runs it.

The grader executes an exercise's cell alone, in a fresh process, with nothing from the cells
above it; so each solution cell must hold its own imports. Here each cell runs in a fresh module
namespace (no earlier cell, no notebook globals); it must define the functions its check takes,
and every global name those functions read (found in their bytecode, nested functions included)
must exist in that namespace or among the built-ins. A value exercise's cell (a prediction, a
derivation, an open answer) must define its name as plain data, which the grader can fetch, and
its check, given only that value, must accept the reference answer. Running the checks
themselves on the sandboxed cells is shown end to end for chapter 0 in test_grading.py, and for
values in test_grading_kinds.py (the chapter checks against reference solutions are in
test_exercises_chNN.py).
"""

from __future__ import annotations

import builtins
import dis
import sys
import types

import pytest

from handbook import config
from handbook.exercises import checks, discovery, remote

CHAPTERS = sorted(
    int(path.name[:2]) for path in (config.project_root() / "notebooks").glob("[0-9][0-9]_*.ipynb")
)


def global_names(code: types.CodeType) -> set[str]:
    """Names ``code`` (and every function or class body nested in it) reads as globals."""
    names = {
        instruction.argval
        for instruction in dis.get_instructions(code)
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME")
    }
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= global_names(constant)
    return names


def run_alone(source: str, number: int, monkeypatch) -> dict:
    module = types.ModuleType("__main__")
    monkeypatch.setitem(sys.modules, "__main__", module)
    exec(compile(source, f"<cell {number}>", "exec"), module.__dict__)  # noqa: S102
    return module.__dict__


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_each_solution_cell_runs_on_its_own(chapter: int, monkeypatch) -> None:
    notebook = next((config.project_root() / "notebooks").glob(f"{chapter:02d}_*.ipynb"))
    exercises = discovery.chapter_checks(chapter)
    cells = discovery.read_cells(notebook.read_bytes(), exercises)
    assert cells.problems == {}
    assert sorted(cells.found) == sorted(item.exercise_id for item in exercises)
    for exercise in exercises:
        number, source = cells.found[exercise.exercise_id]
        namespace = run_alone(source, number, monkeypatch)
        if exercise.takes_value:
            (name,) = exercise.names
            value = remote.plain_value(namespace.get(name))
            assert type(value) in (int, float, str), f"cell {number}: {name} is {value!r}"
            result = exercise.check_function()(value)
            assert result.status in (checks.PASSED, checks.SUBMITTED), result.report()
            continue
        for name in exercise.names:
            assert callable(namespace.get(name)), f"cell {number} does not define {name}"
            missing = {
                used
                for used in global_names(namespace[name].__code__)
                if used not in namespace and not hasattr(builtins, used)
            }
            assert not missing, (
                f"{notebook.name} cell {number}: {name} uses {sorted(missing)}, which the cell "
                "does not define or import"
            )


def test_a_cell_that_relies_on_an_earlier_import_is_caught(monkeypatch) -> None:
    namespace = run_alone("def total(a):\n    return np.sum(a)\n", 1, monkeypatch)
    assert global_names(namespace["total"].__code__) == {"np"}


def test_every_chapter_has_its_exercises_and_checks() -> None:
    counts = {chapter: len(discovery.chapter_checks(chapter)) for chapter in CHAPTERS}
    assert all(count >= 3 for count in counts.values()), counts
    accuracy = next(item for item in discovery.chapter_checks(0) if item.exercise_id == "0.2")
    assert (accuracy.check, accuracy.names, accuracy.kind) == (
        "handbook.exercises.ch00:check_accuracy",
        ("accuracy",),
        "function",
    )
    heads = next(item for item in discovery.chapter_checks(1) if item.exercise_id == "1.3")
    assert heads.names == ("split_heads", "merge_heads")
    with pytest.raises(ValueError, match=r"expected one of the book's chapters 0 to \d+, got 42"):
        discovery.chapter_checks(42)
