"""Chapter 5 against its peers: the open-loop driver, and LitServe/BentoML serving the same model.

The open-loop driver is tested against a deliberately slow fake server (one request at a time,
``SERVICE_MS`` each): below its capacity the latency stays flat; above it, latency measured from
the scheduled send time grows with the queue, which a closed-loop client cannot show. The peer
tests start each installed peer once (tens of seconds each: they import their frameworks) and
check that it answers exactly what handbook.serving's model answers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import httpx
import numpy as np
import pytest

from handbook.serving import loadtest, peers
from handbook.serving.loadtest import LoadResult, meets_target, run_load, run_open_loop

pytest_plugins = ["serving_fixtures"]

SERVICE_MS = 20.0  # the fake server's time per request: capacity 50 requests per second


class SlowServer:
    """A minimal HTTP/1.1 keep-alive server on 127.0.0.1 that answers ``{}`` to every request,
    one request at a time, ``SERVICE_MS`` each (a server that cannot batch)."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.lock = asyncio.Lock()
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0)
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _client(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                await reader.readexactly(length)
                async with self.lock:  # one at a time
                    await asyncio.sleep(SERVICE_MS / 1000)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: 2\r\n\r\n{}"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def __enter__(self) -> str:
        self.thread.start()
        self.ready.wait(10)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc_info):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def slow_url():
    with SlowServer() as url:
        yield url


@pytest.fixture
def round_trip_ms(slow_url) -> float:
    """One request's typical time on this machine, measured just before the test: the service
    time plus what the client, the loopback and a loaded CPU add. Latency bounds below are
    multiples of it, so that a busy machine (make test runs two workers on two cores) moves
    them instead of failing."""
    return run_load(slow_url, ["a text"], concurrency=1, requests=10).percentile(50)


@pytest.mark.timing
def test_open_loop_below_capacity_keeps_latency_flat(slow_url, round_trip_ms):
    result = run_open_loop(slow_url, ["a text"], rate=20, seconds=1.0, connections=8)

    assert result.requests == 20 and result.errors == 0 and result.rate == 20
    # each request waits at most about one service time for the one ahead of it: the typical
    # latency is a round trip or two, and it does not grow along the schedule (no queue)
    assert round_trip_ms >= SERVICE_MS
    assert result.percentile(50) < 5 * round_trip_ms
    early, late = result.latencies_ms[:5], result.latencies_ms[-5:]
    assert np.median(late) < np.median(early) + 3 * round_trip_ms


@pytest.mark.timing
def test_open_loop_above_capacity_shows_the_queue_a_closed_loop_hides(slow_url):
    rate, seconds = 100, 0.5  # twice the capacity: a backlog of ~25 requests builds up
    opened = run_open_loop(slow_url, ["a text"], rate=rate, seconds=seconds, connections=64)
    closed = run_load(slow_url, ["a text"], concurrency=1, requests=20)

    assert opened.requests == 50 and opened.errors == 0
    early, late = opened.latencies_ms[:5], opened.latencies_ms[-5:]
    # request i is answered near i * 20 ms but was due at i * 10 ms: latency grows ~10 ms each
    assert np.median(late) > np.median(early) + 250
    assert opened.percentile(99) > 0.5 * (rate * seconds * SERVICE_MS - 1000 * seconds)
    # one closed-loop client never queues: its typical answer takes about one service time
    assert closed.percentile(50) < opened.percentile(50) / 2
    assert not meets_target(opened, p99_ms=100)


@pytest.mark.timing
def test_open_loop_counts_a_request_that_never_got_a_connection_as_an_error(
    slow_url, round_trip_ms
):
    # one connection, 0.3 s timeout, 3x the capacity: the queue passes the timeout
    timeout_ms = 300
    result = run_open_loop(
        slow_url, ["a text"], rate=150, seconds=0.5, connections=1, timeout_s=timeout_ms / 1000
    )
    assert result.errors > 0 and result.requests == 75
    # a request past its deadline is an error at its deadline: the late ones end together,
    # within a few round trips of the timeout (event-loop lag on a busy machine), never after
    # httpx's clean-up of the connection (seconds, the bug this test guards against)
    late = result.latencies_ms[result.latencies_ms >= 0.99 * timeout_ms]
    assert len(late) >= result.errors
    assert np.median(late) < timeout_ms + 10 * round_trip_ms
    assert result.latencies_ms.max() < timeout_ms + 50 * round_trip_ms
    assert result.seconds < 0.5 + timeout_ms / 1000 + 50 * round_trip_ms / 1000


