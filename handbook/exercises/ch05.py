"""Checks for the exercises of chapter 5, serving a model.

Each check runs the learner's function on several inputs, edge cases included, and compares it
with the code the chapter's server runs: :func:`handbook.serving.app.request_model` for the
``/predict`` body, :func:`handbook.serving.batching.should_flush` for the micro-batcher, and
:func:`handbook.serving.metrics.histogram_quantile` (Prometheus's estimate, checked here on buckets
filled by a real ``prometheus_client.Histogram``). Exercise 5.4 is a prediction:
:func:`check_batching_prediction` runs the server's micro-batcher on a stand-in model and compares
the number of model calls with the learner's. Call them from the check cells:
``ch05.check_flush_rule(should_flush)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from handbook.exercises.checks import (
    PREDICTION,
    Case,
    ExerciseResult,
    check_exercise,
    check_number,
    check_open_answer,
    describe,
    expect,
    expect_close,
    expect_raises,
    expect_type,
)
from handbook.i18n import N_, _

# Exercise 5.1 ---------------------------------------------------------------------------------

#: ``(max_chars, max_texts)`` pairs every payload is tried with: a model built for one pair must
#: follow its own arguments, not limits written into it.
REQUEST_LIMITS = ((12, 3), (40, 1))

Payload = Callable[[int, int], dict[str, Any]]

#: ``(group, what the payload is, payload for (max_chars, max_texts), accepted by the server)``.
#: The check compares with the reference model; the last column documents the intent (the tests
#: check that the two agree). What the payload is stays English here (``N_`` marks it for the
#: catalog) and is translated where a failure message shows it.
REQUEST_PAYLOADS: tuple[tuple[str, str, Payload, bool], ...] = (
    ("valid", N_("one text"), lambda chars, texts: {"text": "goal"}, True),
    ("valid", N_("a list of one text"), lambda chars, texts: {"texts": ["goal"]}, True),
    (
        "valid",
        N_("a text with spaces around it (kept as sent)"),
        lambda chars, texts: {"text": " a goal "},
        True,
    ),
    (
        "at limit",
        N_("a text of exactly max_chars"),
        lambda chars, texts: {"text": "a" * chars},
        True,
    ),
    (
        "at limit",
        N_("a text of max_chars accented letters (characters count, not bytes)"),
        lambda chars, texts: {"text": "é" * chars},
        True,
    ),
    (
        "at limit",
        N_("exactly max_texts texts of max_chars each"),
        lambda chars, texts: {"texts": ["b" * chars] * texts},
        True,
    ),
    (
        "over",
        N_("a text one character too long"),
        lambda chars, texts: {"text": "c" * (chars + 1)},
        False,
    ),
    (
        "over",
        N_("a list holding a text one character too long"),
        lambda chars, texts: {"texts": ["d" * (chars + 1)]},
        False,
    ),
    (
        "over",
        N_("one text more than max_texts"),
        lambda chars, texts: {"texts": ["e"] * (texts + 1)},
        False,
    ),
    ("empty", N_("an empty text"), lambda chars, texts: {"text": ""}, False),
    ("empty", N_("an empty list"), lambda chars, texts: {"texts": []}, False),
    ("empty", N_("an empty string inside the list"), lambda chars, texts: {"texts": [""]}, False),
    (
        "one of",
        N_("both text and texts"),
        lambda chars, texts: {"text": "f", "texts": ["g"]},
        False,
    ),
    ("one of", N_("neither text nor texts"), lambda chars, texts: {}, False),
    (
        "extra",
        N_("an unknown field next to a valid text"),
        lambda chars, texts: {"text": "h", "lang": "en"},
        False,
    ),
    ("extra", N_("a misspelled field name"), lambda chars, texts: {"txt": "h"}, False),
    ("type", N_("a number as the text"), lambda chars, texts: {"text": 5}, False),
    ("type", N_("a decimal number as the text"), lambda chars, texts: {"text": 1.5}, False),
    ("type", N_("a boolean as the text"), lambda chars, texts: {"text": True}, False),
    ("type", N_("a list given as the text"), lambda chars, texts: {"text": ["i"]}, False),
    (
        "type",
        N_("an object given as the text"),
        lambda chars, texts: {"text": {"body": "j"}},
        False,
    ),
    ("type", N_("a single string given as texts"), lambda chars, texts: {"texts": "k"}, False),
    ("in list", N_("a number inside the list"), lambda chars, texts: {"texts": [7]}, False),
    ("in list", N_("a null inside the list"), lambda chars, texts: {"texts": [None]}, False),
    ("in list", N_("a list inside the list"), lambda chars, texts: {"texts": [["l"]]}, False),
)


def check_request_model(make_request_model: Callable[[int, int], type]) -> ExerciseResult:
    """Exercise 5.1: ``make_request_model(max_chars, max_texts)``.

    Returns a pydantic (v2) model class for the ``/predict`` body: exactly one of ``text`` (a
    non-empty string of at most ``max_chars`` characters) or ``texts`` (a list of 1 to
    ``max_texts`` such strings); an unknown field is rejected (nothing a client sends is
    silently dropped) and nothing is coerced to a string (``5`` is not ``"5"``). A payload that
    breaks a rule makes ``model_validate`` raise ``pydantic.ValidationError``. Every payload is
    tried with two sets of limits and must be accepted or rejected exactly as
    :func:`handbook.serving.app.request_model` does; an accepted payload keeps its text as sent.
    The model's JSON schema (what the OpenAPI docs show) must state both limits, as
    ``maxLength`` and ``maxItems``.
    """

    def case(description: str, group: str) -> Case:
        rows = [
            (_(what), payload)
            for kind, what, payload, _accepted in REQUEST_PAYLOADS
            if kind == group
        ]
        return Case(description, lambda: _expect_verdicts(make_request_model, rows))

    cases = [
        Case(_("the result is a pydantic model class"), lambda: _expect_model(make_request_model)),
        case(_("valid requests"), "valid"),
        case(_("at the limits exactly"), "at limit"),
        case(_("one over a limit"), "over"),
        case(_("empty inputs"), "empty"),
        case(_("both text and texts, or neither"), "one of"),
        case(_("unknown fields (nothing a client sends may be silently dropped)"), "extra"),
        case(_("wrong types where a string belongs (nothing is coerced to a string)"), "type"),
        case(_("wrong types inside the list of texts"), "in list"),
        Case(
            _("the JSON schema (the OpenAPI docs) states the limits"),
            lambda: _expect_schema_limits(make_request_model),
        ),
    ]
    return check_exercise("5.1", _("a request model with limits"), cases)


def _reference_request_model(max_chars: int, max_texts: int) -> type:
    from handbook.serving.app import request_model

    return request_model(max_chars, max_texts)


def _expect_model(make_request_model: Callable[[int, int], type]) -> None:
    from pydantic import BaseModel

    for max_chars, max_texts in REQUEST_LIMITS:
        model = make_request_model(max_chars, max_texts)
        what = f"make_request_model({max_chars}, {max_texts})"
        expect(
            isinstance(model, type) and issubclass(model, BaseModel),
            _(
                "{what}: expected a subclass of pydantic.BaseModel (the class, not an instance), "
                "got {value}"
            ).format(what=what, value=describe(model)),
        )


def _accepts(model: type, payload: dict[str, Any]) -> tuple[bool, Any]:
    """``(True, instance)`` when ``model`` validates ``payload``, ``(False, the error)``."""
    from pydantic import ValidationError

    try:
        return True, model.model_validate(payload)
    except ValidationError as error:
        return False, error


def _expect_verdicts(
    make_request_model: Callable[[int, int], type], rows: Sequence[tuple[str, Payload]]
) -> None:
    for max_chars, max_texts in REQUEST_LIMITS:
        model = make_request_model(max_chars, max_texts)
        reference = _reference_request_model(max_chars, max_texts)
        for what, build in rows:
            payload = build(max_chars, max_texts)
            expected = _accepts(reference, payload)[0]
            accepted, outcome = _accepts(model, payload)
            where = _(
                "{what}, {payload}, with make_request_model(max_chars={max_chars}, "
                "max_texts={max_texts})"
            ).format(what=what, payload=describe(payload), max_chars=max_chars, max_texts=max_texts)
            if expected and not accepted:
                first = outcome.errors()[0]
                location = ".".join(str(part) for part in first.get("loc", ())) or "body"
                raise AssertionError(
                    _(
                        "{where}: expected it to be accepted, but validation failed "
                        "({location}: {error})"
                    ).format(where=where, location=location, error=first.get("msg"))
                )
            expect(
                accepted == expected,
                _(
                    "{where}: expected it to be rejected (pydantic.ValidationError), but the "
                    "model accepted it"
                ).format(where=where),
            )
            if accepted:
                _expect_kept(outcome, payload, where)


def _expect_kept(instance: Any, payload: dict[str, Any], where: str) -> None:
    for name, sent in payload.items():
        kept = getattr(instance, name, None)
        kept = list(kept) if isinstance(kept, (list, tuple)) else kept
        expect(
            kept == sent,
            _(
                "{where}: accepted, but the model's {name} holds {kept}; expected the "
                "value sent, {sent}"
            ).format(where=where, name=repr(name), kept=describe(kept), sent=describe(sent)),
        )


def _schema_values(schema: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in a JSON schema (nested dicts and lists)."""
    if isinstance(schema, dict):
        found = [schema[key]] if key in schema else []
        return found + [value for item in schema.values() for value in _schema_values(item, key)]
    if isinstance(schema, list):
        return [value for item in schema for value in _schema_values(item, key)]
    return []


