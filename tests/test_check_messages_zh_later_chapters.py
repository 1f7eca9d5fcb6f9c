"""Chapters 6-10's check messages in Chinese (issue 25): under ``HANDBOOK_LANG=zh_CN`` the verdict,
each case's description and failure message, the slip a derivation names, its worked answer and
an open question's rubric print in Chinese, carrying the numbers of the English message; with
``HANDBOOK_LANG`` unset the same checks print exactly the English they printed before.

Each check runs twice in one process, English then Chinese, so a message translated once at
import time (and frozen in one language) fails here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from test_exercises_ch06 import threshold_for_false_positive_rate
from test_exercises_ch08 import recall_at_k
from test_exercises_ch10 import task_label

from handbook import config
from handbook.exercises import ch06, ch07, ch08, ch09, ch10
from handbook.exercises.checks import FAILED, NOT_DONE, PASSED, SUBMITTED, ExerciseResult
from handbook.i18n import LANG_ENV

pytestmark = pytest.mark.usefixtures("one_thread")

CJK = re.compile(r"[\u4e00-\u9fff]")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
#: Two English words in a row outside `code`, or "expected"/"got": prose left untranslated
#: (identifiers, formulas such as ``k r / n`` and the product name Label Studio do not read so).
ENGLISH_PROSE = re.compile(r"\b(?!Label Studio)[A-Za-z]{2,} [A-Za-z]{2,}\b|\b(?:expected|got)\b")
INLINE_CODE = re.compile(r"`[^`]*`")


def _english_left(text: str) -> str | None:
    found = ENGLISH_PROSE.search(INLINE_CODE.sub(" ", text))
    return found.group(0) if found else None


def _stub(*arguments: object) -> object:
    raise NotImplementedError("not written yet")


def _hired_b_weight() -> float:
    return ch09._cell_weights(ch09.DERIVATION_COUNTS)["B", 1]


#: (what, how to run the check, the status it must give); failing cases give a wrong answer that
#: the check explains, passing ones the tests' reference solutions.
CHECKS: list[tuple[str, Callable[[], ExerciseResult], str]] = [
    (
        "6.2 over budget",
        lambda: ch06.check_threshold_for_false_positive_rate(lambda labels, scores, b: 0.5),
        FAILED,
    ),
    (
        "6.2 reference",
        lambda: ch06.check_threshold_for_false_positive_rate(threshold_for_false_positive_rate),
        PASSED,
    ),
    (
        "6.5 the recall slip",
        lambda: ch06.check_alert_precision_derivation(ch06.DERIVATION_RECALL),
        FAILED,
    ),
    ("6.6 rubric", lambda: ch06.check_transfer_investigation("word " * 45), SUBMITTED),
    ("7.2 stub", lambda: ch07.check_reservoir_sample(_stub), NOT_DONE),
    ("7.3 a percentage", lambda: ch07.check_average_forgetting(lambda a: 42.0), FAILED),
    ("7.4 a percentage", lambda: ch07.check_replay_saving_derivation(64.0), FAILED),
    ("7.5 rubric", lambda: ch07.check_ewc_investigation("word " * 45), SUBMITTED),
    ("8.3 a percentage", lambda: ch08.check_recall_at_k(lambda s, k: 50.0), FAILED),
    ("8.3 reference", lambda: ch08.check_recall_at_k(recall_at_k), PASSED),
    (
        "8.4 the union bound",
        lambda: ch08.check_chance_recall_prediction(
            ch08.PREDICTION_K * ch08.PREDICTION_RELEVANT / ch08.PREDICTION_ITEMS
        ),
        FAILED,
    ),
    (
        "9.5 upside down",
        lambda: ch09.check_reweighing_derivation(1 / _hired_b_weight()),
        FAILED,
    ),
    ("9.5 right", lambda: ch09.check_reweighing_derivation(_hired_b_weight()), PASSED),
    ("10.3 always None", lambda: ch10.check_task_label(lambda task, names: None), FAILED),
    ("10.3 reference", lambda: ch10.check_task_label(task_label), PASSED),
    ("10.4 two slips", lambda: ch10.check_repeated_examples_derivation(1), FAILED),
    (
        "10.4 right",
        lambda: ch10.check_repeated_examples_derivation(
            ch10.repeated_per_epoch(ch10.DERIVATION_EXAMPLES, ch10.DERIVATION_PROCESSES)
        ),
        PASSED,
    ),
]


@pytest.fixture
def lenient(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Checks report a wrong answer instead of raising (strict mode off)."""
    monkeypatch.delenv(config.STRICT_EXERCISES_ENV, raising=False)
    return monkeypatch


