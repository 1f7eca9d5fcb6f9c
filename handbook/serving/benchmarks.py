"""``make bench``'s serving rows: the server variants side by side, then handbook.serving
against its installed peers (LitServe, BentoML). ``handbook bench serving.benchmarks`` runs only
these.

The load itself is :mod:`handbook.serving.loadtest`'s, the peers' processes and comparison
:mod:`handbook.serving.peers`'s; this module only turns their results into
:class:`handbook.bench.Measurement` rows.
"""

from __future__ import annotations

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
    return rows + peer_benchmarks(model_dir, texts, smoke=smoke)


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
