"""What a Kubernetes HorizontalPodAutoscaler would do with the capacity measured on one replica.

Claim C15 (elastic scaling raises resource utilization by 40%) is a property of a cluster and
its traffic, which one machine cannot measure. What one machine can measure is the capacity of
one replica (requests per second at an acceptable p99). This module replays a day of traffic
against that capacity twice: with a fixed fleet sized for the peak, and with the HPA's rule

    desired = ceil(current * observed utilization / target utilization)

(no change within a 10% tolerance; scale-down only to the highest recommendation of the last
``scale_down_window`` minutes, as the HPA's stabilization window does; new pods serve after
``startup_minutes``). Utilization is served load over provisioned capacity, per minute; an
overloaded minute counts as fully used, so :attr:`Fleet.dropped_fraction` reports what it cost.

The capacity only sets how many replicas there are: with enough replicas to round over, the
utilization gain depends on the traffic's shape (how quiet the quiet hours are), not on how fast
one replica is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def diurnal_traffic(
    peak_rps: float,
    *,
    trough_fraction: float = 0.2,
    minutes: int = 24 * 60,
    peak_minute: int = 20 * 60,
    noise: float = 0.05,
    seed: int = 0,
) -> np.ndarray:
    """Requests per second for each minute of a day ``(minutes,)``: a cosine from
    ``trough_fraction * peak_rps`` (12 hours before ``peak_minute``) up to ``peak_rps``, times
    log-normal noise of relative size ``noise``."""
    if peak_rps <= 0 or not 0 < trough_fraction <= 1:
        raise ValueError(
            f"expected peak_rps > 0 and trough_fraction in (0, 1], got {peak_rps}, "
            f"{trough_fraction}"
        )
    t = np.arange(minutes)
    shape = (1 + np.cos(2 * np.pi * (t - peak_minute) / (24 * 60))) / 2
    rps = peak_rps * (trough_fraction + (1 - trough_fraction) * shape)
    jitter = np.random.default_rng(seed).lognormal(0.0, noise, minutes)
    return np.minimum(rps * jitter, peak_rps)


@dataclass
class Fleet:
    """Replicas per minute and what they did with the traffic."""

    replicas: np.ndarray
    utilization: np.ndarray
    overloaded_minutes: int
    dropped_fraction: float  # of all requests, those over the provisioned capacity

    @property
    def mean_utilization(self) -> float:
        return float(self.utilization.mean())

    @property
    def replica_minutes(self) -> int:
        return int(self.replicas.sum())


def _check_sizes(capacity_rps: float, target_utilization: float) -> None:
    if capacity_rps <= 0:
        raise ValueError(f"capacity_rps must be positive requests/s, got {capacity_rps}")
    if not 0 < target_utilization <= 1:
        raise ValueError(f"target_utilization must be in (0, 1], got {target_utilization}")


def _fleet(traffic: np.ndarray, replicas: np.ndarray, capacity_rps: float) -> Fleet:
    provisioned = replicas * capacity_rps
    served = np.minimum(traffic, provisioned)
    dropped = float((traffic - served).sum() / traffic.sum())
    return Fleet(replicas, served / provisioned, int((traffic > provisioned).sum()), dropped)


def static_fleet(traffic: np.ndarray, capacity_rps: float, target_utilization: float) -> Fleet:
    """A fixed number of replicas, enough for the day's peak at ``target_utilization``."""
    _check_sizes(capacity_rps, target_utilization)
    count = math.ceil(traffic.max() / (capacity_rps * target_utilization))
    return _fleet(traffic, np.full(len(traffic), count), capacity_rps)


def hpa_desired(current: int, utilization: float, target: float, tolerance: float = 0.1) -> int:
    """The HPA's recommendation for one step (Kubernetes' documented formula)."""
    if current < 1 or not 0 < target <= 1 or utilization < 0:
        raise ValueError(
            f"expected current >= 1, target in (0, 1] and utilization >= 0, got {current}, "
            f"{target} and {utilization}"
        )
    ratio = utilization / target
    if abs(ratio - 1.0) <= tolerance:
        return current
    return max(1, math.ceil(current * ratio))


def autoscaled_fleet(
    traffic: np.ndarray,
    capacity_rps: float,
    target_utilization: float,
    *,
    min_replicas: int = 1,
    max_replicas: int = 100,
    startup_minutes: int = 2,
    scale_down_window: int = 5,
) -> Fleet:
    """Replicas chosen minute by minute by the HPA rule from the last minute's utilization."""
    _check_sizes(capacity_rps, target_utilization)
    minutes = len(traffic)
    wanted = np.zeros(minutes, dtype=int)
    ready = np.zeros(minutes, dtype=int)
    first = math.ceil(traffic[0] / (capacity_rps * target_utilization))
    wanted[0] = ready[0] = int(np.clip(first, min_replicas, max_replicas))
    recommendations = [int(wanted[0])]
    for minute in range(1, minutes):
        # a saturated pod reports 100% CPU, not more: the HPA cannot see how far over it is
        utilization = min(traffic[minute - 1] / (ready[minute - 1] * capacity_rps), 1.0)
        recommendations.append(hpa_desired(int(ready[minute - 1]), utilization, target_utilization))
        wanted[minute] = np.clip(
            max(recommendations[-scale_down_window:]), min_replicas, max_replicas
        )
        # pods asked for now serve only startup_minutes later; pods removed stop at once
        started = wanted[max(minute - startup_minutes, 0)]
        ready[minute] = min(wanted[minute], max(ready[minute - 1], started))
    return _fleet(traffic, ready, capacity_rps)


def utilization_gain(static: Fleet, autoscaled: Fleet) -> float:
    """Relative rise of mean utilization from the static to the autoscaled fleet (0.4 = +40%)."""
    return autoscaled.mean_utilization / static.mean_utilization - 1.0
