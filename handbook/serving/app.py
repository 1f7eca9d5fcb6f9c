"""The FastAPI app: ``POST /predict``, ``GET /health``, ``GET /ready``, ``GET /metrics``.

``create_app(Settings(...))`` builds the app; the model is loaded (and its checksums verified)
when the app starts, not when it is created. What a request can get back:

- 200 with ``{"model_version", "backend", "predictions": [...]}``, each prediction
  ``{"input", "prediction", "probabilities"}``, one prediction per text, for
  ``{"text": "..."}`` or ``{"texts": ["...", ...]}``;
- 422 naming the field for a body that is not valid (wrong type, empty text, text too long,
  both or neither of ``text``/``texts``, an unknown field, more texts than the limit);
- 413 for a body over ``max_body_bytes``; 415 for a body that is not JSON; 404 for an unknown
  route; 405 for a wrong method;
- 503 from ``/ready`` (and ``/predict``) until the model is loaded, or if it failed to load.

Every response carries an ``x-request-id`` (the client's, if it sent a valid one) and every
request is logged as one JSON line on stderr with that id, the route, status and duration:
the format an ELK stack (Filebeat -> Elasticsearch) ingests without a parser.
"""

import asyncio
import contextlib
import json
import logging
import re
import sys
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from itertools import count
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from handbook.serving.artifact import default_model_dir, load_artifact
from handbook.serving.backends import BACKENDS, make_backend
from handbook.serving.batching import WINDOWS, MicroBatcher, ShuttingDown
from handbook.serving.metrics import ServerMetrics

LOGGER = logging.getLogger("handbook.serve")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # used with fullmatch
# A request id is this process's random prefix and a counter: 32 hex digits like a uuid4, unique
# without a system call per request (uuid4 reads /dev/urandom: a measurable share of the event
# loop's time per request under load, where every syscall may lose the core).
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = count()


