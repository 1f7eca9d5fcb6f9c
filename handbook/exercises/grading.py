"""Grade a class: run each learner's solution cells in a sandbox, score them in the grader.

For every exercise of the chapter, the grader takes the learner's cell tagged
``exercise-<id>``, runs it on its own in a fresh process of the submission's sandbox
(:mod:`handbook.exercises.sandbox`) and calls the chapter's own check function
(``handbook.exercises.ch00.check_accuracy``) *in the grader's process*, handing it stand-ins for
the learner's functions (:class:`~handbook.exercises.remote.RemoteFunction`): each case's inputs
travel to the sandbox as plain data, the answers come back as plain data, and the comparison
with the expected values happens here. An exercise whose answer is a value (a prediction, a
derivation, an open answer: the solution cell's ``kind-*`` tag) is graded the same way: the
cell runs in the sandbox, the value of its one name comes back as plain data (a number, or a
text up to the sandbox's answer limit; anything else is an error saying what it was:
:func:`~handbook.exercises.remote.fetch_value`), and the check gets that value here. Nothing the
learner's code prints, writes or patches can change a score; the notebook's own check cells are
the learner's feedback, not the grade.

Which check goes with which exercise, and which functions or name it takes, is read from the
book's source notebooks (the cell after a solution cell: ``ch00.check_accuracy(accuracy)``),
never from a submission.

Score rule: an exercise counts 1 when every one of its checks passed (a prediction or a
derivation: within its tolerance), 0 otherwise; a notebook is scored out of the chapter's number
of exercises, whatever its tags say, open questions excepted. An open question is never scored:
a long enough answer reads "submitted, see rubric" (status ``submitted``), the feedback file
prints the rubric, and the instructor reads the answer against it; it counts neither in the
score nor in the total. Results are stored in
``<out>/results/<hash>.json``, keyed on the submission's bytes and the grading settings, so an
interrupted run resumes without grading a finished submission again.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import functools
import hashlib
import importlib
import io
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TextIO

import nbformat

from handbook import config
from handbook.exercises import checks, export, remote, sandbox, similarity, student
from handbook.exercises.checks import (
    ERROR,
    FAILED,
    FUNCTION,
    NOT_REACHED,
    OPEN,
    PASSED,
    SUBMITTED,
    ExerciseResult,
)
from handbook.exercises.student import cell_tags

_EXERCISE_TAG = re.compile(r"exercise-(?P<id>[0-9]+(?:\.[0-9]+)+)")
_CHECK_CALL = re.compile(r"\b(ch\d\d)\.(check_\w+)\(")
#: Bump when a change to the grader changes results, so that stored results are not reused.
GRADER_VERSION = 3


# What to grade: the chapter's exercises and their checks ---------------------------------------


@dataclass(frozen=True)
class ExerciseCheck:
    """One exercise: its id, its check (``module:function``), the learner functions it takes
    (or, for a value exercise, the one name whose value it takes), and its kind
    (``handbook.exercises.checks.KINDS``: "function", "prediction", "derivation", "open")."""

    exercise_id: str
    check: str
    names: tuple[str, ...]
    kind: str = FUNCTION

    @property
    def takes_value(self) -> bool:
        """True when the check takes the value of a name, not a function."""
        return self.kind != FUNCTION

    def check_function(self) -> Callable[..., ExerciseResult]:
        module, _, function = self.check.partition(":")
        return getattr(importlib.import_module(module), function)


@functools.cache
def chapter_checks(chapter: int) -> tuple[ExerciseCheck, ...]:
    """The exercises of ``chapter`` in order, read from the book's source notebook.

    The check of an exercise is the ``chNN.check_*(name, ...)`` call in the first code cell
    after its solution cell; its kind comes from the solution cell's ``kind-*`` tag, and a value
    exercise's check must take the name its solution cell assigns (ValueError otherwise).
    """
    notebooks = config.project_root() / "notebooks"
    matches = sorted(notebooks.glob(f"{chapter:02d}_*.ipynb"))
    if not matches:
        chapters = sorted(int(path.name[:2]) for path in notebooks.glob("[0-9][0-9]_*.ipynb"))
        raise ValueError(
            f"expected one of the book's chapters {chapters[0]} to {chapters[-1]}, got {chapter} "
            "(no notebook)"
        )
    cells = nbformat.read(matches[0], as_version=4).cells
    exercises = []
    for index, cell in enumerate(cells):
        ids = [match["id"] for tag in cell_tags(cell) if (match := _EXERCISE_TAG.fullmatch(tag))]
        if "solution" not in cell_tags(cell) or not ids:
            continue
        check_cell = next(c for c in cells[index + 1 :] if c.cell_type == "code")
        where = f"{matches[0].name}: cell {index}"
        kind = student.exercise_kind(cell, where)
        exercise = _parse_check_call(ids[0], check_cell.source, matches[0].name, kind)
        if exercise.takes_value:
            name = student.assigned_name(cell.source, where=where)
            if exercise.names != (name,):
                raise ValueError(
                    f"{where}: the check of exercise {ids[0]} ({exercise.kind}) takes "
                    f"{exercise.names}; expected the one name its solution cell assigns, {name}"
                )
        exercises.append(exercise)
    return tuple(exercises)


@functools.cache
def book_cells(chapter: int) -> dict[str, tuple[str, ...]]:
    """Exercise id -> the book's own cells for it: its solution cell in the source notebook and
    the student edition's stub (what a copy-finder sets aside: see
    :mod:`handbook.exercises.similarity`)."""
    notebook = next((config.project_root() / "notebooks").glob(f"{chapter:02d}_*.ipynb"))
    cells = {}
    for index, cell in enumerate(nbformat.read(notebook, as_version=4).cells):
        ids = [match["id"] for tag in cell_tags(cell) if (match := _EXERCISE_TAG.fullmatch(tag))]
        if "solution" in cell_tags(cell) and ids:
            stub = student._stub_cell(cell, f"{notebook.name}: cell {index}")
            cells[ids[0]] = (cell.source, stub.source)
    return cells


def _parse_check_call(
    exercise_id: str, source: str, where: str, kind: str = FUNCTION
) -> ExerciseCheck:
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and _CHECK_CALL.match(f"{node.func.value.id}.{node.func.attr}(")
        ):
            names = tuple(argument.id for argument in node.args if isinstance(argument, ast.Name))
            module = f"handbook.exercises.{node.func.value.id}"
            return ExerciseCheck(exercise_id, f"{module}:{node.func.attr}", names, kind)
    raise ValueError(f"{where}: no chNN.check_*(...) call after the solution of {exercise_id}")


def chapter_of(exercise_id: str) -> int:
    return int(exercise_id.split(".")[0])


# A submission -----------------------------------------------------------------------------------


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


@dataclass
class _Cells:
    """What a submission offers to grade: exercise id -> (cell number, source)."""

    found: dict[str, tuple[int, str]]
    problems: dict[str, str]
    notes: list[str]


def read_cells(data: bytes, exercises: Sequence[ExerciseCheck]) -> _Cells:
    """The learner's solution cell of each exercise, or why there is none.

    Raises ValueError with the reason when the file is not a notebook of this chapter.
    Cell numbers count from 1, every cell (markdown included) counted.
    """
    if not data.strip():
        raise ValueError(f"empty file ({len(data)} bytes): expected a Jupyter notebook")
    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception as error:  # nbformat raises many kinds; all mean the same thing here
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise ValueError(f"not a Jupyter notebook ({type(error).__name__}: {first})") from error
    wanted = [exercise.exercise_id for exercise in exercises]
    tagged: dict[str, list[int]] = {}
    for number, cell in enumerate(notebook.cells, start=1):
        for tag in cell_tags(cell):
            if match := _EXERCISE_TAG.fullmatch(tag):
                tagged.setdefault(match["id"], []).append(number)
    chapter = chapter_of(wanted[0])
    if tagged and not set(tagged) & set(wanted):
        others = sorted({chapter_of(exercise_id) for exercise_id in tagged})
        raise ValueError(
            f"this is chapter {', '.join(map(str, others))}'s notebook (exercise tags "
            f"{', '.join(sorted(tagged))}); expected chapter {chapter} "
            f"(exercises {', '.join(wanted)})"
        )
    found, problems = {}, {}
    for exercise_id in wanted:
        numbers = tagged.get(exercise_id, [])
        if not numbers:
            problems[exercise_id] = (
                f"no cell is tagged exercise-{exercise_id} (was its tag removed or renamed?)"
            )
        elif len(numbers) > 1:
            problems[exercise_id] = (
                f"exercise-{exercise_id} is tagged on cells {', '.join(map(str, numbers))}; "
                "expected exactly one cell"
            )
        elif notebook.cells[numbers[0] - 1].cell_type != "code":
            problems[exercise_id] = f"cell {numbers[0]} tagged exercise-{exercise_id} is not code"
        else:
            found[exercise_id] = (numbers[0], notebook.cells[numbers[0] - 1].source)
    unknown = sorted(set(tagged) - set(wanted))
    notes = [f"tags of unknown exercises ignored: {', '.join(unknown)}"] if unknown else []
    return _Cells(found, problems, notes)


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
            if reply.get("limit") == "memory":
                raise remote.PeerGone("memory")
            outcome = _check_cell(peer, exercise, number, reply, limits)
    except remote.PeerGone as gone:
        timed_out = str(gone) == "timeout"
        ending = box.ending(kill=timed_out)
        reason = _limit_reason(str(gone), ending, limits, number, cell_deadline, notebook_deadline)
        return error(f"{reason} (exercise {exercise_id})")
    box.ending(kill=True)  # also reads the supervisor's report, before the next cell starts
    return outcome


def _check_cell(
    peer: remote.Peer, exercise: ExerciseCheck, number: int, reply: dict, limits: sandbox.Limits
) -> tuple[ExerciseResult, str | None]:
    """The check's verdict on a cell that ran, or why it cannot be checked."""
    exercise_id = exercise.exercise_id
    if reply.get("raised"):
        message = _cell_raised(number, reply["raised"], limits)
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