def _expect_schema_limits(make_request_model: Callable[[int, int], type]) -> None:
    for max_chars, max_texts in REQUEST_LIMITS:
        schema = make_request_model(max_chars, max_texts).model_json_schema()
        what = _("the JSON schema of make_request_model({max_chars}, {max_texts})").format(
            max_chars=max_chars, max_texts=max_texts
        )
        for key, limit, meaning in (
            ("maxLength", max_chars, _("the longest text")),
            ("maxItems", max_texts, _("the most texts in a list")),
        ):
            stated = _schema_values(schema, key)
            expect(
                limit in stated,
                _(
                    "{what}: expected {key}: {limit} ({meaning}) somewhere in it, found "
                    "{key} values {stated}; a limit the schema does not state is invisible in "
                    "the OpenAPI docs"
                ).format(what=what, key=repr(key), limit=limit, meaning=meaning, stated=stated),
            )


# Exercise 5.2 ---------------------------------------------------------------------------------


def check_flush_rule(should_flush: Callable[[int, int, float, float], bool]) -> ExerciseResult:
    """Exercise 5.2: ``should_flush(pending_items, max_batch_size, waited_ms, max_wait_ms)``.

    ``pending_items`` (at least 1) items are gathered and the oldest has waited ``waited_ms``
    milliseconds. Returns a ``bool``: True when the batch must run now, because it is full or
    because its oldest request has waited ``max_wait_ms`` (``max_wait_ms = 0`` runs whatever is
    waiting at once); compared with :func:`handbook.serving.batching.should_flush`.
    """

    def single(description: str, *arguments: float) -> Case:
        return Case(description, lambda: _expect_flush(should_flush, [arguments]))

    cases = [
        single(_("a full batch, no time waited"), 8, 8, 0.0, 5.0),
        single(_("more items than the batch size, no time waited"), 11, 8, 0.0, 5.0),
        single(_("half a batch whose oldest request waited exactly max_wait_ms"), 4, 8, 5.0, 5.0),
        single(
            _("half a batch whose oldest request waited just under max_wait_ms"), 4, 8, 4.999, 5.0
        ),
        single(_("one item, no time waited, max_wait_ms = 0"), 1, 8, 0.0, 0.0),
        single(_("max_batch_size = 1: a single item is a full batch"), 1, 1, 0.0, 5.0),
        single(_("one item that waited longer than max_wait_ms"), 1, 64, 12.5, 5.0),
        single(_("one item, a little time waited, well under max_wait_ms"), 3, 64, 1.0, 5.0),
        Case(
            _("a grid of batch sizes, waits and limits"),
            lambda: _expect_flush(should_flush, list(_flush_grid())),
        ),
        Case(_("the answer is a bool (True or False)"), lambda: _expect_flush_bool(should_flush)),
    ]
    return check_exercise("5.2", _("the micro-batcher's flush rule"), cases)


