"""The grader against a class of hostile submissions: forged results, escapes, broken limits.

The synthetic exercises 9.1 (``double``) and 9.2 (``total``) below are graded by checks defined
in this module; every hostile notebook breaks one exercise and solves the other, so that each row
shows both its reason and that nothing was lost elsewhere. Limits are small (256 MiB, 2 CPU
seconds, 8 MiB files) to keep the file fast.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import fcntl
import io
import json
import os
import pickle
import socket
from pathlib import Path

import nbformat
import numpy as np
import pytest

from handbook import config
from handbook.exercises import discovery, grading, remote, reports, sandbox, student
from handbook.exercises.checks import Case, check_exercise, expect_close, expect_equal
from handbook.exercises.submission import SubmissionGrade, grade_submission

LIMITS = sandbox.Limits(
    memory_bytes=256 * 2**20,
    cpu_seconds=2,
    processes=32,
    file_bytes=8 * 2**20,
    scratch_bytes=64 * 2**20,
    cell_seconds=20,
    notebook_seconds=60,
)
EXERCISES = (
    discovery.ExerciseCheck("9.1", "test_grading:check_double", ("double",)),
    discovery.ExerciseCheck("9.2", "test_grading:check_total", ("total",)),
)


def check_double(double):
    """Exercise 9.1: ``double(x)`` is ``2 * x`` for numbers."""
    cases = [
        Case(f"double({x})", lambda x=x: expect_equal(double(x), 2 * x, f"double({x})"))
        for x in (2, -1, 10)
    ]
    return check_exercise("9.1", "double", cases)


def check_total(total):
    """Exercise 9.2: ``total(array)`` sums a NumPy array and leaves it unchanged."""
    values = np.arange(6.0).reshape(2, 3)

    def unchanged() -> None:
        array = values.copy()
        total(array)
        expect_equal(array, values, "the array after total(array)")

    cases = [
        Case("a 2x3 array", lambda: expect_close(total(values.copy()), 15.0, "total(array)")),
        Case("an empty array", lambda: expect_close(total(np.zeros(0)), 0.0, "total(empty)")),
        Case("the array is left unchanged", unchanged),
    ]
    return check_exercise("9.2", "total", cases)


DOUBLE = "def double(x):\n    return 2 * x\n"
TOTAL = "import numpy as np\n\ndef total(array):\n    return float(np.sum(array))\n"
STUB = "def double(x):\n    raise NotImplementedError('Exercise 9.1')\n"
ZEROING_TOTAL = (
    "def total(array):\n    result = float(array.sum())\n    array[...] = 0\n    return result\n"
)


def notebook(cells: list[tuple[str, str | None]]) -> str:
    """A notebook's JSON text from ``(source, exercise tag or None)`` code cells."""
    built = nbformat.v4.new_notebook()
    for source, tag in cells:
        cell = nbformat.v4.new_code_cell(source)
        if tag:
            cell.metadata["tags"] = ["solution", f"exercise-{tag}"]
        built.cells.append(cell)
    return nbformat.writes(built)


def with_checks(first: str, second: str = TOTAL) -> str:
    """A submission whose 9.1 cell is ``first`` and 9.2 cell ``second``, check cells included."""
    return notebook(
        [
            ("import numpy as np", None),
            (first, "9.1"),
            ("check_double(double)", None),
            (second, "9.2"),
            ("check_total(total)", None),
        ]
    )


@pytest.fixture(scope="module")
def attacks(tmp_path_factory) -> dict:
    """Write the class (one file per student), grade it once with --jobs 2, return what we need.

    Under pytest-xdist the workers share one folder, one at a time: the second finds the first
    one's results in the store and grades only what differs (its listener's port).
    """
    with class_folder(tmp_path_factory) as root:
        return grade_the_class(root)