def _cell_raised(number: int, raised: dict, limits: sandbox.Limits) -> str:
    name, message = raised.get("type"), raised.get("message", "")
    if name == "BlockingIOError":  # fork() or a new thread refused: RLIMIT_NPROC
        return f"process limit ({limits.processes} processes) reached in cell {number}"
    if "[Errno 27]" in message:  # EFBIG: RLIMIT_FSIZE (Python ignores SIGXFSZ)
        return (
            f"file size limit {sandbox.size_text(limits.file_bytes)} exceeded in cell {number} "
            "(printing or writing too much)"
        )
    if "[Errno 28]" in message:  # ENOSPC: the private scratch folder is full
        return (
            f"scratch space limit {sandbox.size_text(limits.scratch_bytes)} exceeded in cell "
            f"{number}"
        )
    if name == "SystemExit":
        return f"cell {number} called sys.exit() (exit({message or ''}))"
    return f"cell {number} raised {name}: {message}".rstrip(": ")


def _limit_reason(
    gone: str,
    ending: dict,
    limits: sandbox.Limits,
    number: int,
    cell_deadline: float,
    notebook_deadline: float,
) -> str:
    """Why a cell's process stopped answering, for the instructor's row."""
    where = f"in cell {number}"
    stopped = ending.get("signal")
    if gone == "memory":
        return f"memory limit {sandbox.size_text(limits.memory_bytes)} exceeded {where}"
    if stopped == "SIGXCPU":
        return f"CPU time limit {limits.cpu_seconds} s exceeded {where}"
    if stopped == "SIGXFSZ":
        return (
            f"file size limit {sandbox.size_text(limits.file_bytes)} exceeded {where} (printing "
            "or writing too much)"
        )
    if gone == "timeout":
        if cell_deadline >= notebook_deadline:
            return f"notebook time limit {limits.notebook_seconds:g} s exceeded {where}"
        return f"time limit {limits.cell_seconds:g} s exceeded {where}"
    if gone.startswith(("the answer is", "the worker sent")):
        return f"{gone} {where}"
    if "supervisor" in ending:
        return f"the sandbox stopped {where} ({ending['supervisor']})"
    if stopped:
        return f"the cell's process was killed by {stopped} {where}"
    return f"the cell's process exited with status {ending.get('code')} {where} ({gone})"


