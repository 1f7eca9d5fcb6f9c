"""Chapter 5: the FastAPI app, through Starlette's TestClient (the lifespan loads the model).

References: the backends called directly for the predictions, ``prometheus_client``'s own parser
for ``/metrics``, ``json`` for every log line, and schemathesis generating requests from the
app's OpenAPI schema for the fuzz.
"""

from __future__ import annotations

import collections
import json
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from handbook.serving import backends
from handbook.serving.app import Settings, create_app, request_model
from handbook.serving.artifact import ArtifactError

pytest_plugins = ["serving_fixtures"]

LIMITS = {"max_text_chars": 50, "max_texts_per_request": 4, "max_batch_size": 8}


def _client(model_dir, **settings) -> TestClient:
    options = {"log_requests": False, **LIMITS, **settings}
    return TestClient(create_app(Settings(model_dir=model_dir, **options)))


@pytest.fixture(scope="module")
def client(model_dir):
    with _client(model_dir, max_body_bytes=2000) as started:
        yield started


# What a bad request gets back ------------------------------------------------------------------

BAD_BODIES = [
    ("wrong type", {"text": 5}, "text", "valid string"),
    ("list instead of string", {"text": ["a"]}, "text", "valid string"),
    ("list element wrong type", {"texts": ["fine", 5]}, "texts.1", "valid string"),
    ("string instead of list", {"texts": "abc"}, "texts", "valid list"),
    ("empty text", {"text": ""}, "text", "at least 1 character"),
    ("empty text in a list", {"texts": ["ok", ""]}, "texts.1", "at least 1 character"),
    ("too long text", {"text": "a" * 51}, "text", "at most 50 characters"),
    ("both", {"text": "a", "texts": ["b"]}, "body", "exactly one of"),
    ("neither", {}, "body", "exactly one of"),
    ("explicit null", {"text": None}, "body", "exactly one of"),
    ("extra field", {"text": "a", "lang": "en"}, "lang", "Extra inputs"),
    ("too many texts", {"texts": ["a"] * 5}, "texts", "at most 4 items"),
    ("no texts", {"texts": []}, "texts", "at least 1 item"),
    ("not an object", ["a", "b"], "body", "dictionary"),
]


@pytest.mark.parametrize(("body", "field", "message"), [row[1:] for row in BAD_BODIES],
                         ids=[row[0] for row in BAD_BODIES])  # fmt: skip
def test_an_invalid_body_is_a_422_naming_the_field(client, body, field, message):
    response = client.post("/predict", json=body)

    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["error"] == "invalid request"
    assert [row["field"] for row in payload["detail"]] == [field]
    assert message in payload["detail"][0]["message"]
    assert set(payload["detail"][0]) == {"field", "message", "type"}


@pytest.mark.parametrize("raw", [b'{"text": ', b"{'text': 'single quotes'}", b"", b"nan"])
def test_invalid_json_is_a_422(client, raw):
    response = client.post("/predict", content=raw, headers={"content-type": "application/json"})

    assert response.status_code == 422
    (row,) = response.json()["detail"]
    assert row["field"] == "body"
    if raw:
        assert row["type"] == "json_invalid" and "not valid JSON" in row["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_a_415(client, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/predict", content=b'{"text": "rain"}', headers=headers)

    assert response.status_code == 415
    assert (content_type or "no Content-Type") in response.json()["error"]


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/vnd.api+json"]
)
def test_json_media_types_are_accepted(client, content_type):
    response = client.post(
        "/predict", content=b'{"text": "rain"}', headers={"content-type": content_type}
    )
    assert response.status_code == 200


