"""Chapter 5 figures: throughput and latency, latency distributions, the dashboard, autoscaling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from handbook.i18n import _
from handbook.plots.style import finish, pyplot


def throughput_and_latency(rows: Sequence[Mapping], *, title: str | None = None):
    """Two panels against the number of concurrent clients, one line per server variant:
    throughput (requests/s) and p99 latency (ms, log scale).

    ``rows``: dicts with ``server``, ``clients``, ``req/s`` and ``p99 ms`` (as
    :meth:`handbook.serving.loadtest.LoadResult.summary` gives them).
    """
    if not rows:
        raise ValueError("expected at least one load-test row to plot")
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10.4, 3.8))
    for server in dict.fromkeys(row["server"] for row in rows):
        points = sorted(
            (row["clients"], row["req/s"], row["p99 ms"]) for row in rows if row["server"] == server
        )
        clients, throughput, p99 = zip(*points, strict=True)
        left.plot(clients, throughput, marker="o", label=server)
        right.plot(clients, p99, marker="o", label=server)
    for axis, label in ((left, _("throughput (requests/s)")), (right, _("p99 latency (ms)"))):
        axis.set_xscale("log", base=2)
        axis.set_xlabel(_("concurrent clients"))
        axis.set_ylabel(label)
        axis.grid(alpha=0.3, which="both")
    right.set_yscale("log")
    left.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def latency_distributions(latencies_ms: Mapping[str, np.ndarray], *, title: str | None = None):
    """Empirical CDF of request latency per server (log x), with p50 and p99 marked."""
    if not latencies_ms:
        raise ValueError("expected at least one server's latencies")
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7.0, 3.8))
    for name, values in latencies_ms.items():
        ordered = np.sort(np.asarray(values, dtype=float))
        if ordered.size == 0:
            raise ValueError(f"no latencies for {name!r}")
        fraction = np.arange(1, ordered.size + 1) / ordered.size
        (line,) = axis.step(ordered, fraction, where="post", label=name)
        for q, marker in ((50, "o"), (99, "^")):
            axis.plot(np.percentile(ordered, q), q / 100, marker, color=line.get_color())
    axis.set_xscale("log")
    axis.set_xlabel(_("latency (ms)  [o p50, ^ p99]"))
    axis.set_ylabel(_("fraction of requests"))
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    return finish(figure, axis, title)


def serving_dashboard(series: Mapping[str, np.ndarray], *, title: str | None = None):
    """The four Grafana panels from :func:`handbook.serving.metrics.dashboard_series`: QPS,
    p50/p99 latency, error rate and mean batch size over time."""
    missing = {"time", "qps", "p50_ms", "p99_ms", "error_rate", "batch_size"} - set(series)
    if missing:
        raise ValueError(f"dashboard series lack {sorted(missing)}")
    plt = pyplot()
    figure, axes = plt.subplots(1, 4, figsize=(14.0, 3.2))
    t = series["time"]
    axes[0].plot(t, series["qps"], marker=".")
    axes[0].set_ylabel(_("requests/s"))
    axes[0].set_title("QPS")
    axes[1].plot(t, series["p50_ms"], marker=".", label="p50")
    axes[1].plot(t, series["p99_ms"], marker=".", label="p99")
    axes[1].set_ylabel("ms")
    axes[1].set_title(_("latency (from histogram buckets)"))
    axes[1].legend(fontsize=8)
    axes[2].plot(t, 100 * series["error_rate"], marker=".", color="crimson")
    axes[2].set_ylabel(_("% not 2xx"))
    axes[2].set_ylim(bottom=0.0)
    axes[2].set_title(_("error rate"))
    axes[3].plot(t, series["batch_size"], marker=".", color="darkgreen")
    axes[3].set_ylabel(_("texts per model call"))
    axes[3].set_title(_("batch size"))
    for axis in axes:
        axis.set_xlabel(_("seconds"))
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def autoscaling(
    traffic_rps: np.ndarray,
    fleets: Mapping[str, np.ndarray],
    capacity_rps: float,
    *,
    title: str | None = None,
):
    """A day of traffic (left axis, requests/s) and the replicas of each fleet (right axis);
    ``capacity_rps`` converts replicas to the capacity they provide (dashed)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(9.0, 3.8))
    hours = np.arange(len(traffic_rps)) / 60
    axis.plot(hours, traffic_rps, color="black", lw=1, label=_("traffic"))
    for name, replicas in fleets.items():
        axis.plot(
            hours,
            np.asarray(replicas) * capacity_rps,
            ls="--",
            label=_("capacity: {fleet}").format(fleet=name),
        )
    axis.set_xlabel(_("hour of the day"))
    axis.set_ylabel(_("requests/s"))
    axis.grid(alpha=0.3)
    right = axis.twinx()
    right.set_ylim(np.array(axis.get_ylim()) / capacity_rps)
    right.set_ylabel(_("replicas"))
    axis.legend(fontsize=8, loc="upper left")
    return finish(figure, axis, title)


def open_loop_latency(
    rows: Sequence[Mapping], *, target_ms: float = 100.0, title: str | None = None
):
    """p99 latency (from scheduled send time, log scale) against the arrival rate, one line per
    server, with the target drawn; a line that stops did not sustain its last rate.

    ``rows``: dicts with ``server``, ``rate req/s`` and ``p99 ms``
    (:meth:`handbook.serving.peers.PeerComparison.open_table`).
    """
    if not rows:
        raise ValueError("expected at least one open-loop row to plot")
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    for server in dict.fromkeys(row["server"] for row in rows):
        points = sorted(
            (row["rate req/s"], row["p99 ms"]) for row in rows if row["server"] == server
        )
        rates, p99 = zip(*points, strict=True)
        axis.plot(rates, p99, marker="o", label=server)
    axis.axhline(
        target_ms,
        color="black",
        linestyle="--",
        lw=1,
        label=_("p99 target {target:g} ms").format(target=target_ms),
    )
    axis.set_yscale("log")
    axis.set_xlabel(_("arrival rate (requests/s, open loop)"))
    axis.set_ylabel(_("p99 latency from scheduled send (ms)"))
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    return finish(figure, axis, title)
