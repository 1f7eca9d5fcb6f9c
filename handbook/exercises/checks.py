"""The check API behind every exercise: run named cases against a learner's answer, report.

A chapter's check function (``handbook.exercises.ch00.check_accuracy``) builds a list of
:class:`Case` objects and hands them to :func:`check_exercise`, which runs them in order and
prints one verdict::

    ✓ Exercise 0.2 (accuracy): all 6 checks passed

Exercises whose answer is a value rather than a function have their own checks:

- :func:`check_number` for a prediction ("predict, then run") or a derivation: the learner's
  number against the value the check computes, within a tolerance; the message states the gap,
  the tolerance and why the true value is what it is.
- :func:`check_open_answer` for an open investigation: a text of at least ``min_words`` words is
  :data:`SUBMITTED` ("submitted, see rubric", shown with the rubric an instructor reads it
  against); nothing is scored automatically.

What happens next depends on the environment (names in :mod:`handbook.config`):

- ``HANDBOOK_EXERCISES_STRICT=1`` (the test suite running the source notebooks): anything but
  "passed" (or "submitted", for an open question) raises :class:`ExerciseFailed`, so a wrong
  reference solution fails the build.
  ``HANDBOOK_EXERCISES_EXPECT="not done"`` (the student edition under nbval): anything but "not
  done" raises, so a solution left in the student edition fails the build.
  Otherwise a check never raises: a learner's notebook always runs to the end.

A check only reports to the learner; grading calls the same check functions in the grader's own
process (:mod:`handbook.exercises.grading`), never trusting what a learner's kernel prints or
writes.

A case's ``run`` raises ``AssertionError`` with a readable message when the learner's answer is
wrong; the ``expect_*`` helpers below build those messages (expected value, actual value, never
the solution).
"""

from __future__ import annotations

import html
import math
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from handbook import config
from handbook.i18n import _

#: Every status a check can reach, in one place (:mod:`handbook.config` validates
#: ``HANDBOOK_EXERCISES_EXPECT`` against it). ``NOT_REACHED`` is used by the grader only: the
#: notebook stopped before the check cell ran. ``SUBMITTED``: an open question answered, which an
#: instructor reads against the rubric; never counted as passed.
STATUSES = config.EXERCISE_STATUSES
PASSED, FAILED, NOT_DONE, ERROR, NOT_REACHED, SUBMITTED = STATUSES
#: How a status reads to a person (reports, tables, feedback); the others read as themselves.
_STATUS_TEXT = {SUBMITTED: "submitted, see rubric"}

#: What an exercise asks for: a function (the default), a number, or a text.
FUNCTION = "function"
PREDICTION = "prediction"
DERIVATION = "derivation"
OPEN = "open"
KINDS = (FUNCTION, PREDICTION, DERIVATION, OPEN)

#: How many characters of an array a failure message shows before eliding the rest.
_MAX_VALUE_CHARS = 600
#: Arrays up to this size (and 2 dimensions) are shown whole when they differ from the expected.
_MAX_SHOWN_ELEMENTS = 100
#: Colours of the rich verdict: mid-tones that read on a light and on a dark background.
_PASSED_COLOR = "#2da44e"
_FAILED_COLOR = "#e5534b"
_SUBMITTED_COLOR = "#539bf5"
_PRE_STYLE = "margin: 0; white-space: pre-wrap; background: none; color: inherit; font-size: 0.9em"


class ExerciseFailed(AssertionError):
    """Raised in strict mode when an exercise check does not pass; the message is the report."""


@dataclass(frozen=True)
class Case:
    """One named check: ``run()`` returns on success, raises ``AssertionError`` on a wrong answer.

    ``description`` is shown to the learner when the case fails, so it says what was tried
    ("a batch of one image"), never how to compute the answer.
    """

    description: str
    run: Callable[[], None]


