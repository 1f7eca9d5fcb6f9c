"""Chapter 5's exercise checks: right answers pass, typical mistakes fail with a useful message.

The reference solutions live here, not in the package, so that a learner reading
``handbook.exercises.ch05`` finds the checks but not the answers.
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import pytest
from exercise_harness import (  # noqa: F401  (collected by pytest in this module)
    test_a_stub_reads_as_not_done,
    test_a_typical_mistake_fails_with_a_message_saying_what_was_expected,
    test_the_reference_solution_passes_every_case,
)
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from handbook import config
from handbook.exercises import ch05
from handbook.exercises.checks import ExerciseFailed


def stub(*arguments: object) -> object:
    """What the student edition holds before the learner starts."""
    raise NotImplementedError("Exercise 5.x: not written yet")


# Exercise 5.1 ---------------------------------------------------------------------------------


def make_request_model(max_chars: int, max_texts: int) -> type[BaseModel]:
    Text = Annotated[str, StringConstraints(min_length=1, max_length=max_chars)]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: Text | None = None
        texts: Annotated[list[Text], Field(min_length=1, max_length=max_texts)] | None = None

        @model_validator(mode="after")
        def exactly_one(self):
            if (self.text is None) == (self.texts is None):
                raise ValueError("give exactly one of 'text' or 'texts'")
            return self

    return PredictRequest


def _model(
    max_chars: int,
    max_texts: int,
    *,
    extra: str = "forbid",
    min_chars: int = 1,
    min_texts: int = 1,
    exactly_one: bool = True,
    strip: bool = False,
) -> type[BaseModel]:
    """The reference model with one of its rules changed: the mistakes below are built from it."""
    Text = Annotated[str, StringConstraints(min_length=min_chars, max_length=max_chars)]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra=extra, str_strip_whitespace=strip)
        text: Text | None = None
        texts: Annotated[list[Text], Field(min_length=min_texts, max_length=max_texts)] | None = (
            None
        )

        @model_validator(mode="after")
        def one_input(self):
            if exactly_one and (self.text is None) == (self.texts is None):
                raise ValueError("give exactly one of 'text' or 'texts'")
            return self

    return PredictRequest


def request_model_ignoring_extra(max_chars: int, max_texts: int) -> type[BaseModel]:
    return _model(max_chars, max_texts, extra="ignore")


def request_model_allowing_empty(max_chars: int, max_texts: int) -> type[BaseModel]:
    return _model(max_chars, max_texts, min_chars=0, min_texts=0)


def request_model_without_one_of(max_chars: int, max_texts: int) -> type[BaseModel]:
    return _model(max_chars, max_texts, exactly_one=False)


def request_model_hard_coded(max_chars: int, max_texts: int) -> type[BaseModel]:
    return make_request_model(2000, 32)


def request_model_off_by_one(max_chars: int, max_texts: int) -> type[BaseModel]:
    return make_request_model(max_chars - 1, max_texts - 1 or 1)


def request_model_stripping(max_chars: int, max_texts: int) -> type[BaseModel]:
    return _model(max_chars, max_texts, strip=True)


def request_model_coercing(max_chars: int, max_texts: int) -> type[BaseModel]:
    base = make_request_model(max_chars, max_texts)

    class Forgiving(base):
        @field_validator("text", mode="before")
        @classmethod
        def as_string(cls, value):
            return value if value is None else str(value)

    return Forgiving


def request_model_checked_by_hand(max_chars: int, max_texts: int) -> type[BaseModel]:
    """Right verdicts, but the limits live in validators: the schema does not show them."""

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: str | None = None
        texts: list[str] | None = None

        @model_validator(mode="after")
        def rules(self):
            if (self.text is None) == (self.texts is None):
                raise ValueError("give exactly one of 'text' or 'texts'")
            texts = [self.text] if self.texts is None else self.texts
            if not 1 <= len(texts) <= max_texts:
                raise ValueError(f"1 to {max_texts} texts")
            if not all(1 <= len(text) <= max_chars for text in texts):
                raise ValueError(f"texts of 1 to {max_chars} characters")
            return self

    return PredictRequest


def request_model_instance(max_chars: int, max_texts: int) -> BaseModel:
    return make_request_model(max_chars, max_texts)(text="example")


# Exercise 5.2 ---------------------------------------------------------------------------------


def should_flush(pending_items: int, max_batch_size: int, waited_ms: float, max_wait_ms: float):
    return pending_items >= max_batch_size or waited_ms >= max_wait_ms


def flush_strictly_greater(pending_items, max_batch_size, waited_ms, max_wait_ms):
    return pending_items > max_batch_size or waited_ms > max_wait_ms


def flush_strict_wait(pending_items, max_batch_size, waited_ms, max_wait_ms):
    return pending_items >= max_batch_size or waited_ms > max_wait_ms


def flush_both_conditions(pending_items, max_batch_size, waited_ms, max_wait_ms):
    return pending_items >= max_batch_size and waited_ms >= max_wait_ms


def flush_exactly_full(pending_items, max_batch_size, waited_ms, max_wait_ms):
    return pending_items == max_batch_size or waited_ms >= max_wait_ms


def flush_in_seconds(pending_items, max_batch_size, waited_ms, max_wait_ms):
    return pending_items >= max_batch_size or waited_ms / 1000 >= max_wait_ms


def flush_numpy_bool(pending_items, max_batch_size, waited_ms, max_wait_ms):
    return np.logical_or(pending_items >= max_batch_size, waited_ms >= max_wait_ms)


# Exercise 5.3 ---------------------------------------------------------------------------------


def histogram_quantile(q: float, upper_bounds, cumulative) -> float:
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    total = cumulative[-1]
    if total == 0:
        return math.nan
    rank = q * total
    bucket = next(i for i, count in enumerate(cumulative) if count >= rank)
    if bucket == len(upper_bounds) - 1:  # the +Inf bucket: no upper bound to interpolate to
        return float(upper_bounds[-2]) if len(upper_bounds) > 1 else math.nan
    lower = 0.0 if bucket == 0 else upper_bounds[bucket - 1]
    below = 0.0 if bucket == 0 else cumulative[bucket - 1]
    in_bucket = cumulative[bucket] - below
    if in_bucket == 0:
        return float(upper_bounds[bucket])
    return float(lower + (upper_bounds[bucket] - lower) * (rank - below) / in_bucket)


def _quantile(q, upper_bounds, cumulative, *, strict=False, inf_rule=True, from_zero=False):
    """The reference with one of its rules changed: the mistakes below are built from it."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    total = cumulative[-1]
    if total == 0:
        return math.nan
    rank = q * total
    reached = (lambda count: count > rank) if strict else (lambda count: count >= rank)
    bucket = next((i for i, count in enumerate(cumulative) if reached(count)), len(cumulative) - 1)
    if inf_rule and bucket == len(upper_bounds) - 1:
        return float(upper_bounds[-2])
    lower = 0.0 if bucket == 0 or from_zero else upper_bounds[bucket - 1]
    below = 0.0 if bucket == 0 else cumulative[bucket - 1]
    in_bucket = cumulative[bucket] - below
    if in_bucket == 0:
        return float(upper_bounds[bucket])
    return float(lower + (upper_bounds[bucket] - lower) * (rank - below) / in_bucket)


