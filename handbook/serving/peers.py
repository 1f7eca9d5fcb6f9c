"""Chapter 5's server against what a reader would pick instead: LitServe and BentoML.

All three serve the same model folder through the same backend (ONNX Runtime on
``model.int8.onnx``, :class:`handbook.serving.backends.OnnxBackend`, the same intra-op threads)
with the same largest batch (``max_batch_size`` texts per model call); handbook.serving and
LitServe also wait at most ``max_wait_ms`` for a batch to fill, while BentoML's adaptive
dispatcher chooses its own window. Each is configured the way its documentation recommends for
batching on a CPU:

- **handbook.serving**: ``python -m handbook.serving --backend int8`` (uvicorn, one process, the
  :class:`handbook.serving.batching.MicroBatcher`);
- **LitServe** (:mod:`handbook.serving.peer_litserve`): ``LitAPI(max_batch_size=...,
  batch_timeout=...)`` with ``batch``/``unbatch``, ``LitServer(accelerator="cpu", devices=1,
  workers_per_device=1)``: an API-server process hands requests to one inference worker
  process through a queue;
- **BentoML** (:mod:`handbook.serving.peer_bentoml`): ``@bentoml.api(batchable=True,
  max_batch_size=..., max_latency_ms=...)`` on a ``@bentoml.service(workers=1)``: adaptive
  batching, whose dispatcher sizes the batch window from the latencies it observes.

Every server is a fresh child process on 127.0.0.1 (:class:`PeerProcess`), and one client drives
all three: ``POST /predict`` with ``{"texts": [text]}`` (the body BentoML's batchable API takes;
the other two read it the same way). LitServe and BentoML are optional: ``pip install
'.[peers]'`` (``make bench`` installs them when they are missing).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from handbook.serving.process import LOOPBACK, ServerProcess

#: The peers and the Python module each needs.
PEER_PACKAGES = {"LitServe": "litserve", "BentoML": "bentoml"}
#: The batching limits (handbook.serving's defaults): all three get the batch size; BentoML
#: sizes its own window, so only handbook.serving and LitServe get the wait.
MAX_BATCH_SIZE = 64
MAX_WAIT_MS = 5.0
#: BentoML's ``max_latency_ms``: its dispatcher answers 503 to a request it predicts would wait
#: longer. Set well above the 100 ms target so that it queues rather than sheds load, as the
#: other two do; the load test measures the latency.
BENTOML_MAX_LATENCY_MS = 10_000
_ENV = {
    "model_dir": "HANDBOOK_PEER_MODEL_DIR",
    "threads": "HANDBOOK_PEER_THREADS",
    "max_batch_size": "HANDBOOK_PEER_MAX_BATCH_SIZE",
    "max_wait_ms": "HANDBOOK_PEER_MAX_WAIT_MS",
}


def available_peers() -> list[str]:
    """The peers whose package is installed here."""
    return [name for name, module in PEER_PACKAGES.items() if importlib.util.find_spec(module)]


@dataclass
class PeerSettings:
    """What the peer services read from their environment (set by :class:`PeerProcess`)."""

    model_dir: Path
    threads: int | None = None
    max_batch_size: int = MAX_BATCH_SIZE
    max_wait_ms: float = MAX_WAIT_MS

    def to_environment(self) -> dict[str, str]:
        values = {
            "model_dir": str(self.model_dir),
            "threads": "" if self.threads is None else str(self.threads),
            "max_batch_size": str(self.max_batch_size),
            "max_wait_ms": str(self.max_wait_ms),
        }
        return {_ENV[key]: value for key, value in values.items()}

    @classmethod
    def from_environment(cls) -> PeerSettings:
        if _ENV["model_dir"] not in os.environ:
            raise RuntimeError(
                f"{_ENV['model_dir']} is not set: start the peers through PeerProcess"
            )
        threads = os.environ.get(_ENV["threads"], "")
        return cls(
            Path(os.environ[_ENV["model_dir"]]),
            int(threads) if threads else None,
            int(os.environ.get(_ENV["max_batch_size"], MAX_BATCH_SIZE)),
            float(os.environ.get(_ENV["max_wait_ms"], MAX_WAIT_MS)),
        )


@dataclass
class Classifier:
    """The model as every peer runs it: the verified artifact, its vocabulary and the ORT INT8
    backend. ``classify(texts)`` -> one ``{"prediction", "probabilities"}`` per text, the same
    answer handbook.serving gives."""

    settings: PeerSettings
    labels: list[str] = field(init=False)

    def __post_init__(self):
        from handbook.serving.artifact import load_artifact
        from handbook.serving.backends import make_backend

        artifact = load_artifact(self.settings.model_dir)
        self.labels = artifact.labels
        self.vocabulary = artifact.vocabulary
        self.backend = make_backend("int8", artifact, self.settings.threads)

    def classify(self, texts: Sequence[str]) -> list[dict]:
        probabilities = self.backend.predict_proba(self.vocabulary.encode(list(texts)))
        return [
            {
                "prediction": self.labels[int(row.argmax())],
                "probabilities": dict(zip(self.labels, map(float, row), strict=True)),
            }
            for row in probabilities
        ]


class PeerProcess(ServerProcess):
    """One peer (``"LitServe"`` or ``"BentoML"``) as a child process on 127.0.0.1; used like
    :class:`ServerProcess` (``with PeerProcess("LitServe", model_dir) as server: ...``)."""

    process_group = True  # both fork workers: stop the whole session

    def __init__(self, peer: str, model_dir, *, threads: int | None = None, **kwargs):
        if peer not in PEER_PACKAGES:
            raise ValueError(f"unknown peer {peer!r}: expected one of {', '.join(PEER_PACKAGES)}")
        if importlib.util.find_spec(PEER_PACKAGES[peer]) is None:
            raise RuntimeError(
                f"{peer} is not installed: pip install '.[peers]' (or `make bench`, which does)"
            )
        super().__init__(model_dir, backend="int8", **kwargs)
        self.peer = peer
        self.settings = PeerSettings(Path(model_dir), threads)
        self.ready_path = "/health" if peer == "LitServe" else "/readyz"

    def command(self) -> list[str]:
        if self.peer == "LitServe":
            return [
                sys.executable,
                "-m",
                "handbook.serving.peer_litserve",
                "--port",
                str(self.port),
            ]
        return [
            sys.executable, "-m", "bentoml", "serve", "handbook.serving.peer_bentoml:TopicService",
            "--host", LOOPBACK, "--port", str(self.port),
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        return {
            **super().environment(),
            **self.settings.to_environment(),
            "BENTOML_DO_NOT_TRACK": "True",  # no usage report leaves the machine
            "PYTHONPATH": os.pathsep.join(
                filter(None, [_repository_root(), os.environ.get("PYTHONPATH")])
            ),
        }


def _repository_root() -> str:
    """The folder ``handbook`` is imported from, so the child imports the same package."""
    return str(Path(__file__).resolve().parents[2])


#: The server names of a comparison, in the order they run.
OURS = "handbook.serving"
#: The latency target: the highest rate a server answers with p99 at most this is what it
#: "sustains".
P99_TARGET_MS = 100.0
#: The open-loop search's first bracket, as fractions of the server's own closed-loop
#: throughput at 64 clients: a server cannot sustain, with a p99 target, more than it answers
#: when 64 clients keep it busy, so the search starts below that and bisects up to it.
SEARCH_BRACKET = (0.25, 1.0)
#: No search offers more than this multiple of handbook.serving's closed-loop throughput (a
#: server that meets the target at its bracket's top is tried higher, up to this); the
#: generator is calibrated at twice it.
SEARCH_CAP = 1.5
#: A request of a search step not answered within this (ten times the target) is an error: the
#: step has failed anyway, and an overloaded server's step ends instead of draining its queue.
STEP_TIMEOUT_S = 10 * P99_TARGET_MS / 1000


@dataclass
class PeerComparison:
    """What :func:`compare_peers` measured: one closed-loop result per server; the generator's
    calibration; and, only if the generator passed it, each server's sustained open-loop rate
    (:class:`handbook.serving.loadtest.SustainedRate`, every bisection step included)."""

    closed: dict[str, object]
    open: dict[str, object]
    threads: int
    calibration: object = None

    def sustained(self) -> dict[str, float | None]:
        """Per server, the median sustained rate over the rounds; ``None`` for every server when
        the generator failed its calibration (its limit, not the servers', would show)."""
        return {name: (self.open[name].rate if name in self.open else None) for name in self.closed}

    def table(self) -> list[dict]:
        """One row per server: closed-loop throughput and latency, sustained open-loop rate
        (median and spread over rounds; "not measured" when the calibration failed)."""
        rows = []
        for name, closed in self.closed.items():
            search = self.open.get(name)
            rows.append(
                {
                    "server": name,
                    "closed req/s": round(closed.throughput, 1),
                    "closed p50 ms": round(closed.percentile(50), 1),
                    "closed p99 ms": round(closed.percentile(99), 1),
                    "errors": closed.errors,
                    f"sustained req/s (p99 <= {P99_TARGET_MS:.0f} ms)": (
                        search.describe() if search is not None else "not measured"
                    ),
                }
            )
        return rows

    def open_table(self) -> list[dict]:
        """Every open-loop step of the searches: server, rate, answered req/s, p50 and p99 from
        the scheduled time, errors, and whether the step stopped early (its p99 could no longer
        meet the target; then its p99 is a lower bound)."""
        return [
            {
                "server": name,
                "rate req/s": round(result.rate, 1),
                "answered req/s": round(result.throughput, 1),
                "p50 ms": round(result.percentile(50), 1),
                "p99 ms": round(result.percentile(99), 1),
                "errors": result.errors,
                "stopped early": result.stopped_early,
            }
            for name, search in self.open.items()
            for result in search.steps
        ]


def drain(url: str, texts: Sequence[str]) -> None:
    """Wait until the server has answered what a step left it: a step that stopped early, or
    whose requests timed out, closed its connections, but the server still computes what it
    had queued. One request sent alone queues behind all of it, so its answer means the next
    step starts on an idle server (what a step that failed leaves behind would otherwise count
    against the next one)."""
    from handbook.serving import loadtest

    loadtest.run_load(url, texts, concurrency=1, requests=1, body="texts", timeout_s=60.0)


def search_bracket(closed_throughput: float, cap: float) -> tuple[float, float]:
    """The first bracket of a server's search: :data:`SEARCH_BRACKET` times its closed-loop
    throughput, never above ``cap`` (requests/s)."""
    if closed_throughput <= 0 or cap <= 0:
        raise ValueError(f"expected positive rates, got {closed_throughput} and {cap}")
    low, high = (min(fraction * closed_throughput, cap) for fraction in SEARCH_BRACKET)
    return (high / 4 if low >= high else low), high


def _server(name: str, model_dir, threads: int, log_path) -> ServerProcess:
    if name == OURS:
        return ServerProcess(
            model_dir,
            backend="int8",
            options=["--no-request-log", "--threads", str(threads)],
            log_path=log_path,
            startup_timeout=180,
        )
    return PeerProcess(name, model_dir, threads=threads, log_path=log_path, startup_timeout=180)


def compare_peers(
    model_dir,
    texts: Sequence[str],
    *,
    peers: Sequence[str] | None = None,
    threads: int | None = None,
    clients: int = 64,
    requests: int = 2000,
    seconds: float = 2.0,
    rounds: int = 3,
    tolerance: float = 0.05,
    calibration_seconds: float = 2.0,
    log_dir=None,
) -> PeerComparison:
    """handbook.serving, then each installed peer (or ``peers``), each started fresh, same client.

    Per server: an untimed warm-up, a closed-loop run (``clients`` clients, ``requests``
    requests). After handbook.serving's closed loop, the generator is calibrated
    (:func:`handbook.serving.loadtest.calibrate_generator`) at twice the most any search may
    offer (:data:`SEARCH_CAP` times that closed-loop throughput). If it passes, each server's
    sustained rate is searched by bisection (``rounds`` rounds, ``seconds`` per step, to
    ``tolerance``), starting from :data:`SEARCH_BRACKET` times the server's own closed-loop
    throughput; a step stops as soon as its p99 cannot meet the target. If the calibration
    fails, no server gets a sustained rate. ``threads``: ONNX Runtime intra-op threads of every
    server (default: all cores).
    """
    from handbook.serving import loadtest

    threads = threads or max(os.cpu_count() or 1, 1)
    names = [OURS, *(available_peers() if peers is None else peers)]
    closed, searched, calibration, cap = {}, {}, None, None
    for index, name in enumerate(names):
        log_path = None if log_dir is None else f"{log_dir}/peer-{index}.log"
        with _server(name, model_dir, threads, log_path) as server:
            loadtest.run_load(server.url, texts, concurrency=8, requests=100, body="texts")
            closed[name] = loadtest.run_load(
                server.url, texts, concurrency=clients, requests=requests, label=name, body="texts"
            )
            if calibration is None:
                cap = SEARCH_CAP * closed[OURS].throughput
                calibration = loadtest.calibrate_generator(
                    loadtest.CALIBRATION_HEADROOM * cap,
                    seconds=calibration_seconds,
                    connections=clients,
                )
            if not calibration.passed:
                continue
            low, high = search_bracket(closed[name].throughput, cap)

            def measure(rate: float, url: str = server.url, label: str = name):
                step = loadtest.run_open_loop(
                    url, texts, rate=rate, seconds=seconds, connections=clients, label=label,
                    body="texts", timeout_s=STEP_TIMEOUT_S, stop_above_ms=P99_TARGET_MS,
                )  # fmt: skip
                drain(url, texts)
                return step

            searched[name] = loadtest.sustained_rounds(
                measure, low, high, rounds=rounds, p99_ms=P99_TARGET_MS, tolerance=tolerance,
                cap=cap,
            )  # fmt: skip
    return PeerComparison(closed, searched, threads, calibration)