def new_request_id() -> str:
    """A fresh request id: 32 hex digits, unique within this server process's life."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


#: Routes the app defines: the only values the ``route`` label takes besides "unmatched".
ROUTES = ("/predict", "/health", "/ready", "/metrics")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


@dataclass
class Settings:
    """Everything a deployment can tune. ``batching=False`` is the naive server: each request
    runs the model by itself, inside the request handler, as the article's snippet does.

    ``max_body_bytes`` defaults to the largest body the text limits allow (every character
    escaped as ``\\uXXXX``, as ``json.dumps`` writes non-ASCII text), so a body that obeys the
    schema never gets a 413.

    ``load_in_background=True`` (what ``python -m handbook.serving`` uses) opens the port before
    the model is loaded, so ``/health`` answers at once and ``/ready`` says 503 until the model
    is ready, as Kubernetes' probes expect; ``False`` loads it before the app takes requests.
    """

    model_dir: Path | str | None = None
    backend: str = "onnx"
    batching: bool = True
    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    max_texts_per_request: int = 32
    max_text_chars: int = 2000
    max_body_bytes: int | None = None
    threads: int | None = None
    log_requests: bool = True
    load_in_background: bool = False
    # make bench's tail ablation (issue 27) puts back what this server did before: ONNX
    # Runtime's spinning threads, and a batch window that opens when its oldest request arrived
    ort_spinning: bool = False
    batch_window: str = "worker"

    def __post_init__(self):
        self.model_dir = Path(self.model_dir or default_model_dir())
        if self.max_body_bytes is None:  # the largest valid body, every character as \uXXXX
            self.max_body_bytes = 6 * self.max_text_chars * self.max_texts_per_request + 4096
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        for name in ("max_batch_size", "max_texts_per_request", "max_text_chars", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_texts_per_request > self.max_batch_size:
            raise ValueError(
                f"max_texts_per_request ({self.max_texts_per_request}) must not exceed "
                f"max_batch_size ({self.max_batch_size}): a request is never split across batches"
            )
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be 0 or more, got {self.max_wait_ms}")
        if self.batch_window not in WINDOWS:
            raise ValueError(
                f"batch_window must be one of {', '.join(WINDOWS)}, got {self.batch_window!r}"
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1 (or None), got {self.threads}")


class Coverage(BaseModel):
    words: int = Field(description="words found in the text (runs of the letters a-z)")
    unknown_words: int = Field(description="of those, words the model never saw in training")
    truncated: bool = Field(description="true when words past the model's limit were ignored")


class Prediction(BaseModel):
    prediction: str = Field(description="the most probable label")
    probabilities: dict[str, float] = Field(description="every label's probability; sums to 1")
    input: Coverage = Field(description="how much of the text the model could read")


class PredictResponse(BaseModel):
    model_version: str
    backend: str
    predictions: list[Prediction]


def request_model(max_text_chars: int, max_texts: int) -> type[BaseModel]:
    """The ``/predict`` body: exactly one of ``text`` or ``texts``, with these limits."""
    Text = Annotated[str, StringConstraints(min_length=1, max_length=max_text_chars)]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"examples": [{"text": "The striker scored in the final match."}]},
        )
        text: Text | None = Field(None, description="one text to classify")
        texts: Annotated[list[Text], Field(min_length=1, max_length=max_texts)] | None = Field(
            None, description=f"up to {max_texts} texts, classified together"
        )

        @model_validator(mode="after")
        def exactly_one_input(self):
            if (self.text is None) == (self.texts is None):
                raise ValueError("give exactly one of 'text' (a string) or 'texts' (a list)")
            return self

        def all_texts(self) -> list[str]:
            return [self.text] if self.text is not None else list(self.texts)

    return PredictRequest


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, message, and every ``extra={...}`` field."""

    converter = time.gmtime

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_info:  # the traceback, in the same line, so that it is never lost
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_json_logging(level: str = "INFO", stream=None) -> None:
    """Send the server's log records to ``stream`` (stderr) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(level.upper())
    LOGGER.propagate = False


def _error(status: int, error: str, headers: dict | None = None, **details) -> JSONResponse:
    return JSONResponse({"error": error, **details}, status_code=status, headers=headers)


class _BodyTooLarge(StarletteHTTPException):
    """The body passed ``max_body_bytes``. An HTTP exception because FastAPI re-raises those
    while it reads a body, and turns any other error there into a 400 ("error parsing the body"),
    which is what a body without Content-Length (chunked) over the limit used to get."""

    def __init__(self) -> None:
        super().__init__(413, "request body too large")


class Observability:
    """ASGI middleware: request id, in-flight gauge, request counter, latency histogram, JSON
    log line, and the body-size limit (413) enforced on the bytes actually received."""

    def __init__(self, app, *, metrics: ServerMetrics, max_body_bytes: int, log_requests: bool):
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.log_requests = log_requests

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        status = {"code": 500, "started": False}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise _BodyTooLarge
            return message

        self.metrics.in_flight.inc()
        try:
            declared = headers.get(b"content-length", b"0")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                raise _BodyTooLarge
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            if not status["started"]:
                response = _error(413, "request body too large", limit_bytes=self.max_body_bytes)
                await response(scope, receive, send_with_id)
        except Exception:  # our bug, not the client's: a JSON 500 that carries the request id
            LOGGER.exception("unhandled error", extra={"request_id": request_id})
            if not status["started"]:
                response = _error(500, "internal error", request_id=request_id)
                await response(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            self._observe(scope, status["code"], time.perf_counter() - started, request_id, given)

    def _observe(self, scope, status: int, seconds: float, request_id: str, client_id: str) -> None:
        route = getattr(scope.get("route"), "path", None) or scope["path"]
        route = route if route in ROUTES else "unmatched"
        # label values must stay few: any method outside HTTP's usual ones counts as "other"
        method = scope["method"] if scope["method"] in _METHODS else "other"
        self.metrics.requests.labels(route, method, str(status)).inc()
        self.metrics.latency.labels(route).observe(seconds)
        if self.log_requests:
            extra = {
                "request_id": request_id,
                "method": method,
                "path": scope["path"],
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
            }
            if client_id and client_id != request_id:  # a client id we could not use, kept
                extra["client_request_id"] = client_id[:200]
            LOGGER.info("request", extra=extra)


def _field_errors(error: RequestValidationError) -> list[dict]:
    """FastAPI's validation errors as ``{"field", "message", "type"}``, the field dotted."""
    rows = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ()) if part != "body"]
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        if item.get("type") == "json_invalid":  # the location is a character position
            position = location[0] if location else "?"
            location = []
            reason = (item.get("ctx") or {}).get("error", "JSON decode error")
            message = f"the body is not valid JSON ({reason} at character {position})"
        rows.append(
            {"field": ".".join(location) or "body", "message": message, "type": item.get("type")}
        )
    return rows


