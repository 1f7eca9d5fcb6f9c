"""Each tool run on the class in its throwaway namespace (``handbook grade``, ``otter run``,
``nbgrader autograde``, the peers from ``.venv-graders``, which :func:`make_graders_venv`
makes), and its output read back as a :class:`ToolRun`."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from handbook.exercises.peer_graders.contain import contained
from handbook.exercises.peer_graders.formats import (
    by_marker,
    by_tag,
    fill_in,
    nbgrader_source_notebook,
    otter_master_notebook,
    peer_tests,
)
from handbook.exercises.peer_graders.submissions import EXERCISES, Submission

#: seconds per cell for the tools that have such a limit: nbgrader's default, given to
#: handbook grade too (its default is 300 s); otter run has none
CELL_TIMEOUT_S = 30
GRADERS_VENV = ".venv-graders"


@dataclass
class ToolRun:
    """What one tool did with the class: the exercises it credited per submission, the
    feedback text per submission and exercise, the copy pairs it reported, and what the
    wrapper observed (:func:`contain_main`); ``per_submission`` holds per-submission notes
    (otter's pool: a submission the wall limit stopped)."""

    tool: str
    mode: str
    credited: dict[str, set[str]]
    feedback: dict[str, dict[str, str]]
    copies: set[frozenset[str]] | None
    observed: dict
    per_submission: dict = field(default_factory=dict)


def _graders_python() -> Path:
    from handbook import config

    python = config.project_root() / GRADERS_VENV / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(
            f"{python} is missing: `make bench` makes {GRADERS_VENV} with otter-grader and "
            "nbgrader (the `graders` extra)"
        )
    return python


def _graders_path(python: Path) -> str:
    """PATH for the peers: their venv, then the book's (whose packages theirs reuses: alembic)."""
    return os.pathsep.join(
        [str(python.parent), str(Path(sys.executable).parent), os.environ["PATH"]]
    )


def _instructor_step(command: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None):
    """Run one of the instructor's steps (no student code in it); its output on failure."""
    done = subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        output = (done.stdout + done.stderr)[-3000:]
        raise RuntimeError(f"{' '.join(command[:3])} failed ({done.returncode}): {output}")
    return done


def run_handbook(root: Path, subs: Sequence[Submission], canary: Path, jobs: int = 2) -> ToolRun:
    """``python -m handbook grade --jobs 2`` on the class, in the book's chapter-0 format."""
    import nbformat

    from handbook import config
    from handbook.exercises import student

    source = config.project_root() / "notebooks" / "00_digits.ipynb"
    work = root / "handbook"
    edition = nbformat.read(student.make_student_edition(source, work / "edition.ipynb"), 4)
    for sub in subs:
        target = work / "class" / sub.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(fill_in(edition, sub.answers, by_tag), target)
    out = work / "out"
    observed = contained(
        [
            sys.executable,
            "-m",
            "handbook",
            "grade",
            str(work / "class"),
            "--out",
            str(out),
            "--jobs",
            str(jobs),
            "--timeout",
            str(CELL_TIMEOUT_S),
        ],
        cwd=config.project_root(),
        work=work / "run",
        canary=canary,
        limited=False,
    )
    return handbook_results(out, subs, observed, jobs)


def _student(label: str) -> str:
    """The student a ``handbook grade`` label names (``alice/00_digits.ipynb``: ``alice``)."""
    return Path(label).parts[0]


def handbook_results(out: Path, subs: Sequence[Submission], observed: dict, jobs: int) -> ToolRun:
    """Read ``handbook grade``'s output folder: ``points.csv``, ``feedback/``, ``copies.csv``."""
    credited, feedback = {}, {}
    points = out / "points.csv"
    if not points.exists():
        raise RuntimeError(f"handbook grade wrote no {points}: see {observed}")
    with points.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            credited[_student(row["submission"])] = {ex for ex in EXERCISES if row.get(ex) == "1"}
    for sub in subs:
        text = next(iter(sorted((out / "feedback" / sub.name).glob("*.md"))), None)
        sections = re.split(r"(?=Exercise 0\.\d)", text.read_text(encoding="utf-8")) if text else []
        feedback[sub.name] = {
            ex: "".join(s for s in sections if s.startswith(f"Exercise {ex}")) for ex in EXERCISES
        }
    copies = set()
    if (out / "copies.csv").exists():
        with (out / "copies.csv").open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                copies.add(frozenset({_student(row["first"]), _student(row["second"])}))
    return ToolRun(
        "handbook grade",
        f"--jobs {jobs} --timeout {CELL_TIMEOUT_S}, its own sandbox",
        credited,
        feedback,
        copies,
        observed,
    )


def run_otter(root: Path, subs: Sequence[Submission], canary: Path, jobs: int = 2) -> ToolRun:
    """``otter assign`` on the master notebook, then ``otter run`` (no Docker here) on each
    submission, ``jobs`` at a time."""
    import nbformat

    python = _graders_python()
    work = root / "otter"
    (work / "subs").mkdir(parents=True, exist_ok=True)
    tests = peer_tests()
    nbformat.write(otter_master_notebook(tests), work / "ch00.ipynb")
    _instructor_step(
        [str(python.parent / "otter"), "assign", "--no-pdfs", "ch00.ipynb", "dist"], work
    )
    autograder = next((work / "dist" / "autograder").glob("*.zip"))
    handed_out = nbformat.read(work / "dist" / "student" / "ch00.ipynb", 4)
    for sub in subs:
        nbformat.write(
            fill_in(handed_out, sub.answers, by_marker), work / "subs" / f"{sub.name}.ipynb"
        )
    out = work / "out"
    per_submission_wall = 240
    observed = contained(
        [
            str(python),
            "-m",
            "handbook.exercises.peer_graders",
            "otter-pool",
            str(autograder),
            str(work / "subs"),
            str(out),
            "--jobs",
            str(jobs),
            "--wall",
            str(per_submission_wall),
        ],
        cwd=work,
        work=work / "run",
        canary=canary,
        limited=True,
        env={**os.environ, "HOME": str(work), "PATH": _graders_path(python)},
    )
    return otter_results(work, subs, observed, jobs, per_submission_wall)


def otter_results(
    work: Path, subs: Sequence[Submission], observed: dict, jobs: int, wall_s: float
) -> ToolRun:
    """Read ``otter run``'s ``results.json`` per submission; one it did not grade is left out
    of ``credited``."""
    out = work / "out"
    pool = json.loads((out / "pool.json").read_text()) if (out / "pool.json").exists() else {}
    credited, feedback = {}, {}
    for sub in subs:
        results = out / sub.name / "results.json"
        if not results.exists():
            continue
        credited[sub.name], feedback[sub.name] = set(), {}
        for test in json.loads(results.read_text()).get("tests", []):
            if not test["name"].startswith("q"):
                continue  # "Public Tests": the same tests, as the student's check shows them
            exercise = test["name"].removeprefix("q").replace("_", ".")
            if test.get("score") == test.get("max_score"):
                credited[sub.name].add(exercise)
            feedback[sub.name][exercise] = test.get("output", "")
    return ToolRun(
        "otter-grader",
        f"`otter run` (no Docker), {jobs} at a time, {wall_s:.0f} s wall limit each (ours)",
        credited,
        feedback,
        None,
        observed,
        pool,
    )


def run_nbgrader(root: Path, subs: Sequence[Submission], canary: Path) -> ToolRun:
    """``nbgrader generate_assignment``, then ``nbgrader autograde`` over the class (one at a
    time: nbgrader has no parallel autograding), then ``generate_feedback``."""
    import nbformat

    python = _graders_python()
    nbgrader = str(python.parent / "nbgrader")
    work = root / "nbgrader"
    (work / "source" / "ch00").mkdir(parents=True, exist_ok=True)
    (work / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = 'ch00'\n"
        f"c.CourseDirectory.root = {str(work)!r}\nc.Execute.timeout = {CELL_TIMEOUT_S}\n"
    )
    tests = peer_tests()
    nbformat.write(nbgrader_source_notebook(tests), work / "source" / "ch00" / "ch00.ipynb")
    environment = {
        **os.environ,
        "HOME": str(work),
        "PATH": _graders_path(python),
        # nbconvert's templates (generate_feedback) are installed in the book's environment
        "JUPYTER_PATH": str(Path(sys.executable).parent.parent / "share" / "jupyter"),
    }
    _instructor_step([nbgrader, "generate_assignment", "ch00", "--force"], work, environment)
    handed_out = nbformat.read(work / "release" / "ch00" / "ch00.ipynb", 4)
    for sub in subs:
        target = work / "submitted" / sub.name / "ch00" / "ch00.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(fill_in(handed_out, sub.answers, by_marker), target)
    observed = contained(
        [nbgrader, "autograde", "ch00", "--force"],
        cwd=work,
        work=work / "run",
        canary=canary,
        limited=True,
        env=environment,
    )
    _instructor_step([nbgrader, "generate_feedback", "ch00", "--force"], work, environment)
    return nbgrader_results(work, subs, observed)


def nbgrader_results(work: Path, subs: Sequence[Submission], observed: dict) -> ToolRun:
    """Read nbgrader's gradebook (scores per test cell) and the autograded notebooks (what the
    feedback shows under each test cell); a submission it did not grade is left out."""
    import nbformat

    python = _graders_python()
    gradebook = work / "gradebook.db"
    scores = json.loads(
        _instructor_step([str(python), "-c", _GRADEBOOK_SCORES, str(gradebook)], work).stdout
    )
    credited, feedback = {}, {}
    for sub in subs:
        graded = work / "autograded" / sub.name / "ch00" / "ch00.ipynb"
        if not graded.exists() or sub.name not in scores:
            continue
        credited[sub.name], feedback[sub.name] = set(), {}
        notebook = nbformat.read(graded, 4)
        for cell in notebook.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            if not grade_id.startswith("test"):
                continue
            exercise = grade_id.removeprefix("test").replace("_", ".")
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if scores.get(sub.name, {}).get(grade_id) == 1:
                credited[sub.name].add(exercise)
            shown = [cell.source] + ["\n".join(o.get("traceback", [])) for o in errors]
            feedback[sub.name][exercise] = "\n".join(shown)
    return ToolRun(
        "nbgrader",
        "`nbgrader autograde`, one at a time (no parallel mode)",
        credited,
        feedback,
        None,
        observed,
    )


#: prints ``{student: {grade_id: score}}`` from an nbgrader gradebook (run in .venv-graders)
_GRADEBOOK_SCORES = """
import json, sys
from nbgrader.api import Gradebook
scores = {}
with Gradebook("sqlite:///" + sys.argv[1]) as gradebook:
    for submission in gradebook.assignment_submissions("ch00"):
        for notebook in submission.notebooks:
            scores.setdefault(submission.student_id, {}).update(
                {grade.name: grade.score for grade in notebook.grades})
print(json.dumps(scores))
"""


def merge_runs(first: ToolRun, second: ToolRun) -> ToolRun:
    """One tool's class graded in two runs: ``first`` was stopped by the wall limit, ``second``
    graded what it had not reached and the hostile submissions again. The second's grade wins
    where both graded a submission; containment is the second run's (it reached every attack);
    the seconds of both runs are divided by every grading done (``gradings``)."""
    observed = dict(second.observed)
    observed["wall_s"] = first.observed["wall_s"] + second.observed["wall_s"]
    observed["gradings"] = len(first.credited) + len(second.credited)
    return ToolRun(
        second.tool,
        f"{second.mode.split('; ')[0]}; continued after the first run stopped at the "
        f"{first.observed['wall_s'] / 60:.0f}-min wall limit",
        {**first.credited, **second.credited},
        {**first.feedback, **second.feedback},
        second.copies,
        observed,
        {**first.per_submission, **second.per_submission},
    )


def make_graders_venv(folder: Path | None = None) -> Path:
    """Make ``.venv-graders`` (once): a virtual environment that sees the book's packages
    through a ``.pth`` file and installs the ``graders`` extra over them, so that otter-grader's
    ``wrapt<2`` and both tools' Jupyter extensions stay out of the book's environment."""
    import sysconfig

    from handbook import config

    folder = folder or config.project_root() / GRADERS_VENV
    python = folder / "bin" / "python"
    if python.exists():
        probe = subprocess.run([str(python), "-c", "import otter, nbgrader"], capture_output=True)
        if probe.returncode == 0 and (folder / "bin" / "alembic").exists():
            return folder
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    theirs = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    # after their own site-packages: their wrapt 1.x shadows the book's 2.x, nothing else differs
    (Path(theirs) / "zz_handbook_book_env.pth").write_text(
        f"import site; site.addsitedir({ours!r})\n"
    )
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + ["-e", f"{config.project_root()}[graders]"], check=True)
    # nbgrader runs the `alembic` command: its script must start their Python, not the book's
    subprocess.run(pip + ["--no-deps", "--ignore-installed", "alembic"], check=True)
    return folder
