"""How a verdict is shown: rich HTML (green/red, failing case, expected) in a notebook kernel,
plain text in a terminal; the rich display keeps a text/plain part for nbval and diffs."""

import nbformat
import pytest
from nbclient import NotebookClient

from handbook.exercises import checks


def _result(status, messages=(), passed=0, total=2):
    return checks.ExerciseResult("9.1", "double", status, passed, total, list(messages))


def test_a_pass_is_green_and_names_the_exercise():
    html = _result(checks.PASSED, passed=2).html()
    assert checks._PASSED_COLOR in html and checks._FAILED_COLOR not in html
    assert "✓</span> Exercise 9.1 (double): all 2 checks passed" in html


def test_a_failure_is_red_and_shows_the_failing_case_and_what_was_expected():
    html = _result(checks.FAILED, ["a batch of one <image>: expected 2, got 3"], 1).html()
    assert checks._FAILED_COLOR in html and "1 of 2 checks passed" in html
    assert "a batch of one &lt;image&gt;: expected 2, got 3" in html


def test_not_done_says_so_in_the_rich_form_too():
    message = checks.not_done_message("9.1", "double")
    html = _result(checks.NOT_DONE, [message]).html()
    assert "not yet done" in html and "handbook-check-not-done" in html


def test_outside_a_kernel_the_report_is_printed(capsys):
    checks.show(_result(checks.PASSED, passed=2))
    assert capsys.readouterr().out == "✓ Exercise 9.1 (double): all 2 checks passed\n"


def test_in_a_kernel_the_display_has_html_and_the_same_plain_text():
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "from handbook.exercises import checks\n"
                "def wrong(): checks.expect_equal(3, 2, 'double(1)')\n"
                "checks.check_exercise('9.1', 'double', [checks.Case('one', wrong)])"
            )
        ]
    )
    NotebookClient(notebook, timeout=60, kernel_name="python3").execute()
    (output,) = notebook.cells[0].outputs
    assert output.output_type == "display_data"
    assert output.data["text/plain"] == (
        "✗ Exercise 9.1 (double): 0 of 1 checks passed\n    - one: double(1): expected 2, got 3"
    )
    assert "expected 2, got 3" in output.data["text/html"]
    assert checks._FAILED_COLOR in output.data["text/html"]


@pytest.mark.parametrize("status", checks.STATUSES)
def test_every_status_renders(status):
    assert "<div" in _result(status, ["why"]).html()


def test_a_prediction_shows_its_gap_and_an_open_answer_its_rubric_in_the_rich_form():
    prediction = checks.check_number("9.2", "triple", 20, 21, tolerance=2, explain="3 x 7 = 21.")
    html = prediction.html()
    assert checks._PASSED_COLOR in html and "your prediction matches, within tolerance" in html
    assert "you predicted 20, this run measured 21 (off by -1, -4.76%; tolerance ±2)" in html
    assert "3 x 7 = 21." in html
    answer = checks.check_open_answer(
        "9.3", "why", "because " * 3, rubric=["says why <it> holds"], min_words=3
    )
    html = answer.html()
    assert "✎</span> Exercise 9.3 (why): submitted, see rubric" in html
    assert "1. says why &lt;it&gt; holds" in html and checks._SUBMITTED_COLOR in html
