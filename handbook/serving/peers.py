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
#: Open-loop arrival rates, as fractions of handbook.serving's closed-loop throughput (from a tenth:
#: a peer that cannot hold a quarter of it still gets a sustained rate above zero).
RATE_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
#: The latency target: the highest rate a server answers with p99 at most this is what it
#: "sustains".
P99_TARGET_MS = 100.0


@dataclass
class PeerComparison:
    """What :func:`compare_peers` measured: one closed-loop result per server, and its
    open-loop results, one per arrival rate (ascending, stopping after the first rate the
    server did not sustain)."""

    closed: dict[str, object]
    open: dict[str, list]
    threads: int

    def sustained(self, p99_ms: float = P99_TARGET_MS) -> dict[str, float]:
        """Per server, the highest arrival rate answered with no error and p99 <= ``p99_ms``."""
        from handbook.serving.loadtest import sustained_rate

        return {name: sustained_rate(results, p99_ms) for name, results in self.open.items()}

    def table(self) -> list[dict]:
        """One row per server: closed-loop throughput and latency, sustained open-loop rate."""
        sustained = self.sustained()
        rows = []
        for name, closed in self.closed.items():
            rows.append(
                {
                    "server": name,
                    "closed req/s": round(closed.throughput, 1),
                    "closed p50 ms": round(closed.percentile(50), 1),
                    "closed p99 ms": round(closed.percentile(99), 1),
                    "errors": closed.errors + sum(r.errors for r in self.open[name]),
                    f"sustained req/s (p99 <= {P99_TARGET_MS:.0f} ms)": round(sustained[name], 1),
                }
            )
        return rows

    def open_table(self) -> list[dict]:
        """Every open-loop step: server, rate, answered req/s, p50 and p99 from scheduled time."""
        return [
            {
                "server": name,
                "rate req/s": round(result.rate, 1),
                "answered req/s": round(result.throughput, 1),
                "p50 ms": round(result.percentile(50), 1),
                "p99 ms": round(result.percentile(99), 1),
                "errors": result.errors,
            }
            for name, results in self.open.items()
            for result in results
        ]


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
    rate_fractions: Sequence[float] = RATE_FRACTIONS,
    seconds: float = 3.0,
    log_dir=None,
) -> PeerComparison:
    """handbook.serving, then each installed peer (or ``peers``), each started fresh, same client.

    Per server: an untimed warm-up, a closed-loop run (``clients`` clients, ``requests``
    requests), then open-loop runs of ``seconds`` each at ``rate_fractions`` times
    handbook.serving's closed-loop throughput (the same absolute rates for every server),
    ascending, stopping after the first rate whose p99 exceeds :data:`P99_TARGET_MS` (or that
    had errors). ``threads``: ONNX Runtime intra-op threads of every server (default: all cores).
    """
    from handbook.serving.loadtest import run_load, run_open_loop

    threads = threads or max(os.cpu_count() or 1, 1)
    names = [OURS, *(available_peers() if peers is None else peers)]
    closed, open_loop, rates = {}, {}, []
    for index, name in enumerate(names):
        log_path = None if log_dir is None else f"{log_dir}/peer-{index}.log"
        with _server(name, model_dir, threads, log_path) as server:
            run_load(server.url, texts, concurrency=8, requests=100, body="texts")  # warm-up
            closed[name] = run_load(
                server.url, texts, concurrency=clients, requests=requests, label=name, body="texts"
            )
            if not rates:
                rates = [fraction * closed[OURS].throughput for fraction in rate_fractions]
            open_loop[name] = []
            for rate in rates:
                result = run_open_loop(
                    server.url, texts, rate=rate, seconds=seconds, connections=clients,
                    label=name, body="texts",
                )  # fmt: skip
                open_loop[name].append(result)
                if result.errors or result.percentile(99) > P99_TARGET_MS:
                    break
    return PeerComparison(closed, open_loop, threads)