def _run(
    monkeypatch: pytest.MonkeyPatch, language: str | None, check: Callable[[], ExerciseResult]
) -> tuple[ExerciseResult, str, str]:
    """The check's result, its report and its HTML, all in ``language`` (None: English): a
    result's report and HTML are worded when they are asked for, so they are read here."""
    if language is None:
        monkeypatch.delenv(LANG_ENV, raising=False)
    else:
        monkeypatch.setenv(LANG_ENV, language)
    result = check()
    return result, result.report(), result.html()


def _numbers(text: str) -> set[str]:
    return set(NUMBER.findall(text))


@pytest.mark.parametrize(("name", "check", "status"), CHECKS, ids=[name for name, *_ in CHECKS])
def test_a_check_prints_in_chinese_with_the_numbers_of_the_english_message(
    lenient: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name, check, status
) -> None:
    english, english_report, english_html = _run(lenient, None, check)
    capsys.readouterr()
    chinese, report, html = _run(lenient, "zh_CN", check)
    printed = capsys.readouterr().out

    assert english.status == chinese.status == status, name
    assert not CJK.search(english_report + english_html), english_report
    assert printed.strip() == report.strip()
    headline = report.splitlines()[0]
    assert CJK.search(headline), f"the verdict is not in Chinese: {headline!r}"
    assert not _english_left(headline), f"English left in {headline!r}"
    assert f"练习{english.id}" in headline, headline
    english_headline = english_report.splitlines()[0]
    assert _numbers(english_headline) <= _numbers(headline), (english_headline, headline)
    assert len(chinese.messages) == len(english.messages)
    for english_message, message in zip(english.messages, chinese.messages, strict=True):
        assert CJK.search(message), f"a message is not in Chinese: {message!r}"
        assert not _english_left(message), f"English left in {message!r}"
        missing = _numbers(english_message) - _numbers(message)
        assert not missing, (
            f"the Chinese message lost {missing}: {english_message!r} -> {message!r}"
        )
    assert CJK.search(html), html


def test_the_english_messages_are_the_ones_printed_before_translation(lenient) -> None:
    """Byte for byte, as the checks printed them before the messages were marked for gettext."""
    _, over_budget, _ = _run(
        lenient, None, lambda: ch06.check_threshold_for_false_positive_rate(lambda *a: 0.5)
    )
    assert over_budget.splitlines()[:2] == [
        "✗ Exercise 6.2 (threshold under a false-positive budget): 1 of 8 checks passed",
        "    - ten users, budget 0.25: threshold_for_false_positive_rate(labels, scores, "
        "budget=0.25): alerting on score >= 0.5 flags 0.429 of the legitimate users, over the "
        "budget 0.25",
    ]
    _, slips, _ = _run(lenient, None, lambda: ch10.check_repeated_examples_derivation(1))
    assert slips == (
        "✗ Exercise 10.4 (the examples a DistributedSampler repeats): your derivation does not "
        "match\n"
        "    - you derived 1 examples, the formula gives 3 examples (off by -2 examples, -66.7%; "
        "tolerance ±0 examples)\n"
        "      Your number is 1437 mod 4, the examples left over after equal shares (the sampler "
        "does not drop them, it pads every share up to the largest); or the count with the "
        "chapter's two processes, not four. Each rank gets ceil(1437 / 4) = 360 indices, so the "
        "ranks together read 4 x 360 = 1440 per epoch: the permutation is padded by repeating "
        "its first 3, i.e. ceil(n / p) p - n."
    )
    rubric, _, _ = _run(lenient, None, lambda: ch07.check_ewc_investigation("word " * 45))
    assert rubric.messages[0].splitlines()[1] == "1. " + ch07.EWC_INVESTIGATION_RUBRIC[0]


def test_the_chinese_slip_names_the_same_mistake(lenient) -> None:
    """A derivation's slip is named in Chinese, the two slips of 10.4 joined in one sentence."""
    result, _, _ = _run(lenient, "zh_CN", lambda: ch10.check_repeated_examples_derivation(1))
    detail = result.messages[0]
    assert "你给出的数恰好是1437 mod 4" in detail, detail
    assert "或者是" in detail and "ceil(1437 / 4) = 360" in detail, detail