@dataclass
class ExerciseResult:
    """The verdict on one exercise: ``status`` is one of :data:`STATUSES`, ``kind`` one of
    :data:`KINDS`.

    ``passed`` counts the cases that passed out of ``total``; ``messages`` holds one line per
    failing case (or the single "not yet done" line); for a number, the gap to the true value
    (passed or not); for an open answer, the rubric. ``summary`` is one short line for a
    grader's table: a number's gap ("off by -345 parameters, -2.79%"), else empty.
    """

    id: str
    title: str
    status: str
    passed: int
    total: int
    messages: list[str] = field(default_factory=list)
    kind: str = FUNCTION
    summary: str = ""

    @property
    def ok(self) -> bool:
        return self.status == PASSED

    @property
    def done(self) -> bool:
        """True when the learner has a finished answer: passed, or an open question submitted."""
        return self.status in (PASSED, SUBMITTED)

    def headline(self) -> str:
        """One line: mark, exercise, verdict."""
        fields = {"number": self.id, "title": self.title}
        if self.status == PASSED:
            if self.kind == PREDICTION:
                return _(
                    "✓ Exercise {number} ({title}): your prediction matches, within tolerance"
                ).format(**fields)
            if self.kind == DERIVATION:
                return _(
                    "✓ Exercise {number} ({title}): your derivation matches, within tolerance"
                ).format(**fields)
            return _("✓ Exercise {number} ({title}): all {count} checks passed").format(
                count=self.total, **fields
            )
        if self.status == FAILED:
            if self.kind == PREDICTION:
                return _("✗ Exercise {number} ({title}): your prediction does not match").format(
                    **fields
                )
            if self.kind == DERIVATION:
                return _("✗ Exercise {number} ({title}): your derivation does not match").format(
                    **fields
                )
            if self.kind == OPEN:
                return _("✗ Exercise {number} ({title}): your answer is not a text").format(
                    **fields
                )
            return _("✗ Exercise {number} ({title}): {passed} of {count} checks passed").format(
                passed=self.passed, count=self.total, **fields
            )
        if self.status == NOT_DONE:
            return _("✗ Exercise {number} ({title}): not yet done").format(**fields)
        if self.status == SUBMITTED:
            return _("✎ Exercise {number} ({title}): submitted, see rubric").format(**fields)
        return _("✗ Exercise {number} ({title}): {status}").format(
            status=status_words(self.status), **fields
        )

    def report(self) -> str:
        """The headline followed by one indented line per message (what :func:`check_exercise`
        prints)."""
        if self.status == NOT_DONE:
            return f"✗ {self.messages[0]}"
        lines = [f"    - {message}".replace("\n", "\n      ") for message in self.messages]
        return "\n".join([self.headline(), *lines])

    def __str__(self) -> str:
        return self.report()

    def html(self) -> str:
        """The report as HTML for notebooks: a green or red mark and border, the headline, then
        each failing case with what was expected (the same text as :meth:`report`)."""
        color = (
            _PASSED_COLOR
            if self.ok
            else _SUBMITTED_COLOR
            if self.status == SUBMITTED
            else _FAILED_COLOR
        )
        if self.status == NOT_DONE:
            headline, items = f"✗ {self.messages[0]}", []
        else:
            headline, items = self.headline(), self.messages
        mark, _space, rest = headline.partition(" ")
        listing = "".join(
            f'<li><pre style="{_PRE_STYLE}">{html.escape(item)}</pre></li>' for item in items
        )
        return (
            f'<div class="handbook-check handbook-check-{self.status.replace(" ", "-")}" '
            f'style="border-left: 4px solid {color}; padding: 0.3em 0.7em; margin: 0.2em 0">'
            f'<strong><span style="color: {color}">{mark}</span> {html.escape(rest)}</strong>'
            + (f'<ul style="margin: 0.3em 0 0 0">{listing}</ul>' if listing else "")
            + "</div>"
        )

    def _ipython_display_(self) -> None:
        """Show nothing when a notebook cell ends with a check: the report is already printed."""

    def to_json(self) -> dict[str, Any]:
        """A plain dict (the grader's results store)."""
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> ExerciseResult:
        """Rebuild a result from :meth:`to_json`'s dict; raises ValueError on an unknown status
        or kind (a record without a kind, written before kinds existed, is a function's)."""
        if record.get("status") not in STATUSES:
            raise ValueError(
                f"grade record {record!r}: expected a status among {STATUSES}, "
                f"got {record.get('status')!r}"
            )
        kind = record.get("kind", FUNCTION)
        if kind not in KINDS:
            raise ValueError(
                f"grade record {record!r}: expected a kind among {KINDS}, got {kind!r}"
            )
        return cls(
            id=str(record["id"]),
            title=str(record["title"]),
            status=record["status"],
            passed=int(record["passed"]),
            total=int(record["total"]),
            messages=[str(message) for message in record.get("messages", [])],
            kind=kind,
            summary=str(record.get("summary", "")),
        )


