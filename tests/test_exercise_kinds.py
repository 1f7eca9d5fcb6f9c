"""Exercises whose answer is a value: a prediction or a derivation (a number within a
tolerance), an open question (a text, "submitted, see rubric"); their messages, their display,
and strict mode."""

from __future__ import annotations

import fractions

import numpy as np
import pytest
import torch

from handbook import config
from handbook.exercises import checks
from handbook.exercises.checks import ExerciseFailed, check_number, check_open_answer

RUBRIC = ["names the trade-off", "quotes a number the chapter measured", "says what to try next"]
REFERENCE_TEXT = " ".join(["forgetting"] * 45)


@pytest.fixture(autouse=True)
def lenient_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts outside strict mode, whatever the shell says."""
    monkeypatch.setenv(config.STRICT_EXERCISES_ENV, "0")
    monkeypatch.delenv(config.EXPECT_EXERCISES_ENV, raising=False)


def predict(answer, expected=12_345, **options):
    options = {"tolerance": 0.05, "relative": True, "unit": "parameters", **options}
    return check_number("1.5", "parameters", answer, expected, **options)


# Numbers ------------------------------------------------------------------------------------


def test_a_prediction_within_tolerance_passes_and_still_shows_the_gap(capsys):
    result = predict(12_000)
    assert result.status == checks.PASSED and result.kind == checks.PREDICTION
    (message,) = result.messages
    assert "you predicted 12,000 parameters, this run measured 12,345 parameters" in message
    assert "off by -345 parameters, -2.79%" in message
    assert "tolerance ±5% of the true value, ±617.25 parameters" in message
    assert "matches, within tolerance" in capsys.readouterr().out


def test_a_wrong_prediction_states_the_gap_the_tolerance_and_the_explanation():
    explain = "Each of the 2 layers holds 4 d_model² attention weights."
    result = predict(1_000, explain=explain)
    assert result.status == checks.FAILED and (result.passed, result.total) == (0, 1)
    (message,) = result.messages
    assert message.startswith("you predicted 1,000 parameters, this run measured 12,345")
    assert "off by -11,345 parameters, -91.9%" in message
    assert "tolerance ±5% of the true value" in message
    assert message.endswith("\n" + explain)
    assert "your prediction does not match" in result.report()


def test_an_absolute_tolerance_is_in_the_unit_and_a_derivation_names_the_formula():
    result = check_number(
        "7.3", "saving", 0.5, 0.75, tolerance=1e-3, kind=checks.DERIVATION, unit="of the memory"
    )
    assert result.status == checks.FAILED and result.kind == checks.DERIVATION
    assert result.messages[0].startswith(
        "you derived 0.5 of the memory, the formula gives 0.75 of the memory"
    )
    assert "tolerance ±0.001 of the memory" in result.messages[0]
    assert check_number("7.3", "saving", 0.7504, 0.75, tolerance=1e-3, kind="derivation").ok
    assert not check_number("7.3", "saving", 0.752, 0.75, tolerance=1e-3, kind="derivation").ok


def test_the_tolerance_edge_is_inclusive_and_a_zero_truth_has_no_percentage():
    assert check_number("1.5", "zero", 0.5, 0.0, tolerance=0.5).ok
    result = check_number("1.5", "zero", 0.75, 0.0, tolerance=0.5)
    assert not result.ok and "off by +0.75;" in result.messages[0] and "%" not in result.messages[0]


@pytest.mark.parametrize("stub", [None, ..., "", "   "])
def test_the_stub_is_not_done(stub):
    result = predict(stub)
    assert result.status == checks.NOT_DONE
    assert "not yet done - replace `None` in the exercise cell with your prediction" in (
        result.report()
    )


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (True, "got the bool True"),
        ("12345", "got the string '12345': write the number without quotes"),
        (float("nan"), "got NaN"),
        (float("-inf"), "got -inf (an infinity is not a finite number)"),
        ([12_000, 13_000], "got [12000, 13000]: write a single number, not an array or a list"),
        (np.array([12_000.0]), "got array of shape (1,)"),
        (np.array(12_000.0), "got array of shape ()"),
        (torch.tensor(12_000), "got tensor of shape ()"),
        pytest.param(10**5000, "too large for a float (about 5001 digits)", id="huge-int"),
        (1 + 2j, "got a value of type complex"),
    ],
)
def test_what_is_not_a_finite_number_fails_saying_what_was_given_and_wanted(answer, said):
    result = predict(answer)
    assert result.status == checks.FAILED
    (message,) = result.messages
    assert message.startswith("expected a number such as 12,345 parameters")
    assert said in message


@pytest.mark.parametrize("answer", [12_345, 12_345.0, np.int64(12_345), np.float32(12_345)])
def test_ints_floats_and_numpy_scalars_are_numbers(answer):
    assert predict(answer).ok


def test_a_fraction_is_a_number():
    assert check_number("7.3", "saving", fractions.Fraction(3, 4), 0.75, tolerance=0).ok


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"tolerance": -1}, "expected a finite tolerance >= 0, got -1"),
        ({"tolerance": float("nan")}, "expected a finite tolerance >= 0"),
        ({"tolerance": 1, "kind": "guess"}, "expected kind 'prediction' or 'derivation'"),
    ],
)
def test_an_author_mistake_in_the_check_is_a_value_error(options, complaint):
    with pytest.raises(ValueError, match=complaint.replace("(", r"\(")):
        check_number("1.5", "parameters", 1, 2, **options)
    with pytest.raises(ValueError, match="expected a finite true value, got nan"):
        check_number("1.5", "parameters", 1, float("nan"), tolerance=1)


# Open answers -------------------------------------------------------------------------------


def test_an_open_answer_long_enough_is_submitted_with_the_rubric(capsys):
    result = check_open_answer("7.4", "forgetting", REFERENCE_TEXT, rubric=RUBRIC)
    assert result.status == checks.SUBMITTED and result.kind == checks.OPEN
    assert not result.ok and result.done
    printed = capsys.readouterr().out
    assert printed.startswith("✎ Exercise 7.4 (forgetting): submitted, see rubric\n")
    assert "your answer (45 words) is read against this rubric:" in printed
    assert "1. names the trade-off" in printed and "3. says what to try next" in printed


@pytest.mark.parametrize(
    ("answer", "todo"),
    [
        (None, "write your answer as a text in the exercise cell"),
        ("", "write your answer in the exercise cell (the text is empty)"),
        ("  \n ", "write your answer in the exercise cell (the text is empty)"),
        ("It forgets less.", "your answer has 3 words; write at least 40"),
    ],
)
def test_an_empty_or_short_answer_is_not_done(answer, todo):
    result = check_open_answer("7.4", "forgetting", answer, rubric=RUBRIC)
    assert result.status == checks.NOT_DONE
    assert result.report() == f"✗ Exercise 7.4 (forgetting): not yet done - {todo}"


def test_an_answer_that_is_not_a_text_fails_saying_so():
    result = check_open_answer("7.4", "forgetting", 42, rubric=RUBRIC)
    assert result.status == checks.FAILED
    assert (
        "expected your answer as a text (a string in quotes), got a value of type int: 42"
        in (result.messages[0])
    )
    assert "your answer is not a text" in result.headline()


def test_min_words_is_the_authors_choice():
    assert check_open_answer("7.4", "t", "one two three", rubric=RUBRIC, min_words=3).done
    with pytest.raises(ValueError, match="expected a rubric of non-empty criteria"):
        check_open_answer("7.4", "t", REFERENCE_TEXT, rubric=[])
    with pytest.raises(ValueError, match="expected min_words >= 1, got 0"):
        check_open_answer("7.4", "t", REFERENCE_TEXT, rubric=RUBRIC, min_words=0)


# Display, records and strict mode -----------------------------------------------------------


def test_submitted_reads_as_see_rubric_and_has_its_own_colour():
    result = check_open_answer("7.4", "forgetting", REFERENCE_TEXT, rubric=RUBRIC)
    html = result.html()
    assert "handbook-check-submitted" in html and checks._SUBMITTED_COLOR in html
    assert checks._PASSED_COLOR not in html and checks._FAILED_COLOR not in html
    assert "submitted, see rubric" in html and "1. names the trade-off" in html
    assert checks.status_text(checks.SUBMITTED) == "submitted, see rubric"
    assert checks.status_text(checks.PASSED) == "passed"


def test_a_result_keeps_its_kind_through_json_and_an_old_record_is_a_function():
    result = predict(1_000)
    assert checks.ExerciseResult.from_json(result.to_json()) == result
    old = {"id": "1.1", "title": "t", "status": "passed", "passed": 2, "total": 2}
    assert checks.ExerciseResult.from_json(old).kind == checks.FUNCTION
    with pytest.raises(ValueError, match="expected a kind among"):
        checks.ExerciseResult.from_json({**old, "kind": "essay"})


def test_strict_mode_takes_a_submitted_answer_as_done(monkeypatch):
    monkeypatch.setenv(config.STRICT_EXERCISES_ENV, "1")
    assert check_open_answer("7.4", "t", REFERENCE_TEXT, rubric=RUBRIC).status == checks.SUBMITTED
    assert predict(12_345).ok
    with pytest.raises(ExerciseFailed, match="not yet done - your answer has 2 words"):
        check_open_answer("7.4", "t", "too short", rubric=RUBRIC)
    with pytest.raises(ExerciseFailed, match="you predicted 1,000 parameters"):
        predict(1_000)


def test_the_student_edition_mode_requires_the_stub(monkeypatch):
    monkeypatch.setenv(config.EXPECT_EXERCISES_ENV, "not done")
    assert predict(None).status == checks.NOT_DONE
    assert check_open_answer("7.4", "t", "", rubric=RUBRIC).status == checks.NOT_DONE
    with pytest.raises(ExerciseFailed, match="expected 'not done' here: a student edition"):
        check_open_answer("7.4", "t", REFERENCE_TEXT, rubric=RUBRIC)
    with pytest.raises(ExerciseFailed, match="a student edition"):
        predict(12_345)


def test_typical_slip_names_a_slip_never_the_truth_and_ignores_non_numbers() -> None:
    from handbook.exercises.checks import typical_slip

    slips = {64.0: "a percentage, not a fraction", 0.36: "the share retraining keeps"}
    assert typical_slip(64, 0.64, slips, tolerance=0.005) == (
        "Your number is a percentage, not a fraction. "
    )
    assert typical_slip(0.362, 0.64, slips, tolerance=0.005) == (
        "Your number is the share retraining keeps. "
    )
    assert typical_slip(0.641, 0.64, slips, tolerance=0.005) == ""  # the truth: no slip
    assert typical_slip(0.5, 0.64, slips, tolerance=0.005) == ""  # wrong, but no known slip
    for not_a_number in (True, "0.36", float("nan"), None):
        assert typical_slip(not_a_number, 0.64, slips, tolerance=0.005) == ""
    # a wider band for slips than for the truth
    assert typical_slip(0.37, 0.64, slips, tolerance=0.005, slip_tolerance=0.02) != ""
    assert typical_slip(0.37, 0.64, slips, tolerance=0.005) == ""
