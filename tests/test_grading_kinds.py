"""The grader on exercises whose answer is a value: a prediction scored against a tolerance, an
open question "submitted, see rubric", and submissions that assign what is not plain data (a
huge text, a list, a hostile float subclass, a computation that never ends, a forged reply).

The synthetic exercises 9.1 (predict the number 42, within 2) and 9.2 (an open answer of at least
5 words) are graded by checks defined in this module, in the style of test_grading.py; limits are
small (1 MiB answers, 2 CPU seconds) to keep the file fast.
"""

from __future__ import annotations

import csv
import io
import re
import socket
import threading

import nbformat
import numpy as np
import pytest

from handbook import config
from handbook.exercises import checks, discovery, grading, remote, reports, sandbox
from handbook.exercises.submission import SubmissionGrade

LIMITS = sandbox.Limits(
    memory_bytes=256 * 2**20,
    cpu_seconds=2,
    processes=32,
    file_bytes=8 * 2**20,
    scratch_bytes=64 * 2**20,
    answer_bytes=2**20,
    cell_seconds=20,
    notebook_seconds=60,
)
EXERCISES = (
    discovery.ExerciseCheck(
        "9.1", "test_grading_kinds:check_prediction", ("PREDICTED",), "prediction"
    ),
    discovery.ExerciseCheck("9.2", "test_grading_kinds:check_answer", ("ANSWER",), "open"),
)
RUBRIC = ["names the quantity", "says why it has that value"]


def check_prediction(predicted):
    """Exercise 9.1: predict 6 x 7 (within 2)."""
    return checks.check_number(
        "9.1", "six sevens", predicted, 6 * 7, tolerance=2, explain="Six sevens are 42."
    )


def check_answer(answer):
    """Exercise 9.2: say why, in at least 5 words."""
    return checks.check_open_answer("9.2", "why", answer, rubric=RUBRIC, min_words=5)


ANSWER = 'ANSWER = "Six sevens make forty two, by counting."\n'


def notebook(prediction: str, answer: str = ANSWER) -> str:
    """A submission: the two value cells, each followed by its check cell."""
    built = nbformat.v4.new_notebook()
    for source, tag, check in (
        (prediction, "9.1", "check_prediction(PREDICTED)"),
        (answer, "9.2", "check_answer(ANSWER)"),
    ):
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = ["solution", f"exercise-{tag}"]
        built.cells.extend([cell, nbformat.v4.new_code_cell(check)])
    return nbformat.writes(built)


HOSTILE_FLOAT = (
    "class Liar(float):\n"
    "    def __eq__(self, other):\n"
    "        return True\n"
    "    def __float__(self):\n"
    "        raise SystemExit('never a number')\n"
    "    def __repr__(self):\n"
    "        return '42'\n"
    "PREDICTED = Liar(7)\n"
)
FORGED_REPLY = (
    "import gc\n"
    "for thing in gc.get_objects():\n"
    "    if type(thing).__name__ == '_CellPeer':\n"
    "        type(thing).extra_operation = lambda self, message: {\n"
    "            'reply': True, 'value': {'$': 'list', 'items': [42]}}\n"
    "PREDICTED = 0\n"
)

HUGE_INT_FRAME = (
    "import gc, struct\n"
    "for thing in gc.get_objects():\n"
    "    if type(thing).__name__ == '_CellPeer':\n"
    "        payload = b'{\"reply\": true, \"value\": ' + b'1' * 5000 + b'}'\n"
    "        thing.sock.sendall(struct.pack('>Q', len(payload)) + payload)\n"
    "PREDICTED = 42\n"
)


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """Write the class, grade it once, return the grades, the printed table and the out folder."""
    root = tmp_path_factory.mktemp("kinds")
    submissions = root / "submissions"
    submissions.mkdir()
    files = {
        "honest": notebook("PREDICTED = 41\n"),
        "stub": notebook("PREDICTED = None  # your prediction\n", 'ANSWER = ""  # your answer\n'),
        "far_off": notebook("PREDICTED = 60\n"),
        "numpy_scalar": notebook("import numpy as np\nPREDICTED = np.float64(42.5)\n"),
        "string_prediction": notebook("PREDICTED = '42'\n"),
        "nan": notebook("PREDICTED = float('nan')\n"),
        "list_prediction": notebook("PREDICTED = [41, 42]\n"),
        "huge_int": notebook("PREDICTED = 10**5000\n"),
        "hostile_float": notebook(HOSTILE_FLOAT),
        "never_ends": notebook("PREDICTED = sum(range(10**12))\n"),
        "forged_reply": notebook(FORGED_REPLY),
        "huge_int_frame": notebook(HUGE_INT_FRAME),
        "no_name": notebook("PREDICTION = 42\n"),
        "short_answer": notebook("PREDICTED = 42\n", 'ANSWER = "because"\n'),
        "huge_answer": notebook("PREDICTED = 42\n", "ANSWER = 'word ' * 300_000\n"),
        "not_unicode": notebook("PREDICTED = 42\n", "ANSWER = 'one two three four five \\ud800'\n"),
        "number_answer": notebook("PREDICTED = 42\n", "ANSWER = 42\n"),
    }
    for name, text in files.items():
        (submissions / f"{name}.ipynb").write_text(text, encoding="utf-8")
    out = root / "grades"
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(config.STRICT_EXERCISES_ENV, "1")
        grades = grading.grade_class(
            [submissions], out_dir=out, exercises=EXERCISES, limits=LIMITS, stream=printed
        )
    return {
        "grades": {grade.label.removesuffix(".ipynb"): grade for grade in grades},
        "printed": printed.getvalue(),
        "out": out,
    }