def _flush_grid():
    for max_batch_size, max_wait_ms in itertools.product((1, 4, 8, 32), (0.0, 2.0, 5.0)):
        for pending_items in sorted({1, 2, max_batch_size - 1, max_batch_size, max_batch_size + 1}):
            if pending_items < 1:
                continue
            for waited_ms in (0.0, 0.5, 1.999, 2.0, 4.999, 5.0, 5.001, 20.0):
                yield pending_items, max_batch_size, waited_ms, max_wait_ms


def _flush_call(arguments: Sequence[float]) -> str:
    pending_items, max_batch_size, waited_ms, max_wait_ms = arguments
    return (
        f"should_flush(pending_items={pending_items}, max_batch_size={max_batch_size}, "
        f"waited_ms={waited_ms}, max_wait_ms={max_wait_ms})"
    )


def _expect_flush(should_flush: Callable, calls: Sequence[Sequence[float]]) -> None:
    from handbook.serving.batching import should_flush as reference

    wrong = []
    for arguments in calls:
        result = should_flush(*arguments)
        expected = reference(*arguments)
        if not (result is expected or (result in (True, False) and bool(result) == expected)):
            wrong.append((arguments, expected, result))
    if wrong:
        arguments, expected, result = wrong[0]
        more = (
            _(" ({wrong} of {calls} calls wrong)").format(wrong=len(wrong), calls=len(calls))
            if len(calls) > 1
            else ""
        )
        raise AssertionError(
            _("{call}: expected {expected}, got {actual}").format(
                call=_flush_call(arguments), expected=expected, actual=describe(result)
            )
            + more
        )