@pytest.mark.timing
def test_a_step_that_cannot_meet_the_target_stops_early_without_blaming_the_server(slow_url):
    # three times the capacity for 2 s: the queue passes 100 ms within the first 0.2 s
    stopped = run_open_loop(
        slow_url, ["a text"], rate=150, seconds=2.0, connections=64, stop_above_ms=100
    )
    assert stopped.stopped_early and not meets_target(stopped, p99_ms=100)
    assert stopped.requests < 150 and stopped.seconds < 1.0  # not the 2 s schedule
    # what was still waiting is abandoned, not an error of the server's; its wait so far is a
    # lower bound, and the p99 is already above the target
    assert stopped.errors == 0 and stopped.statuses[loadtest.ABANDONED] > 0
    assert stopped.percentile(99) > 100
    assert stopped.summary()["stopped early"] is True


@pytest.mark.timing
def test_a_step_within_the_target_runs_its_whole_schedule_when_it_may_stop(slow_url):
    result = run_open_loop(
        slow_url, ["a text"], rate=10, seconds=1.0, connections=8, stop_above_ms=100
    )
    assert not result.stopped_early and result.requests == 10 and result.errors == 0
    assert loadtest.ABANDONED not in result.statuses and meets_target(result, p99_ms=100)


@pytest.mark.parametrize("count", [1, 2, 10, 99, 100, 101, 250, 1000, 1333])
def test_late_requests_to_fail_is_the_fewest_that_make_the_p99_certainly_late(count):
    target, needed = 100.0, loadtest.late_requests_to_fail(count)
    latencies = np.zeros(count)
    latencies[:needed] = target + 1e-3  # `needed` late ones: the p99 is late whatever the rest
    assert np.percentile(latencies, 99) > target
    latencies[:needed] = 0.0
    latencies[: needed - 1] = target + 1e-3  # one fewer: with the others fast, it may not be
    assert np.percentile(latencies, 99) <= target


def test_open_loop_refuses_a_stop_threshold_that_is_not_positive():
    with pytest.raises(ValueError, match="stop_above_ms must be positive"):
        run_open_loop("http://127.0.0.1:9", ["a"], rate=1, seconds=1, stop_above_ms=0)


def test_search_bracket_starts_below_the_closed_loop_throughput_and_never_passes_the_cap():
    assert peers.search_bracket(800.0, 1500.0) == (200.0, 800.0)
    assert peers.search_bracket(2000.0, 1500.0) == (500.0, 1500.0)  # a faster peer: capped
    low, high = peers.search_bracket(8000.0, 1500.0)
    assert (low, high) == (375.0, 1500.0)
    with pytest.raises(ValueError, match="positive rates"):
        peers.search_bracket(0.0, 1500.0)


@pytest.mark.parametrize(
    "options",
    [
        {"rate": 0, "seconds": 1},
        {"rate": 10, "seconds": 0},
        {"rate": 10, "seconds": 1, "connections": 0},
    ],
)
def test_open_loop_refuses_invalid_arguments(options):
    with pytest.raises(ValueError, match="expected rate > 0"):
        run_open_loop("http://127.0.0.1:9", ["a"], **options)


def test_open_loop_refuses_any_host_but_this_machine():
    with pytest.raises(ValueError, match="this machine only"):
        run_open_loop("http://example.com", ["a"], rate=1, seconds=1)


def test_a_step_meets_the_target_with_no_error_and_p99_at_most_the_target():
    def result(p99, statuses=None):
        return LoadResult(8, 1.0, np.full(100, p99), statuses or {200: 100}, rate=10)

    assert meets_target(result(50), p99_ms=100) and meets_target(result(100), p99_ms=100)
    assert not meets_target(result(101), p99_ms=100)
    assert not meets_target(result(20, {0: 1, 200: 99}), p99_ms=100)


def test_peer_settings_round_trip_through_the_environment(tmp_path, monkeypatch):
    settings = peers.PeerSettings(tmp_path, threads=2, max_batch_size=16, max_wait_ms=3.0)
    for name, value in settings.to_environment().items():
        monkeypatch.setenv(name, value)
    assert peers.PeerSettings.from_environment() == settings


def test_an_unknown_peer_is_refused(tmp_path):
    with pytest.raises(ValueError, match="expected one of LitServe, BentoML"):
        peers.PeerProcess("Triton", tmp_path)


@pytest.mark.parametrize("peer", list(peers.PEER_PACKAGES))
def test_a_peer_serves_the_same_predictions_under_load(peer, model_dir, built, tmp_path):
    if peer not in peers.available_peers():
        pytest.skip(f"{peer} is not installed (optional extra `peers`: pip install '.[peers]')")
    texts = built.test_texts[:8]
    expected = peers.Classifier(peers.PeerSettings(model_dir, threads=1)).classify(texts)
    with peers.PeerProcess(
        peer, model_dir, threads=1, log_path=tmp_path / "peer.log", startup_timeout=180
    ) as server:
        answers = [
            httpx.post(server.url + "/predict", json={"texts": [text]}, timeout=30,
                       trust_env=False).json()
            for text in texts
        ]  # fmt: skip
        closed = run_load(server.url, texts, concurrency=16, requests=200, body="texts")
        opened = run_open_loop(server.url, texts, rate=20, seconds=1.0, body="texts", timeout_s=60)
        pid = server.process.pid
    predictions = [a["predictions"][0] if isinstance(a, dict) else a[0] for a in answers]
    assert [p["prediction"] for p in predictions] == [e["prediction"] for e in expected]
    for got, want in zip(predictions, expected, strict=True):
        # dynamic INT8 quantizes activations with one range per model call, so a text's
        # probabilities depend a little on the batch it shared (same for handbook.serving)
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=0.05)
    assert closed.statuses == {200: 200} and opened.statuses == {200: 20}
    deadline = time.monotonic() + 30  # the whole process group is gone (a kill, then reaping)
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"{peer}'s process group {pid} still runs 30 s after its server stopped")


