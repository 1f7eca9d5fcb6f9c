"""Check messages in Chinese (issue 25): under ``HANDBOOK_LANG=zh_CN`` a learner reads every
verdict, failing case and hint of a check in Chinese, with the numbers of the English message;
with the variable unset the English is exactly what it was.

The wrong answers below are the typical ones the chapters' own tests use; the Chinese comes
from the catalogs ``locales/zh_CN/LC_MESSAGES/handbook/exercises/*.po``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from handbook.exercises import ch00, ch01, ch02, ch03, ch04, ch05, checks
from handbook.i18n import LANG_ENV

CJK = re.compile(r"[\u4e00-\u9fff]")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
GLOSSARY = Path(__file__).resolve().parents[1] / "locales" / "zh_CN" / "glossary.md"


def _stub(*arguments: object) -> object:
    raise NotImplementedError


def _dedup_exact(texts: list[str]) -> list[int]:
    """Exercise 3.1 without normalizing: drops only texts that are equal as they are."""
    return [index for index, text in enumerate(texts) if text not in texts[:index]]


def _dedup(texts: list[str]) -> list[int]:
    """Exercise 3.1, right: normalized as the chapter says."""
    import string

    seen, kept = set(), []
    for index, text in enumerate(texts):
        key = " ".join(text.lower().translate(str.maketrans("", "", string.punctuation)).split())
        if key not in seen:
            seen.add(key)
            kept.append(index)
    return kept


#: (name, the check called with a wrong answer): each prints a verdict and at least one failing
#: case (or, for a stub, the not-done line).
FAILING: dict[str, Callable[[], checks.ExerciseResult]] = {
    "0.2 accuracy returns a tensor": lambda: ch00.check_accuracy(
        lambda logits, labels: (logits.argmax(1) == labels).float().mean()
    ),
    "0.4 prediction twice the count": lambda: ch00.check_parameter_prediction(
        2 * sum(ch00.parameter_breakdown().values())
    ),
    "1.1 causal mask all True": lambda: ch01.check_causal_mask(
        lambda n: torch.ones(n, n, dtype=torch.bool)
    ),
    "2.4 derivation with a named slip": lambda: ch02.check_loss_scale_derivation(2048.0),
    "3.1 deduplicate without normalizing": lambda: ch03.check_deduplicate(_dedup_exact),
    "4.3 global mask of the wrong dtype": lambda: ch04.check_global_magnitude_mask(
        lambda weights, amount: [torch.ones_like(weight) for weight in weights]
    ),
    "5.2 flush never": lambda: ch05.check_flush_rule(lambda *arguments: False),
    "5.4 prediction written as a word": lambda: ch05.check_batching_prediction("ten"),
    "0.3 stub": lambda: ch00.check_confusion_matrix(_stub),
}


@pytest.fixture
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LANG_ENV, raising=False)


@pytest.fixture
def chinese(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LANG_ENV, "zh_CN")


def _printed(run: Callable[[], checks.ExerciseResult], capsys) -> tuple[str, checks.ExerciseResult]:
    result = run()
    return capsys.readouterr().out, result


@pytest.mark.parametrize("name", FAILING)
def test_a_failing_check_prints_its_verdict_and_cases_in_chinese(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.delenv(LANG_ENV, raising=False)
    english, english_result = _printed(FAILING[name], capsys)
    monkeypatch.setenv(LANG_ENV, "zh_CN")
    chinese, chinese_result = _printed(FAILING[name], capsys)

    assert chinese_result.status == english_result.status != checks.PASSED
    english_lines, chinese_lines = english.splitlines(), chinese.splitlines()
    assert len(chinese_lines) == len(english_lines), chinese
    # the verdict and the first failing case (or the not-done hint): Chinese, same numbers
    for english_line, chinese_line in list(zip(english_lines, chinese_lines, strict=True))[:2]:
        assert CJK.search(chinese_line), f"no Chinese in {chinese_line!r} ({english_line!r})"
        assert sorted(NUMBER.findall(chinese_line)) == sorted(NUMBER.findall(english_line)), (
            f"the numbers differ:\n  {english_line}\n  {chinese_line}"
        )
    assert not re.search(r"\b(expected|got|checks passed|not yet done)\b", chinese), chinese
    # the notebook's rich display carries the same Chinese
    html = chinese_result.html()
    assert CJK.search(html) and chinese_lines[0].split(" ", 1)[1].split("（")[0] in html


def test_a_passing_check_says_so_in_chinese(chinese, capsys) -> None:
    result = ch03.check_deduplicate(_dedup)
    assert result.status == checks.PASSED
    assert capsys.readouterr().out == "✓ 练习3.1（按规范化哈希去重）：全部7项检查通过\n"


def test_english_output_is_unchanged(english, capsys) -> None:
    ch03.check_deduplicate(_dedup_exact)
    assert capsys.readouterr().out == (
        "✗ Exercise 3.1 (deduplicate by normalized hash): 5 of 7 checks passed\n"
        "    - duplicates that differ in case: deduplicate(['Hello World', 'hello world']): "
        "expected [0], got [0, 1]\n"
        "    - duplicates that differ in punctuation and spacing: deduplicate(['Stop, now!', "
        "'stop now', '  stop   now ', 'stop no']): expected [0, 3], got [0, 1, 2, 3]\n"
    )
    ch02.check_loss_scale_derivation(2048.0)
    assert capsys.readouterr().out == (
        "✗ Exercise 2.4 (the loss scale after a run): your derivation does not match\n"
        "    - you derived 2,048, the formula gives 8,192 (off by -6,144, -75%; tolerance ±0.5)\n"
        "      Likely slip: that is the scale right after the overflows: the clean steps that "
        "follow make it grow again.\n"
        "      Each overflow halves S: 65,536 x 0.5^5 = 2,048; then S doubles once per complete "
        "interval of 2,000 clean steps: floor(4,500 / 2,000) = 2 doublings\n"
    )
    ch00.check_accuracy(_stub)
    assert capsys.readouterr().out == (
        "✗ Exercise 0.2 (accuracy): not yet done - replace the `raise NotImplementedError` in "
        "the exercise cell\n"
    )


def test_the_summary_a_grader_reads_stays_english(chinese, capsys) -> None:
    """A number's summary goes into the grader's table and CSV, which programs read."""
    result = ch02.check_loss_scale_derivation(2048.0)
    assert result.summary == "off by -6,144, -75%"
    assert checks.status_text(result.status) == "failed"


def _glossary_statuses() -> dict[str, str]:
    """The glossary's fixed Chinese for each exercise status (its last table)."""
    text = GLOSSARY.read_text(encoding="utf-8")
    table = text.split("## 练习状态", 1)[1]
    rows = re.findall(r"^\| ([a-z ]+) \| ([^|]+?) \|", table, re.M)
    return {english: chinese for english, chinese in rows}


