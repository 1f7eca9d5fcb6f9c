"""The exercise machinery: the check API, the student edition, and the grader end to end."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from handbook import config
from handbook.exercises import checks, discovery, grading, student
from handbook.exercises.checks import Case, ExerciseFailed, ExerciseResult, check_exercise


@pytest.fixture(autouse=True)
def lenient_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts outside strict mode, whatever the shell says."""
    monkeypatch.setenv(config.STRICT_EXERCISES_ENV, "0")
    monkeypatch.delenv(config.EXPECT_EXERCISES_ENV, raising=False)


def passing() -> None:
    """A case body that passes."""


def failing() -> None:
    checks.expect_equal(3, 4, "answer")


def not_done() -> None:
    raise NotImplementedError("Exercise 9.9: write it")


def crashing() -> None:
    raise KeyError("pixels")


# The check API --------------------------------------------------------------------------------


def test_passing_exercise_prints_a_tick_and_counts_every_case(capsys) -> None:
    result = check_exercise("9.1", "double", [Case("one", passing), Case("two", passing)])

    assert (result.id, result.status, result.passed, result.total) == ("9.1", "passed", 2, 2)
    assert result.messages == []
    assert capsys.readouterr().out == "✓ Exercise 9.1 (double): all 2 checks passed\n"


def test_a_failing_case_does_not_stop_the_next_ones(capsys) -> None:
    cases = [Case("small input", passing), Case("negative input", failing), Case("big", passing)]

    result = check_exercise("9.1", "double", cases)

    assert (result.status, result.passed, result.total) == ("failed", 2, 3)
    assert result.messages == ["negative input: answer: expected 4, got 3"]
    printed = capsys.readouterr().out
    assert printed.startswith("✗ Exercise 9.1 (double): 2 of 3 checks passed\n")
    assert "negative input: answer: expected 4, got 3" in printed


def test_not_implemented_anywhere_means_not_done(capsys) -> None:
    result = check_exercise("0.2", "accuracy", [Case("first", passing), Case("second", not_done)])

    assert result.status == "not done"
    assert result.messages == [
        "Exercise 0.2 (accuracy): not yet done - replace the `raise NotImplementedError` "
        "in the exercise cell"
    ]
    assert "✗ Exercise 0.2 (accuracy): not yet done" in capsys.readouterr().out


def test_an_unexpected_exception_is_an_error_naming_the_case_and_the_exception() -> None:
    result = check_exercise(
        "9.1", "double", [Case("wrong answer", failing), Case("lookup", crashing)]
    )

    assert (result.status, result.passed) == ("error", 0)
    assert result.messages[1] == "lookup: raised KeyError: 'pixels'"


def test_an_exercise_needs_cases() -> None:
    with pytest.raises(ValueError, match="at least one case"):
        check_exercise("9.1", "double", [])


@pytest.mark.parametrize(
    ("body", "verdict"),
    [(failing, "0 of 1 checks passed"), (not_done, "not yet done"), (crashing, "error")],
)
def test_strict_mode_raises_the_report_unless_passed(monkeypatch, body, verdict) -> None:
    monkeypatch.setenv(config.STRICT_EXERCISES_ENV, "1")

    with pytest.raises(ExerciseFailed) as raised:
        check_exercise("9.1", "double", [Case("the case", body)])

    assert isinstance(raised.value, AssertionError)
    assert str(raised.value).startswith(f"✗ Exercise 9.1 (double): {verdict}")
    assert check_exercise("9.1", "double", [Case("fine", passing)]).status == "passed"


def test_the_student_edition_expectation_raises_unless_not_done(monkeypatch) -> None:
    monkeypatch.setenv(config.EXPECT_EXERCISES_ENV, "not done")

    assert check_exercise("9.1", "double", [Case("stub", not_done)]).status == "not done"
    with pytest.raises(ExerciseFailed, match="expected 'not done' here: a student edition"):
        check_exercise("9.1", "double", [Case("solved", passing)])
    monkeypatch.setenv(config.EXPECT_EXERCISES_ENV, "finished")
    with pytest.raises(ValueError, match="HANDBOOK_EXERCISES_EXPECT='finished': expected one of"):
        check_exercise("9.1", "double", [Case("stub", not_done)])