def test_a_body_over_the_limit_is_a_413(client):
    big = json.dumps({"text": "word " * 500}).encode()  # 2515 bytes > 2000
    response = client.post("/predict", content=big, headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert response.json() == {"error": "request body too large", "limit_bytes": 2000}
    assert "x-request-id" in response.headers


def test_a_chunked_body_over_the_limit_is_a_413_too(client):
    """No Content-Length to check up front: the limit holds on the bytes actually received."""
    big = json.dumps({"text": "word " * 500}).encode()

    def chunks():
        for start in range(0, len(big), 256):
            yield big[start : start + 256]

    response = client.post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json() == {"error": "request body too large", "limit_bytes": 2000}


def test_a_chunked_body_under_the_limit_is_served(client):
    def chunks():
        yield b'{"text": "the match '
        yield b'ended in a draw"}'

    response = client.post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1


def test_unknown_route_and_wrong_method(client):
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.json()["path"] == "/nope"

    wrong = client.get("/predict")
    assert wrong.status_code == 405 and wrong.json()["path"] == "/predict"
    assert wrong.headers["allow"] == "POST"
    assert client.post("/health").headers["allow"] == "GET"


# What a good request gets back -----------------------------------------------------------------


def test_one_text_and_a_list_of_texts(client, artifact):
    texts = ["The striker scored twice", "Heavy rain tomorrow", "Shares fell", "New chip"]
    single = client.post("/predict", json={"text": texts[0]})
    several = client.post("/predict", json={"texts": texts})

    assert single.status_code == several.status_code == 200
    reference = backends.make_backend("onnx", artifact).predict_proba(
        artifact.vocabulary.encode(texts)
    )
    for body, expected in ((single.json(), reference[:1]), (several.json(), reference)):
        assert body["model_version"] == artifact.version and body["backend"] == "onnx"
        assert len(body["predictions"]) == len(expected)
        for prediction, row in zip(body["predictions"], expected, strict=True):
            assert list(prediction["probabilities"]) == artifact.labels  # the manifest's order
            probabilities = np.array(list(prediction["probabilities"].values()))
            assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
            np.testing.assert_allclose(probabilities, row, atol=1e-6)
            assert prediction["prediction"] == artifact.labels[int(row.argmax())]


def test_health_and_ready(client, artifact):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model_version": artifact.version, "backend": "onnx"}


def test_not_ready_before_the_model_is_loaded(model_dir):
    app_client = _client(model_dir)  # no `with`: the lifespan has not run
    assert app_client.get("/health").status_code == 200
    assert app_client.get("/ready").status_code == 503
    response = app_client.post("/predict", json={"text": "rain"})
    assert response.status_code == 503 and "not loaded" in response.json()["error"]


def test_startup_fails_loudly_without_a_model(tmp_path):
    with pytest.raises(ArtifactError, match="manifest.json is missing"), _client(tmp_path):
        pass


@pytest.mark.parametrize(
    ("backend", "batching"), [("onnx", False), ("eager", True), ("int8", True)]
)
def test_batching_and_backends_do_not_change_the_predictions(client, model_dir, backend, batching):
    texts = ["The striker scored", "Cold wind and snow", "Profits rose", "A faster processor"]
    expected = client.post("/predict", json={"texts": texts}).json()["predictions"]
    with _client(model_dir, backend=backend, batching=batching) as other:
        body = other.post("/predict", json={"texts": texts}).json()

    assert body["backend"] == backend
    tolerance = 0.05 if backend == "int8" else 1e-4
    for got, want in zip(body["predictions"], expected, strict=True):
        np.testing.assert_allclose(
            list(got["probabilities"].values()),
            list(want["probabilities"].values()),
            atol=tolerance,
        )
        if backend != "int8":
            assert got["prediction"] == want["prediction"]


# Request ids and logs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("abc-123_x.y", True),
        ("a" * 64, True),
        (None, False),
        ("", False),
        ("a b", False),
        ("a" * 65, False),
        ("a" * 200, False),
        ("id;drop", False),
    ],
)
def test_request_id_is_echoed_when_valid_and_generated_otherwise(client, given, kept):
    headers = {} if given is None else {"x-request-id": given}
    response = client.post("/predict", json={"text": "rain"}, headers=headers)

    echoed = response.headers["x-request-id"]
    if kept:
        assert echoed == given
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", echoed) and echoed != given


