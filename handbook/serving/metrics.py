"""What the server exposes on ``GET /metrics``, and how to read it back.

:class:`ServerMetrics` owns one ``prometheus_client`` registry per app (so several apps in one
process, as in the tests, never share counters). The names below are the contract with
``deploy/prometheus`` and the Grafana dashboard in ``deploy/grafana``; the tests check that
every query there uses a name defined here.

:func:`histogram_quantile` is Prometheus's own estimate of a quantile from cumulative bucket
counts (what Grafana's p99 panel shows), written out so the chapter can compare it with the
exact percentile of the latencies the load test measured.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# The *_created series (a timestamp per label set) double the scrape and no panel uses them.
disable_created_metrics()

REQUESTS = "handbook_requests_total"
LATENCY = "handbook_request_duration_seconds"
IN_FLIGHT = "handbook_requests_in_flight"
BATCH_SIZE = "handbook_batch_size"
PREDICTIONS = "handbook_predictions_total"
MODEL_INFO = "handbook_model_info"
#: Every series name the app exposes (histograms add _bucket, _sum and _count).
METRIC_NAMES = (REQUESTS, LATENCY, IN_FLIGHT, BATCH_SIZE, PREDICTIONS, MODEL_INFO)

#: Latency buckets, seconds: fine below 100 ms where a healthy server answers.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128)


class ServerMetrics:
    """The app's metrics, registered in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

        def counter(name, doc, labels):
            return Counter(name.removesuffix("_total"), doc, labels, registry=self.registry)

        self.requests = counter(
            REQUESTS, "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
        )  # fmt: skip
        self.latency = Histogram(
            LATENCY, "Time from request received to response sent, seconds, by route.",
            ["route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            IN_FLIGHT, "Requests received and not yet answered.", registry=self.registry
        )
        self.batch_size = Histogram(
            BATCH_SIZE, "Texts per model call (1 per request when batching is off).",
            buckets=BATCH_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.predictions = counter(
            PREDICTIONS, "Texts classified, by predicted label (watch it for drift).", ["label"]
        )
        self.model_info = Gauge(
            MODEL_INFO, "1 for the model version and backend being served.",
            ["version", "backend"], registry=self.registry,
        )  # fmt: skip


def histogram_quantile(
    q: float, upper_bounds: Sequence[float], cumulative: Sequence[float]
) -> float:
    """Prometheus's ``histogram_quantile``: the ``q``-quantile from cumulative bucket counts.

    ``upper_bounds`` are the buckets' ``le`` values, increasing, the last one ``inf``;
    ``cumulative[i]`` counts the observations ``<= upper_bounds[i]``. The quantile's rank
    ``q * total`` is located in its bucket and interpolated linearly inside it (the first
    bucket starts at 0); a rank in the ``+Inf`` bucket returns the last finite bound. NaN when
    there are no observations.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be a quantile in [0, 1], got {q}")
    if len(upper_bounds) != len(cumulative) or not upper_bounds:
        raise ValueError(
            f"expected as many bounds as counts (at least one), got {len(upper_bounds)} "
            f"and {len(cumulative)}"
        )
    if not math.isinf(upper_bounds[-1]):
        raise ValueError(f"the last bucket must be +Inf, got {upper_bounds[-1]}")
    total = cumulative[-1]
    if total == 0:
        return math.nan
    rank = q * total
    index = next(i for i, count in enumerate(cumulative) if count >= rank)
    if index == len(upper_bounds) - 1:
        return float(upper_bounds[-2]) if len(upper_bounds) > 1 else math.nan
    lower = 0.0 if index == 0 else float(upper_bounds[index - 1])
    below = 0.0 if index == 0 else float(cumulative[index - 1])
    in_bucket = float(cumulative[index]) - below
    if in_bucket == 0:
        return float(upper_bounds[index])
    # Prometheus's order of operations: the fraction first, so the estimate never passes the
    # bucket's upper bound by a rounding error
    return lower + (float(upper_bounds[index]) - lower) * ((rank - below) / in_bucket)


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A scrape of ``/metrics`` as ``{(series name, sorted label pairs): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def series_total(scrape: dict, name: str, **labels: str) -> float:
    """Sum of the series called ``name`` whose labels include ``labels``."""
    return sum(
        value
        for (series, pairs), value in scrape.items()
        if series == name and labels.items() <= dict(pairs).items()
    )


def latency_buckets(scrape: dict, route: str) -> tuple[list[float], list[float]]:
    """``(upper bounds, cumulative counts)`` of the latency histogram of ``route``."""
    rows = sorted(
        (float(dict(pairs)["le"]), value)
        for (series, pairs), value in scrape.items()
        if series == f"{LATENCY}_bucket" and dict(pairs).get("route") == route
    )
    return [bound for bound, _ in rows], [count for _, count in rows]


def latency_window(before: dict, after: dict, route: str) -> tuple[list[float], list[float]]:
    """``(upper bounds, cumulative counts)`` of the latency observations of ``route`` made
    between two scrapes (a route not yet seen in ``before`` counts from zero)."""
    bounds, counts_after = latency_buckets(after, route)
    counts_before = dict(zip(*latency_buckets(before, route), strict=True))
    return bounds, [
        count - counts_before.get(bound, 0.0)
        for bound, count in zip(bounds, counts_after, strict=True)
    ]


def scrape(url: str, timeout_s: float = 5.0) -> dict:
    """``GET url/metrics``, parsed by :func:`parse_metrics`."""
    import httpx

    response = httpx.get(url.rstrip("/") + "/metrics", timeout=timeout_s, trust_env=False)
    response.raise_for_status()
    return parse_metrics(response.text)


class MetricsMonitor:
    """Scrape ``/metrics`` every ``interval_s`` seconds in a background thread, as Prometheus
    does, while the ``with`` block runs; ``samples`` holds ``(seconds since start, scrape)``.

    One scrape is taken on entry and one on exit, so rates cover the whole block.
    """

    def __init__(self, url: str, interval_s: float = 0.5):
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.url = url
        self.interval_s = interval_s
        self.samples: list[tuple[float, dict]] = []

    def _take(self) -> None:
        self.samples.append((time.perf_counter() - self._started, scrape(self.url)))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._take()

    def __enter__(self) -> MetricsMonitor:
        self._started = time.perf_counter()
        self._stop = threading.Event()
        self._take()
        self._thread = threading.Thread(target=self._loop, name="metrics-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self._take()


def dashboard_series(samples: Sequence[tuple[float, dict]], route: str = "/predict") -> dict:
    """What the Grafana panels compute from consecutive scrapes: Prometheus's ``rate()``.

    Returns arrays, one value per interval between scrapes: ``time`` (the interval's end,
    seconds), ``qps`` (requests per second to ``route``), ``error_rate`` (fraction of them not
    2xx), ``p50_ms``/``p99_ms`` (:func:`histogram_quantile` of the interval's latency
    observations), ``batch_size`` (mean texts per model call). NaN where nothing happened.
    """
    rows = []
    for (t0, before), (t1, after) in zip(samples[:-1], samples[1:], strict=True):
        seconds = t1 - t0

        def delta(name, _before=before, _after=after, **labels):
            return series_total(_after, name, **labels) - series_total(_before, name, **labels)

        total = delta(REQUESTS, route=route)
        ok = sum(delta(REQUESTS, route=route, status=str(code)) for code in (200, 201, 204))
        bounds, interval = latency_window(before, after, route)
        calls = delta(f"{BATCH_SIZE}_count")
        rows.append(
            (
                t1,
                total / seconds,
                (total - ok) / total if total else math.nan,
                1000 * histogram_quantile(0.5, bounds, interval) if bounds else math.nan,
                1000 * histogram_quantile(0.99, bounds, interval) if bounds else math.nan,
                delta(f"{BATCH_SIZE}_sum") / calls if calls else math.nan,
            )
        )
    names = ("time", "qps", "error_rate", "p50_ms", "p99_ms", "batch_size")
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return {
        name: np.asarray(column, dtype=float) for name, column in zip(names, columns, strict=True)
    }