def _is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # FastAPI parses application/json and application/*+json bodies, nothing else
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def article_app(model_predict) -> FastAPI:
    """The article's snippet, as printed (line breaks restored, curly quotes straightened).

    ``model_predict(text) -> label``. Because ``text: str`` is a plain parameter, FastAPI reads
    it from the *query string*: ``POST /predict?text=...``; a JSON body is ignored and the call
    fails with 422 "query.text missing". The chapter uses it to show why a body is right.
    """
    article = FastAPI()

    @article.post("/predict")
    async def predict(text: str):
        result = model_predict(text)
        return {"prediction": result}

    return article


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for ``settings``; the model loads at startup (lifespan): before the first request,
    or in the background with ``settings.load_in_background``."""
    settings = settings or Settings()
    metrics = ServerMetrics()
    state: dict = {"ready": False, "batcher": None, "error": None}

    def classify(texts: list[str]) -> list[np.ndarray]:
        return list(state["backend"].predict_proba(state["vocabulary"].encode(texts)))

    async def load_model() -> None:
        """Load and verify the artifact, build the backend (in a thread), start the batcher."""
        try:
            artifact = await asyncio.to_thread(load_artifact, settings.model_dir)
            backend = await asyncio.to_thread(
                make_backend,
                settings.backend,
                artifact,
                settings.threads,
                spinning=settings.ort_spinning,
            )
        except Exception as error:
            state["error"] = f"{type(error).__name__}: {error}"
            LOGGER.error("the model failed to load", extra={"error": state["error"]})
            raise
        state.update(
            artifact=artifact,
            vocabulary=artifact.vocabulary,
            labels=artifact.labels,
            version=artifact.version,
            backend=backend,
        )
        metrics.model_info.labels(artifact.version, settings.backend).set(1)
        if settings.batching:
            state["batcher"] = MicroBatcher(
                classify,
                max_batch_size=settings.max_batch_size,
                max_wait_ms=settings.max_wait_ms,
                on_batch=metrics.batch_size.observe,
                window=settings.batch_window,
            )
            await state["batcher"].start()
        state["ready"] = True
        LOGGER.info(
            "ready", extra={"model_version": artifact.version, "settings": asdict(settings)}
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loading = None
        if settings.load_in_background:  # the port opens now: /health 200, /ready 503 until loaded
            loading = asyncio.create_task(load_model())
            loading.add_done_callback(lambda task: task.cancelled() or task.exception())
        else:
            await load_model()
        try:
            yield
        finally:
            state["ready"] = False
            if loading is not None and not loading.done():
                loading.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await loading
            if state.get("batcher") is not None:
                await state["batcher"].stop()

    app = FastAPI(
        title="From Theory to Practice: topic classifier",
        version="1.0",
        description="Chapter 5 of the book: a validated, observable prediction endpoint.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.model = state
    PredictRequest = request_model(settings.max_text_chars, settings.max_texts_per_request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        if request.method == "POST" and not _is_json(request):
            return _error(
                415,
                "expected a JSON body with Content-Type: application/json, got "
                f"{request.headers.get('content-type') or 'no Content-Type'}",
            )
        return _error(422, "invalid request", detail=_field_errors(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        if isinstance(error, _BodyTooLarge):  # a body without Content-Length, over the limit
            return _error(413, str(error.detail), limit_bytes=settings.max_body_bytes)
        response = _error(error.status_code, str(error.detail), path=request.url.path)
        response.headers.update(error.headers or {})  # a 405 must say what is Allow-ed
        return response

    errors = {413: {}, 415: {}, 422: {}, 503: {}}

    @app.post("/predict", response_model=PredictResponse, responses=errors)
    async def predict(body: PredictRequest):  # type: ignore[valid-type]
        if not state["ready"]:
            return _error(503, "the model is not loaded yet")
        texts = body.all_texts()
        if state["batcher"] is not None:
            try:
                rows = await state["batcher"].submit(texts)
            except ShuttingDown:
                return _error(503, "the server is shutting down", headers={"retry-after": "1"})
        else:  # the naive server: the model runs right here, blocking the event loop
            rows = classify(texts)
            metrics.batch_size.observe(len(texts))
        labels = state["labels"]
        predictions = []
        for text, row in zip(texts, rows, strict=True):
            label = labels[int(np.argmax(row))]
            metrics.predictions.labels(label).inc()
            predictions.append(
                {
                    "prediction": label,
                    "probabilities": dict(zip(labels, map(float, row), strict=True)),
                    "input": state["vocabulary"].coverage(text),
                }
            )
        # already the PredictResponse's shape: a JSONResponse skips FastAPI's second validation
        # and re-encoding of every answer (the schema above still documents it)
        return JSONResponse(
            {
                "model_version": state["version"],
                "backend": settings.backend,
                "predictions": predictions,
            }
        )

    @app.get("/health")
    async def health():
        """Liveness: the process answers and its model did not fail to load (a failed load
        never recovers by waiting: Kubernetes restarts the pod when this fails)."""
        if state["error"]:
            return _error(503, "the model failed to load", detail=state["error"])
        return {"status": "ok"}

    @app.get("/ready", responses={503: {}})
    async def ready():
        """Readiness: the model is loaded. Kubernetes sends traffic only while this is 200."""
        if state["error"]:
            return _error(503, "the model failed to load", detail=state["error"])
        if not state["ready"]:
            return _error(503, "the model is not loaded yet")
        return {"status": "ready", "model_version": state["version"], "backend": settings.backend}

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics():
        """Prometheus text format: scraped by Prometheus, drawn by Grafana."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(
        Observability,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        log_requests=settings.log_requests,
    )
    return app