def status_text(status: str) -> str:
    """How ``status`` reads to a person: "submitted, see rubric" for :data:`SUBMITTED`, else
    the status itself ("passed", "not done", ...)."""
    return _STATUS_TEXT.get(status, status)


def status_words(status: str) -> str:
    """:func:`status_text` in the language of ``HANDBOOK_LANG`` (what a learner reads; the
    English :func:`status_text` stays for what a program reads, such as the grader's CSV)."""
    words = {
        PASSED: _("passed"),
        FAILED: _("failed"),
        NOT_DONE: _("not done"),
        ERROR: _("error"),
        NOT_REACHED: _("not reached"),
        SUBMITTED: _("submitted, see rubric"),
    }
    return words.get(status, status)


def not_done_message(exercise_id: str, title: str, todo: str | None = None) -> str:
    """The text a learner sees while the exercise cell still holds the stub; ``todo`` says what
    to do (by default: replace the ``raise NotImplementedError`` of a function stub)."""
    todo = todo or _("replace the `raise NotImplementedError` in the exercise cell")
    return _("Exercise {number} ({title}): not yet done - {todo}").format(
        number=exercise_id, title=title, todo=todo
    )


def check_exercise(exercise_id: str, title: str, cases: Sequence[Case]) -> ExerciseResult:
    """Run ``cases`` in order, print the verdict, and return it.

    A ``NotImplementedError`` from any case means the learner has not written the function yet
    (status "not done", nothing else is run). An ``AssertionError`` fails that case; any other
    exception is an "error" for that case; either way the remaining cases still run, so the
    report lists every problem at once. See the module docstring for strict mode.
    """
    if not cases:
        raise ValueError(f"exercise {exercise_id} ({title}): expected at least one case, got none")
    result = _run_cases(exercise_id, title, cases)
    return _show_and_enforce(result)


def _show_and_enforce(result: ExerciseResult) -> ExerciseResult:
    """Show ``result``, then raise :class:`ExerciseFailed` if the environment expects another
    status (strict mode expects "passed" and takes "submitted" as done too)."""
    show(result)
    expected = config.expected_exercise_status()
    meets = result.status == expected or (expected == PASSED and result.status == SUBMITTED)
    if expected is not None and not meets:
        hint = "" if expected == PASSED else f"\n(expected {expected!r} here: a student edition)"
        raise ExerciseFailed(result.report() + hint)
    return result


def typical_slip(
    answer: object,
    expected: float,
    slips: dict[float, str],
    *,
    tolerance: float,
    slip_tolerance: float | None = None,
) -> str:
    """``"Your number is <meaning>. "`` when ``answer`` is not within ``tolerance`` of the truth
    but matches one of ``slips`` (``{value a typical slip gives: what that slip is}``), within
    ``slip_tolerance`` (default ``tolerance``), scaled by the slip's size; otherwise ``""``. Meant
    for the ``explain`` of :func:`check_number`, so a wrong number names the slip, not the fix."""
    if not isinstance(answer, (int, float, np.integer, np.floating)) or isinstance(answer, bool):
        return ""
    value = float(answer)
    if not np.isfinite(value) or abs(value - expected) <= tolerance:
        return ""
    band = tolerance if slip_tolerance is None else slip_tolerance
    for slip, meaning in slips.items():
        if abs(value - slip) <= band * max(1.0, abs(slip)):  # a percentage: scaled
            return _("Your number is {meaning}. ").format(meaning=meaning)
    return ""


