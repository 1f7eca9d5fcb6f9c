"""``make bench``'s serving rows: the server variants side by side, then handbook.serving
against its installed peers (LitServe, BentoML). ``handbook bench serving.benchmarks`` runs only
these.

The load itself is :mod:`handbook.serving.loadtest`'s, the peers' processes and comparison
:mod:`handbook.serving.peers`'s; this module only turns their results into
:class:`handbook.bench.Measurement` rows.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

from handbook import bench
from handbook.serving import artifact, loadtest, model, peers


def benchmarks(smoke: bool = False) -> list:
    """``make bench`` rows: throughput of each server at 64 concurrent clients, side by side,
    then handbook.serving against its installed peers (:func:`peer_benchmarks`).

    ``median_ms`` is milliseconds per answered request (1 / throughput), so ``ratio`` is the
    throughput over the naive server's; ``detail`` gives req/s, p50 and p99 latency, errors.
    Builds the model folder first if it does not exist (about 50 s).
    """

    model_dir = artifact.default_model_dir()
    if not (model_dir / artifact.MANIFEST).exists():
        model.build_artifact(model_dir)
    texts = model.topic_corpus(100, 300, seed=1)[2]
    results = loadtest.compare_servers(
        model_dir, texts, clients=[64], requests=300 if smoke else 2000
    )
    baseline = results[0].throughput
    rows = [
        bench.Measurement(
            "serving, 64 clients (ms/request)",
            result.label,
            1000 / result.throughput,
            result.throughput / baseline,
            None,
            f"{result.throughput:.0f} req/s, p50 {result.percentile(50):.0f} ms, "
            f"p99 {result.percentile(99):.0f} ms, {result.errors} errors",
        )
        for result in results
    ]
    return (
        rows
        + tail_ablation(model_dir, texts, smoke=smoke)
        + peer_benchmarks(model_dir, texts, smoke=smoke)
    )


#: What handbook.serving did before issue 27, one change at a time: (server flags, what it puts
#: back). The shipped server is the baseline.
TAIL_ABLATION = {
    "shipped": ([], "as chapter 5 serves it (ORT INT8)"),
    "ORT threads spinning": (
        ["--ort-spinning"],
        "ONNX Runtime's default: idle intra-op threads spin and hold a core the event loop needs",
    ),
    "window from oldest arrival": (
        ["--batch-window", "arrival"],
        "a request that queued while the previous batch ran leaves at once with a partial batch",
    ),
}


def tail_ablation(
    model_dir, texts: Sequence[str], *, smoke: bool = False, rounds: int | None = None
) -> list:
    """``make bench`` rows: where handbook.serving's closed-loop tail came from (issue 27).

    The shipped server and each variant of :data:`TAIL_ABLATION` (the shipped server with one
    of its fixes taken back), each started fresh, 64 clients, in ``rounds`` interleaved rounds
    (A B C A B C: a burst of load hits them alike). ``median_ms`` is the median over rounds of
    the p99 latency; ``ratio`` the median over rounds of the shipped server's p99 over the
    variant's, as every ratio of the table reads (below 1: without that fix the tail is longer);
    ``detail`` the throughput and p50.
    """
    rounds = rounds or (1 if smoke else 3)
    threads = str(max(os.cpu_count() or 1, 1))
    variants = {
        name: ("int8", [*flags, "--threads", threads]) for name, (flags, _) in TAIL_ABLATION.items()
    }
    measured: dict[str, list] = {name: [] for name in TAIL_ABLATION}
    for _ in range(rounds):  # each round starts every variant once, in turn
        for result in loadtest.compare_servers(
            model_dir, texts, clients=[64], requests=300 if smoke else 2000, variants=variants
        ):
            measured[result.label].append(result)
    shipped = [result.percentile(99) for result in measured[next(iter(TAIL_ABLATION))]]
    rows = []
    for name, results in measured.items():
        p99 = [result.percentile(99) for result in results]
        ratio = bench.ratio_of(shipped, p99)
        rows.append(
            bench.Measurement(
                "ch05 tail ablation, 64 clients (p99 ms)",
                name,
                statistics.median(p99),
                ratio.value,
                None,
                f"{statistics.median(r.throughput for r in results):.0f} req/s, p50 "
                f"{statistics.median(r.percentile(50) for r in results):.0f} ms, "
                f"{sum(r.errors for r in results)} errors, {threads} ORT threads; "
                f"{TAIL_ABLATION[name][1]}",
                ratio.low,
                ratio.high,
                p99,
            )
        )
    return rows


def peer_benchmarks(model_dir, texts: Sequence[str], *, smoke: bool = False) -> list:
    """``make bench`` rows of :func:`handbook.serving.peers.compare_peers` (ORT INT8 everywhere).

    First the generator's calibration row (ms per request at the null endpoint's p99, and
    whether it passed). Closed loop: ms per request at 64 clients, ``ratio`` = throughput over
    handbook.serving's. Open loop: ms per request at the median sustained rate (p99 <= 100 ms,
    found by bisection over rounds), ``ratio`` = that rate over handbook.serving's; no open-loop
    rows when the calibration failed. No rows (and a note) without the peers.
    """
    if not peers.available_peers():
        print("serving peers skipped: pip install '.[peers]' (make book and make bench do)")
        return []
    comparison = peers.compare_peers(
        model_dir,
        texts,
        requests=300 if smoke else 2000,
        seconds=0.5 if smoke else 1.5,
        rounds=1 if smoke else 3,
    )
    calibration = comparison.calibration
    rows = [
        bench.Measurement(
            "ch05 peers, generator calibration (null endpoint)",
            "passed" if calibration.passed else "FAILED: no sustained rate reported",
            calibration.result.percentile(99),
            float("nan"),
            None,
            calibration.describe(),
        )
    ]
    ours = comparison.closed[peers.OURS]
    for name, closed in comparison.closed.items():
        rows.append(
            bench.Measurement(
                "ch05 peers, closed loop, 64 clients",
                name,
                1000 / closed.throughput,
                closed.throughput / ours.throughput,
                None,
                f"{closed.throughput:.0f} req/s, p50 {closed.percentile(50):.0f} ms, "
                f"p99 {closed.percentile(99):.0f} ms, {closed.errors} errors, "
                f"{comparison.threads} ORT threads",
            )
        )
    sustained = comparison.sustained()
    for name, search in comparison.open.items():
        rate = sustained[name]
        rows.append(
            bench.Measurement(
                "ch05 peers, open loop, p99 <= 100 ms",
                name,
                1000 / rate if rate else float("inf"),
                rate / sustained[peers.OURS] if sustained[peers.OURS] else float("nan"),
                None,
                f"sustains {search.describe()}; {len(search.steps)} steps",
            )
        )
    return rows