# A class --------------------------------------------------------------------------------------


def collect_submissions(paths: Sequence[Path]) -> list[Path]:
    """Every file given, and every non-hidden file below every folder given (sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(
                sorted(
                    item
                    for item in path.rglob("*")
                    if item.is_file()
                    and not any(part.startswith(".") for part in item.relative_to(path).parts)
                )
            )
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no submission at {path}")
    if not files:
        raise ValueError(f"expected at least one submission, found none in {list(map(str, paths))}")
    return files


def submission_labels(files: Sequence[Path]) -> list[str]:
    """Each file's path relative to the folder that holds them all (``alice/00.ipynb``)."""
    paths = [Path(file).resolve() for file in files]
    duplicates = sorted({str(path) for path in paths if paths.count(path) > 1})
    if duplicates:
        raise ValueError(f"expected each submission once, got {duplicates} more than once")
    common = Path(os.path.commonpath([path.parent for path in paths]))
    return [path.relative_to(common).as_posix() for path in paths]


def infer_chapter(files: Sequence[Path]) -> int:
    """The chapter most submissions' exercise tags belong to (ValueError when none has any)."""
    counts: dict[int, int] = {}
    for file in files:
        with contextlib.suppress(Exception):
            notebook = nbformat.read(file, as_version=4)
            chapters = {
                chapter_of(match["id"])
                for cell in notebook.cells
                for tag in cell_tags(cell)
                if (match := _EXERCISE_TAG.fullmatch(tag))
            }
            for chapter in chapters:
                counts[chapter] = counts.get(chapter, 0) + 1
    if not counts:
        raise ValueError(
            "could not tell the chapter: no submission has a cell tagged exercise-N.M; "
            "give it with --chapter"
        )
    return max(sorted(counts), key=counts.get)