def quantile_bucket_bound(q, upper_bounds, cumulative):
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    if cumulative[-1] == 0:
        return math.nan
    bucket = next(i for i, count in enumerate(cumulative) if count >= q * cumulative[-1])
    return float(upper_bounds[bucket if bucket < len(upper_bounds) - 1 else -2])


def quantile_from_zero(q, upper_bounds, cumulative):
    return _quantile(q, upper_bounds, cumulative, from_zero=True)


def quantile_without_inf_rule(q, upper_bounds, cumulative):
    return _quantile(q, upper_bounds, cumulative, inf_rule=False)


def quantile_strict_rank(q, upper_bounds, cumulative):
    return _quantile(q, upper_bounds, cumulative, strict=True)


def quantile_rank_not_offset(q, upper_bounds, cumulative):
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    if cumulative[-1] == 0:
        return math.nan
    rank = q * cumulative[-1]
    bucket = next(i for i, count in enumerate(cumulative) if count >= rank)
    if bucket == len(upper_bounds) - 1:
        return float(upper_bounds[-2])
    lower = 0.0 if bucket == 0 else upper_bounds[bucket - 1]
    in_bucket = cumulative[bucket] - (0.0 if bucket == 0 else cumulative[bucket - 1])
    return float(lower + (upper_bounds[bucket] - lower) * rank / in_bucket)


