"""Grade one submission: each solution cell in a fresh sandboxed process, each check here.

For every exercise of the chapter, the grader takes the learner's cell tagged
``exercise-<id>`` (:func:`~handbook.exercises.discovery.read_cells`), runs it on its own in a
fresh process of the submission's sandbox (:mod:`handbook.exercises.sandbox`) and calls the
chapter's own check function (``handbook.exercises.ch00.check_accuracy``) *in the grader's
process*, handing it stand-ins for the learner's functions
(:class:`~handbook.exercises.remote.RemoteFunction`): each case's inputs travel to the sandbox as
plain data, the answers come back as plain data, and the comparison with the expected values
happens here. An exercise whose answer is a value (a prediction, a derivation, an open answer:
the solution cell's ``kind-*`` tag) is graded the same way: the cell runs in the sandbox, the
value of its one name comes back as plain data (a number, or a text up to the sandbox's answer
limit; anything else is an error saying what it was:
:func:`~handbook.exercises.remote.fetch_value`), and the check gets that value here. Nothing the
learner's code prints, writes or patches can change a score; the notebook's own check cells are
the learner's feedback, not the grade. A cell that breaks a limit, raises or stops answering is
an error whose reason the sandbox decodes (:class:`~handbook.exercises.sandbox.Outcome`); this
module only displays it.

Score rule: an exercise counts 1 when every one of its checks passed (a prediction or a
derivation: within its tolerance), 0 otherwise; a notebook is scored out of the chapter's number
of exercises, whatever its tags say, open questions excepted. An open question is never scored:
a long enough answer reads "submitted, see rubric" (status ``submitted``), the feedback file
prints the rubric, and the instructor reads the answer against it; it counts neither in the
score nor in the total.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from handbook import config
from handbook.exercises import checks, remote, sandbox
from handbook.exercises.checks import (
    ERROR,
    NOT_REACHED,
    OPEN,
    PASSED,
    ExerciseResult,
)
from handbook.exercises.discovery import ExerciseCheck, read_cells

#: Bump when a change to the grader changes results, so that stored results are not reused.
GRADER_VERSION = 4


@dataclass
class SubmissionGrade:
    """One graded submission: a result per exercise of the chapter, and what went wrong.

    ``error`` says why nothing could be graded (not a notebook, another chapter's); ``problems``
    lists what else the instructor should know (a limit a cell broke, a duplicated tag).
    """

    label: str
    digest: str
    results: list[ExerciseResult]
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def score(self) -> int:
        """Exercises passed (an open question never counts: see the module docstring)."""
        return sum(result.status == PASSED for result in self.results)

    @property
    def out_of(self) -> int:
        """Exercises scored: all but the open questions."""
        return sum(result.kind != OPEN for result in self.results)

    @property
    def open_questions(self) -> list[ExerciseResult]:
        """The open questions' results (submitted, not done, ...), for the instructor to read."""
        return [result for result in self.results if result.kind == OPEN]

    def result(self, exercise_id: str) -> ExerciseResult | None:
        return next((result for result in self.results if result.id == exercise_id), None)

    def to_json(self) -> dict:
        record = asdict(self)
        record["results"] = [result.to_json() for result in self.results]
        return record

    @classmethod
    def from_json(cls, record: dict) -> SubmissionGrade:
        return cls(
            label=str(record["label"]),
            digest=str(record["digest"]),
            results=[ExerciseResult.from_json(item) for item in record["results"]],
            error=record.get("error"),
            problems=[str(item) for item in record.get("problems", [])],
            seconds=float(record.get("seconds", 0.0)),
        )


def imported_modules(sources: Sequence[str]) -> list[str]:
    """Top-level packages the cells import (to import once in the sandbox), in first-seen order."""
    names: list[str] = []
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found = [node.module]
            else:
                continue
            names.extend(name.split(".")[0] for name in found)
    return list(dict.fromkeys(name for name in names if name in sandbox.PRELOADABLE))


@contextlib.contextmanager
def _lenient_checks() -> Iterator[None]:
    """Checks return their verdict instead of raising, whatever the shell's strict mode or
    expected status (``HANDBOOK_EXERCISES_EXPECT``) says."""
    names = (config.STRICT_EXERCISES_ENV, config.EXPECT_EXERCISES_ENV)
    previous = {name: os.environ.pop(name, None) for name in names}
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is not None:
                os.environ[name] = value


def grade_submission(
    path: Path,
    *,
    label: str,
    exercises: Sequence[ExerciseCheck],
    limits: sandbox.Limits,
    protected: Sequence[Path] = (),
) -> SubmissionGrade:
    """Grade one submission file (see the module docstring); never raises for a bad submission."""
    started = time.monotonic()
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        cells = read_cells(data, exercises)
    except ValueError as error:
        results = [_unreached(exercise, str(error)) for exercise in exercises]
        return SubmissionGrade(
            label, digest, results, error=str(error), seconds=time.monotonic() - started
        )
    grade = SubmissionGrade(label, digest, [], problems=list(cells.notes))
    notebook_deadline = started + limits.notebook_seconds
    preload = imported_modules([source for _, source in cells.found.values()])
    with sandbox.Sandbox(limits, preload=preload, protected=protected) as box, _lenient_checks():
        for exercise in exercises:
            exercise_id = exercise.exercise_id
            if exercise_id in cells.problems:
                message = cells.problems[exercise_id]
                grade.results.append(_error(exercise, message))
                grade.problems.append(message)
            elif time.monotonic() >= notebook_deadline:
                message = (
                    f"the notebook's time limit of {limits.notebook_seconds:g} s ran out before "
                    "this exercise"
                )
                grade.results.append(_unreached(exercise, message))
            else:
                number, source = cells.found[exercise_id]
                result, problem = _grade_cell(
                    box, exercise, number, source, limits, notebook_deadline
                )
                grade.results.append(result)
                if problem:
                    grade.problems.append(problem)
    grade.seconds = time.monotonic() - started
    return grade


def _unreached(exercise: ExerciseCheck, message: str) -> ExerciseResult:
    return ExerciseResult(exercise.exercise_id, "", NOT_REACHED, 0, 0, [message], exercise.kind)


def _error(exercise: ExerciseCheck, message: str) -> ExerciseResult:
    return ExerciseResult(exercise.exercise_id, "", ERROR, 0, 0, [message], exercise.kind)


def _grade_cell(
    box: sandbox.Sandbox,
    exercise: ExerciseCheck,
    number: int,
    source: str,
    limits: sandbox.Limits,
    notebook_deadline: float,
) -> tuple[ExerciseResult, str | None]:
    """Run one solution cell in a fresh process and its check here: (result, problem or None)."""
    exercise_id = exercise.exercise_id
    cell_deadline = min(time.monotonic() + limits.cell_seconds, notebook_deadline)

    def error(message: str) -> tuple[ExerciseResult, str]:
        return _error(exercise, message), message

    try:
        with box.cell(cell_deadline) as peer:
            reply = peer.request({"op": "exec", "source": source, "cell": number})
            verdict = _check_cell(box, peer, exercise, number, reply)
    except remote.PeerGone as gone:
        outcome = box.stopped(number, gone, notebook_time=cell_deadline >= notebook_deadline)
        return error(f"{outcome.explain()} (exercise {exercise_id})")
    box.ending(kill=True)  # also reads the supervisor's report, before the next cell starts
    return verdict


def _check_cell(
    box: sandbox.Sandbox, peer: remote.Peer, exercise: ExerciseCheck, number: int, reply: dict
) -> tuple[ExerciseResult, str | None]:
    """The check's verdict on a cell that ran, or why it cannot be checked."""
    exercise_id = exercise.exercise_id
    if reply.get("raised"):
        message = box.raised(number, reply["raised"]).explain()
        return _error(exercise, message), message
    if exercise.takes_value:
        return _check_value(peer, exercise, number)
    defined = set(reply.get("names", []))
    missing = [name for name in exercise.names if name not in defined]
    if missing:
        message = (
            f"cell {number} (exercise {exercise_id}) does not define {', '.join(missing)}; "
            f"expected the function(s) {', '.join(exercise.names)}, defined in the cell itself "
            "with its imports"
        )
        return _error(exercise, message), message
    stand_ins = [remote.RemoteFunction(peer, name, name) for name in exercise.names]
    with contextlib.redirect_stdout(io.StringIO()):
        return exercise.check_function()(*stand_ins), None


def _check_value(
    peer: remote.Peer, exercise: ExerciseCheck, number: int
) -> tuple[ExerciseResult, str | None]:
    """A value exercise: fetch the value of its name from the cell, check it here."""
    (name,) = exercise.names
    where = f"cell {number} (exercise {exercise.exercise_id})"
    wanted = "a text" if exercise.kind == OPEN else "a number"
    try:
        value = remote.fetch_value(peer, name)
    except NameError:
        message = f"{where} does not define {name}; expected `{name} = <{wanted}>` in the cell"
        return _error(exercise, message), message
    except remote.ValueRefused as refused:
        message = f"{where}: {name} is {refused}"
        return _error(exercise, message), message
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return exercise.check_function()(value), None
    except Exception as failure:  # the check met a value it did not foresee: say so, go on
        message = f"{where}: the check could not take {name} = {checks.describe(value)[:200]} "
        message += f"({type(failure).__name__}: {failure})"
        return _error(exercise, message), message
