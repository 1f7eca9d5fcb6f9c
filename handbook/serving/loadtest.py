"""Bounded load tests, loopback only: closed loop (N clients), open loop (a fixed schedule), the
generator's own calibration, and the sustained rate found by bisection.

``run_load(url, texts, concurrency=64, requests=2000)`` is **closed loop**: ``concurrency``
clients (one keep-alive connection each, like 64 independent callers) each send their next
``POST /predict`` when the previous one is answered, exactly ``requests`` between them (after one
untimed, valid warm-up request per client, which opens its connection; the server's metrics
count those too). A server that stalls also stalls its clients, so fewer requests see the stall
than would have in reality ("coordinated omission").

``run_open_loop(url, texts, rate=200, seconds=3)`` is **open loop**: request ``i`` is due at
``i / rate`` seconds, whatever happened to the others, and its latency counts from that
scheduled time, so time a request spends waiting for a free connection or for a late sender
counts too, and a server that cannot keep up shows a latency that grows with time.

**Why our own generator, and how it keeps out of the way.** An open-loop test is only as good
as its sender: one that cannot send on time turns its own lag into the servers' latency (issue
27: at 130 requests/s, the earlier httpx-based sender capped three servers that each answered 520
requests/s in closed loop at 74-85 requests/s). The candidates were Locust (its
``constant_throughput`` paces each simulated user, which still waits for its answer: closed
loop), autocannon (``--overallRate`` spreads a rate over connections that each wait for their
answer, and it needs Node) and oha (``-q`` with latency correction is open loop, but it is a
Rust binary that neither PyPI nor Debian ships here, and its report gives no per-request
statuses). So the generator is ours, built the way those tools are: it runs in **its own
process** (spawned once, reused; never the notebook's interpreter, so no lock shared with a
kernel or a server), on **persistent HTTP/1.1 connections** opened before the clock starts,
with **every request encoded once** before the run (no client library, no per-request object
but the bytes written and the status line read), on uvloop where installed. Then it is
**measured**: :func:`calibrate_generator` runs it against a null endpoint that answers at once
(:class:`NullServer`, its own process too); only a generator that sustains twice the highest
rate a comparison offers with p99 under 5 ms may report a sustained rate
(:class:`Calibration`). Client and servers share this machine's cores (:func:`core_split`
says how many); on a busy machine the calibration fails, and the comparison says so instead
of reporting the generator's limit as the servers'.

:func:`search_sustained_rate` bisects the arrival rate (geometrically) until the highest rate
answered with no error and p99 <= the target is known to within ``tolerance`` (5%), and
:func:`sustained_rounds` repeats the search to give the rate with its spread over rounds.

Everything returns a :class:`LoadResult` (the latency of every request, its status, the wall
time) and refuses any host but 127.0.0.1/localhost, so a notebook cell can never load-test
somebody else's server.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import itertools
import json
import math
import os
import pickle
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

from handbook.serving.process import _PRCTL, LOOPBACK, ServerProcess, _die_with_parent

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
#: The generator must sustain this multiple of the highest rate a comparison offers...
CALIBRATION_HEADROOM = 2.0
#: ... with a p99 latency (from the scheduled send time) under this, against a null endpoint.
CALIBRATION_P99_MS = 5.0
#: The status of a request an open loop stopped waiting for (``stop_above_ms``): not the
#: server's failure, so not an error; its latency is how long it had waited, a lower bound.
ABANDONED = -1


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
    #: open loop with ``stop_above_ms``: the run stopped as soon as its p99 could no longer be at
    #: most that (only the requests scheduled by then are here)
    stopped_early: bool = False

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        """Requests per second of wall time (those an open loop abandoned when it stopped early
        not counted)."""
        return (self.requests - self.statuses.get(ABANDONED, 0)) / self.seconds

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
            **({"stopped early": True} if self.stopped_early else {}),
        }


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"load tests run against this machine only (127.0.0.1), got host {host!r}")


# --- the wire: HTTP/1.1 on persistent connections, requests encoded before the clock starts ---

_ANSWER_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
)


def _endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port or 80


def _encode(url: str, bodies: Sequence[dict]) -> list[bytes]:
    """Each body as the bytes of one ``POST /predict`` request (keep-alive, JSON)."""
    host, port = _endpoint(url)
    requests = []
    for body in bodies:
        payload = json.dumps(body).encode()
        head = (
            f"POST /predict HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\n\r\n"
        )
        requests.append(head.encode() + payload)
    return requests


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response: its status and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lines = head.lower().split(b"\r\n")
    headers = dict(line.split(b":", 1) for line in lines[1:] if b":" in line)
    if headers.get(b"transfer-encoding", b"").strip() == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers.get(b"connection", b"").strip() != b"close"


class _Connection:
    """One persistent connection; reopened after an error or a ``connection: close``."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> int:
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.write(request)
            status, keep_open = await _read_answer(self.reader)
        except BaseException:  # an error or a timeout mid-answer: this connection is unusable
            self.close()
            raise
        if not keep_open:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _send_within(connection: _Connection, request: bytes, seconds: float) -> int:
    """The status of one request, 0 if it failed or was not answered within ``seconds``."""
    try:
        return await asyncio.wait_for(connection.send(request), max(seconds, 1e-6))
    except (TimeoutError, asyncio.TimeoutError, *_ANSWER_ERRORS):
        return 0