def check_number(
    exercise_id: str,
    title: str,
    answer: object,
    expected: float,
    *,
    tolerance: float,
    relative: bool = False,
    unit: str = "",
    kind: str = PREDICTION,
    explain: str = "",
) -> ExerciseResult:
    """Check a number the learner wrote down (a prediction or a derivation) against
    ``expected``, the value the chapter's check computed; print the verdict and return it.

    Passed when ``|answer - expected| <= tolerance`` (``relative=False``, in ``unit``) or
    ``<= tolerance * |expected|`` (``relative=True``, a fraction: 0.05 is 5%). ``None``,
    ``...`` or ``""`` (the student edition's stub) is "not done"; a bool, a string, NaN, an
    infinity, an array or a tensor fails with a message saying what was given. The message
    states the gap and the tolerance, passed or not, followed by ``explain`` (why the true value
    is what it is). ``kind`` is :data:`PREDICTION` or :data:`DERIVATION` (the wording:
    "you predicted" / "you derived"). Strict mode as for :func:`check_exercise`.
    """
    if kind not in (PREDICTION, DERIVATION):
        raise ValueError(
            f"exercise {exercise_id} ({title}): expected kind {PREDICTION!r} or "
            f"{DERIVATION!r}, got {kind!r}"
        )
    if not _is_real_number(expected) or not math.isfinite(float(expected)):
        raise ValueError(
            f"exercise {exercise_id} ({title}): expected a finite true value, got {expected!r}"
        )
    if not _is_real_number(tolerance) or not 0 <= float(tolerance) < math.inf:
        raise ValueError(
            f"exercise {exercise_id} ({title}): expected a finite tolerance >= 0, got {tolerance!r}"
        )
    if answer is None or answer is Ellipsis or (isinstance(answer, str) and not answer.strip()):
        todo = (
            _("replace `None` in the exercise cell with your prediction (a number)")
            if kind == PREDICTION
            else _("replace `None` in the exercise cell with your derivation (a number)")
        )
        message = not_done_message(exercise_id, title, todo)
        return _show_and_enforce(
            ExerciseResult(exercise_id, title, NOT_DONE, 0, 1, [message], kind)
        )
    problem = _not_a_number(answer, float(expected), unit)
    if problem is not None:
        failed = ExerciseResult(exercise_id, title, FAILED, 0, 1, [problem], kind, "not a number")
        return _show_and_enforce(failed)
    value, truth = float(answer), float(expected)
    allowed = float(tolerance) * abs(truth) if relative else float(tolerance)
    gap = value - truth
    within = abs(gap) <= allowed
    message = _gap_message(answer, expected, gap, tolerance, allowed, relative, unit, kind)
    if explain:
        message += "\n" + explain.strip()
    status = PASSED if within else FAILED
    return _show_and_enforce(
        ExerciseResult(
            exercise_id, title, status, int(within), 1, [message], kind, _off_text(gap, truth, unit)
        )
    )


