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
