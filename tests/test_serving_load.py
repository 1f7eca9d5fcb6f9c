"""Chapter 5: the real server in a child process, under a bounded load, read back from /metrics.

The reference is the server's own Prometheus scrape (parsed by prometheus_client): its counters
must equal the requests the load generator sent, exactly. Nothing here asserts a timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter

import httpx
import numpy as np
import pytest

from handbook.serving.__main__ import main
from handbook.serving.app import Settings
from handbook.serving.loadtest import LoadResult, run_load
from handbook.serving.metrics import (
    BATCH_SIZE,
    LATENCY,
    PREDICTIONS,
    REQUESTS,
    latency_buckets,
    parse_metrics,
    series_total,
)
from handbook.serving.process import ServerProcess

pytest_plugins = ["serving_fixtures"]

CLIENTS, REQUESTS_SENT = 32, 2000


def _scrape(server) -> dict:
    response = httpx.get(server.url + "/metrics", timeout=10)
    assert response.status_code == 200
    return parse_metrics(response.text)


def test_the_metrics_count_every_request_of_a_real_load(model_dir, built, tmp_path):
    log_path = tmp_path / "server.log"
    with ServerProcess(model_dir, backend="onnx", log_path=log_path) as server:
        assert server.running and server.url.startswith("http://127.0.0.1:")
        result = run_load(server.url, built.test_texts, concurrency=CLIENTS, requests=REQUESTS_SENT)
        scrape = _scrape(server)
        # a few invalid bodies on top: the 422s are counted, and are not server errors
        mixed = run_load(server.url, built.test_texts, concurrency=4, requests=100, invalid_every=5)
        after = _scrape(server)
        process = server.process
    assert process.poll() is not None and not server.running

    assert result.requests == REQUESTS_SENT and result.statuses == Counter({200: REQUESTS_SENT})
    assert result.errors == 0 and (result.latencies_ms > 0).all()
    answered = REQUESTS_SENT + CLIENTS  # each client's untimed warm-up request is served too
    assert series_total(scrape, REQUESTS, route="/predict", status="200") == answered
    assert series_total(scrape, REQUESTS, route="/predict") == answered  # nothing else
    assert series_total(scrape, REQUESTS, status="500") == 0
    calls = scrape[(f"{BATCH_SIZE}_count", ())]
    assert scrape[(f"{BATCH_SIZE}_sum", ())] == answered  # every text went through the model
    assert calls < answered  # ... in fewer model calls than requests: batches formed
    assert series_total(scrape, PREDICTIONS) == answered
    bounds, cumulative = latency_buckets(scrape, "/predict")
    assert cumulative[-1] == answered == scrape[(f"{LATENCY}_count", (("route", "/predict"),))]
    assert np.all(np.diff(cumulative) >= 0) and bounds[-1] == np.inf

    assert mixed.statuses == Counter({200: 80, 422: 20}) and mixed.errors == 0
    assert series_total(after, REQUESTS, route="/predict", status="422") == 20
    assert series_total(after, REQUESTS, route="/predict", status="200") == answered + 80 + 4

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line[:1] == "{"]
    predict_lines = [line for line in lines if line.get("route") == "/predict"]
    assert len(predict_lines) == answered + 100 + 4  # one JSON line per request
    assert len({line["request_id"] for line in predict_lines}) == len(predict_lines)


def test_the_body_limit_holds_on_the_real_server(model_dir, tmp_path):
    limit = Settings().max_body_bytes  # the default: the largest body the text limits allow
    big = json.dumps({"text": "a" * (limit + 1)}).encode()

    def chunks():
        for start in range(0, len(big), 16_384):
            yield big[start : start + 16_384]

    server = ServerProcess(model_dir, options=["--no-request-log"], log_path=tmp_path / "log")
    with server:
        outcomes = []
        for content in (big, chunks()):
            response = httpx.post(
                server.url + "/predict",
                content=content,
                headers={"content-type": "application/json"},
                timeout=10,
            )
            outcomes.append((response.status_code, response.json().get("limit_bytes")))
        ok = httpx.post(server.url + "/predict", json={"text": "rain"}, timeout=10)
        scrape = _scrape(server)
    assert outcomes == [(413, limit)] * 2
    assert ok.status_code == 200
    assert series_total(scrape, REQUESTS, route="/predict", status="413") == 2


def test_the_server_stops_when_the_block_raises(model_dir, tmp_path):
    server = ServerProcess(model_dir, options=["--no-request-log"], log_path=tmp_path / "log")
    with pytest.raises(KeyError, match="boom"), server:
        process = server.process
        assert httpx.get(server.url + "/ready", timeout=10).status_code == 200
        raise KeyError("boom")
    assert process.poll() is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/health", timeout=2)
    server.stop()  # a second stop is harmless


def test_a_server_without_a_model_reports_why(tmp_path):
    server = ServerProcess(tmp_path / "empty", log_path=tmp_path / "server.log")
    with pytest.raises(RuntimeError, match="exited with code 2") as caught, server:
        pass
    message = str(caught.value)
    assert "manifest.json is missing" in message and "--build-only" in message
    assert not server.running and server.process.poll() == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/fd")
def test_a_server_process_holds_no_file_open_before_it_starts(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = len(os.listdir("/proc/self/fd"))
    servers = [ServerProcess(tmp_path / "model") for _ in range(5)]

    assert len(os.listdir("/proc/self/fd")) == before
    assert len({server.log_path for server in servers}) == 5
    assert all(server.log_path.parent == tmp_path for server in servers)
    assert not any(server.running for server in servers)


# The load generator's guards and arithmetic ----------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://example.com", "http://10.0.0.1:8000", "https://8.8.8.8", "http://127.0.0.2:80"]
)
def test_run_load_refuses_any_host_but_this_machine(url):
    with pytest.raises(ValueError, match="this machine only"):
        run_load(url, ["text"], concurrency=1, requests=1)


@pytest.mark.parametrize(
    ("texts", "options"),
    [
        (["a"], {"concurrency": 0, "requests": 1}),
        (["a"], {"concurrency": 1, "requests": 0}),
        ([], {"concurrency": 1, "requests": 1}),
        (["a"], {"concurrency": 1, "requests": 1, "invalid_every": -1}),
    ],
)
def test_run_load_refuses_invalid_arguments(texts, options):
    with pytest.raises(ValueError):
        run_load("http://127.0.0.1:9", texts, **options)


def test_load_result_summary():
    latencies = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 100.0])
    statuses = Counter({200: 3, 422: 1, 503: 1, 0: 1})
    result = LoadResult(2, 3.0, latencies, statuses, label="x")

    assert result.requests == 6 and result.throughput == 2.0
    assert result.errors == 2  # the 5xx and the transport failure; a 422 is the client's fault
    assert result.percentile(50) == np.percentile(latencies, 50) == 3.5
    summary = result.summary()
    assert summary["server"] == "x" and summary["errors"] == 2 and summary["requests"] == 6
    assert summary["p99 ms"] == round(float(np.percentile(latencies, 99)), 2)


# The command line ------------------------------------------------------------------------------


def test_help_exits_zero():
    done = subprocess.run(
        [sys.executable, "-m", "handbook.serving", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for flag in ("--model-dir", "--backend", "--no-batching", "--build-only"):
        assert flag in done.stdout


def test_an_empty_model_dir_exits_2_telling_how_to_build(tmp_path, capsys):
    assert main(["--model-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "--build-only" in error and str(tmp_path) in error


def test_a_tampered_model_dir_exits_2(model_dir, tmp_path, capsys):
    import shutil

    folder = shutil.copytree(model_dir, tmp_path / "copy")
    (folder / "model.onnx").write_bytes(b"not a model")
    assert main(["--model-dir", str(folder)]) == 2
    assert "model.onnx does not match its manifest" in capsys.readouterr().err