def test_a_result_round_trips_through_json() -> None:
    result = check_exercise("9.2", "square", [Case("one", failing), Case("two", passing)])
    assert ExerciseResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_a_grade_record_with_an_unknown_status_is_refused() -> None:
    record = {"id": "9.1", "title": "t", "status": "done", "passed": 1, "total": 1}
    with pytest.raises(ValueError, match="expected a status"):
        ExerciseResult.from_json(record)


def test_expect_close_names_the_first_difference_and_the_largest() -> None:
    checks.expect_close(torch.tensor([0.5, 1.0]), np.array([0.5, 1.0]), "scaled")
    with pytest.raises(AssertionError) as raised:
        checks.expect_close(torch.tensor([0.5, 0.9]), np.array([0.5, 1.0]), "scaled", atol=1e-3)

    assert str(raised.value) == (
        "scaled: 1 of 2 values differ, the first at index (1,): expected 1.0, got 0.9\n"
        "expected array of shape (2,) and dtype float64: [0.5 1. ]\n"
        "got tensor of shape (2,) and dtype torch.float32: [0.5 0.9]"
        " (largest difference 0.1, tolerance 0.001 + 1e-05 x |expected|)"
    )


def test_big_arrays_are_summarised_not_printed() -> None:
    expected = np.zeros((2, 1, 8, 8))
    actual = expected.copy()
    actual[1, 0, 2, 3] = 7
    with pytest.raises(AssertionError) as raised:
        checks.expect_equal(actual, expected, "images")
    assert str(raised.value) == (
        "images: 1 of 128 values differ, the first at index (1, 0, 2, 3): expected 0.0, got 7.0"
    )
    with pytest.raises(AssertionError, match=r"^number: expected 2, got 3$"):
        checks.expect_close(3, 2, "number")


def test_expect_close_and_expect_equal_check_shapes_first() -> None:
    with pytest.raises(AssertionError, match=r"values: expected shape \(2, 2\), got \(4,\)"):
        checks.expect_close(np.zeros(4), np.zeros((2, 2)), "values")
    with pytest.raises(AssertionError, match=r"counts: expected shape \(3,\), got \(2,\)"):
        checks.expect_equal(torch.tensor([1, 2]), np.array([1, 2, 3]), "counts")
    with pytest.raises(AssertionError, match="without a shape"):
        checks.expect_shape([1, 2], (2,), "a list")
    with pytest.raises(AssertionError, match="expected a float, got Tensor"):
        checks.expect_type(torch.tensor(1.0), float, "result")


def test_expect_raises_reports_the_wrong_outcome_and_lets_stubs_through() -> None:
    checks.expect_raises(lambda: int("x"), ValueError, "parsing")
    with pytest.raises(AssertionError, match="parsing: expected ValueError, but it returned 3"):
        checks.expect_raises(lambda: 3, ValueError, "parsing")
    with pytest.raises(AssertionError, match="expected ValueError, got KeyError"):
        checks.expect_raises(lambda: {}["x"], ValueError, "parsing")
    with pytest.raises(NotImplementedError):
        checks.expect_raises(not_done, Exception, "parsing")


# The student edition -------------------------------------------------------------------------

SOLUTION = '''import numpy as np
from torch import (
    Tensor,
)


@np.vectorize
def scale(
    images: np.ndarray, maximum: float = 16.0
) -> Tensor:  # the signature spans lines
    """Scale pixels to [0, 1].

    Longer explanation that stays.
    """
    secret_line = images / maximum
    return secret_line


def one_liner(x): """Return x unchanged."""; return x
'''