def _settings_key(exercises: Sequence[ExerciseCheck], limits: sandbox.Limits) -> str:
    settings = {
        "version": GRADER_VERSION,
        "exercises": [asdict(item) for item in exercises],
        "limits": limits.to_json(),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _store_path(store: Path, path: Path, settings: str) -> Path:
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return store / f"{digest[:32]}-{settings}.json"


def _grade_into_store(
    path: str,
    label: str,
    exercises: tuple[ExerciseCheck, ...],
    limits: dict,
    protected: tuple[str, ...],
    destination: str,
) -> str:
    """Grade one submission and write its result as JSON (a pool task returns only the path)."""
    grade = grade_submission(
        Path(path),
        label=label,
        exercises=exercises,
        limits=sandbox.Limits(**limits),
        protected=[Path(item) for item in protected],
    )
    target = Path(destination)
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps(grade.to_json(), ensure_ascii=False), encoding="utf-8")
    partial.replace(target)  # atomic: an interrupted run never leaves half a result
    return destination


def grade_class(
    paths: Sequence[Path],
    *,
    out_dir: Path,
    csv_path: Path | None = None,
    chapter: int | None = None,
    exercises: Sequence[ExerciseCheck] | None = None,
    limits: sandbox.Limits | None = None,
    jobs: int = 1,
    stream: TextIO | None = None,
    roster: Path | None = None,
    copy_threshold: float = similarity.THRESHOLD,
) -> list[SubmissionGrade]:
    """Grade every submission under ``paths``; write the CSVs and one feedback file per student.

    ``out_dir`` receives ``grades.csv`` (or ``csv_path``), ``feedback/<label>.md``,
    ``copies.csv`` (pairs of solutions at least ``copy_threshold`` alike:
    :mod:`~handbook.exercises.similarity`), ``canvas.csv`` and ``points.csv`` (for an LMS, the
    ids from ``roster``: :mod:`~handbook.exercises.export`) and ``results/`` (the store that
    makes a rerun resume). ``exercises`` defaults to the checks of ``chapter`` (default: the
    chapter most submissions belong to), and then the book's own solution cells and stubs are
    set aside by the copy-finder. ``jobs`` submissions are graded at once, each in its own
    process. Prints progress, the table and the possible copies to ``stream``.
    """
    stream = stream or sys.stdout
    limits = limits or sandbox.Limits()
    similarity.check_threshold(copy_threshold)  # before grading, not after
    students = export.read_roster(roster) if roster is not None else None
    files = collect_submissions(paths)
    labels = submission_labels(files)
    book: dict[str, tuple[str, ...]] = {}
    if exercises is None:
        chapter = infer_chapter(files) if chapter is None else chapter
        exercises = chapter_checks(chapter)
        book = book_cells(chapter)
    exercises = tuple(exercises)
    out_dir = Path(out_dir)
    store = out_dir / "results"
    store.mkdir(parents=True, exist_ok=True)
    if warning := sandbox.isolation().warning():
        print(warning, file=stream, flush=True)
    protected = tuple(str(item) for item in _protected_paths(files, out_dir))
    settings = _settings_key(exercises, limits)
    targets = [_store_path(store, file, settings) for file in files]
    todo = [index for index, target in enumerate(targets) if not target.is_file()]
    if todo:  # before anyone is graded: a sandbox that cannot run here would fail every student
        print(sandbox.probe(limits, [Path(item) for item in protected]), file=stream, flush=True)
    if len(todo) < len(files):
        print(
            f"{len(files) - len(todo)} submission(s) already graded in {store}; reusing them",
            file=stream,
            flush=True,
        )
    arguments = [
        (
            str(files[index]),
            labels[index],
            exercises,
            limits.to_json(),
            protected,
            str(targets[index]),
        )
        for index in todo
    ]
    done = 0
    try:
        for done, (index, _) in enumerate(_run_tasks(arguments, todo, jobs), start=1):
            grade = _load(targets[index], labels[index])
            print(
                f"[{done}/{len(todo)}] {grade.label}: {grade.score}/{grade.out_of} in "
                f"{grade.seconds:.1f} s",
                file=stream,
                flush=True,
            )
    except sandbox.SandboxUnavailable as error:  # this machine's fault: stop, record nothing
        raise sandbox.SandboxUnavailable(
            f"stopped after {done} of {len(todo)} submission(s) (their results are kept in "
            f"{store}; a rerun resumes): {error}"
        ) from None
    grades = [_load(target, label) for target, label in zip(targets, labels, strict=True)]
    csv_path = Path(csv_path) if csv_path else out_dir / "grades.csv"
    print(file=stream)
    print(format_table(grades), file=stream)
    write_csv(grades, csv_path)
    feedback = write_feedback(grades, out_dir / "feedback")
    pairs = similarity.find_copies(
        solution_sources(files, labels, exercises), book, threshold=copy_threshold
    )
    print(f"\n{similarity.format_copies(pairs, copy_threshold)}", file=stream)
    similarity.write_copies(pairs, out_dir / "copies.csv")
    scored = export.scored_ids(exercises)
    unmatched = export.write_canvas(
        grades,
        out_dir / "canvas.csv",
        chapter=chapter_of(exercises[0].exercise_id),
        scored=scored,
        roster=students,
    )
    if unmatched:
        print(
            f"\nthe roster has no row for {', '.join(unmatched)}: canvas.csv leaves their ids "
            "empty (Canvas matches those rows by name)",
            file=stream,
        )
    export.write_points(grades, out_dir / "points.csv", scored=scored)
    print(
        f"\nwrote {csv_path}, {len(feedback)} feedback file(s) in {out_dir / 'feedback'}, and "
        f"copies.csv, canvas.csv and points.csv in {out_dir}",
        file=stream,
        flush=True,
    )
    return grades