def _is_real_number(value: object) -> bool:
    """An int, a float, a fraction, a numpy scalar: not a bool, not a string, not an array."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _not_a_number(answer: object, expected: float, unit: str) -> str | None:
    """Why ``answer`` cannot be compared with ``expected`` (None when it is a finite number)."""
    wanted = _("a number such as {number}{unit}").format(
        number=_number_text(expected), unit=_unit_text(unit)
    )
    if isinstance(answer, (bool, np.bool_)):
        return _(
            "expected {wanted}, got the bool {value} (True and False are not numbers here)"
        ).format(wanted=wanted, value=repr(answer))
    if isinstance(answer, str):
        return _(
            "expected {wanted}, got the string {value}: write the number without quotes"
        ).format(wanted=wanted, value=describe(answer))
    if isinstance(answer, np.ndarray) or _is_tensor(answer) or hasattr(answer, "__len__"):
        return _(
            "expected {wanted} (one plain number), got {value}: "
            "write a single number, not an array or a list"
        ).format(wanted=wanted, value=describe(answer))
    if not _is_real_number(answer):
        return _("expected {wanted}, got a value of type {type}: {value}").format(
            wanted=wanted, type=type(answer).__name__, value=describe(answer)
        )
    try:
        value = float(answer)
    except OverflowError:
        digits = int(abs(int(answer)).bit_length() * math.log10(2)) + 1
        return _(
            "expected {wanted}, got a number too large for a float (about {digits} digits)"
        ).format(wanted=wanted, digits=digits)
    if math.isnan(value):
        return _("expected {wanted}, got NaN (not a number)").format(wanted=wanted)
    if math.isinf(value):
        return _("expected {wanted}, got {value} (an infinity is not a finite number)").format(
            wanted=wanted, value=describe(answer)
        )
    return None


def _gap_message(
    answer: object,
    expected: object,
    gap: float,
    tolerance: float,
    allowed: float,
    relative: bool,
    unit: str,
    kind: str,
) -> str:
    """ "you predicted X, this run measured Y (off by Z, P%; tolerance T)"."""
    suffix = _unit_text(unit)
    off = _off_text(gap, float(expected), unit, translated=True)
    if relative:
        allowed_text = _("±{percent}% of the true value, ±{allowed}{unit}").format(
            percent=_number_text(100 * float(tolerance)), allowed=_number_text(allowed), unit=suffix
        )
    else:
        allowed_text = f"±{_number_text(allowed)}{suffix}"
    fields = {
        "answer": _number_text(answer),
        "truth": _number_text(expected),
        "unit": suffix,
        "off": off,
        "tolerance": allowed_text,
    }
    if kind == PREDICTION:
        return _(
            "you predicted {answer}{unit}, this run measured {truth}{unit} "
            "({off}; tolerance {tolerance})"
        ).format(**fields)
    return _(
        "you derived {answer}{unit}, the formula gives {truth}{unit} ({off}; tolerance {tolerance})"
    ).format(**fields)


def _off_text(gap: float, expected: float, unit: str, *, translated: bool = False) -> str:
    """ "off by -345 parameters, -2.79%" ("exactly" when the gap is 0; no percentage of 0).
    English unless ``translated`` (the summary a grader's table reads stays English)."""
    if gap == 0:
        return _("exactly") if translated else "exactly"
    amount = f"{_signed_text(gap)}{_unit_text(unit)}"
    if expected != 0:
        percent = 100 * gap / abs(expected)
        template = _("off by {amount}, {percent}%") if translated else "off by {amount}, {percent}%"
        return template.format(amount=amount, percent=f"{'+' if percent > 0 else ''}{percent:.3g}")
    return (_("off by {amount}") if translated else "off by {amount}").format(amount=amount)


def _unit_text(unit: str) -> str:
    return f" {unit}" if unit and not unit.startswith("%") else unit


def _number_text(value: object) -> str:
    """12345 -> "12,345"; 0.75 -> "0.75"; 1.5e-07 -> "1.5e-07" (6 significant digits)."""
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return f"{int(number):,}"
    return f"{number:.6g}"


def _signed_text(value: float) -> str:
    return ("+" if value > 0 else "") + _number_text(value)


def check_open_answer(
    exercise_id: str,
    title: str,
    answer: object,
    *,
    rubric: Sequence[str],
    min_words: int = 40,
) -> ExerciseResult:
    """Accept a written answer to an open question: :data:`SUBMITTED` ("submitted, see rubric"),
    with the rubric an instructor reads it against printed below; print the verdict and return it.

    Nothing is scored automatically: a text of at least ``min_words`` words (:func:`word_count`:
    a Chinese answer counts its characters) is submitted;
    ``None``, ``...``, an empty text (the student edition's stub) or a shorter one is "not
    done"; anything but a string fails. Strict mode takes "submitted" as done.
    """
    criteria = [str(criterion).strip() for criterion in rubric]
    if not criteria or not all(criteria):
        raise ValueError(
            f"exercise {exercise_id} ({title}): expected a rubric of non-empty criteria, "
            f"got {list(rubric)!r}"
        )
    if min_words < 1:
        raise ValueError(
            f"exercise {exercise_id} ({title}): expected min_words >= 1, got {min_words}"
        )
    if answer is None or answer is Ellipsis:
        todo = _("write your answer as a text in the exercise cell")
        return _show_and_enforce(
            ExerciseResult(
                exercise_id,
                title,
                NOT_DONE,
                0,
                1,
                [not_done_message(exercise_id, title, todo)],
                OPEN,
            )
        )
    if not isinstance(answer, str):
        message = _(
            "expected your answer as a text (a string in quotes), got a value of type "
            "{type}: {value}"
        ).format(type=type(answer).__name__, value=describe(answer))
        return _show_and_enforce(ExerciseResult(exercise_id, title, FAILED, 0, 1, [message], OPEN))
    words = word_count(answer)
    if words < min_words:
        if words == 0:
            todo = _("write your answer in the exercise cell (the text is empty)")
        elif words == 1:
            todo = _("your answer has 1 word; write at least {min_words}").format(
                min_words=min_words
            )
        else:
            todo = _("your answer has {words} words; write at least {min_words}").format(
                words=words, min_words=min_words
            )
        return _show_and_enforce(
            ExerciseResult(
                exercise_id,
                title,
                NOT_DONE,
                0,
                1,
                [not_done_message(exercise_id, title, todo)],
                OPEN,
            )
        )
    rubric_text = "\n".join(
        f"{number}. {criterion}" for number, criterion in enumerate(criteria, 1)
    )
    message = _("your answer ({words} words) is read against this rubric:\n{rubric}").format(
        words=words, rubric=rubric_text
    )
    return _show_and_enforce(ExerciseResult(exercise_id, title, SUBMITTED, 0, 1, [message], OPEN))


#: A Chinese, Japanese or Korean ideograph: a text in Chinese has no spaces between its words.
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CJK_RUN = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+")


def word_count(text: str) -> int:
    """The words of ``text``: what white space separates, and in a run of Chinese (written
    without spaces) the words jieba segments it into, punctuation left out."""
    chinese = _CJK_RUN.findall(text)
    return len(_CJK_RUN.sub(" ", text).split()) + sum(_chinese_words(run) for run in chinese)


def _chinese_words(run: str) -> int:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # not "Building prefix dict..." in a learner's notebook
    return sum(1 for word in jieba.cut(run) if _CJK.search(word))


def _run_cases(exercise_id: str, title: str, cases: Sequence[Case]) -> ExerciseResult:
    passed = 0
    messages: list[str] = []
    status = PASSED
    for case in cases:
        try:
            case.run()
        except NotImplementedError:
            message = not_done_message(exercise_id, title)
            return ExerciseResult(exercise_id, title, NOT_DONE, passed, len(cases), [message])
        except AssertionError as failure:
            messages.append(_("{case}: {failure}").format(case=case.description, failure=failure))
            status = ERROR if status == ERROR else FAILED
        except Exception as error:  # the learner's code may raise anything; report, do not crash
            messages.append(
                _("{case}: raised {error_type}: {error}").format(
                    case=case.description, error_type=type(error).__name__, error=error
                )
            )
            status = ERROR
        else:
            passed += 1
    return ExerciseResult(exercise_id, title, status, passed, len(cases), messages)


def show(result: ExerciseResult) -> None:
    """Show a verdict: rich (HTML with a plain-text part) in a notebook kernel, printed elsewhere.

    The display carries both ``text/html`` (JupyterLab and the book render it) and
    ``text/plain`` (the same text as :meth:`ExerciseResult.report`, what a terminal, nbval or a
    diff of executed notebooks reads).
    """
    if not _in_notebook_kernel():
        print(result.report(), flush=True)
        return
    from IPython.display import display

    display({"text/plain": result.report(), "text/html": result.html()}, raw=True)


def _in_notebook_kernel() -> bool:
    """True in a Jupyter kernel (JupyterLab, papermill, nbval), False in a terminal or pytest."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def describe(value: object) -> str:
    """A short readable rendering of a value for failure messages (arrays and tensors included)."""
    if _is_tensor(value):
        return _describe_array(value.detach().cpu().numpy(), "tensor", value.dtype)
    if isinstance(value, np.ndarray):
        return _describe_array(value, "array", value.dtype)
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + " ..."


def _describe_array(array: np.ndarray, container: str, dtype: object) -> str:
    heading = (
        _("tensor of shape {shape} and dtype {dtype}")
        if container == "tensor"
        else _("array of shape {shape} and dtype {dtype}")
    ).format(shape=array.shape, dtype=dtype)
    if array.size == 0:
        return heading
    text = np.array2string(
        array, precision=4, threshold=_MAX_SHOWN_ELEMENTS, edgeitems=3, max_line_width=100
    )
    if len(text) > _MAX_VALUE_CHARS:
        text = text[:_MAX_VALUE_CHARS] + " ..."
    if "\n" in text:
        return _("{heading}:\n{values}").format(heading=heading, values=text)
    return _("{heading}: {values}").format(heading=heading, values=text)


def _is_tensor(value: object) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _as_array(value: object) -> np.ndarray:
    if _is_tensor(value):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def expect(condition: bool, message: str) -> None:
    """Fail the current case with ``message`` unless ``condition`` holds."""
    if not condition:
        raise AssertionError(message)


def expect_type(actual: object, expected_type: type | tuple[type, ...], what: str) -> None:
    """Fail unless ``actual`` is an instance of ``expected_type``."""
    if not isinstance(actual, expected_type):
        names = (
            _(" or ").join(kind.__name__ for kind in expected_type)
            if isinstance(expected_type, tuple)
            else expected_type.__name__
        )
        raise AssertionError(
            _("{what}: expected a {expected_type}, got {actual_type}").format(
                what=what, expected_type=names, actual_type=type(actual).__name__
            )
        )


def expect_shape(actual: object, expected_shape: tuple[int, ...], what: str) -> None:
    """Fail unless ``actual`` (array or tensor) has exactly ``expected_shape``."""
    shape = getattr(actual, "shape", None)
    if shape is None:
        raise AssertionError(
            _(
                "{what}: expected an array of shape {expected_shape}, "
                "got a {actual_type} without a shape"
            ).format(
                what=what, expected_shape=tuple(expected_shape), actual_type=type(actual).__name__
            )
        )
    if tuple(shape) != tuple(expected_shape):
        raise AssertionError(
            _("{what}: expected shape {expected_shape}, got {actual_shape}").format(
                what=what, expected_shape=tuple(expected_shape), actual_shape=tuple(shape)
            )
        )


def expect_equal(actual: object, expected: object, what: str) -> None:
    """Fail unless ``actual`` equals ``expected``; arrays and tensors are compared element-wise
    (same shape, same values; dtypes may differ)."""
    if isinstance(expected, np.ndarray) or _is_tensor(expected):
        expected_array = _as_array(expected)
        expect_shape(actual, expected_array.shape, what)
        differs = _as_array(actual) != expected_array
        if np.any(differs):
            raise AssertionError(_array_mismatch(what, actual, expected, differs))
    elif not bool(actual == expected):
        raise AssertionError(_expected_got(what, expected, actual))


def expect_close(
    actual: object, expected: object, what: str, atol: float = 1e-6, rtol: float = 1e-5
) -> None:
    """Fail unless ``actual`` is within ``atol + rtol * |expected|`` of ``expected``, element-wise.

    Works on numbers, arrays and tensors; shapes must match exactly. NaN is never close.
    """
    expected_array = _as_array(expected).astype(np.float64)
    if expected_array.ndim > 0:
        expect_shape(actual, expected_array.shape, what)
    try:
        actual_array = _as_array(actual).astype(np.float64)
    except (TypeError, ValueError) as error:
        raise AssertionError(
            _("{what}: expected numbers close to {expected}, got {actual}").format(
                what=what, expected=describe(expected), actual=describe(actual)
            )
        ) from error
    if actual_array.shape != expected_array.shape:
        raise AssertionError(_expected_got(what, expected, actual))
    differs = ~np.isclose(actual_array, expected_array, atol=atol, rtol=rtol)
    if not np.any(differs):
        return
    if expected_array.ndim == 0:
        raise AssertionError(_expected_got(what, expected, actual))
    largest = np.nanmax(np.abs(actual_array - expected_array), initial=0.0)
    raise AssertionError(
        _array_mismatch(what, actual, expected, differs)
        + _(
            " (largest difference {largest:.3g}, tolerance {atol:g} + {rtol:g} x |expected|)"
        ).format(largest=largest, atol=atol, rtol=rtol)
    )


def _expected_got(what: str, expected: object, actual: object) -> str:
    """ "what: expected X, got Y", with both values described (:func:`describe`)."""
    return _("{what}: expected {expected}, got {actual}").format(
        what=what, expected=describe(expected), actual=describe(actual)
    )


def _array_mismatch(what: str, actual: object, expected: object, differs: np.ndarray) -> str:
    """Where arrays differ: how many values, the first one, and both arrays when they are small."""
    actual_array, expected_array = _as_array(actual), _as_array(expected)
    index = tuple(int(position) for position in np.argwhere(differs)[0])
    message = _(
        "{what}: {count} of {size} values differ, the first at index "
        "{index}: expected {expected}, got {actual}"
    ).format(
        what=what,
        count=int(differs.sum()),
        size=differs.size,
        index=index,
        expected=_scalar_text(expected_array[index]),
        actual=_scalar_text(actual_array[index]),
    )
    if expected_array.ndim <= 2 and expected_array.size <= _MAX_SHOWN_ELEMENTS:
        message += "\n" + _("expected {expected}\ngot {actual}").format(
            expected=describe(expected), actual=describe(actual)
        )
    return message


def _scalar_text(value: np.generic) -> str:
    item = value.item()
    return repr(round(item, 6)) if isinstance(item, float) else repr(item)


def expect_raises(call: Callable[[], object], exception: type[BaseException], what: str) -> None:
    """Fail unless ``call()`` raises ``exception``.

    A ``NotImplementedError`` is let through so that a stub still reads as "not done".
    """
    try:
        returned = call()
    except NotImplementedError:
        raise
    except exception:
        return
    except Exception as error:
        raise AssertionError(
            _("{what}: expected {expected}, got {actual_type}: {error}").format(
                what=what,
                expected=exception.__name__,
                actual_type=type(error).__name__,
                error=error,
            )
        ) from error
    raise AssertionError(
        _("{what}: expected {expected}, but it returned {returned}").format(
            what=what, expected=exception.__name__, returned=describe(returned)
        )
    )


__all__ = [
    "Case",
    "DERIVATION",
    "ERROR",
    "ExerciseFailed",
    "ExerciseResult",
    "FAILED",
    "FUNCTION",
    "KINDS",
    "NOT_DONE",
    "NOT_REACHED",
    "OPEN",
    "PASSED",
    "PREDICTION",
    "STATUSES",
    "SUBMITTED",
    "check_exercise",
    "check_number",
    "check_open_answer",
    "describe",
    "expect",
    "expect_close",
    "expect_equal",
    "expect_raises",
    "expect_shape",
    "expect_type",
    "not_done_message",
    "show",
    "status_text",
    "status_words",
    "word_count",
]
