"""Grade a class (``handbook grade``): every submission in its own sandbox, resumable, reported.

:func:`grade_class` collects the submissions (every file below the folders given), infers the
chapter, grades each submission (:func:`~handbook.exercises.submission.grade_submission`) in a
pool of ``jobs`` processes, and writes the table, the CSV and the feedback files
(:mod:`~handbook.exercises.reports`), the possible copies (:mod:`~handbook.exercises.similarity`)
and the LMS files (:mod:`~handbook.exercises.export`). Results are stored in
``<out>/results/<hash>.json``, keyed on the submission's bytes and the grading settings, so an
interrupted run resumes without grading a finished submission again.

The benchmark (:func:`benchmarks`, ``handbook bench exercises.grading``) lives here because what
it times is this module's :func:`grade_class`, one submission at a time against ``jobs=2``.

The other parts of the grader: :mod:`~handbook.exercises.discovery` (what a chapter's exercises
are, what a submission's cells hold), :mod:`~handbook.exercises.submission` (one submission),
:mod:`~handbook.exercises.sandbox` (where a learner's cell runs, its limits and what hitting
one means) and :mod:`~handbook.exercises.remote` (the wire between the two processes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path
from typing import TextIO

import nbformat

from handbook import config
from handbook.exercises import export, sandbox, similarity, student
from handbook.exercises.discovery import (
    ExerciseCheck,
    book_cells,
    chapter_checks,
    chapter_of,
    infer_chapter,
    read_cells,
)
from handbook.exercises.reports import format_table, write_csv, write_feedback
from handbook.exercises.submission import GRADER_VERSION, SubmissionGrade, grade_submission


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
