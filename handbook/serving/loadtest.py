"""Bounded load tests, loopback only: closed loop (N clients) and open loop (a fixed schedule).

``run_load(url, texts, concurrency=64, requests=2000)`` is **closed loop**: ``concurrency``
clients (one keep-alive connection each, like 64 independent callers) each send their next
``POST /predict`` when the previous one is answered, exactly ``requests`` between them (after one
untimed, valid warm-up request per client, which opens its connection; the server's metrics
count those too). A server that stalls also stalls its clients, so fewer requests see the stall
than would have in reality ("coordinated omission").

``run_open_loop(url, texts, rate=200, seconds=3)`` is **open loop**: request ``i`` is due at
``i / rate`` seconds, whatever happened to the others, and its latency counts from that
scheduled time, so time a request spends waiting for a free connection or for a late sender
counts too, and a server that cannot keep up shows a latency that grows with time. No maintained
Python load generator does this: Locust's ``constant_throughput`` paces each simulated user,
which still waits for its answer (closed loop), and k6's constant-arrival-rate executor is not
a Python package.

Both return a :class:`LoadResult` (the latency of every request, its status, the wall time) and
refuse any host but 127.0.0.1/localhost, so a notebook cell can never load-test somebody else's
server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class LoadResult:
    """What one load test measured. Latencies in milliseconds: in the order requests ended
    (closed loop), or in the order they were scheduled (open loop)."""

    concurrency: int
    seconds: float
    latencies_ms: np.ndarray
    statuses: Counter = field(default_factory=Counter)
    label: str = ""
    rate: float | None = None  # open loop: the arrival rate, requests per second

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        """Answered requests per second of wall time."""
        return self.requests / self.seconds

    @property
    def errors(self) -> int:
        """Requests answered with a 5xx or not at all (status 0): the server's failures."""
        return sum(count for status, count in self.statuses.items() if status == 0 or status >= 500)

    def percentile(self, q: float) -> float:
        """Latency percentile ``q`` (0-100), milliseconds."""
        return float(np.percentile(self.latencies_ms, q))

    def summary(self) -> dict:
        return {
            "server": self.label,
            **({"rate req/s": round(self.rate, 1)} if self.open_loop else {}),
            "clients": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "4xx": sum(n for status, n in self.statuses.items() if 400 <= status < 500),
            "req/s": round(self.throughput, 1),
            "p50 ms": round(self.percentile(50), 2),
            "p95 ms": round(self.percentile(95), 2),
            "p99 ms": round(self.percentile(99), 2),
        }


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"load tests run against this machine only (127.0.0.1), got host {host!r}")


async def _load(
    url: str, bodies: Sequence[dict], concurrency: int, requests: int, timeout_s: float
) -> tuple[list[float], list[int], float]:
    import httpx

    tickets = iter(range(requests))
    latencies: list[float] = []
    statuses: list[int] = []
    warm_up = next(body for body in bodies if _text_of(body))  # a valid body: answered 200
    connected = 0
    all_connected = asyncio.Event()

    async def client(worker: int) -> None:
        nonlocal connected
        # trust_env=False: a proxy from the environment must never carry a loopback load test
        async with httpx.AsyncClient(base_url=url, timeout=timeout_s, trust_env=False) as session:
            # One untimed request opens the keep-alive connection: the clock measures serving,
            # not 64 simultaneous TCP handshakes.
            with contextlib.suppress(httpx.HTTPError):
                await session.post("/predict", json=warm_up)
            connected += 1
            if connected == concurrency:
                all_connected.set()
            await all_connected.wait()
            for ticket in tickets:  # the shared iterator hands out exactly `requests` tickets
                body = bodies[ticket % len(bodies)]
                started = time.perf_counter()
                try:
                    status = (await session.post("/predict", json=body)).status_code
                except httpx.HTTPError:
                    status = 0
                latencies.append((time.perf_counter() - started) * 1000)
                statuses.append(status)

    tasks = [asyncio.create_task(client(worker)) for worker in range(concurrency)]
    await all_connected.wait()
    started = time.perf_counter()
    await asyncio.gather(*tasks)
    return latencies, statuses, time.perf_counter() - started


def _bodies(texts: Sequence[str], body: str) -> list[dict]:
    """Up to 1000 bodies cycling through ``texts``: ``{"text": t}`` or ``{"texts": [t]}``."""
    if body not in ("text", "texts"):
        raise ValueError(f"body must be 'text' or 'texts', got {body!r}")
    cycle = itertools.islice(itertools.cycle(texts), 1000)
    return [{"text": text} if body == "text" else {"texts": [text]} for text in cycle]


def _text_of(body: dict) -> str:
    return body["text"] if "text" in body else body["texts"][0]


def run_load(
    url: str,
    texts: Sequence[str],
    *,
    concurrency: int,
    requests: int,
    timeout_s: float = 30.0,
    label: str = "",
    invalid_every: int = 0,
    body: str = "text",
) -> LoadResult:
    """Send ``requests`` single-text requests from ``concurrency`` clients; see the module doc.

    ``invalid_every=k`` makes every k-th body invalid (an empty text, answered 422), to watch
    the error-rate panel move; 0 sends only valid bodies. ``body="texts"`` sends
    ``{"texts": [text]}`` instead of ``{"text": text}`` (the body every peer server reads).

    Works inside Jupyter too (whose event loop is already running): the clients run on a fresh
    event loop in a helper thread.
    """
    _check_loopback(url)
    if concurrency < 1 or requests < 1:
        raise ValueError(
            f"expected concurrency >= 1 and requests >= 1, got {concurrency} and {requests}"
        )
    if not texts:
        raise ValueError("texts must hold at least one text to send")
    if invalid_every < 0:
        raise ValueError(f"invalid_every must be 0 (never) or a positive k, got {invalid_every}")
    bodies = _bodies(texts, body)
    if invalid_every:
        empty = _bodies([""], body)[0]
        bodies = [
            empty if (position + 1) % invalid_every == 0 else valid
            for position, valid in enumerate(bodies)
        ]
    with ThreadPoolExecutor(max_workers=1) as pool:
        latencies, statuses, seconds = pool.submit(
            asyncio.run, _load(url, bodies, concurrency, requests, timeout_s)
        ).result()
    return LoadResult(concurrency, seconds, np.asarray(latencies), Counter(statuses), label)