def test_stub_keeps_imports_signatures_and_docstrings_and_drops_bodies() -> None:
    stub = student.stub_source(SOLUTION, "0.1")

    assert "secret_line" not in stub
    assert "return x" not in stub
    assert stub.startswith("import numpy as np\nfrom torch import (\n    Tensor,\n)\n")
    assert "@np.vectorize\ndef scale(\n    images: np.ndarray, maximum: float = 16.0\n" in stub
    assert '    """Scale pixels to [0, 1].\n\n    Longer explanation that stays.\n    """\n' in stub
    assert '    raise NotImplementedError("Exercise 0.1: Scale pixels to [0, 1].")' in stub
    assert (
        'def one_liner(x):\n    """Return x unchanged."""\n    raise NotImplementedError(' in stub
    )


def test_a_stub_runs_and_raises_not_implemented_with_the_exercise_and_docstring() -> None:
    namespace: dict = {}
    exec(student.stub_source(SOLUTION, "0.1"), namespace)

    with pytest.raises(NotImplementedError, match=r"^Exercise 0\.1: Return x unchanged\.$"):
        namespace["one_liner"](1)


def test_a_long_stub_line_is_wrapped_to_the_project_line_length() -> None:
    summary = "Return the fraction of rows of logits whose largest entry is the true label."
    source = f'def accuracy(logits, labels):\n    """{summary}"""\n    return 1.0\n'
    stub = student.stub_source(source, "0.2")
    namespace: dict = {}
    exec(stub, namespace)

    assert max(len(line) for line in stub.splitlines()) <= 100
    with pytest.raises(NotImplementedError) as raised:
        namespace["accuracy"](None, None)
    assert str(raised.value) == f"Exercise 0.2: {summary}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import numpy\nx = 1\n", "found `x = 1` on line 2"),
        ("class Model:\n    pass\n", "found `class Model:` on line 1"),
        ("def f(x):\n    return x\n", "function `f` (line 1) has no docstring"),
        ('def f(x):\n    """   """\n    return x\n', "function `f` (line 1) has no docstring"),
        ("import numpy\n", "expected at least one function definition"),
        ("def f(x:\n", "syntax error on line 1"),
    ],
)
def test_a_malformed_solution_is_refused_with_what_was_expected(source, expected) -> None:
    with pytest.raises(ValueError, match="^cell 3: ") as raised:
        student.stub_source(source, "0.1", where="cell 3")
    assert expected in str(raised.value)


def code_cell(source: str, *tags: str, outputs: bool = False) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
    if outputs:
        cell.execution_count = 7
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="printed\n")]
    return cell


def solution_cell(exercise_id: str, source: str) -> nbformat.NotebookNode:
    return code_cell(source, "solution", "hide-input", f"exercise-{exercise_id}", outputs=True)


def write_notebook(path: Path, cells: list[nbformat.NotebookNode]) -> Path:
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "language": "python",
        "display_name": "py",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def test_student_edition_replaces_solutions_and_clears_outputs(tmp_path: Path) -> None:
    source = write_notebook(
        tmp_path / "00_digits.ipynb",
        [
            nbformat.v4.new_markdown_cell("# Digits\n\nSee {ref}`exercise-0.1`."),
            code_cell("import numpy as np", "parameters", outputs=True),
            solution_cell("0.1", SOLUTION),
            code_cell("check(scale)", outputs=True),
        ],
    )

    destination = student.make_student_edition(source, tmp_path / "student" / "00_digits.ipynb")

    edition = nbformat.read(destination, as_version=4)
    assert edition.cells[0].cell_type == "markdown"
    assert edition.cells[0].source.startswith("**Student edition.**")
    assert [cell.source for cell in edition.cells[1:2]] == ["# Digits\n\nSee {ref}`exercise-0.1`."]
    stub = edition.cells[3]
    assert stub.metadata["tags"] == ["exercise-0.1", "exercise-stub"]
    assert stub.source == student.stub_source(SOLUTION, "0.1")
    assert not any("secret_line" in cell.source for cell in edition.cells)
    code_cells = [cell for cell in edition.cells if cell.cell_type == "code"]
    assert [(cell.outputs, cell.execution_count) for cell in code_cells] == [([], None)] * 3
    assert student.exercise_ids(edition) == student.exercise_ids(nbformat.read(source, 4))
    nbformat.validate(edition)