async def _closed_loop(
    url: str, requests: list[bytes], warm_up: bytes, concurrency: int, count: int, timeout_s: float
) -> tuple[np.ndarray, np.ndarray, float]:
    connections = [_Connection(*_endpoint(url)) for _ in range(concurrency)]
    # One untimed request per connection opens it: the clock measures serving, not handshakes.
    await asyncio.gather(*(_send_within(c, warm_up, timeout_s) for c in connections))
    tickets = iter(range(count))
    latencies, statuses = [], []

    async def client(connection: _Connection) -> None:
        for ticket in tickets:  # the shared iterator hands out exactly `count` tickets
            started = time.perf_counter()
            statuses.append(
                await _send_within(connection, requests[ticket % len(requests)], timeout_s)
            )
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client(connection) for connection in connections))
    wall = time.perf_counter() - started
    for connection in connections:
        connection.close()
    return np.asarray(latencies), np.asarray(statuses, dtype=int), wall


def late_requests_to_fail(count: int, q: float = 99.0) -> int:
    """The fewest of ``count`` latencies above a target that make the ``q``-th percentile
    (``np.percentile``'s linear interpolation) certainly above it: with that many, both order
    statistics the percentile interpolates between are above the target."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    return count - math.floor(q / 100 * (count - 1))


async def _open_loop(
    url: str, requests: list[bytes], warm_up: bytes, rate: float, count: int, connections: int,
    timeout_s: float, stop_above_ms: float | None = None,
) -> tuple[np.ndarray, np.ndarray, float, bool]:  # fmt: skip
    loop = asyncio.get_running_loop()
    pool = [_Connection(*_endpoint(url)) for _ in range(connections)]
    await asyncio.gather(*(_send_within(c, warm_up, timeout_s) for c in pool))  # untimed
    latencies = np.zeros(count)
    statuses = np.zeros(count, dtype=int)
    answered = np.zeros(count, dtype=bool)
    queue: asyncio.Queue = asyncio.Queue()
    # stop_above_ms: the run ends once the p99 over all `count` requests can no longer be at most
    # that: `late_requests_to_fail` requests not answered within it, or one failed request
    late_allowed = late_requests_to_fail(count) if stop_above_ms is not None else None
    state = {"late": 0, "stop": False}

    def settle(index: int, due: float, status: int) -> None:
        if not answered[index]:
            answered[index] = True
            statuses[index] = status
            latencies[index] = (time.perf_counter() - due) * 1000  # from the scheduled time
            if late_allowed is not None and (status == 0 or status >= 500):  # a failure
                state["stop"] = True

    def check_late(index: int) -> None:  # at due + stop_above_ms: still unanswered is late
        if not answered[index]:
            state["late"] += 1
            state["stop"] = state["stop"] or state["late"] >= late_allowed

    async def sender(connection: _Connection) -> None:
        while (item := await queue.get()) is not None:
            index, due = item
            if answered[index]:  # past its deadline while it waited for a connection
                continue
            left = due + timeout_s - time.perf_counter()
            status = await _send_within(connection, requests[index % len(requests)], left)
            settle(index, due, status)

    senders = [asyncio.create_task(sender(connection)) for connection in pool]
    # perf_counter for the clock (uvloop's loop.time() counts whole milliseconds), the loop's
    # time only to schedule each request's deadline
    start, loop_start = time.perf_counter() + 0.01, loop.time() + 0.01
    timers, scheduled = [], 0
    for index in range(count):
        due = start + index / rate
        if due > time.perf_counter():
            await asyncio.sleep(due - time.perf_counter())
        if state["stop"]:
            break
        # an error at its deadline, whether it is waiting for a connection or for its answer
        timers.append(loop.call_at(loop_start + index / rate + timeout_s, settle, index, due, 0))
        if late_allowed is not None:
            timers.append(
                loop.call_at(loop_start + index / rate + stop_above_ms / 1000, check_late, index)
            )
        queue.put_nowait((index, due))
        scheduled = index + 1
    for _ in pool:
        queue.put_nowait(None)
    stopped = scheduled < count
    if stopped:  # the step has failed: what is still unanswered is abandoned, now
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        for timer in timers:
            timer.cancel()
        for index in range(scheduled):  # its latency so far: a lower bound
            settle(index, start + index / rate, ABANDONED)
    else:
        await asyncio.gather(*senders)
    wall = time.perf_counter() - start
    for connection in pool:
        connection.close()
    return latencies[:scheduled], statuses[:scheduled], wall, stopped


def _run_coroutine(kind: str, arguments: tuple) -> tuple:
    """In the generator's process: run one load on a fresh event loop (uvloop if installed):
    ``(latencies, statuses, wall)``, and for the open loop whether it stopped early."""
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(
            (_closed_loop if kind == "closed" else _open_loop)(*arguments)
        )
    finally:
        loop.close()


class _Generator:
    """The generator's own process (``python -m handbook.serving.loadtest --generator``),
    started on first use and reused: each load is a pickled request on its stdin, answered by
    what :func:`_run_coroutine` returns, pickled, on its stdout. It dies with its parent.

    It runs in a session of its own, outside its parent's process group. A Jupyter kernel is
    interrupted, then shut down, through its process group: the interrupt killed the generator
    too, and ipykernel's shutdown then signalled the dead, unreaped child again and again,
    sleeping between tries, until the client gave up after 2.5 s and killed the kernel, its
    exit handlers unrun (chapter 5's end, in every build). Now the kernel exits at once, and
    :meth:`close`, one of those handlers, ends the generator."""

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def run(self, kind: str, arguments: tuple) -> tuple:
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "handbook.serving.loadtest", "--generator"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    preexec_fn=_die_with_parent if _PRCTL is not None else None,
                    start_new_session=True,
                )
                atexit.register(self.close)
            try:
                pickle.dump((kind, arguments), self.process.stdin)
                self.process.stdin.flush()
                outcome, value = pickle.load(self.process.stdout)
            except (OSError, EOFError, pickle.UnpicklingError) as error:
                self.process.kill()
                raise RuntimeError(f"the load generator's process died: {error!r}") from error
        if outcome != "ok":
            raise RuntimeError(f"the load generator failed:\n{value}")
        return value

    def close(self) -> None:
        """End the process: its stdin closes, it returns (so coverage and buffers are written);
        killed if it has not after 5 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_GENERATOR = _Generator()


def _generate(kind: str, arguments: tuple) -> tuple:
    """Run a load in the generator's own process."""
    return _GENERATOR.run(kind, arguments)


def _serve_generator() -> None:
    """The generator process's loop: one load per request read from stdin, until it closes."""
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but answers on the pipe
    while True:
        try:
            kind, arguments = pickle.load(source)
        except EOFError:
            return
        try:
            answer = ("ok", _run_coroutine(kind, arguments))
        except Exception:
            answer = ("error", traceback.format_exc())
        pickle.dump(answer, sink)
        sink.flush()


def core_split() -> str:
    """How the cores are shared between the generator and the servers, for the report."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} cores shared by the generator (its own process) and the server under test"


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
    The clients run in the generator's own process, so this works inside Jupyter too.
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
    warm_up = _encode(url, [next(b for b in bodies if _text_of(b))])[0]  # answered 200
    if invalid_every:
        empty = _bodies([""], body)[0]
        bodies = [
            empty if (position + 1) % invalid_every == 0 else valid
            for position, valid in enumerate(bodies)
        ]
    latencies, statuses, seconds = _generate(
        "closed", (url, _encode(url, bodies), warm_up, concurrency, requests, timeout_s)
    )
    return LoadResult(concurrency, seconds, latencies, Counter(statuses.tolist()), label)


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
    stop_above_ms: float | None = None,
) -> LoadResult:
    """Open loop: ``round(rate * seconds)`` requests, request ``i`` due at ``i / rate`` s.

    Latency runs from each request's *scheduled* time to its answer, so a request that waited
    for one of the ``connections`` keep-alive connections (or for a late sender) is charged
    for the wait; ``latencies_ms`` is in schedule order. A request not answered within
    ``timeout_s`` of its scheduled time counts as an error (status 0) at that deadline, so the
    test ends by ``seconds + timeout_s``. ``body`` as in :func:`run_load`.

    ``stop_above_ms``: stop as soon as the run's p99 can no longer be at most this (enough
    requests, :func:`late_requests_to_fail`, were not answered within it, or one failed): no
    more requests are sent, those not answered yet get status :data:`ABANDONED` and their wait
    so far as latency (so the p99 is a lower bound), and the result says ``stopped_early``.
    A search step that has already failed then costs a fraction of a second instead of its
    whole schedule and a queue drained up to ``timeout_s``.
    """
    _check_loopback(url)
    if rate <= 0 or seconds <= 0 or connections < 1:
        raise ValueError(
            f"expected rate > 0, seconds > 0 and connections >= 1, got {rate}, {seconds} and "
            f"{connections}"
        )
    if stop_above_ms is not None and stop_above_ms <= 0:
        raise ValueError(f"stop_above_ms must be positive (or None), got {stop_above_ms}")
    if not texts:
        raise ValueError("texts must hold at least one text to send")
    count = max(round(rate * seconds), 1)
    bodies = _bodies(texts, body)
    latencies, statuses, wall, stopped = _generate(
        "open",
        (url, _encode(url, bodies), _encode(url, bodies[:1])[0], rate, count, connections,
         timeout_s, stop_above_ms),
    )  # fmt: skip
    return LoadResult(
        connections, wall, latencies, Counter(statuses.tolist()), label, rate=float(rate),
        stopped_early=stopped,
    )  # fmt: skip


# --- calibration: the generator against an endpoint that answers at once -----------------------

_NULL_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class _NullProtocol(asyncio.Protocol):
    """Answers ``{}`` to every request on the connection, at once (requests counted by their
    blank line; the bodies the generator sends hold none)."""

    def connection_made(self, transport):
        self.transport = transport
        self.pending = b""

    def data_received(self, data):
        self.pending += data
        while (end := self.pending.find(b"\r\n\r\n")) >= 0:
            head, rest = self.pending[:end].lower(), self.pending[end + 4 :]
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(rest) < length:
                return
            self.pending = rest[length:]
            self.transport.write(_NULL_ANSWER)


def serve_null(port: int, host: str = LOOPBACK) -> None:
    """Serve the null endpoint until killed (``python -m handbook.serving.loadtest --null``)."""
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(_NullProtocol, host, port))
    try:
        loop.run_forever()
    finally:
        server.close()


class NullServer(ServerProcess):
    """The null endpoint as a child process on 127.0.0.1 (every path answers 200 ``{}``)."""

    ready_path = "/ready"

    def __init__(self, **kwargs):
        super().__init__(".", **kwargs)

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "handbook.serving.loadtest",
            "--null",
            "--port",
            str(self.port),
        ]


@dataclass
class Calibration:
    """The generator measured against the null endpoint at ``result.rate``. ``passed``: it sent
    every request on time (no error, p99 under ``p99_limit_ms``), so at rates up to
    ``result.rate / CALIBRATION_HEADROOM`` what a server shows is the server's."""

    result: LoadResult
    p99_limit_ms: float = CALIBRATION_P99_MS
    cores: str = field(default_factory=core_split)

    @property
    def rate(self) -> float:
        return self.result.rate

    @property
    def passed(self) -> bool:
        return not self.result.errors and self.result.percentile(99) < self.p99_limit_ms

    def describe(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"generator calibration {verdict}: {self.rate:.0f} requests/s offered to a null "
            f"endpoint, p99 {self.result.percentile(99):.2f} ms (limit {self.p99_limit_ms:g} ms), "
            f"{self.result.errors} errors; {self.cores}"
        )