def _expect_flush_bool(should_flush: Callable) -> None:
    for arguments in ((8, 8, 0.0, 5.0), (2, 8, 1.0, 5.0), (2, 8, 6.0, 5.0)):
        result = should_flush(*arguments)
        kind = type(result)
        expect(
            kind is bool,
            _("{call}: expected a Python bool (True or False), got {value} of type {type}").format(
                call=_flush_call(arguments),
                value=describe(result),
                type=f"{kind.__module__}.{kind.__qualname__}",
            ),
        )


# Exercise 5.3 ---------------------------------------------------------------------------------

#: The quantiles every histogram is read at (0.0 only where the first bucket is not empty).
QUANTILES = (0.5, 0.9, 0.95, 0.99, 1.0, 0.0)


def check_histogram_quantile(
    histogram_quantile: Callable[[float, Sequence[float], Sequence[float]], float],
) -> ExerciseResult:
    """Exercise 5.3: ``histogram_quantile(q, upper_bounds, cumulative)``.

    ``upper_bounds``: the buckets' ``le`` values, increasing, the last one ``inf``;
    ``cumulative[i]``: how many observations are ``<= upper_bounds[i]``. Returns a float,
    Prometheus's estimate of the ``q``-quantile: the rank ``q * total`` is located in the first
    bucket whose cumulative count reaches it and interpolated linearly inside that bucket (the
    first bucket starts at 0); a rank in the ``+Inf`` bucket gives the last finite bound. NaN
    when there are no observations; ``ValueError`` for ``q`` outside [0, 1]. Compared with
    :func:`handbook.serving.metrics.histogram_quantile` to a relative 1e-9, on hand-made
    histograms and on buckets filled by a real ``prometheus_client.Histogram``.
    """
    from handbook.serving.metrics import BATCH_BUCKETS, LATENCY_BUCKETS

    rng = np.random.default_rng(53)
    latencies = np.r_[rng.lognormal(math.log(0.02), 0.7, 497), [12.0, 14.5, 30.0]]
    batch_sizes = rng.integers(1, 65, 300)
    inf = math.inf

    def case(description: str, bounds: Sequence[float], counts: Sequence[float]) -> Case:
        return Case(
            description, lambda: _expect_quantiles(histogram_quantile, list(bounds), list(counts))
        )

    cases = [
        case(
            _("100 latencies in 6 buckets, 3 of them slower than the last finite bound"),
            [0.05, 0.1, 0.25, 0.5, 1.0, inf],
            [20, 55, 80, 95, 97, 100],
        ),
        case(
            _("ranks that land exactly on a bucket's count, with an empty bucket after it"),
            [1.0, 2.0, 4.0, 8.0, inf],
            [2, 5, 5, 9, 10],
        ),
        case(_("every observation in the first bucket"), [0.5, 1.0, inf], [4, 4, 4]),
        case(_("one finite bucket and +Inf"), [1.0, inf], [3, 5]),
        case(_("every observation in the +Inf bucket"), [0.1, 0.2, inf], [0, 0, 5]),
        Case(
            _(
                "500 random latencies observed by a prometheus_client Histogram (the server's "
                "latency buckets)"
            ),
            lambda: _expect_quantiles(
                histogram_quantile, *_observed_buckets(LATENCY_BUCKETS, latencies)
            ),
        ),
        Case(
            _(
                "300 batch sizes observed by a prometheus_client Histogram (whole numbers, many "
                "on a bucket's bound)"
            ),
            lambda: _expect_quantiles(
                histogram_quantile, *_observed_buckets(BATCH_BUCKETS, batch_sizes)
            ),
        ),
        Case(
            _("no observations at all"),
            lambda: _expect_empty(histogram_quantile, [0.1, 0.5, 1.0, inf], [0, 0, 0, 0]),
        ),
        Case(_("q outside [0, 1]"), lambda: _expect_bad_q(histogram_quantile)),
    ]
    return check_exercise("5.3", _("a quantile from a Prometheus histogram"), cases)