def test_open_loop_figure_draws_one_line_per_server_and_the_target():
    from handbook import plots

    rows = [
        {"server": server, "rate req/s": rate, "p99 ms": p99}
        for server, points in {"a": [(10, 5), (20, 50)], "b": [(10, 8), (20, 400)]}.items()
        for rate, p99 in points
    ]
    axis = plots.open_loop_latency(rows).axes[0]
    assert len(axis.get_lines()) == 3 and axis.get_yscale() == "log"
    with pytest.raises(ValueError, match="at least one open-loop row"):
        plots.open_loop_latency([])


def test_open_loop_refuses_a_body_it_cannot_build_and_no_texts():
    with pytest.raises(ValueError, match="body must be 'text' or 'texts', got 'json'"):
        run_open_loop("http://127.0.0.1:9", ["a"], rate=1, seconds=1, body="json")
    with pytest.raises(ValueError, match="texts must hold at least one text"):
        run_open_loop("http://127.0.0.1:9", [], rate=1, seconds=1)


def test_open_loop_counts_refused_and_unanswered_requests_as_errors():
    """A port nobody listens on (every request refused), and a server that accepts and never
    answers (every request past its deadline): each request is an error, none is lost."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    refused = run_open_loop(f"http://127.0.0.1:{port}", ["a"], rate=20, seconds=0.25)
    assert refused.requests == 5 and refused.statuses == {0: 5}
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # accepts connections, never reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        unanswered = run_open_loop(url, ["a"], rate=20, seconds=0.25, connections=2, timeout_s=0.2)
    assert unanswered.requests == 5 and unanswered.statuses == {0: 5}


def test_the_generator_is_calibrated_against_a_null_endpoint_in_processes_of_their_own():
    calibration = loadtest.calibrate_generator(50, seconds=0.5, connections=4)
    assert calibration.rate == 50 and calibration.result.requests == 25
    assert calibration.result.errors == 0 and calibration.result.statuses == {200: 25}
    assert calibration.passed is (calibration.result.percentile(99) < 5.0)
    assert "cores shared by the generator" in calibration.describe()
    process = loadtest._GENERATOR.process
    assert process.pid != os.getpid()  # the generator's own process
    # in a session of its own: a kernel's interrupt and shutdown (through its process group)
    # leave it alone, and the kernel's exit handler closes it
    assert os.getsid(process.pid) == process.pid != os.getsid(0)
    loadtest._GENERATOR.close()  # ends on its own (stdin closed): coverage data is written
    assert process.returncode == 0
    again = loadtest.calibrate_generator(20, seconds=0.25, connections=2)  # a fresh process
    assert again.result.statuses == {200: 5} and loadtest._GENERATOR.process is not process


def test_a_kernel_that_used_the_generator_shuts_down_at_once_and_ends_it(tmp_path):
    """Chapter 5's kernel, in small: it ran a load through the generator, then papermill shuts
    it down. The kernel ends at once (it waited 2.5 s to be killed while the generator shared
    its process group), and its exit handler ends the generator."""
    from datetime import datetime

    import nbformat

    from handbook import runner

    source = (
        "from handbook.serving import loadtest\n"
        "loadtest.calibrate_generator(20, seconds=0.25, connections=2)\n"
        "print(loadtest._GENERATOR.process.pid)"
    )
    notebook = tmp_path / "generator.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]), notebook)
    environment = runner.notebook_environment(smoke=True, strict_exercises=True)
    run = runner.execute_notebook(notebook, tmp_path / "out.ipynb", environment=environment)
    assert run.ok, run.error
    executed = nbformat.read(run.output, as_version=4)
    generator = int(executed.cells[0].outputs[-1]["text"].split()[-1])
    after_last_cell = datetime.fromisoformat(executed.metadata.papermill["end_time"]) - (
        datetime.fromisoformat(executed.cells[0].metadata.papermill["end_time"])
    )
    assert after_last_cell.total_seconds() < 1.5, after_last_cell
    deadline = time.monotonic() + 5
    while _alive(generator) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(generator), "the generator outlived its kernel"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