def quantile_unguarded_empty(q, upper_bounds, cumulative):
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    rank = q * cumulative[-1]
    bucket = next(i for i, count in enumerate(cumulative) if count >= rank)
    if bucket == len(upper_bounds) - 1:
        return float(upper_bounds[-2])
    lower = 0.0 if bucket == 0 else upper_bounds[bucket - 1]
    below = 0.0 if bucket == 0 else cumulative[bucket - 1]
    return lower + (upper_bounds[bucket] - lower) * (rank - below) / (cumulative[bucket] - below)


def quantile_clamping_q(q, upper_bounds, cumulative):
    return histogram_quantile(min(max(q, 0.0), 1.0), upper_bounds, cumulative)


def quantile_zero_when_empty(q, upper_bounds, cumulative):
    return histogram_quantile(q, upper_bounds, cumulative) if cumulative[-1] else 0.0


# The checks against them ----------------------------------------------------------------------

CHECKS = {
    "5.1": ch05.check_request_model,
    "5.2": ch05.check_flush_rule,
    "5.3": ch05.check_histogram_quantile,
}
SOLUTIONS = {"5.1": make_request_model, "5.2": should_flush, "5.3": histogram_quantile}


def test_strict_mode_turns_a_wrong_answer_into_an_exception(monkeypatch) -> None:
    monkeypatch.setenv(config.STRICT_EXERCISES_ENV, "1")

    assert ch05.check_flush_rule(should_flush).status == "passed"
    with pytest.raises(ExerciseFailed, match=r"Exercise 5.2 \(the micro-batcher's flush rule\): "):
        ch05.check_flush_rule(flush_strictly_greater)


MISTAKES = [
    (
        "5.1",
        request_model_ignoring_extra,
        "failed",
        "dropped): an unknown field next to a valid text, {'text': 'h', 'lang': 'en'}, with make_",
    ),
    ("5.1", request_model_allowing_empty, "failed", "empty inputs: an empty text, {'text': ''}"),
    ("5.1", request_model_without_one_of, "failed", "both text and texts, or neither: "),
    ("5.1", request_model_hard_coded, "failed", "'maxLength': 12 (the longest text)"),
    ("5.1", request_model_off_by_one, "failed", "a text of exactly max_chars, {'text': 'aaaaaaaa"),
    ("5.1", request_model_stripping, "failed", "accepted, but the model's 'text' holds 'a goal'"),
    ("5.1", request_model_coercing, "failed", "a number as the text, {'text': 5}, with make_"),
    ("5.1", request_model_checked_by_hand, "failed", "is invisible in the OpenAPI docs"),
    ("5.1", request_model_instance, "failed", "expected a subclass of pydantic.BaseModel"),
    ("5.2", flush_strictly_greater, "failed", "a full batch, no time waited: should_flush("),
    ("5.2", flush_strict_wait, "failed", "waited_ms=5.0, max_wait_ms=5.0): expected True, got F"),
    ("5.2", flush_both_conditions, "failed", "one item that waited longer than max_wait_ms: "),
    ("5.2", flush_exactly_full, "failed", "more items than the batch size, no time waited: "),
    ("5.2", flush_in_seconds, "failed", "calls wrong)"),
    ("5.2", flush_numpy_bool, "failed", "expected a Python bool (True or False), got np"),
    ("5.3", quantile_bucket_bound, "failed", "100 latencies in 6 buckets, 3 of them slower"),
    (
        "5.3",
        quantile_from_zero,
        "failed",
        "slower than the last finite bound: histogram_quantile(0.5, upper_bounds=[0.05, 0.1,",
    ),
    ("5.3", quantile_without_inf_rule, "failed", "every observation in the +Inf bucket: "),
    ("5.3", quantile_strict_rank, "failed", "ranks that land exactly on a bucket's count"),
    ("5.3", quantile_rank_not_offset, "failed", "500 random latencies observed by a prometheus"),
    ("5.3", quantile_unguarded_empty, "error", "no observations at all: raised ZeroDivisionError"),
    ("5.3", quantile_clamping_q, "failed", "q outside [0, 1]: histogram_quantile(-0.1, "),
    ("5.3", quantile_zero_when_empty, "failed", "expected NaN (there is no quantile without"),
]