def calibrate_generator(
    rate: float,
    *,
    seconds: float = 2.0,
    connections: int = 64,
    p99_limit_ms: float = CALIBRATION_P99_MS,
) -> Calibration:
    """The open-loop generator at ``rate`` against :class:`NullServer` (:class:`Calibration`)."""
    with NullServer() as server:
        run_open_loop(
            server.url, ["warm-up"], rate=min(rate, 200.0), seconds=0.25, connections=connections
        )
        result = run_open_loop(
            server.url, ["calibration"], rate=rate, seconds=seconds, connections=connections,
            label="null endpoint (generator calibration)",
        )  # fmt: skip
    return Calibration(result, p99_limit_ms)


# --- the sustained rate, by bisection -----------------------------------------------------------


def meets_target(result: LoadResult, p99_ms: float) -> bool:
    """No request failed and the p99 latency (from the scheduled time) is at most ``p99_ms``
    (a run stopped early has failed already)."""
    return not result.stopped_early and not result.errors and result.percentile(99) <= p99_ms


@dataclass
class RateSearch:
    """One bisection: ``rate`` is the highest rate measured that met the target (0.0 if none
    did), ``ceiling`` the lowest that did not (``inf`` if none failed, up to the cap); every
    measured step is in ``steps``, in the order run."""

    rate: float
    ceiling: float
    steps: list[LoadResult]