@contextlib.contextmanager
def class_folder(tmp_path_factory):
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        yield tmp_path_factory.mktemp("class")
        return
    root = tmp_path_factory.getbasetemp().parent / f"grading-class-{run}"
    root.mkdir(exist_ok=True)
    with open(root / ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield root


def grade_the_class(root: Path) -> dict:
    grader_home = root / "grader-home"
    grader_home.mkdir(exist_ok=True)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    submissions = root / "submissions"
    honest = submissions / "honest.ipynb"
    stolen = grader_home / "stolen.txt"
    escape = (
        "import os, socket\n"
        f"for target in ({str(honest)!r}, {str(stolen)!r}):\n"
        "    try:\n"
        "        with open(target, 'w') as handle:\n"
        "            handle.write('overwritten')\n"
        "    except OSError:\n"
        "        pass\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'escaped')\n"
        "except OSError:\n"
        "    pass\n"
    ) + DOUBLE
    forged = (
        "import json, os\n"
        "import handbook.exercises.checks as checks\n"
        "grade_file = os.environ.get('HANDBOOK_GRADE_FILE', 'grades.jsonl')\n"
        "with open(grade_file, 'a') as handle:\n"
        "    handle.write(json.dumps({'id': '9.1', 'title': 'double', 'status': 'passed', "
        "'passed': 3, 'total': 3, 'messages': []}) + '\\n')\n"
        "checks.check_exercise = lambda *args, **kwargs: None\n"
        "try:\n"
        "    import test_grading\n"
        "    test_grading.check_double = lambda double: None\n"
        "except ImportError:\n"
        "    pass\n"
    ) + STUB
    files = {
        "honest.ipynb": with_checks(DOUBLE),
        "stub.ipynb": with_checks(STUB),
        "changes_its_input.ipynb": with_checks(DOUBLE, ZEROING_TOTAL),
        "not_a_notebook.ipynb": "my answers are in the email",
        "empty.ipynb": "",
        "other_chapter.ipynb": notebook([(DOUBLE, "1.1")]),
        "duplicated_tag.ipynb": notebook([(DOUBLE, "9.1"), (DOUBLE, "9.1"), (TOTAL, "9.2")]),
        "renamed_tag.ipynb": notebook([(DOUBLE, "9.7"), (TOTAL, "9.2")]),
        "deleted_checks.ipynb": notebook([(DOUBLE, "9.1"), (TOTAL, "9.2")]),
        "needs_earlier_cell.ipynb": notebook(
            [
                ("import numpy as np", None),
                (DOUBLE, "9.1"),
                ("def total(a):\n    return float(np.sum(a))", "9.2"),
            ]
        ),
        "infinite_loop.ipynb": with_checks("def double(x):\n    while True:\n        pass\n"),
        "fork_bomb.ipynb": with_checks("import os\nwhile True:\n    os.fork()\n" + DOUBLE),
        "allocates_50gb.ipynb": with_checks(
            "import numpy as np\nx = np.ones(50 * 2**30 // 8)\n" + DOUBLE
        ),
        "prints_1gb.ipynb": with_checks("for _ in range(1024):\n    print('x' * 2**20)\n" + DOUBLE),
        "writes_10gb.ipynb": with_checks(
            "with open('big.bin', 'wb') as handle:\n"
            "    for _ in range(10 * 1024):\n"
            "        handle.write(bytes(2**20))\n" + DOUBLE
        ),
        "kills_parent.ipynb": with_checks(
            "import os, signal\n"
            f"for pid in (os.getppid(), {os.getpid()}, 1):\n"
            "    try:\n"
            "        os.kill(pid, signal.SIGKILL)\n"
            "    except OSError:\n"
            "        pass\n" + DOUBLE
        ),
        "sys_exit.ipynb": with_checks("import sys\nsys.exit(3)\n" + DOUBLE),
        "forged_result.ipynb": with_checks(forged),
        "escapes.ipynb": with_checks(escape),
    }
    for name, text in files.items():
        (submissions / name).parent.mkdir(parents=True, exist_ok=True)
        (submissions / name).write_text(text, encoding="utf-8")
    originals = {name: (submissions / name).read_bytes() for name in files}
    out = root / "grades"
    printed = io.StringIO()

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(grader_home))
        patch.setenv(config.STRICT_EXERCISES_ENV, "1")
        grades = grading.grade_class(
            [submissions],
            out_dir=out,
            exercises=EXERCISES,
            limits=LIMITS,
            jobs=2,
            stream=printed,
        )
    listener.settimeout(0.5)
    try:
        connection, _ = listener.accept()
        arrived = connection.recv(100)
    except OSError:
        arrived = b""
    listener.close()
    return {
        "grades": {Path(grade.label).stem: grade for grade in grades},
        "out": out,
        "printed": printed.getvalue(),
        "submissions": submissions,
        "originals": originals,
        "grader_home": grader_home,
        "arrived": arrived,
    }


def statuses(grade: SubmissionGrade) -> dict[str, str]:
    return {result.id: reports.status_text(result) for result in grade.results}


def test_an_honest_submission_passes_and_a_stub_is_not_done(attacks) -> None:
    grades = attacks["grades"]
    assert statuses(grades["honest"]) == {"9.1": "passed", "9.2": "passed"}
    assert (grades["honest"].score, grades["honest"].out_of, grades["honest"].problems) == (
        2,
        2,
        [],
    )
    assert statuses(grades["stub"]) == {"9.1": "not done", "9.2": "passed"}
    assert statuses(grades["deleted_checks"]) == {"9.1": "passed", "9.2": "passed"}


def test_an_in_place_change_made_in_the_sandbox_is_seen_by_the_check(attacks) -> None:
    result = attacks["grades"]["changes_its_input"].result("9.2")
    assert (result.status, result.passed, result.total) == ("failed", 2, 3)
    assert "the array after total(array)" in result.messages[0]