def _failing(result) -> set[str]:
    return {line.split(":")[0] for line in result.messages}


def test_the_reference_model_decides_every_payload_as_the_table_says() -> None:
    from handbook.serving.app import request_model

    for max_chars, max_texts in ch05.REQUEST_LIMITS:
        model = request_model(max_chars, max_texts)
        for _, what, build, accepted in ch05.REQUEST_PAYLOADS:
            payload = build(max_chars, max_texts)
            try:
                model.model_validate(payload)
            except ValidationError:
                assert not accepted, (what, payload)
            else:
                assert accepted, (what, payload)


def test_limits_enforced_by_hand_fail_only_the_schema_case() -> None:
    result = ch05.check_request_model(request_model_checked_by_hand)

    assert result.passed == result.total - 1
    assert _failing(result) == {"the JSON schema (the OpenAPI docs) states the limits"}


def test_a_numpy_bool_fails_only_the_type_case() -> None:
    result = ch05.check_flush_rule(flush_numpy_bool)

    assert _failing(result) == {"the answer is a bool (True or False)"}


def test_the_observed_histograms_fill_their_buckets_and_the_inf_bucket() -> None:
    from handbook.serving.metrics import LATENCY_BUCKETS

    bounds, counts = ch05._observed_buckets(LATENCY_BUCKETS, np.array([0.0005, 0.02, 0.02, 11.0]))

    assert bounds == [*LATENCY_BUCKETS, math.inf]
    assert counts[0] == 1 and counts[-2] == 3 and counts[-1] == 4
    assert counts == sorted(counts)


# Exercise 5.4 (predict, then run) -------------------------------------------------------------


def test_closed_loop_clients_bound_the_batch_by_the_concurrency():
    sizes = ch05.closed_loop_batch_sizes()
    assert sizes == [ch05.PREDICTION_CLIENTS] * ch05.PREDICTION_REQUESTS_PER_CLIENT
    assert ch05.closed_loop_batch_sizes(clients=5, requests_per_client=2) == [5, 5]
    assert ch05.closed_loop_batch_sizes(clients=6, requests_per_client=1, max_batch_size=4) == [
        4,
        2,
    ]


def test_the_batching_prediction_passes_the_count_of_model_calls():
    result = ch05.check_batching_prediction(10)
    assert (result.id, result.status, result.kind) == ("5.4", "passed", "prediction")
    assert "bounded by the concurrency" in result.messages[0]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (1, "a closed-loop client sends its next request only after"),
        (30, "One call per request is the naive server"),
        (11, "you predicted 11 model calls, this run measured 10 model calls"),
    ],
)
def test_a_wrong_batching_prediction_fails_saying_why(answer, message):
    result = ch05.check_batching_prediction(answer)
    assert result.status == "failed"
    assert message in result.messages[0], result.messages


@pytest.mark.parametrize("stub_value", [None, ...])
def test_the_batching_prediction_stub_reads_as_not_done(stub_value):
    assert ch05.check_batching_prediction(stub_value).status == "not done"


# Exercise 5.5 (open investigation) ----------------------------------------------------------


def test_a_written_latency_investigation_is_submitted_with_its_rubric_printed(capsys):
    answer = " ".join(["a sentence of the learner's own investigation"] * 8)  # 48 words
    result = ch05.check_latency_investigation(answer)
    assert (result.id, result.status, result.kind) == ("5.5", "submitted", "open")
    printed = capsys.readouterr().out
    assert "submitted, see rubric" in printed
    for criterion in ch05.LATENCY_INVESTIGATION_RUBRIC:
        assert criterion in result.messages[0] and criterion in printed


@pytest.mark.parametrize("answer", [None, "", "   ", "too short to be an answer to this question"])
def test_an_empty_or_short_latency_investigation_reads_as_not_done(answer):
    result = ch05.check_latency_investigation(answer)
    assert result.status == "not done", result.messages


def test_a_latency_investigation_that_is_not_text_fails_saying_so():
    result = ch05.check_latency_investigation(42)
    assert result.status == "failed" and "a string in quotes" in result.messages[0]