def test_statuses_read_as_the_glossary_fixes_them(chinese) -> None:
    fixed = _glossary_statuses()
    assert set(fixed) == set(checks.STATUSES)
    for status in checks.STATUSES:
        assert checks.status_words(status).startswith(fixed[status]), status
    assert checks.status_words(checks.SUBMITTED) == "已提交，见评分细则"


def test_an_open_answer_written_in_chinese_counts_its_words(chinese, capsys) -> None:
    answer = (
        "服务器的直方图只在应用的计时开始之后才记录，"
        "连接排队、请求解析和客户端自己的事件循环都不在里面。"
        "所以客户端测到的延迟更长，而且负载越高，排队的时间就越长，"
        "两者之间的差距也越大。"
    )
    assert checks.word_count(answer) >= 40 > len(answer.split())
    result = ch05.check_latency_investigation(answer)
    assert result.status == checks.SUBMITTED
    printed = capsys.readouterr().out
    assert printed.startswith("✎ 练习5.5（") and "已提交，见评分细则" in printed
    assert "1. 指出" in printed  # the rubric, translated


def test_word_count_of_english_is_what_white_space_separates() -> None:
    assert checks.word_count("a b  c\nd") == 4
    assert checks.word_count("注意力 attention") == 2  # jieba: 注意力 is one word
    assert checks.word_count("我们训练一个模型。") == 4  # 我们 训练 一个 模型
    assert checks.word_count("") == 0