def test_a_forged_result_and_a_patched_check_do_not_count(attacks) -> None:
    assert statuses(attacks["grades"]["forged_result"]) == {"9.1": "not done", "9.2": "passed"}


def test_files_that_are_not_this_chapters_notebooks_get_a_reason(attacks) -> None:
    grades = attacks["grades"]
    expected = {
        "not_a_notebook": "not a Jupyter notebook",
        "empty": "empty file (0 bytes)",
        "other_chapter": "this is chapter 1's notebook (exercise tags 1.1); expected chapter 9",
    }
    for name, reason in expected.items():
        assert reason in grades[name].error
        assert grades[name].score == 0 and grades[name].out_of == 2
        assert set(statuses(grades[name]).values()) == {"not reached"}


def test_tag_problems_cost_only_their_exercise(attacks) -> None:
    grades = attacks["grades"]
    assert statuses(grades["duplicated_tag"]) == {"9.1": "error", "9.2": "passed"}
    assert (
        "exercise-9.1 is tagged on cells 1, 2; expected exactly one cell"
        in grades["duplicated_tag"].problems[0]
    )
    assert statuses(grades["renamed_tag"]) == {"9.1": "error", "9.2": "passed"}
    assert "no cell is tagged exercise-9.1" in " ".join(grades["renamed_tag"].problems)
    assert "tags of unknown exercises ignored: 9.7" in grades["renamed_tag"].problems


def test_a_cell_that_needs_an_earlier_cell_is_told_so(attacks) -> None:
    result = attacks["grades"]["needs_earlier_cell"].result("9.2")
    assert result.status == "error"
    assert all("NameError: name 'np' is not defined" in line for line in result.messages)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("infinite_loop", r"(CPU time limit 2 s|time limit 20 s) exceeded in cell 2"),
        (
            "fork_bomb",
            r"(process limit \(32 processes\) reached|CPU time limit 2 s exceeded|"
            r"time limit 20 s exceeded) in cell 2",
        ),
        ("allocates_50gb", r"memory limit 256 MiB exceeded in cell 2"),
        ("prints_1gb", r"file size limit 8 MiB exceeded in cell 2"),
        ("writes_10gb", r"file size limit 8 MiB exceeded in cell 2"),
        ("sys_exit", r"cell 2 called sys.exit\(\)"),
    ],
)
def test_a_broken_limit_is_the_reason_and_the_other_exercise_is_still_graded(
    attacks, name: str, reason: str
) -> None:
    import re

    grade = attacks["grades"][name]
    assert statuses(grade) == {"9.1": "error", "9.2": "passed"}, grade.results
    assert re.search(reason, grade.problems[0]), grade.problems
    row = next(
        line for line in attacks["printed"].splitlines() if line.startswith(f"{name}.ipynb:")
    )
    assert re.search(reason, row)


def test_killing_the_parent_does_not_stop_grading(attacks) -> None:
    assert statuses(attacks["grades"]["kills_parent"]) == {"9.1": "passed", "9.2": "passed"}


@pytest.mark.skipif(not sandbox.isolation().namespaced, reason="needs Linux namespaces")
def test_no_connection_leaves_the_sandbox_and_nothing_outside_it_is_written(attacks) -> None:
    assert attacks["arrived"] == b""
    submissions = attacks["submissions"]
    for name, original in attacks["originals"].items():
        assert (submissions / name).read_bytes() == original, name
    assert not (attacks["grader_home"] / "stolen.txt").exists()
    assert statuses(attacks["grades"]["escapes"]) == {"9.1": "passed", "9.2": "passed"}


def test_the_csv_and_the_feedback_files_hold_every_row(attacks) -> None:
    out = attacks["out"]
    with (out / "grades.csv").open(encoding="utf-8") as handle:
        rows = {row["submission"]: row for row in csv.DictReader(handle)}
    assert len(rows) == len(attacks["originals"])
    assert rows["honest.ipynb"] | {} == {
        "submission": "honest.ipynb",
        "9.1": "passed",
        "9.2": "passed",
        "score": "2",
        "out_of": "2",
        "reason": "",
    }
    assert "memory limit 256 MiB exceeded in cell 2" in rows["allocates_50gb.ipynb"]["reason"]
    feedback = (out / "feedback" / "changes_its_input.md").read_text(encoding="utf-8")
    assert "Score: 1 of 2 exercises passed." in feedback
    assert "Exercise 9.2 (total): 2 of 3 checks passed." in feedback
    assert "the array after total(array)" in feedback
    assert "array[...] = 0" not in feedback  # the learner's code is not echoed, nor the solution
    assert len(list((out / "feedback").glob("*.md"))) == len(attacks["originals"])