def statuses(grade: SubmissionGrade) -> dict[str, str]:
    return {result.id: reports.status_text(result) for result in grade.results}


def test_a_prediction_within_tolerance_passes_with_its_gap_and_an_answer_is_submitted(graded):
    grade = graded["grades"]["honest"]
    assert statuses(grade) == {"9.1": "passed (off by -1, -2.38%)", "9.2": "submitted, see rubric"}
    assert (grade.score, grade.out_of, grade.problems) == (1, 1, [])
    assert statuses(graded["grades"]["numpy_scalar"])["9.1"] == "passed (off by +0.5, +1.19%)"


def test_the_stubs_are_not_done(graded):
    assert statuses(graded["grades"]["stub"]) == {"9.1": "not done", "9.2": "not done"}
    short = graded["grades"]["short_answer"].result("9.2")
    assert (
        short.status == checks.NOT_DONE
        and "your answer has 1 word; write at least 5" in (short.messages[0])
    )


def test_a_wrong_prediction_fails_with_the_gap_the_tolerance_and_why(graded):
    result = graded["grades"]["far_off"].result("9.1")
    assert reports.status_text(result) == "failed (off by +18, +42.9%)"
    assert result.messages == [
        "you predicted 60, this run measured 42 (off by +18, +42.9%; tolerance ±2)\n"
        "Six sevens are 42."
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("string_prediction", "got the string '42': write the number without quotes"),
        ("nan", "got NaN (not a number)"),
    ],
)
def test_a_value_that_is_data_but_not_a_number_fails_in_the_check(graded, name, message):
    result = graded["grades"][name].result("9.1")
    assert reports.status_text(result) == "failed (not a number)"
    assert message in result.messages[0]


@pytest.mark.parametrize(
    ("name", "exercise", "reason"),
    [
        ("list_prediction", "9.1", "PREDICTED is a list: expected one number or one text"),
        ("huge_int", "9.1", "PREDICTED is an integer of about 5,001 digits, too large to compare"),
        ("hostile_float", "9.1", "PREDICTED is a Liar (a subclass of float): assign a plain float"),
        ("no_name", "9.1", "does not define PREDICTED; expected `PREDICTED = <a number>`"),
        ("huge_answer", "9.2", "ANSWER is a text of 1,500,000 bytes, over the answer limit of"),
        ("not_unicode", "9.2", "ANSWER is a text that is not valid Unicode (at character 24)"),
        ("never_ends", "9.1", "time limit"),
        ("forged_reply", "9.1", "the worker sent a malformed value for PREDICTED"),
        ("huge_int_frame", "9.1", "the worker sent a malformed message (Exceeds the limit"),
    ],
)
def test_a_value_that_is_not_plain_data_is_an_error_saying_what_it_was(
    graded, name, exercise, reason
):
    grade = graded["grades"][name]
    result = grade.result(exercise)
    assert result.status == checks.ERROR, result
    assert reason in result.messages[0], result.messages
    assert reason in " ".join(grade.problems)
    other = "9.2" if exercise == "9.1" else "9.1"
    assert grade.result(other).status in (checks.PASSED, checks.SUBMITTED)


def test_an_open_answer_that_is_a_number_fails_in_the_check(graded):
    result = graded["grades"]["number_answer"].result("9.2")
    assert reports.status_text(result) == "failed"
    assert (
        "expected your answer as a text (a string in quotes), got a value of type int: 42"
        in (result.messages[0])
    )


def test_an_open_question_never_counts_in_the_score(graded):
    for grade in graded["grades"].values():
        assert grade.out_of == 1
        assert grade.score == (grade.result("9.1").status == checks.PASSED)