def solution_sources(
    files: Sequence[Path], labels: Sequence[str], exercises: Sequence[ExerciseCheck]
) -> dict[str, dict[str, str]]:
    """Label -> exercise id -> the source of its solution cell, for every readable submission
    (one that is not a notebook of this chapter offers none)."""
    sources = {}
    for file, label in zip(files, labels, strict=True):
        with contextlib.suppress(ValueError, OSError):
            cells = read_cells(Path(file).read_bytes(), exercises)
            sources[label] = {item: source for item, (_, source) in cells.found.items()}
    return sources


def _run_tasks(arguments: list[tuple], todo: list[int], jobs: int) -> Iterator[tuple[int, str]]:
    if jobs <= 1 or len(arguments) <= 1:
        for index, task in zip(todo, arguments, strict=True):
            yield index, _grade_into_store(*task)
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {
            pool.submit(_grade_into_store, *task): index
            for index, task in zip(todo, arguments, strict=True)
        }
        for future in as_completed(futures):
            yield futures[future], future.result()


def _load(target: Path, label: str) -> SubmissionGrade:
    grade = SubmissionGrade.from_json(json.loads(target.read_text(encoding="utf-8")))
    grade.label = label  # the same bytes may sit under another name in this run
    return grade


def _protected_paths(files: Sequence[Path], out_dir: Path) -> list[Path]:
    """What a sandbox must not write: the submissions' folders, the output, home, the book."""
    folders = {Path(file).resolve().parent for file in files}
    candidates = [*sorted(folders), Path(out_dir).resolve(), Path.home(), config.project_root()]
    return list(dict.fromkeys(path for path in candidates if path.exists()))