def test_a_rerun_resumes_without_grading_again(attacks, monkeypatch, tmp_path) -> None:
    def refuse(self) -> None:
        raise AssertionError("a finished submission was graded again")

    monkeypatch.setattr(sandbox.Sandbox, "start", refuse)
    printed = io.StringIO()

    grades = grading.grade_class(
        [attacks["submissions"]],
        out_dir=attacks["out"],
        exercises=EXERCISES,
        limits=LIMITS,
        stream=printed,
    )
    assert f"{len(attacks['originals'])} submission(s) already graded" in printed.getvalue()
    assert [grade.score for grade in grades] == [
        attacks["grades"][Path(grade.label).stem].score for grade in grades
    ]


def test_the_grader_never_unpickles_what_a_sandbox_sends(monkeypatch, tmp_path) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the grader unpickled data")

    real_load = np.load

    def safe_load(*args, **kwargs):
        assert kwargs.get("allow_pickle") is False, "np.load without allow_pickle=False"
        return real_load(*args, **kwargs)

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(np, "load", safe_load)
    submission = tmp_path / "alice.ipynb"
    submission.write_text(with_checks(DOUBLE, ZEROING_TOTAL), encoding="utf-8")
    grade = grade_submission(submission, label="alice", exercises=EXERCISES, limits=LIMITS)
    assert statuses(grade) == {"9.1": "passed", "9.2": "2/3"}
    for module in (remote, grading, sandbox):
        source = Path(module.__file__).read_text(encoding="utf-8")
        assert "import pickle" not in source and "allow_pickle=True" not in source


def test_an_array_of_python_objects_never_crosses_the_wire() -> None:
    codec = remote.Codec(remote.Peer(socket.socket(), "grader"))
    assert codec.encode(np.array([object()]))["$"] == "opaque"
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    forged = {"$": "ndarray", "npy": base64.b64encode(buffer.getvalue()).decode("ascii")}
    with pytest.raises(ValueError, match="allow_pickle"):
        codec.decode(forged)


def test_the_isolation_warning_is_one_line_naming_what_is_not_isolated() -> None:
    missing = sandbox.Isolation((), False, "unshare not found (util-linux)")
    warning = missing.warning()
    assert "\n" not in warning
    assert warning.startswith("warning: unshare not found (util-linux); submissions run with")
    assert "network" in warning
    assert sandbox.Isolation(("unshare",), True).warning() is None


def test_a_real_chapter_0_student_edition_with_one_answer_is_graded(tmp_path) -> None:
    """The honest path on the real chapter: the student edition, with exercise 0.2 answered by
    the book's own solution cell, earns exactly that exercise."""
    source = config.project_root() / "notebooks" / "00_digits.ipynb"
    submission = student.make_student_edition(source, tmp_path / "class" / "alice.ipynb")
    cells = discovery.read_cells(source.read_bytes(), discovery.chapter_checks(0))
    solution = cells.found["0.2"][1]
    edition = nbformat.read(submission, as_version=4)
    for cell in edition.cells:
        if "exercise-0.2" in cell.metadata.get("tags", []):
            cell.source = solution
    nbformat.write(edition, submission)
    with open(os.devnull, "w", encoding="utf-8") as quiet:
        grades = grading.grade_class([submission], out_dir=tmp_path / "grades", stream=quiet)
    exercises = [exercise.exercise_id for exercise in discovery.chapter_checks(0)]
    assert {"0.1", "0.2", "0.3"} <= set(exercises)  # in the notebook's order
    assert [(grade.label, grade.score) for grade in grades] == [("alice.ipynb", 1)]
    assert statuses(grades[0]) == {
        exercise: "passed" if exercise == "0.2" else "not done" for exercise in exercises
    }
    stored = json.loads(next((tmp_path / "grades" / "results").glob("*.json")).read_text())
    assert [result["id"] for result in stored["results"]] == exercises


def test_without_namespaces_grading_still_works_and_says_what_is_not_isolated(
    monkeypatch, tmp_path
) -> None:
    fallback = sandbox.Isolation((), os.geteuid() == 0, "unshare not found (util-linux)")
    monkeypatch.setattr(sandbox, "isolation", lambda: fallback)
    submission = tmp_path / "alice.ipynb"
    submission.write_text(
        with_checks("import os\nHOME = os.environ['HOME']\n" + DOUBLE), encoding="utf-8"
    )
    printed = io.StringIO()

    grades = grading.grade_class(
        [submission],
        out_dir=tmp_path / "grades",
        exercises=EXERCISES,
        limits=LIMITS,
        stream=printed,
    )
    assert statuses(grades[0]) == {"9.1": "passed", "9.2": "passed"}
    assert printed.getvalue().splitlines()[0] == fallback.warning()
