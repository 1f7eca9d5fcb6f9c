"""Chapter 5: the micro-batcher, and the metrics read back the way Prometheus reads them.

The micro-batcher runs with a fake model that records every batch it is given; the quantile
estimate is checked against buckets filled by a real ``prometheus_client.Histogram`` and against
numpy's exact quantile of the same observations.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from handbook.serving.batching import MicroBatcher, should_flush
from handbook.serving.metrics import (
    LATENCY,
    METRIC_NAMES,
    ServerMetrics,
    histogram_quantile,
    latency_buckets,
    parse_metrics,
    series_total,
)

# should_flush ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pending", "max_size", "waited", "max_wait", "expected"),
    [
        (1, 16, 0.0, 5.0, False),  # one request, fresh: wait for company
        (15, 16, 4.9, 5.0, False),  # almost full, almost due
        (16, 16, 0.0, 5.0, True),  # full
        (20, 16, 0.0, 5.0, True),  # over full (never gathered, but still a flush)
        (1, 16, 5.0, 5.0, True),  # due exactly
        (1, 16, 7.5, 5.0, True),  # overdue
        (1, 16, 0.0, 0.0, True),  # max_wait_ms = 0: run whatever is waiting at once
        (1, 1, 0.0, 1000.0, True),  # batches of one never wait
    ],
)
def test_should_flush_truth_table(pending, max_size, waited, max_wait, expected):
    assert should_flush(pending, max_size, waited, max_wait) is expected


# MicroBatcher ----------------------------------------------------------------------------------


class FakeModel:
    """``run_batch`` doubling every item, recording each batch (it runs in the worker thread)."""

    def __init__(self, fail: Exception | None = None, drop_one: bool = False):
        self.batches: list[list[int]] = []
        self.fail = fail
        self.drop_one = drop_one
        self.lock = threading.Lock()

    def __call__(self, items):
        with self.lock:
            self.batches.append(list(items))
        if self.fail is not None:
            raise self.fail
        results = [item * 2 for item in items]
        return results[:-1] if self.drop_one else results


def _run(coroutine, timeout=10.0):
    """Run ``coroutine`` on a fresh event loop; a hang fails the test instead of stalling it."""

    async def bounded():
        return await asyncio.wait_for(coroutine, timeout)

    return asyncio.run(bounded())


async def _with_batcher(batcher, work):
    await batcher.start()
    try:
        return await work(batcher)
    finally:
        await batcher.stop()


def test_concurrent_requests_share_batches_and_each_gets_its_own_results():
    fake, observed = FakeModel(), []
    batcher = MicroBatcher(fake, max_batch_size=16, max_wait_ms=20, on_batch=observed.append)

    async def work(batcher):
        return await asyncio.gather(*(batcher.submit([item]) for item in range(50)))

    results = _run(_with_batcher(batcher, work))

    assert results == [[item * 2] for item in range(50)]
    sizes = [len(batch) for batch in fake.batches]
    assert max(sizes) <= 16 and sum(sizes) == 50
    assert len(sizes) < 50  # requests were batched together
    assert len(sizes) == math.ceil(50 / 16)  # all 50 were queued before the first batch ran
    assert observed == sizes
    assert sorted(item for batch in fake.batches for item in batch) == list(range(50))


def test_a_request_keeps_its_items_together_and_in_order():
    fake = FakeModel()
    batcher = MicroBatcher(fake, max_batch_size=8, max_wait_ms=10)
    requests = [[1, 2, 3], [10], [20, 21, 22, 23, 24], [7, 8]]

    async def work(batcher):
        return await asyncio.gather(*(batcher.submit(items) for items in requests))

    results = _run(_with_batcher(batcher, work))

    assert results == [[2 * item for item in items] for items in requests]
    for items in requests:  # contiguous inside one batch
        assert any(
            batch[position : position + len(items)] == items
            for batch in fake.batches
            for position in range(len(batch))
        ), items


def test_a_request_that_does_not_fit_is_carried_to_the_next_batch():
    fake = FakeModel()
    batcher = MicroBatcher(fake, max_batch_size=16, max_wait_ms=50)

    async def work(batcher):
        return await asyncio.gather(
            batcher.submit(list(range(10))), batcher.submit(list(range(100, 110)))
        )

    first, second = _run(_with_batcher(batcher, work))

    assert [len(batch) for batch in fake.batches] == [10, 10]
    assert first == [2 * item for item in range(10)]
    assert second == [2 * item for item in range(100, 110)]


def test_a_late_request_that_does_not_fit_waits_for_the_next_batch_and_a_gone_client_is_skipped():
    """The worker is gathering (max_wait_ms long) when a request too large to join arrives: it
    starts the next batch. A client that went away (its task cancelled) while its batch ran gets
    no answer, and its neighbours still get theirs. start() twice and stop() twice are no-ops."""
    entered, release = threading.Event(), threading.Event()
    batches = []

    def model(items):
        batches.append(list(items))
        if len(batches) == 2:
            entered.set()
            release.wait(10)
        return [item * 2 for item in items]

    batcher = MicroBatcher(model, max_batch_size=4, max_wait_ms=60_000)

    async def scenario():
        await batcher.start()
        await batcher.start()
        first = asyncio.create_task(batcher.submit([1, 2]))
        await _until(lambda: batcher._queue.empty() and batcher._unanswered)  # gathering
        late = asyncio.create_task(batcher.submit([3, 4, 5]))  # 2 + 3 > 4: the next batch
        await _until(lambda: len(batches) == 1)
        await _until(lambda: first.done())
        loop = asyncio.get_running_loop()
        gone = asyncio.create_task(batcher.submit([6]))  # joins the late one's batch
        await loop.run_in_executor(None, entered.wait, 10)
        gone.cancel()
        release.set()
        answers = await asyncio.gather(first, late)
        await batcher.stop()
        await batcher.stop()
        return answers, gone.cancelled()

    (first, late), cancelled = _run(scenario())
    assert batches[0] == [1, 2] and batches[1][:3] == [3, 4, 5]
    assert first == [2, 4] and late == [6, 8, 10] and cancelled


@pytest.mark.parametrize(
    ("window", "expected"), [("worker", [[1], [2, 3]]), ("arrival", [[1], [2], [3]])]
)
def test_a_request_that_queued_while_the_model_ran_waits_for_company_once_the_model_is_free(
    window, expected
):
    """The window for company opens when the worker begins gathering, not when the oldest
    request arrived (LitServe's rule): ``queued`` waited the whole of a long first batch, yet a
    request sent just after that batch ends still joins it instead of waiting a batch more.
    ``window="arrival"`` (the old rule, kept for make bench's ablation) sends ``queued`` alone."""
    release = threading.Event()
    batches = []

    def model(items):
        batches.append(list(items))
        if len(batches) == 1:
            release.wait(10)  # the first batch runs until the test lets it go
        return [item * 2 for item in items]

    max_wait_ms = 1000.0
    batcher = MicroBatcher(model, max_batch_size=8, max_wait_ms=max_wait_ms, window=window)

    async def scenario():
        await batcher.start()
        first = asyncio.create_task(batcher.submit([1]))
        await _until(lambda: len(batches) == 1)
        queued = asyncio.create_task(batcher.submit([2]))
        await asyncio.sleep(1.5 * max_wait_ms / 1000)  # queued has waited longer than max_wait
        release.set()
        await first
        straggler = asyncio.create_task(batcher.submit([3]))  # well inside the new window
        answers = await asyncio.gather(queued, straggler)
        await batcher.stop()
        return answers

    assert _run(scenario()) == [[4], [6]]
    assert batches == expected


def test_an_unknown_batch_window_is_refused():
    with pytest.raises(ValueError, match="window must be one of worker, arrival, got 'oldest'"):
        MicroBatcher(FakeModel(), max_batch_size=4, max_wait_ms=1, window="oldest")


@pytest.mark.parametrize("max_wait_ms", [0.0, 5.0, 200.0])
def test_a_lone_request_is_answered_after_max_wait(max_wait_ms):
    fake = FakeModel()
    batcher = MicroBatcher(fake, max_batch_size=64, max_wait_ms=max_wait_ms)

    async def work(batcher):
        first = await batcher.submit([3])
        second = await batcher.submit([4, 5])
        return first, second

    assert _run(_with_batcher(batcher, work)) == ([6], [8, 10])
    assert fake.batches == [[3], [4, 5]]


@pytest.mark.parametrize("items", [[], list(range(5))])
def test_a_request_of_zero_or_too_many_items_is_refused(items):
    batcher = MicroBatcher(FakeModel(), max_batch_size=4, max_wait_ms=1)

    async def work(batcher):
        with pytest.raises(ValueError, match="1 to 4 items"):
            await batcher.submit(items)
        return await batcher.submit([1, 2, 3, 4])  # the batcher still works

    assert _run(_with_batcher(batcher, work)) == [2, 4, 6, 8]


def test_a_failing_model_fails_every_request_of_its_batch_and_the_batcher_goes_on():
    error = RuntimeError("out of memory")
    fake = FakeModel(fail=error)
    batcher = MicroBatcher(fake, max_batch_size=16, max_wait_ms=20)

    async def work(batcher):
        outcomes = await asyncio.gather(
            *(batcher.submit([item]) for item in range(5)), return_exceptions=True
        )
        fake.fail = None
        return outcomes, await batcher.submit([21])

    outcomes, later = _run(_with_batcher(batcher, work))

    assert all(outcome is error for outcome in outcomes)
    assert later == [42]


def test_a_model_returning_the_wrong_number_of_results_is_an_error():
    batcher = MicroBatcher(FakeModel(drop_one=True), max_batch_size=8, max_wait_ms=5)

    async def work(batcher):
        return await asyncio.gather(
            batcher.submit([1, 2]), batcher.submit([3]), return_exceptions=True
        )

    outcomes = _run(_with_batcher(batcher, work))
    assert len(outcomes) == 2
    for outcome in outcomes:
        assert isinstance(outcome, RuntimeError) and "2 results for 3" in str(outcome)


def test_submit_before_start_is_refused():
    batcher = MicroBatcher(FakeModel(), max_batch_size=4, max_wait_ms=1)
    assert not batcher.running
    with pytest.raises(RuntimeError, match="start"):
        _run(batcher.submit([1]))


@pytest.mark.parametrize(("size", "wait"), [(0, 1.0), (4, -1.0)])
def test_invalid_batcher_settings(size, wait):
    with pytest.raises(ValueError):
        MicroBatcher(FakeModel(), max_batch_size=size, max_wait_ms=wait)


async def _until(condition, timeout_s: float = 10.0) -> None:
    """Let the event loop (and the batcher's thread) run until ``condition()`` holds: events
    decide the order, the timeout only stops a test that would hang."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout_s} s")
        await asyncio.sleep(0.001)


def test_stop_fails_a_request_the_worker_is_still_gathering():
    fake = FakeModel()
    batcher = MicroBatcher(fake, max_batch_size=16, max_wait_ms=60_000)

    async def scenario():
        await batcher.start()
        waiting = asyncio.create_task(batcher.submit([1]))
        await _until(lambda: batcher._queue.empty() and batcher._unanswered)  # taken, gathering
        await batcher.stop()
        with pytest.raises(RuntimeError, match="shutting down"):
            await waiting
        assert not batcher.running

    _run(scenario())
    assert fake.batches == []


def test_stop_fails_queued_and_running_requests():
    release, entered = threading.Event(), threading.Event()

    def slow(items):
        entered.set()
        release.wait(10)
        return items

    batcher = MicroBatcher(slow, max_batch_size=2, max_wait_ms=0)

    async def scenario():
        await batcher.start()
        running = asyncio.create_task(batcher.submit([1, 2]))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
        queued = asyncio.create_task(batcher.submit([3]))
        await _until(lambda: not batcher._queue.empty())
        # the running batch ends during stop(), once stop() waits for the batch's thread
        executor = batcher._executor
        shutdown = executor.shutdown
        executor.shutdown = lambda wait=True: (release.set(), shutdown(wait=wait))
        await batcher.stop()
        for task in (running, queued):
            with pytest.raises(RuntimeError, match="shutting down"):
                await task

    _run(scenario())


# histogram_quantile, against prometheus_client and numpy ---------------------------------------

BOUNDS = (0.1, 0.2, 0.5, 1.0)


def _observe(values, bounds=BOUNDS, route="/predict"):
    """Observe ``values`` in a real prometheus_client histogram; read the scrape back."""
    registry = CollectorRegistry()
    histogram = Histogram(LATENCY, "test", ["route"], buckets=bounds, registry=registry)
    for value in values:
        histogram.labels(route).observe(value)
    return latency_buckets(parse_metrics(generate_latest(registry).decode()), route)


def test_bucket_counts_read_back_from_a_prometheus_histogram():
    values = [0.05] * 10 + [0.15] * 30 + [0.3] * 50 + [0.7] * 9 + [2.0]
    bounds, cumulative = _observe(values)

    assert bounds == [0.1, 0.2, 0.5, 1.0, math.inf]
    assert cumulative == [10, 40, 90, 99, 100]
    assert cumulative == [sum(v <= bound for v in values) for bound in bounds]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.05, 0.0 + 0.1 * 5 / 10),  # first bucket starts at 0
        (0.25, 0.1 + 0.1 * (25 - 10) / 30),
        (0.5, 0.2 + 0.3 * (50 - 40) / 50),
        (0.9, 0.5),  # rank 90 is the top of the third bucket
        (0.95, 0.5 + 0.5 * (95 - 90) / 9),
        (0.99, 1.0),
        (0.995, 1.0),  # rank in the +Inf bucket: the last finite bound
        (1.0, 1.0),
    ],
)
def test_histogram_quantile_interpolates_like_prometheus(q, expected):
    values = [0.05] * 10 + [0.15] * 30 + [0.3] * 50 + [0.7] * 9 + [2.0]
    bounds, cumulative = _observe(values)
    assert histogram_quantile(q, bounds, cumulative) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=60, deadline=None, database=None)
@given(
    values=st.lists(st.floats(0.0, 1.2) | st.sampled_from(BOUNDS), min_size=1, max_size=60),
    q=st.sampled_from([0.1, 0.25, 0.5, 0.9, 0.99]),
)
def test_the_estimate_lies_in_the_bucket_of_the_exact_quantile(values, q):
    bounds, cumulative = _observe(values)
    estimate = histogram_quantile(q, bounds, cumulative)
    exact = float(np.quantile(values, q, method="inverted_cdf"))  # the smallest x with F(x) >= q

    bucket = next(i for i, bound in enumerate(bounds) if exact <= bound)
    if bucket == len(bounds) - 1:
        assert estimate == bounds[-2]
    else:
        lower = 0.0 if bucket == 0 else bounds[bucket - 1]
        assert lower <= estimate <= bounds[bucket]


def test_histogram_quantile_edge_cases():
    inf = math.inf
    assert math.isnan(histogram_quantile(0.5, [0.1, inf], [0, 0]))  # no observations
    assert math.isnan(histogram_quantile(0.5, [inf], [3]))  # only the +Inf bucket
    assert histogram_quantile(0.5, [0.1, 0.2, inf], [0, 0, 4]) == 0.2  # all above the top bound
    assert histogram_quantile(0.0, [0.1, 0.2, inf], [0, 4, 4]) == 0.1  # empty first bucket
    # the top of a bucket is its bound exactly (0.1 * 3 / 3 would be 0.10000000000000002)
    assert histogram_quantile(1.0, [0.1, 1.0, inf], [3, 3, 3]) == 0.1
    for q in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="quantile"):
            histogram_quantile(q, [0.1, inf], [1, 1])
    with pytest.raises(ValueError, match="as many bounds as counts"):
        histogram_quantile(0.5, [0.1, 0.2, inf], [1, 2])
    with pytest.raises(ValueError, match="as many bounds as counts"):
        histogram_quantile(0.5, [], [])
    with pytest.raises(ValueError, match=r"\+Inf"):
        histogram_quantile(0.5, [0.1, 0.2], [1, 2])


# The server's registry -------------------------------------------------------------------------


def test_each_server_metrics_has_its_own_registry_and_the_documented_names():
    first, second = ServerMetrics(), ServerMetrics()
    first.requests.labels("/predict", "POST", "200").inc(3)
    first.batch_size.observe(5)
    first.predictions.labels("sports").inc()
    first.latency.labels("/predict").observe(0.004)
    first.model_info.labels("topics-abc", "onnx").set(1)

    scrape, other = (parse_metrics(generate_latest(m.registry).decode()) for m in (first, second))
    assert series_total(scrape, "handbook_requests_total") == 3
    assert series_total(scrape, "handbook_requests_total", route="/predict", status="200") == 3
    assert series_total(scrape, "handbook_requests_total", status="500") == 0
    assert series_total(other, "handbook_requests_total") == 0
    assert scrape[("handbook_batch_size_sum", ())] == 5
    assert scrape[("handbook_predictions_total", (("label", "sports"),))] == 1
    names = {name for name, _ in scrape}
    for name in METRIC_NAMES:  # every documented name is exposed (histograms as _bucket etc.)
        assert any(series == name or series.startswith(name + "_") for series in names), name
    assert not any(name.endswith("_created") for name in names)
