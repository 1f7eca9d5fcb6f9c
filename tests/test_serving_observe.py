"""Chapter 5: what the chapter reads from a server: scrapes, the Grafana panels' rates, the
article's endpoint, background model loading, and the server comparison.

References: ``prometheus_client`` for every scrape (``generate_latest`` of real metrics) and the
requests actually sent. Nothing here asserts a timing.
"""

from __future__ import annotations

import json
import math
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from handbook.serving import loadtest, metrics
from handbook.serving.app import Settings, article_app, create_app
from handbook.serving.process import ServerProcess

pytest_plugins = ["serving_fixtures"]


def _scrape_of(server_metrics: metrics.ServerMetrics) -> dict:
    return metrics.parse_metrics(generate_latest(server_metrics.registry).decode())


def test_dashboard_series_computes_rates_between_scrapes():
    observed = metrics.ServerMetrics()
    samples = [(0.0, _scrape_of(observed))]
    for _ in range(8):  # first second: 8 answered, 2 refused, latencies 10 ms, 2 batches of 4
        observed.requests.labels("/predict", "POST", "200").inc()
        observed.latency.labels("/predict").observe(0.010)
    for _ in range(2):
        observed.requests.labels("/predict", "POST", "422").inc()
    observed.batch_size.observe(4)
    observed.batch_size.observe(4)
    samples.append((1.0, _scrape_of(observed)))
    observed.requests.labels("/metrics", "GET", "200").inc()  # another route: not counted
    samples.append((3.0, _scrape_of(observed)))

    series = metrics.dashboard_series(samples)
    assert list(series["time"]) == [1.0, 3.0]
    assert list(series["qps"]) == [10.0, 0.0]
    assert series["error_rate"][0] == pytest.approx(0.2) and math.isnan(series["error_rate"][1])
    assert 7.5 < series["p50_ms"][0] <= 10.0 and series["p99_ms"][0] <= 10.0
    assert series["batch_size"][0] == 4.0 and math.isnan(series["batch_size"][1])
    assert all(len(values) == 0 for values in metrics.dashboard_series(samples[:1]).values())


def test_latency_window_counts_a_route_first_seen_after_the_first_scrape():
    observed = metrics.ServerMetrics()
    before = _scrape_of(observed)
    observed.latency.labels("/predict").observe(0.003)
    bounds, counts = metrics.latency_window(before, _scrape_of(observed), "/predict")
    assert bounds[-1] == math.inf and counts[-1] == 1.0 and counts[0] == 0.0


def test_article_app_reads_text_from_the_query_string():
    client = TestClient(article_app(lambda text: text.upper()))
    assert client.post("/predict", params={"text": "goal"}).json() == {"prediction": "GOAL"}
    as_body = client.post("/predict", json={"text": "goal"})
    assert as_body.status_code == 422 and as_body.json()["detail"][0]["loc"] == ["query", "text"]


def test_background_loading_answers_health_before_ready(model_dir):
    app = create_app(Settings(model_dir=model_dir, load_in_background=True, log_requests=False))
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        deadline = time.monotonic() + 30
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/ready").status_code == 200
        assert client.post("/predict", json={"text": "rain"}).status_code == 200


def test_a_model_that_fails_to_load_in_the_background_keeps_ready_at_503(tmp_path):
    app = create_app(Settings(model_dir=tmp_path, load_in_background=True, log_requests=False))
    with TestClient(app) as client:
        deadline = time.monotonic() + 10
        while "detail" not in client.get("/ready").json() and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = client.get("/ready")
        assert ready.status_code == 503 and "manifest.json is missing" in ready.json()["detail"]
        assert client.post("/predict", json={"text": "rain"}).status_code == 503
        # a model that failed to load never recovers by waiting: liveness fails, so a
        # Kubernetes pod is restarted instead of staying alive and never ready
        health = client.get("/health")
        assert health.status_code == 503 and "manifest.json" in health.json()["detail"]


