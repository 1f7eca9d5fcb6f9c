import sys
import time

import pytest
import torch
from torch import nn

from handbook import bench


def test_time_callable_orders_slow_and_fast():
    slow = bench.time_callable(lambda: time.sleep(0.02), warmup=0, repeats=3)
    fast = bench.time_callable(lambda: None, warmup=1, repeats=3)
    assert slow.median_ms >= 15 > fast.median_ms
    assert slow.min_ms <= slow.median_ms <= slow.max_ms


def test_time_callable_needs_a_repeat():
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        bench.time_callable(lambda: None, repeats=0)


@pytest.mark.skipif(sys.platform != "linux", reason="CPU peak memory is read from Linux's /proc")
def test_peak_memory_sees_a_large_allocation():
    assert bench.cpu_peak_supported()

    def allocate(megabytes):
        return lambda: torch.ones(megabytes * 2**20 // 4).sum()

    big = bench.peak_memory_bytes(allocate(64))
    small = bench.peak_memory_bytes(allocate(1))
    assert 48 * 2**20 <= big <= 160 * 2**20
    assert small < big / 4


def test_peak_memory_rejects_an_unknown_device():
    with pytest.raises(ValueError, match="'cpu' or 'cuda', got 'tpu'"):
        bench.peak_memory_bytes(lambda: None, device="tpu")


def test_model_sizes():
    model = nn.Sequential(nn.Linear(10, 20), nn.BatchNorm1d(20))
    parameters = 10 * 20 + 20 + 20 + 20
    assert bench.count_parameters(model) == parameters
    # buffers: running mean and variance (float32), batches tracked (one int64)
    assert bench.parameter_bytes(model) == parameters * 4 + (20 + 20) * 4 + 8
    assert bench.serialized_bytes(model) > bench.parameter_bytes(model)
    model[0].weight.requires_grad_(False)
    assert bench.count_parameters(model, trainable_only=True) == parameters - 200


def test_compare_measures_side_by_side():
    rows = bench.compare(
        "sleep",
        {"long": lambda: time.sleep(0.01), "short": lambda: None},
        baseline="long",
        warmup=0,
        repeats=3,
        details={"short": "does nothing"},
    )
    by_name = {row.variant: row for row in rows}
    assert by_name["long"].ratio == pytest.approx(1.0)
    assert by_name["short"].ratio > 10
    table = bench.format_table(rows)
    assert "does nothing" in table and "sleep" in table


def test_compare_needs_its_baseline():
    with pytest.raises(ValueError, match="baseline 'x' is not one of the variants"):
        bench.compare("g", {"a": lambda: None}, baseline="x")


class FakeClock:
    """A clock that advances only when a fake workload runs: timings without timing noise."""

    def __init__(self):
        self.now = 0.0
        self.load = 1.0  # how much slower than usual everything runs right now
        self.calls: list[str] = []

    def perf_counter(self) -> float:
        return self.now

    def workload(self, name: str, milliseconds: float):
        def run():
            self.calls.append(name)
            self.now += milliseconds * self.load / 1000.0

        return run


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(bench.time, "perf_counter", fake.perf_counter)
    return fake


def test_compare_interleaves_the_variants_round_robin(clock):
    variants = {name: clock.workload(name, 4.0) for name in ("a", "b", "c")}
    bench.compare("g", variants, baseline="a", warmup=1, repeats=4)
    timed = clock.calls[3:]  # after one warm-up call each
    rounds = [timed[start : start + 3] for start in range(0, len(timed), 3)]
    assert rounds == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]


def test_a_burst_of_load_slows_every_variant_of_its_round(clock):
    slow, fast = clock.workload("slow", 6.0), clock.workload("fast", 2.0)

    def bursty_slow():
        clock.load = 10.0 if 10 <= len(clock.calls) < 16 else 1.0  # three rounds under load
        slow()

    rows = bench.compare(
        "burst", {"slow": bursty_slow, "fast": fast}, baseline="slow", warmup=1, repeats=9
    )
    by_name = {row.variant: row for row in rows}
    # sequential timing would put the burst on one variant; interleaved, every round says 3x
    assert by_name["fast"].ratio == pytest.approx(3.0)
    assert (by_name["fast"].ratio_low, by_name["fast"].ratio_high) == pytest.approx((3.0, 3.0))
    assert by_name["slow"].ratio == by_name["slow"].ratio_low == by_name["slow"].ratio_high == 1
    assert by_name["fast"].rounds == 9  # the spread was 0: no round beyond the minimum