async def _open_loop(
    url: str, bodies: Sequence[dict], rate: float, count: int, connections: int, timeout_s: float
) -> tuple[np.ndarray, np.ndarray, float]:
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies = np.zeros(count)
    statuses = np.zeros(count, dtype=int)
    warm_up = next(body for body in bodies if _text_of(body))
    async with httpx.AsyncClient(
        base_url=url, timeout=timeout_s, limits=limits, trust_env=False
    ) as session:
        # untimed: open every connection first, so the schedule measures serving, not handshakes
        await asyncio.gather(
            *(session.post("/predict", json=warm_up) for _ in range(connections)),
            return_exceptions=True,
        )
        start = time.perf_counter() + 0.01
        abandoned: list[asyncio.Task] = []

        async def request(index: int) -> None:
            due = start + index / rate
            await asyncio.sleep(max(due - time.perf_counter(), 0.0))
            post = asyncio.ensure_future(session.post("/predict", json=bodies[index % len(bodies)]))
            left = due + timeout_s - time.perf_counter()  # timeout_s from the scheduled time
            # asyncio.wait, not wait_for: a timed-out request is an error at its deadline, not
            # once httpx has finished cleaning up its connection (which can take seconds)
            await asyncio.wait({post}, timeout=max(left, 1e-3))
            if not post.done():
                post.cancel()
                abandoned.append(post)
                statuses[index] = 0
            elif isinstance(post.exception(), httpx.HTTPError):
                statuses[index] = 0
            else:
                statuses[index] = post.result().status_code  # any other exception is raised
            latencies[index] = (time.perf_counter() - due) * 1000  # from the scheduled time

        await asyncio.gather(*(request(index) for index in range(count)))
        wall = time.perf_counter() - start
        await asyncio.gather(*abandoned, return_exceptions=True)
        return latencies, statuses, wall


def run_open_loop(
    url: str,
    texts: Sequence[str],
    *,
    rate: float,
    seconds: float,
    connections: int = 64,
    timeout_s: float = 10.0,
    label: str = "",
    body: str = "text",
) -> LoadResult:
    """Open loop: ``round(rate * seconds)`` requests, request ``i`` due at ``i / rate`` s.

    Latency runs from each request's *scheduled* time to its answer, so a request that waited
    for one of the ``connections`` keep-alive connections (or for a late event loop) is charged
    for the wait; ``latencies_ms`` is in schedule order. A request not answered within
    ``timeout_s`` of its scheduled time counts as an error (status 0), so the test ends by
    ``seconds + timeout_s``. ``body`` as in :func:`run_load`.
    """
    _check_loopback(url)
    if rate <= 0 or seconds <= 0 or connections < 1:
        raise ValueError(
            f"expected rate > 0, seconds > 0 and connections >= 1, got {rate}, {seconds} and "
            f"{connections}"
        )
    if not texts:
        raise ValueError("texts must hold at least one text to send")
    count = max(round(rate * seconds), 1)
    with ThreadPoolExecutor(max_workers=1) as pool:
        latencies, statuses, wall = pool.submit(
            asyncio.run,
            _open_loop(url, _bodies(texts, body), rate, count, connections, timeout_s),
        ).result()
    return LoadResult(
        connections, wall, latencies, Counter(statuses.tolist()), label, rate=float(rate)
    )


def sustained_rate(results: Sequence[LoadResult], p99_ms: float = 100.0) -> float:
    """The highest arrival rate among open-loop ``results`` answered with no error and a p99
    latency of at most ``p99_ms``; 0.0 if none was."""
    return max(
        (
            result.rate
            for result in results
            if result.open_loop and not result.errors and result.percentile(99) <= p99_ms
        ),
        default=0.0,
    )


#: The servers the chapter and ``make bench`` compare: (backend, extra server flags).
SERVER_VARIANTS = {
    "naive eager per-request": ("eager", ["--no-batching"]),
    "batched eager": ("eager", []),
    "batched + ONNX Runtime": ("onnx", []),
    "batched + ORT INT8": ("int8", []),
}


def compare_servers(
    model_dir,
    texts: Sequence[str],
    *,
    clients: Sequence[int],
    requests: int,
    variants: dict[str, tuple[str, list[str]]] | None = None,
    log_dir=None,
) -> list[LoadResult]:
    """Start each server variant in turn, load it at every number of ``clients``, stop it.

    Returns one :class:`LoadResult` per (variant, clients), labelled with the variant's name.
    The servers log no line per request here (``--no-request-log``): the comparison is about
    the serving path. Each server first gets a short untimed warm-up load.
    """
    from handbook.serving.process import ServerProcess

    results = []
    for index, (name, (backend, flags)) in enumerate((variants or SERVER_VARIANTS).items()):
        log_path = None if log_dir is None else f"{log_dir}/server-{index}-{backend}.log"
        with ServerProcess(
            model_dir, backend=backend, options=[*flags, "--no-request-log"], log_path=log_path
        ) as server:
            run_load(server.url, texts, concurrency=8, requests=50)
            results.extend(
                run_load(server.url, texts, concurrency=count, requests=requests, label=name)
                for count in clients
            )
    return results