def test_monitor_and_compare_servers_on_real_servers(model_dir, built, tmp_path):
    with ServerProcess(model_dir, backend="int8", log_path=tmp_path / "server.log") as server:
        with metrics.MetricsMonitor(server.url, interval_s=0.2) as monitor:
            sent = loadtest.run_load(server.url, built.test_texts, concurrency=4, requests=120)
        assert httpx.get(server.url + "/health").status_code == 200
    assert len(monitor.samples) >= 2 and monitor.samples[0][0] < monitor.samples[-1][0]
    series = metrics.dashboard_series(monitor.samples)
    seconds = np.diff([t for t, _ in monitor.samples])
    answered = np.nansum(series["qps"] * seconds)
    assert answered == pytest.approx(sent.requests + sent.concurrency)  # warm-ups included

    variants = {"naive": loadtest.SERVER_VARIANTS["naive eager per-request"]}
    results = loadtest.compare_servers(
        model_dir, built.test_texts, clients=[1, 3], requests=30, variants=variants
    )
    assert [(r.label, r.concurrency, r.requests, r.errors) for r in results] == [
        ("naive", 1, 30, 0),
        ("naive", 3, 30, 0),
    ]
    with pytest.raises(ValueError, match="interval_s must be positive"):
        metrics.MetricsMonitor(server.url, interval_s=0)


def test_every_prediction_says_how_much_of_its_text_the_model_read(model_dir, artifact):
    known = artifact.vocabulary.tokens[2]
    long_text = " ".join([known] * (artifact.vocabulary.max_tokens + 5))
    texts = [known, "zzzq " + known, "数据 123", long_text]
    with TestClient(create_app(Settings(model_dir=model_dir, log_requests=False))) as client:
        answer = client.post("/predict", json={"texts": texts}).json()
    coverage = [prediction["input"] for prediction in answer["predictions"]]
    assert coverage == [
        {"words": 1, "unknown_words": 0, "truncated": False},
        {"words": 2, "unknown_words": 1, "truncated": False},
        {"words": 0, "unknown_words": 0, "truncated": False},  # no word the tokenizer can read
        {"words": artifact.vocabulary.max_tokens + 5, "unknown_words": 0, "truncated": True},
    ]


def test_a_server_bug_is_a_json_500_carrying_the_request_id(model_dir, json_log):
    app = create_app(Settings(model_dir=model_dir))

    class Broken:
        def predict_proba(self, tokens):
            raise RuntimeError("backend exploded")

    with TestClient(app, raise_server_exceptions=False) as client:
        app.state.model["backend"] = Broken()
        response = client.post("/predict", json={"text": "rain"}, headers={"x-request-id": "r-1"})
        scrape = metrics.parse_metrics(client.get("/metrics").text)
    assert response.status_code == 500 and response.headers["x-request-id"] == "r-1"
    assert response.json() == {"error": "internal error", "request_id": "r-1"}
    assert metrics.series_total(scrape, metrics.REQUESTS, route="/predict", status="500") == 1
    logged = json_log.getvalue()
    assert "backend exploded" in logged and '"request_id": "r-1"' in logged


def test_odd_methods_and_unusable_request_ids_stay_bounded_but_logged(model_dir, json_log):
    app = create_app(Settings(model_dir=model_dir))
    with TestClient(app) as client:
        odd = client.request("PROPFIND", "/predict", headers={"x-request-id": "a b=c"})
        scrape = metrics.parse_metrics(client.get("/metrics").text)
    assert odd.status_code == 405 and odd.headers["x-request-id"] != "a b=c"
    assert metrics.series_total(scrape, metrics.REQUESTS, method="other", status="405") == 1
    assert metrics.series_total(scrape, metrics.REQUESTS, method="PROPFIND") == 0
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    request = next(line for line in lines if line.get("status") == 405)
    assert request["client_request_id"] == "a b=c" and request["method"] == "other"


def test_the_default_body_limit_admits_the_largest_valid_body(model_dir):
    settings = Settings(model_dir=model_dir, log_requests=False)
    largest = json.dumps(
        {"texts": ["é" * settings.max_text_chars] * settings.max_texts_per_request}
    ).encode()  # json.dumps escapes every é as \\u00e9: 6 bytes a character
    assert len(largest) <= settings.max_body_bytes
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/predict", content=largest, headers={"content-type": "application/json"}
        )
    assert response.status_code == 200