def _observed_buckets(buckets: Sequence[float], values: np.ndarray) -> tuple[list, list]:
    """``(upper bounds, cumulative counts)`` of a fresh ``prometheus_client.Histogram`` after
    observing ``values``, read back from its registry as a scrape would see them."""
    from prometheus_client import CollectorRegistry, Histogram

    registry = CollectorRegistry()
    histogram = Histogram("check_observed", "exercise 5.3", buckets=buckets, registry=registry)
    for value in values:
        histogram.observe(float(value))
    rows = sorted(
        (float(sample.labels["le"]), float(sample.value))
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name.endswith("_bucket")
    )
    return [bound for bound, _ in rows], [count for _, count in rows]


def _quantile_call(q: float, bounds: Sequence[float], counts: Sequence[float]) -> str:
    return f"histogram_quantile({q}, upper_bounds={bounds}, cumulative={counts})"


def _expect_number(result: object, what: str) -> None:
    expect_type(result, (float, int, np.floating, np.integer), what)
    expect(
        not isinstance(result, bool), _("{what}: expected a float, got a bool").format(what=what)
    )


def _expect_quantiles(
    histogram_quantile: Callable, bounds: list[float], counts: list[float]
) -> None:
    from handbook.serving.metrics import histogram_quantile as reference

    for q in QUANTILES:
        if q == 0.0 and counts[0] == 0:
            continue
        result = histogram_quantile(q, list(bounds), list(counts))
        what = _quantile_call(q, bounds, counts)
        _expect_number(result, what)
        expect_close(float(result), reference(q, bounds, counts), what, atol=1e-12, rtol=1e-9)


def _expect_empty(histogram_quantile: Callable, bounds: list[float], counts: list[float]) -> None:
    for q in (0.5, 0.99):
        result = histogram_quantile(q, list(bounds), list(counts))
        what = _quantile_call(q, bounds, counts)
        _expect_number(result, what)
        expect(
            math.isnan(float(result)),
            _(
                "{what}: expected NaN (there is no quantile without observations), got {value}"
            ).format(what=what, value=describe(result)),
        )


def _expect_bad_q(histogram_quantile: Callable) -> None:
    bounds, counts = [0.1, 0.5, 1.0, math.inf], [2, 6, 9, 10]
    for q in (-0.1, 1.5, 99.0):
        expect_raises(
            lambda q=q: histogram_quantile(q, list(bounds), list(counts)),
            ValueError,
            _quantile_call(q, bounds, counts),
        )


# Exercise 5.4 ---------------------------------------------------------------------------------

#: Exercise 5.4's load: closed-loop clients, each sending its next request when the last one is
#: answered, to a micro-batcher with the server's limits.
PREDICTION_CLIENTS = 3
PREDICTION_REQUESTS_PER_CLIENT = 10
PREDICTION_MAX_BATCH_SIZE = 64
PREDICTION_MAX_WAIT_MS = 5.0