def test_the_table_csv_and_feedback_show_the_gap_and_the_rubric(graded):
    out = graded["out"]
    with (out / "grades.csv").open(encoding="utf-8") as handle:
        rows = {row["submission"]: row for row in csv.DictReader(handle)}
    assert rows["honest.ipynb"] == {
        "submission": "honest.ipynb",
        "9.1": "passed (off by -1, -2.38%)",
        "9.2": "submitted, see rubric",
        "score": "1",
        "out_of": "1",
        "reason": "",
    }
    assert re.search(
        r"\n(honest\.ipynb) +✓ \(off by -1, -2\.38%\) +submitted, see rubric +1/1\n",
        graded["printed"],
    )
    feedback = (out / "feedback" / "honest.md").read_text(encoding="utf-8")
    assert "Score: 1 of 1 exercises passed." in feedback
    assert "Open questions: 1 of 1 submitted. They are not in the score" in feedback
    assert "- Exercise 9.1 (six sevens): passed." in feedback
    assert "you predicted 41, this run measured 42 (off by -1, -2.38%; tolerance ±2)" in feedback
    assert "- Exercise 9.2 (why): submitted, see rubric." in feedback
    assert "1. names the quantity" in feedback and "2. says why it has that value" in feedback
    far_off = (out / "feedback" / "far_off.md").read_text(encoding="utf-8")
    assert "- Exercise 9.1 (six sevens): failed." in far_off and "Six sevens are 42." in far_off


# Without a sandbox: the plain-data rule, and what the grader reads from the book ----------------


class Sub(float):
    pass


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (None, None),
        (True, True),
        (42, 42),
        (0.5, 0.5),
        ("a text", "a text"),
        (np.float32(0.5), 0.5),
        (np.int64(7), 7),
        (np.bool_(True), True),
    ],
)
def test_plain_values_travel_as_themselves(value, sent):
    assert remote.plain_value(value) == sent
    assert type(remote.plain_value(value)) is type(sent)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (Sub(1.0), "a Sub (a subclass of float): assign a plain float"),
        (np.array(1.0), "an array (ndarray): assign one plain number (e.g. with .item())"),
        ({"a": 1}, "a dict: expected one number or one text"),
        (b"bytes", "a bytes: expected one number or one text"),
        (print, "a builtin_function_or_method: expected one number or one text"),
        ("x" * 11, "a text of 11 bytes, over the answer limit of 10 bytes"),
    ],
)
def test_anything_else_is_refused_with_its_type(value, why):
    assert remote.plain_value(value, max_bytes=10) == {
        "$": "opaque",
        "type": type(value).__qualname__,
        "text": why,
    }


def test_fetch_value_refuses_a_reply_that_plain_value_does_not_write():
    grader, worker = socket.socketpair()
    peer = remote.Peer(grader, "grader")
    other = remote.Peer(worker, "worker")
    peer.deadline = other.deadline = None

    def reply(value):
        request = other.receive()
        other.send({"reply": True, "id": request.get("id"), "value": value})

    for value, expected in (
        ([1, 2], remote.PeerGone),
        ({"$": "opaque", "type": "list", "text": "a list: no"}, remote.ValueRefused),
        ({"$": "opaque", "type": 3, "text": "x"}, remote.PeerGone),
    ):
        thread = threading.Thread(target=reply, args=(value,))
        thread.start()
        with pytest.raises(expected):
            remote.fetch_value(peer, "PREDICTED")
        thread.join()
    grader.close()
    worker.close()


def test_the_book_says_which_exercises_take_a_value():
    chapters = sorted(
        int(path.name[:2])
        for path in (config.project_root() / "notebooks").glob("[0-9][0-9]_*.ipynb")
    )
    kinds = {
        exercise.exercise_id: (exercise.kind, exercise.names)
        for chapter in chapters
        for exercise in discovery.chapter_checks(chapter)
        if exercise.takes_value
    }
    assert kinds, "the book should have exercises whose answer is a value"
    for exercise_id, (kind, names) in kinds.items():
        assert kind in ("prediction", "derivation", "open"), exercise_id
        assert len(names) == 1 and names[0].isupper(), (exercise_id, names)


def test_a_check_that_takes_another_name_than_the_solution_assigns_is_refused(
    tmp_path, monkeypatch
):
    cells = [
        nbformat.v4.new_code_cell(
            "GUESS = 3", metadata={"tags": ["solution", "exercise-9.1", "kind-predict"]}
        ),
        nbformat.v4.new_code_cell("ch09.check_guess(PREDICTED)"),
    ]
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / "notebooks" / "09_x.ipynb")
    monkeypatch.setattr(config, "project_root", lambda: tmp_path)
    discovery.chapter_checks.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"takes \('PREDICTED',\); expected .* GUESS"):
            discovery.chapter_checks(9)
    finally:
        discovery.chapter_checks.cache_clear()
