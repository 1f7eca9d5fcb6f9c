"""Chapter 5: the HorizontalPodAutoscaler replay (claim C15 as far as one machine can test it).

The reference for ``hpa_desired`` is the formula Kubernetes documents, evaluated by hand:
``desiredReplicas = ceil(currentReplicas * currentMetricValue / desiredMetricValue)``, left
unchanged while the ratio is within the 10% tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from handbook.serving.autoscale import (
    Fleet,
    autoscaled_fleet,
    diurnal_traffic,
    hpa_desired,
    static_fleet,
    utilization_gain,
)


@pytest.mark.parametrize(
    ("current", "utilization", "target", "expected"),
    [
        (4, 0.9, 0.6, 6),  # ceil(4 * 1.5)
        (4, 0.3, 0.6, 2),  # ceil(4 * 0.5)
        (3, 0.7, 0.6, 4),  # ceil(3 * 1.1667) = ceil(3.5)
        (10, 0.65, 0.6, 10),  # ratio 1.083: inside the tolerance, no change
        (10, 0.55, 0.6, 10),  # ratio 0.917: inside the tolerance
        (10, 0.5, 0.6, 9),  # ratio 0.833: ceil(8.33)
        (1, 0.0, 0.6, 1),  # never below one replica
        (2, 1.0, 0.5, 4),
    ],
)
def test_hpa_desired_is_the_documented_formula(current, utilization, target, expected):
    assert hpa_desired(current, utilization, target) == expected
    ratio = utilization / target
    by_hand = current if abs(ratio - 1) <= 0.1 + 1e-12 else max(1, math.ceil(current * ratio))
    assert expected == by_hand


def test_hpa_tolerance_is_a_parameter():
    assert hpa_desired(10, 0.65, 0.6, tolerance=0.0) == 11
    assert hpa_desired(10, 0.9, 0.6, tolerance=0.6) == 10
    assert hpa_desired(7, 0.625, 0.5, tolerance=0.25) == 7  # ratio 1.25 exactly: inclusive
    assert hpa_desired(7, 0.625, 0.5, tolerance=0.125) == 9  # ceil(8.75)


@pytest.fixture(scope="module")
def day():
    return diurnal_traffic(400.0, trough_fraction=0.2, noise=0.05, seed=0)


def test_diurnal_traffic_shape(day):
    smooth = diurnal_traffic(400.0, trough_fraction=0.2, noise=0.0)
    assert smooth.shape == day.shape == (24 * 60,)
    assert int(np.argmax(smooth)) == 20 * 60 and smooth.max() == pytest.approx(400.0)
    assert int(np.argmin(smooth)) == 8 * 60 and smooth.min() == pytest.approx(80.0)

    assert day.max() <= 400.0 and day.min() > 0
    assert np.median(day / smooth) == pytest.approx(1.0, abs=0.01)  # noise around the cosine
    assert 0.02 < np.std(np.log(day / smooth)) < 0.06
    np.testing.assert_array_equal(day, diurnal_traffic(400.0, seed=0))
    assert not np.array_equal(day, diurnal_traffic(400.0, seed=1))


@pytest.mark.parametrize("target", [0.5, 0.6, 0.8, 0.99])
def test_a_static_fleet_sized_for_the_peak_is_never_overloaded(day, target):
    fleet = static_fleet(day, capacity_rps=50.0, target_utilization=target)

    assert fleet.overloaded_minutes == 0
    assert (fleet.replicas == fleet.replicas[0]).all()
    assert fleet.replicas[0] == math.ceil(day.max() / (50.0 * target))
    assert (fleet.utilization > 0).all() and (fleet.utilization <= target).all()


def test_autoscaling_uses_fewer_replica_minutes_and_more_of_each(day):
    static = static_fleet(day, capacity_rps=50.0, target_utilization=0.6)
    scaled = autoscaled_fleet(day, capacity_rps=50.0, target_utilization=0.6)

    assert scaled.replica_minutes < static.replica_minutes
    assert scaled.mean_utilization > static.mean_utilization
    assert utilization_gain(static, scaled) > 0.2
    assert utilization_gain(static, scaled) == pytest.approx(
        scaled.mean_utilization / static.mean_utilization - 1
    )
    for fleet in (static, scaled):
        assert ((fleet.utilization > 0) & (fleet.utilization <= 1)).all()
        assert fleet.replicas.min() >= 1
    assert scaled.replicas.min() < scaled.replicas.max()  # it did scale, both ways
    assert scaled.overloaded_minutes < len(day) * 0.05  # brief, while new pods start


def test_flat_traffic_gains_nothing():
    flat = np.full(600, 120.0)
    static = static_fleet(flat, capacity_rps=50.0, target_utilization=0.6)
    scaled = autoscaled_fleet(flat, capacity_rps=50.0, target_utilization=0.6)

    assert (scaled.replicas == static.replicas).all()
    assert abs(utilization_gain(static, scaled)) < 1e-9


def test_the_fleet_respects_its_bounds_and_the_startup_delay():
    traffic = np.concatenate([np.full(30, 10.0), np.full(30, 1000.0), np.full(30, 10.0)])
    fleet = autoscaled_fleet(traffic, 50.0, 0.5, min_replicas=2, max_replicas=12, startup_minutes=3)

    assert fleet.replicas.min() >= 2 and fleet.replicas.max() <= 12
    assert fleet.replicas[29] == 2 and fleet.replicas[30] == 2  # the surge is not seen yet
    assert fleet.replicas[31:34].max() == 2  # asked for at minute 31, serving from 34
    assert fleet.replicas[34] > 2
    assert fleet.replicas[59] == 12  # capped, so overloaded
    assert fleet.overloaded_minutes >= 26
    assert fleet.replicas[-1] == 2  # back down after the stabilization window


def test_scale_down_waits_for_the_stabilization_window():
    traffic = np.concatenate([np.full(20, 500.0), np.full(20, 50.0)])
    fleet = autoscaled_fleet(traffic, 50.0, 0.5, scale_down_window=5, startup_minutes=0)

    high = fleet.replicas[19]
    assert (fleet.replicas[20:25] == high).all()  # the last 5 recommendations still include it
    assert fleet.replicas[-1] < high


def test_fleet_arithmetic():
    fleet = Fleet(np.array([1, 2, 3]), np.array([0.5, 1.0, 0.75]), 1, 0.0)
    assert fleet.replica_minutes == 6 and fleet.mean_utilization == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: diurnal_traffic(0.0), "peak_rps"),
        (lambda: diurnal_traffic(100.0, trough_fraction=0.0), "trough_fraction"),
        (lambda: diurnal_traffic(100.0, trough_fraction=1.5), "trough_fraction"),
        (lambda: autoscaled_fleet(np.ones(5), 10.0, 0.0), "target_utilization"),
        (lambda: autoscaled_fleet(np.ones(5), 10.0, 1.2), "target_utilization"),
    ],
)
def test_invalid_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_dropped_fraction_counts_the_requests_over_capacity():
    traffic = np.array([100.0, 300.0])  # 400 requests/s in all; one replica of 200 serves 300
    fleet = static_fleet(traffic, capacity_rps=200.0, target_utilization=1.0)  # 2 replicas
    assert fleet.dropped_fraction == 0.0
    small = autoscaled_fleet(traffic, 200.0, 1.0, max_replicas=1)  # capped at one replica
    assert small.dropped_fraction == pytest.approx(100.0 / 400.0)
    assert small.overloaded_minutes == 1 and list(small.utilization) == [0.5, 1.0]