def test_a_solution_cell_without_an_exercise_tag_names_the_notebook_and_cell(tmp_path) -> None:
    source = write_notebook(
        tmp_path / "00_digits.ipynb",
        [code_cell("import numpy"), code_cell(SOLUTION, "solution", "hide-input")],
    )

    with pytest.raises(ValueError, match=r"00_digits\.ipynb: cell 1: .*exactly one tag exercise-"):
        student.make_student_edition(source, tmp_path / "out.ipynb")


def test_a_student_edition_never_overwrites_its_source(tmp_path: Path) -> None:
    source = write_notebook(tmp_path / "a.ipynb", [code_cell("1")])
    with pytest.raises(ValueError, match="would overwrite"):
        student.make_student_edition(source, source)


def test_student_editions_need_distinct_names(tmp_path: Path) -> None:
    first = write_notebook(tmp_path / "one" / "a.ipynb", [code_cell("1")])
    second = write_notebook(tmp_path / "two" / "a.ipynb", [code_cell("2")])
    with pytest.raises(ValueError, match=r"\['a\.ipynb'\] twice"):
        student.make_student_editions([first, second], tmp_path / "student")
    assert student.make_student_editions([first], tmp_path / "out") == [tmp_path / "out/a.ipynb"]


def test_exercise_ids_follow_the_notebook_order_once_each() -> None:
    notebook = nbformat.v4.new_notebook(
        cells=[
            code_cell("", "exercise-0.3", "exercise-stub"),
            nbformat.v4.new_markdown_cell("", metadata={"tags": ["exercise-0.1"]}),
            code_cell("", "exercise-0.3", "solution"),
            code_cell("", "exercise-0.10", "exercise-notes"),
        ]
    )
    assert student.exercise_ids(notebook) == ["0.3", "0.1", "0.10"]


# The grader's bookkeeping (the grader itself: test_grading.py) -------------------------------


def test_a_check_result_shows_nothing_more_when_a_cell_ends_with_it() -> None:
    from IPython.core.formatters import DisplayFormatter

    result = check_exercise("9.1", "double", [Case("one", passing)])
    assert DisplayFormatter().format(result) == ({}, {})


def test_submissions_are_labelled_by_their_path_below_the_common_folder(tmp_path) -> None:
    paths = [tmp_path / "alice" / "ch.ipynb", tmp_path / "bob" / "ch.ipynb"]
    assert grading.submission_labels(paths) == ["alice/ch.ipynb", "bob/ch.ipynb"]
    assert grading.submission_labels(paths[:1]) == ["ch.ipynb"]
    with pytest.raises(ValueError, match="more than once"):
        grading.submission_labels([paths[0], paths[0]])


def test_a_class_folder_is_every_visible_file_below_it(tmp_path: Path) -> None:
    names = ("bob/00.ipynb", "alice/00.ipynb", "alice/.ipynb_checkpoints/00.ipynb", "carol.txt")
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    found = grading.collect_submissions([tmp_path])
    assert [path.relative_to(tmp_path).as_posix() for path in found] == [
        "alice/00.ipynb",
        "bob/00.ipynb",
        "carol.txt",
    ]
    with pytest.raises(FileNotFoundError, match="no submission at"):
        grading.collect_submissions([tmp_path / "missing.ipynb"])


def test_the_chapter_is_the_one_most_submissions_belong_to(tmp_path: Path) -> None:
    paths = []
    for name, tag in (("a", "exercise-0.1"), ("b", "exercise-0.2"), ("c", "exercise-1.1")):
        paths.append(write_notebook(tmp_path / f"{name}.ipynb", [code_cell("x = 1", tag)]))
    assert discovery.infer_chapter(paths) == 0
    (tmp_path / "d.ipynb").write_text("not json")
    with pytest.raises(ValueError, match="give it with --chapter"):
        discovery.infer_chapter([tmp_path / "d.ipynb"])