def search_sustained_rate(
    measure: Callable[[float], LoadResult],
    low: float,
    high: float,
    *,
    p99_ms: float = 100.0,
    tolerance: float = 0.05,
    floor: float | None = None,
    cap: float | None = None,
) -> RateSearch:
    """Bisect the arrival rate between ``low`` and ``high`` (requests/s) until the highest rate
    ``measure(rate)`` answers within the target is known to ``tolerance`` (ceiling / rate <=
    1 + tolerance). Geometric midpoints, since the rate is a scale.

    If ``low`` fails, the bracket moves down by halves to ``floor`` (default ``low / 8``; below
    it the rate is 0.0); if ``high`` meets the target, up by halves to ``cap`` (default
    ``high``), and a server that meets it at the cap sustains at least the cap (ceiling inf).
    """
    if not 0 < low < high:
        raise ValueError(f"expected 0 < low < high, got {low} and {high}")
    if tolerance <= 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}")
    floor = low / 8 if floor is None else floor
    cap = high if cap is None else max(cap, high)
    steps: list[LoadResult] = []

    def meets(rate: float) -> bool:
        result = measure(rate)
        steps.append(result)
        return meets_target(result, p99_ms)

    while not meets(low):
        high, low = low, low / 2
        if low < floor:
            return RateSearch(0.0, high, steps)
    while meets(high):
        if high >= cap:
            return RateSearch(high, math.inf, steps)
        low, high = high, min(high * 1.5, cap)
    while high / low > 1 + tolerance:
        middle = math.sqrt(low * high)
        if meets(middle):
            low = middle
        else:
            high = middle
    return RateSearch(low, high, steps)