def closed_loop_batch_sizes(
    clients: int = PREDICTION_CLIENTS,
    requests_per_client: int = PREDICTION_REQUESTS_PER_CLIENT,
    max_batch_size: int = PREDICTION_MAX_BATCH_SIZE,
    max_wait_ms: float = PREDICTION_MAX_WAIT_MS,
) -> list[int]:
    """The size of every batch :class:`handbook.serving.batching.MicroBatcher` runs when
    ``clients`` closed-loop clients each send ``requests_per_client`` one-text requests.

    Runs the server's batcher on a stand-in model that records each call, in an event loop of
    its own thread (a notebook's kernel already runs one). Deterministic: a round's requests
    are all queued before the batcher looks at the queue.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from handbook.serving.batching import MicroBatcher

    sizes: list[int] = []

    def model(texts: list[Any]) -> list[Any]:
        sizes.append(len(texts))
        return texts

    async def client(batcher: MicroBatcher) -> None:
        for _request in range(requests_per_client):
            await batcher.submit(["a text"])

    async def load() -> None:
        batcher = MicroBatcher(model, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms)
        await batcher.start()
        try:
            await asyncio.gather(*(client(batcher) for _ in range(clients)))
        finally:
            await batcher.stop()

    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, load()).result()
    return sizes


def check_batching_prediction(model_calls: object) -> ExerciseResult:
    """Exercise 5.4 (predict, then run): how many model calls the micro-batcher makes for
    :data:`PREDICTION_CLIENTS` closed-loop clients sending
    :data:`PREDICTION_REQUESTS_PER_CLIENT` requests each (``max_batch_size`` 64,
    ``max_wait_ms`` 5). The true value is counted by :func:`closed_loop_batch_sizes`, the
    server's own batcher; the answer must be exact.
    """
    sizes = closed_loop_batch_sizes()
    total = PREDICTION_CLIENTS * PREDICTION_REQUESTS_PER_CLIENT
    slip = ""
    if isinstance(model_calls, (int, float)) and not isinstance(model_calls, bool):
        if model_calls == 1:
            slip = _(
                "One call would need all {total} requests waiting at once; a closed-loop client "
                "sends its next request only after its last one is answered. "
            ).format(total=total)
        elif model_calls == total:
            slip = _(
                "One call per request is the naive server; the batcher does put the clients' "
                "requests that wait at the same time into one call. "
            )
    explain = slip + _(
        "This run's batches held {sizes} texts: a batch can hold no more "
        "requests than there are clients waiting ({clients}), so the "
        "{total} requests need {total} / {clients} rounds, and each round waits "
        "the full {wait:g} ms for company that never comes (the batch is "
        "never full). In a closed loop, batching is bounded by the concurrency."
    ).format(
        sizes=sorted(set(sizes)),
        clients=PREDICTION_CLIENTS,
        total=total,
        wait=PREDICTION_MAX_WAIT_MS,
    )
    return check_number(
        "5.4",
        _("model calls in a closed loop"),
        model_calls,
        len(sizes),
        tolerance=0,
        unit=_("model calls"),
        kind=PREDICTION,
        explain=explain,
    )


# Exercise 5.5 ---------------------------------------------------------------------------------

#: What an instructor reads exercise 5.5's answer against (English; each criterion is
#: translated where the check prints it).
LATENCY_INVESTIGATION_RUBRIC = (
    N_(
        "Names what happens before the app's clock starts: the connection waiting to be accepted, "
        "uvicorn reading and parsing the request, the event loop busy with other requests."
    ),
    N_(
        "Names the client's share: the load generator's own event loop and HTTP parsing, on the "
        "same cores as the server, add time the server never sees."
    ),
    N_(
        "Separates the histogram's own error: a p99 interpolated inside a wide bucket (100-150 ms) "
        "is an estimate, whatever the clocks say."
    ),
    N_(
        "Proposes a measurement that splits the gap (for example timestamps at each hop, the "
        "client on another machine or pinned to other cores, finer buckets) and what each would "
        "show."
    ),
    N_(
        "Says which number to alert on (the server's histogram, what Prometheus has) and which to "
        "quote (latency measured where the user is)."
    ),
)


def check_latency_investigation(answer: object) -> ExerciseResult:
    """Exercise 5.5 (open investigation): where the time between the clients' p99 and the
    server's goes (section 6), and how to measure each part. Submitted, never scored: the rubric
    :data:`LATENCY_INVESTIGATION_RUBRIC` is printed for the instructor and the learner."""
    return check_open_answer(
        "5.5",
        _("where the latency the server does not see goes"),
        answer,
        rubric=[_(criterion) for criterion in LATENCY_INVESTIGATION_RUBRIC],
        min_words=40,
    )