def test_generated_request_ids_are_unique(client):
    ids = {client.get("/health").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_one_json_log_line_per_request(model_dir, json_log, artifact):
    sent = [("POST", "/predict", {"text": "rain"}, "given-1"), ("GET", "/nope", None, None)]
    with _client(model_dir, log_requests=True) as app_client:
        ids = [
            app_client.request(
                method, path, json=body, headers={"x-request-id": rid} if rid else {}
            ).headers["x-request-id"]
            for method, path, body, rid in sent
        ]
        app_client.post("/predict", json={"text": 5})

    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    ready = [line for line in lines if line["message"] == "ready"]
    assert len(ready) == 1 and ready[0]["model_version"] == artifact.version
    requests = [line for line in lines if line["message"] == "request"]
    assert [line["request_id"] for line in requests[:2]] == ids == ["given-1", ids[1]]
    assert [(r["method"], r["path"], r["route"], r["status"]) for r in requests] == [
        ("POST", "/predict", "/predict", 200),
        ("GET", "/nope", "unmatched", 404),
        ("POST", "/predict", "/predict", 422),
    ]
    for line in requests:
        assert line["level"] == "info" and line["logger"] == "handbook.serve"
        assert line["duration_ms"] >= 0 and line["time"].endswith("Z")


def test_no_request_lines_when_logging_is_off(model_dir, json_log):
    with _client(model_dir, log_requests=False) as app_client:
        app_client.post("/predict", json={"text": "rain"})
    messages = [json.loads(line)["message"] for line in json_log.getvalue().splitlines()]
    assert messages == ["ready"]


# /metrics --------------------------------------------------------------------------------------


def test_metrics_count_exactly_the_requests_made(model_dir, artifact):
    with _client(model_dir, max_body_bytes=500) as app_client:
        for _ in range(3):
            app_client.post("/predict", json={"text": "rain and wind"})
        app_client.post("/predict", json={"texts": ["one", "two", "three"]})
        app_client.post("/predict", json={"text": ""})
        app_client.post("/predict", json={"text": "a", "x": 1})
        app_client.post("/predict", content=b"rain", headers={"content-type": "text/plain"})
        app_client.post("/predict", json={"text": "x" * 600})
        app_client.get("/predict")
        app_client.get("/nope")
        app_client.get("/health")
        app_client.get("/ready")
        scrape = app_client.get("/metrics")

    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(scrape.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def series(name):
        return {labels: value for (sample, labels), value in samples.items() if sample == name}

    requests = {tuple(v for _, v in labels): value for labels, value in
                series("handbook_requests_total").items()}  # fmt: skip
    assert requests == {
        ("POST", "/predict", "200"): 4,
        ("POST", "/predict", "422"): 2,
        ("POST", "/predict", "415"): 1,
        ("POST", "/predict", "413"): 1,
        ("GET", "/predict", "405"): 1,
        ("GET", "unmatched", "404"): 1,
        ("GET", "/health", "200"): 1,
        ("GET", "/ready", "200"): 1,
    }
    latency_counts = {dict(labels)["route"]: value for labels, value in
                      series("handbook_request_duration_seconds_count").items()}  # fmt: skip
    assert latency_counts == {"/predict": 9, "unmatched": 1, "/health": 1, "/ready": 1}
    assert samples[("handbook_batch_size_count", ())] == 4  # one model call per good request
    assert samples[("handbook_batch_size_sum", ())] == 6  # texts classified
    assert sum(series("handbook_predictions_total").values()) == 6
    assert {dict(labels)["label"] for labels in series("handbook_predictions_total")} <= set(
        artifact.labels
    )
    assert series("handbook_model_info") == {
        (("backend", "onnx"), ("version", artifact.version)): 1.0
    }
    assert samples[("handbook_requests_in_flight", ())] == 1  # the scrape itself


# Settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_texts_per_request": 65, "max_batch_size": 64}, "must not exceed max_batch_size"),
        ({"backend": "tensorrt"}, "eager, onnx, int8"),
        ({"max_wait_ms": -1}, "max_wait_ms"),
        ({"max_batch_size": 0}, "max_batch_size must be at least 1"),
        ({"max_text_chars": 0}, "max_text_chars"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"threads": 0}, "threads"),
    ],
)
def test_invalid_settings(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        Settings(model_dir=tmp_path, **options)


def test_request_model_holds_the_limits():
    model = request_model(max_text_chars=3, max_texts=2)
    assert model(text="abc").all_texts() == ["abc"]
    assert model(texts=["a", "b"]).all_texts() == ["a", "b"]
    for bad in ({"text": "abcd"}, {"texts": ["a", "b", "c"]}, {"text": "a", "texts": ["b"]}):
        with pytest.raises(ValueError):
            model(**bad)


# Fuzz: requests generated from the OpenAPI schema ----------------------------------------------


def test_fuzz_from_the_openapi_schema_never_gets_a_server_error(model_dir):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    app = create_app(Settings(model_dir=model_dir, log_requests=False, **LIMITS))
    # Loading the schema starts the app's lifespan in schemathesis's own event loop (the model
    # loads there, as the batcher must live on the loop that serves); its pytest plugin stops
    # it after the test. No 503 below shows the model was loaded for every generated request.
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = {(op.method.upper(), op.path): op for op in
                  (result.ok() for result in schema.get_all_operations())}  # fmt: skip
    assert set(operations) == {
        ("POST", "/predict"), ("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"),
    }  # fmt: skip
    predict = operations["POST", "/predict"]
    # The schema cannot say "exactly one of text or texts", so most schema-valid bodies are
    # 422s; bodies that must be accepted (any unicode, any length up to the limit) are added.
    text = st.text(min_size=1, max_size=LIMITS["max_text_chars"])
    valid = st.one_of(
        st.fixed_dictionaries({"text": text}),
        st.fixed_dictionaries(
            {"texts": st.lists(text, min_size=1, max_size=LIMITS["max_texts_per_request"])}
        ),
    )
    cases = st.one_of(
        predict.as_strategy(GenerationMode.POSITIVE),
        predict.as_strategy(GenerationMode.NEGATIVE),
        valid.map(lambda body: predict.Case(body=body, media_type="application/json")),
    )
    seen = collections.Counter()

    @settings(
        max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=cases)
    def fuzz(case):
        response = case.call()
        seen[response.status_code] += 1
        assert response.status_code < 500, (case.body, response.text)
        if response.status_code == 200:
            texts = case.body.get("texts") or [case.body["text"]]
            predictions = response.json()["predictions"]
            assert len(predictions) == len(texts)
            for prediction in predictions:
                assert sum(prediction["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        else:
            assert "error" in response.json()

    fuzz()
    assert seen[200] >= 20, seen
    assert sum(n for status, n in seen.items() if 400 <= status < 500) >= 20, seen
    assert 503 not in seen
    for key in (("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")):  # no parameters
        assert operations[key].Case().call().status_code == 200, key