@dataclass
class SustainedRate:
    """The sustained rate over repeated searches: the median round and the spread."""

    rounds: list[RateSearch]

    @property
    def rates(self) -> list[float]:
        return [search.rate for search in self.rounds]

    @property
    def rate(self) -> float:
        return float(np.median(self.rates))

    @property
    def interval(self) -> tuple[float, float]:
        return min(self.rates), max(self.rates)

    @property
    def steps(self) -> list[LoadResult]:
        return [step for search in self.rounds for step in search.steps]

    def describe(self) -> str:
        low, high = self.interval
        return f"{self.rate:.0f} req/s (rounds {low:.0f}-{high:.0f}, n={len(self.rounds)})"


def sustained_rounds(
    measure: Callable[[float], LoadResult],
    low: float,
    high: float,
    *,
    rounds: int = 3,
    p99_ms: float = 100.0,
    tolerance: float = 0.05,
    cap: float | None = None,
) -> SustainedRate:
    """:func:`search_sustained_rate` ``rounds`` times. The first searches ``[low, high]`` (and
    moves up to ``cap``, default ``high``, if ``high`` meets the target); the next ones start
    from a bracket of +-20% around the previous round's rate (which moves if the rate moved),
    never outside ``[low / 8, cap]``."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    cap = high if cap is None else max(cap, high)
    searches = [
        search_sustained_rate(measure, low, high, p99_ms=p99_ms, tolerance=tolerance, cap=cap)
    ]
    for _ in range(rounds - 1):
        previous = searches[-1].rate or low
        start_low = max(previous / 1.2, low / 8)
        start_high = min(previous * 1.2, cap)
        if start_high <= start_low:
            start_low = start_high / 1.2
        searches.append(
            search_sustained_rate(
                measure,
                start_low,
                start_high,
                p99_ms=p99_ms,
                tolerance=tolerance,
                floor=low / 8,
                cap=cap,
            )  # fmt: skip
        )
    return SustainedRate(searches)


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
    requests: int | Mapping[int, int],
    variants: dict[str, tuple[str, list[str]]] | None = None,
    log_dir=None,
) -> list[LoadResult]:
    """Start each server variant in turn, load it at every number of ``clients``, stop it.

    ``requests``: per load, or per number of clients (``{1: 200, 64: 600}``: few clients
    answer steadily and slowly, so fewer requests measure them as well and cost less time).
    Returns one :class:`LoadResult` per (variant, clients), labelled with the variant's name.
    The servers log no line per request here (``--no-request-log``): the comparison is about
    the serving path. Each server first gets a short untimed warm-up load.
    """
    from handbook.serving.process import ServerProcess

    per_load = requests if isinstance(requests, Mapping) else dict.fromkeys(clients, requests)
    if missing := [count for count in clients if count not in per_load]:
        raise ValueError(f"requests gives no number of requests for {missing} clients")
    results = []
    for index, (name, (backend, flags)) in enumerate((variants or SERVER_VARIANTS).items()):
        log_path = None if log_dir is None else f"{log_dir}/server-{index}-{backend}.log"
        with ServerProcess(
            model_dir, backend=backend, options=[*flags, "--no-request-log"], log_path=log_path
        ) as server:
            run_load(server.url, texts, concurrency=8, requests=50)
            results.extend(
                run_load(server.url, texts, concurrency=count, requests=per_load[count], label=name)
                for count in clients
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handbook.serving.loadtest")
    parser.add_argument("--null", action="store_true", help="serve the null endpoint on --port")
    parser.add_argument("--port", type=int)
    parser.add_argument("--generator", action="store_true", help="be the generator's process")
    arguments = parser.parse_args(argv)
    if arguments.generator:
        _serve_generator()
    elif arguments.null and arguments.port:
        serve_null(arguments.port)
    else:
        parser.error("expected --generator, or --null with --port")
    return 0


if __name__ == "__main__":
    sys.exit(main())