# Reports --------------------------------------------------------------------------------------


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
    a derivation's gap, passed or not; an open question's rubric."""
    lines = [
        f"# Feedback on {grade.label}",
        "",
        f"Score: {grade.score} of {grade.out_of} exercises passed.",
        "",
    ]
    if grade.open_questions:
        submitted = sum(result.status == SUBMITTED for result in grade.open_questions)
        lines += [
            f"Open questions: {submitted} of {len(grade.open_questions)} submitted. They are "
            "not in the score: your instructor reads each answer against the rubric shown "
            "below it.",
            "",
        ]
    if grade.error:
        lines += [f"Your notebook could not be graded: {grade.error}", ""]
    for result in grade.results:
        title = f" ({result.title})" if result.title else ""
        if result.status == PASSED and result.kind == FUNCTION:
            lines.append(f"- Exercise {result.id}{title}: passed, all {result.total} checks.")
            continue
        if result.status == FAILED and result.kind == FUNCTION:
            verdict = f"{result.passed} of {result.total} checks passed"
        else:
            verdict = checks.status_text(result.status)
        lines.append(f"- Exercise {result.id}{title}: {verdict}.")
        lines.extend(f"    - {message}".replace("\n", "\n      ") for message in result.messages)
    if grade.problems and not grade.error:
        lines += ["", "Notes:", *(f"- {problem}" for problem in grade.problems)]
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


# Benchmark ------------------------------------------------------------------------------------


def benchmarks(smoke: bool = False) -> list:
    """A class of chapter-0 submissions graded one at a time and with ``jobs=2``, side by side.

    Half the class hands in the solved notebook, half the student edition; each notebook gets
    its student's name in a markdown cell, so every file is distinct (no result reused). One
    run each (a run takes minutes): wall time, and seconds per submission in the detail.
    """
    from handbook import bench

    count = 4 if smoke else 30
    source = config.project_root() / "notebooks" / "00_digits.ipynb"
    rows = []
    with tempfile.TemporaryDirectory(prefix="handbook-grade-bench-") as folder:
        root = Path(folder)
        edition = student.make_student_edition(source, root / "edition.ipynb")
        for number in range(count):
            notebook = nbformat.read(source if number % 2 else edition, as_version=4)
            notebook.cells.insert(0, nbformat.v4.new_markdown_cell(f"Student {number:02d}"))
            target = root / "class" / f"student{number:02d}" / source.name
            target.parent.mkdir(parents=True)
            nbformat.write(notebook, target)
        seconds = {}
        for jobs in (1, 2):
            started = time.perf_counter()
            with open(os.devnull, "w", encoding="utf-8") as quiet:
                grade_class([root / "class"], out_dir=root / f"out{jobs}", jobs=jobs, stream=quiet)
            seconds[jobs] = time.perf_counter() - started
    for jobs, wall in seconds.items():
        rows.append(
            bench.Measurement(
                group=f"grading: {count} chapter-0 submissions",
                variant="one at a time" if jobs == 1 else f"--jobs {jobs}",
                median_ms=wall * 1000,
                ratio=seconds[1] / wall,
                detail=f"{wall:.1f} s wall, {wall / count:.2f} s per submission, one run",
            )
        )
    return rows