def test_rounds_continue_while_the_spread_is_wide_until_the_budget(clock):
    rounds = {"count": 0}

    def noisy():
        rounds["count"] += 1
        clock.now += (0.002 if rounds["count"] % 2 else 0.006) * 1.0  # 2 or 6 ms: never settles

    rows = bench.compare(
        "noisy",
        {"steady": clock.workload("steady", 4.0), "noisy": noisy},
        baseline="steady",
        warmup=0,
        repeats=3,
        budget_s=0.5,
    )
    spent = sum(rows[0].round_ms) + sum(rows[1].round_ms)
    assert 3 < rows[0].rounds < 200 and spent >= 500  # stopped by the budget, not the minimum
    assert rows[1].ratio_low < rows[1].ratio < rows[1].ratio_high


def test_speedup_between_two_variants_of_one_comparison(clock):
    rows = bench.compare(
        "g",
        {name: clock.workload(name, ms) for name, ms in (("base", 8.0), ("x", 4.0), ("y", 2.0))},
        baseline="base",
        warmup=1,
        repeats=5,
    )
    ratio = bench.speedup(rows[1], rows[2])
    assert (ratio.value, ratio.low, ratio.high, ratio.rounds) == pytest.approx((2, 2, 2, 5))
    assert str(ratio) == "2.00x (2.00–2.00)" and ratio.interval == (2.0, 2.0)
    other = bench.compare("h", {"a": clock.workload("a", 1.0)}, baseline="a", repeats=7)
    with pytest.raises(ValueError, match="not measured in the same rounds"):
        bench.speedup(rows[0], other[0])


def test_ratio_is_the_median_and_interquartile_range_of_the_rounds():
    ratio = bench.ratio_of([4.0, 6.0, 8.0, 10.0, 12.0], [2.0, 2.0, 2.0, 2.0, 2.0])
    assert (ratio.value, ratio.low, ratio.high) == (4.0, 3.0, 5.0)
    assert ratio.spread == pytest.approx(0.5)
    with pytest.raises(ValueError, match="as many rounds on both sides"):
        bench.ratio_of([1.0], [1.0, 2.0])


def test_fast_calls_are_grouped_so_that_a_sample_lasts_a_few_milliseconds(clock):
    rows = bench.compare(
        "tiny", {"tiny": clock.workload("tiny", 0.5)}, baseline="tiny", warmup=1, repeats=2
    )
    assert len(clock.calls) == 1 + 2 * 4  # 4 calls of 0.5 ms per 2 ms sample
    assert rows[0].median_ms == pytest.approx(0.5)


def test_format_table_shows_the_interval_beside_the_speedup(clock):
    rows = bench.compare(
        "g", {"a": clock.workload("a", 6.0), "b": clock.workload("b", 2.0)}, baseline="a"
    )
    assert "3.00x     3.00–3.00" in bench.format_table(rows)


def test_each_round_keeps_the_fastest_of_its_samples(clock):
    def preempted_every_other_call(name, milliseconds):
        work = clock.workload(name, milliseconds)

        def run():
            clock.load = 5.0 if len(clock.calls) % 2 else 1.0  # a burst on every other call
            work()

        return run

    rows = bench.compare(
        "g",
        {"a": preempted_every_other_call("a", 6.0), "b": preempted_every_other_call("b", 2.0)},
        baseline="a",
        warmup=1,
        repeats=4,
        samples_per_round=3,
    )
    assert rows[1].rounds == 4 and len(clock.calls) == 2 + 4 * 3 * 2
    assert (rows[1].ratio, rows[1].ratio_low, rows[1].ratio_high) == pytest.approx((3, 3, 3))
    with pytest.raises(ValueError, match="samples_per_round must be at least 1"):
        bench.compare("g", {"a": clock.workload("a", 1.0)}, baseline="a", samples_per_round=0)
