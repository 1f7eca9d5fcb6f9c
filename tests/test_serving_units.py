"""Unit tests of the serving modules' plumbing that the server tests do not reach: the peer
comparison's tables and verdicts (made-up measurements, no LitServe or BentoML started),
``make bench``'s rows, ``python -m handbook.serving``'s paths, the child-process helpers and the
autoscaler's argument checks. Fakes only: no server, no sleep, no clock."""

from __future__ import annotations

import subprocess
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from handbook.serving import __main__ as serve_main
from handbook.serving import artifact, autoscale, benchmarks, loadtest, peers, process
from handbook.serving.loadtest import LoadResult


def _result(label: str, rps: float, p99_ms: float, *, rate=None, errors: int = 0) -> LoadResult:
    """A made-up measurement: 100 requests answered at ``rps``, their p99 about ``p99_ms``."""
    latencies = np.full(100, p99_ms / 2)
    latencies[-2:] = p99_ms
    statuses = Counter({200: 100 - errors, **({503: errors} if errors else {})})
    return LoadResult(8, 100 / rps, latencies, statuses, label, rate)


def _search(label: str, rate: float, ceiling: float, p99s: dict) -> loadtest.RateSearch:
    steps = [_result(label, r, p99, rate=r) for r, p99 in p99s.items()]
    return loadtest.RateSearch(rate, ceiling, steps)


def _calibration(p99_ms: float = 1.0) -> loadtest.Calibration:
    return loadtest.Calibration(_result("null", 800, p99_ms, rate=800.0), cores="2 cores")


def _comparison(calibrated: bool = True) -> peers.PeerComparison:
    closed = {peers.OURS: _result(peers.OURS, 400, 20), "LitServe": _result("LitServe", 200, 40)}
    open_loop = {
        peers.OURS: loadtest.SustainedRate(
            [
                _search(peers.OURS, 100, 104, {40: 10, 200: 150, 100: 30, 104: 120}),
                _search(peers.OURS, 96, 100, {96: 40, 100: 110}),
                _search(peers.OURS, 110, 114, {110: 60, 114: 130}),
            ]
        ),
        "LitServe": loadtest.SustainedRate([_search("LitServe", 40, 42, {40: 20, 42: 101})]),
    }
    if not calibrated:
        return peers.PeerComparison(closed, {}, 2, _calibration(p99_ms=50))
    return peers.PeerComparison(closed, open_loop, 2, _calibration())


# peers.py ------------------------------------------------------------------------------------


def test_sustained_is_the_median_round_or_none_without_a_calibrated_generator():
    comparison = _comparison()
    assert comparison.sustained() == {peers.OURS: 100, "LitServe": 40}
    assert comparison.open[peers.OURS].interval == (96, 110)
    assert _comparison(calibrated=False).sustained() == {peers.OURS: None, "LitServe": None}


def test_table_has_one_row_per_server_with_closed_and_open_loop_figures():
    rows = _comparison().table()
    assert [row["server"] for row in rows] == [peers.OURS, "LitServe"]
    ours, litserve = rows
    assert ours["closed req/s"] == 400.0 and litserve["closed req/s"] == 200.0
    assert ours["closed p99 ms"] == pytest.approx(20, abs=1)
    assert ours["closed p50 ms"] == 10.0
    key = f"sustained req/s (p99 <= {peers.P99_TARGET_MS:.0f} ms)"
    assert ours[key] == "100 req/s (rounds 96-110, n=3)"
    assert litserve[key] == "40 req/s (rounds 40-40, n=1)"
    uncalibrated = _comparison(calibrated=False).table()
    assert [row[key] for row in uncalibrated] == ["not measured", "not measured"]


def test_open_table_lists_every_step_of_every_round_in_order():
    rows = _comparison().open_table()
    assert [(row["server"], row["rate req/s"]) for row in rows] == [
        (peers.OURS, 40), (peers.OURS, 200), (peers.OURS, 100), (peers.OURS, 104),
        (peers.OURS, 96), (peers.OURS, 100), (peers.OURS, 110), (peers.OURS, 114),
        ("LitServe", 40), ("LitServe", 42),
    ]  # fmt: skip
    assert _comparison(calibrated=False).open_table() == []


def test_peer_settings_travel_through_the_environment(monkeypatch, tmp_path):
    settings = peers.PeerSettings(tmp_path, threads=3, max_batch_size=8, max_wait_ms=2.5)
    for name, value in settings.to_environment().items():
        monkeypatch.setenv(name, value)
    assert peers.PeerSettings.from_environment() == settings
    monkeypatch.setenv("HANDBOOK_PEER_THREADS", "")
    assert peers.PeerSettings.from_environment().threads is None
    monkeypatch.delenv("HANDBOOK_PEER_MODEL_DIR")
    with pytest.raises(RuntimeError, match="HANDBOOK_PEER_MODEL_DIR is not set"):
        peers.PeerSettings.from_environment()


def test_peer_process_refuses_an_unknown_or_missing_peer(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="unknown peer 'Ray'"):
        peers.PeerProcess("Ray", tmp_path)
    monkeypatch.setattr(peers.importlib.util, "find_spec", lambda name: None)
    assert peers.available_peers() == []
    with pytest.raises(RuntimeError, match=r"LitServe is not installed: pip install '\.\[peers\]'"):
        peers.PeerProcess("LitServe", tmp_path)


def test_peer_process_commands_and_environment(monkeypatch, tmp_path):
    monkeypatch.setattr(peers.importlib.util, "find_spec", lambda name: object())
    assert peers.available_peers() == ["LitServe", "BentoML"]
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    litserve = peers.PeerProcess("LitServe", tmp_path, threads=2, log_path=tmp_path / "l.log")
    bentoml = peers.PeerProcess("BentoML", tmp_path, log_path=tmp_path / "b.log")
    assert litserve.ready_path == "/health" and bentoml.ready_path == "/readyz"
    assert litserve.command()[-3:] == [
        "handbook.serving.peer_litserve",
        "--port",
        str(litserve.port),
    ]
    assert "handbook.serving.peer_bentoml:TopicService" in bentoml.command()
    environment = litserve.environment()
    assert environment["HANDBOOK_PEER_THREADS"] == "2"
    assert environment["BENTOML_DO_NOT_TRACK"] == "True"
    root = str(Path(peers.__file__).resolve().parents[2])
    assert environment["PYTHONPATH"].split(":") == [root, "/elsewhere"]
    ours = peers._server(peers.OURS, tmp_path, 4, tmp_path / "o.log")
    assert type(ours) is process.ServerProcess and ours.options[-1] == "4"
    assert isinstance(peers._server("BentoML", tmp_path, 4, None), peers.PeerProcess)


class _FakeServer:
    def __init__(self, name: str, started: list):
        self.url = f"http://127.0.0.1/{name}"
        self.name = name
        started.append(name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None


def _fake_comparison_run(monkeypatch, calibration_p99_ms: float):
    """compare_peers on fake servers whose p99 crosses 100 ms at 200 (ours) and 60 req/s."""
    started, opened, calibrated = [], [], []
    closed = {peers.OURS: 400.0, "LitServe": 100.0}
    knee = {peers.OURS: 200.0, "LitServe": 60.0}

    def run_load(url, texts, *, concurrency, requests, label="", body="text", timeout_s=30.0):
        if concurrency == 1:  # the drain after each step: one request, alone
            opened.append(("drain", requests))
        return _result(label, closed[url.rsplit("/", 1)[1]], 20)

    def run_open_loop(
        url, texts, *, rate, seconds, connections, label, body, timeout_s, stop_above_ms
    ):
        assert stop_above_ms == peers.P99_TARGET_MS  # a failed step ends at once
        opened.append((label, rate))
        return _result(label, rate, 50 if rate <= knee[label] else 500, rate=rate)

    def calibrate_generator(rate, *, seconds, connections):
        calibrated.append(rate)
        return loadtest.Calibration(_result("null", rate, calibration_p99_ms, rate=rate))

    monkeypatch.setattr(loadtest, "run_load", run_load)
    monkeypatch.setattr(loadtest, "run_open_loop", run_open_loop)
    monkeypatch.setattr(loadtest, "calibrate_generator", calibrate_generator)
    monkeypatch.setattr(peers, "_server", lambda name, *args: _FakeServer(name, started))
    comparison = peers.compare_peers(
        "unused", ["a text"], peers=["LitServe"], threads=2, rounds=2, log_dir="unused"
    )
    return comparison, started, opened, calibrated


def test_compare_peers_calibrates_at_twice_the_top_rate_then_bisects_each_server(monkeypatch):
    comparison, started, opened, calibrated = _fake_comparison_run(monkeypatch, 1.0)
    assert started == [peers.OURS, "LitServe"]
    cap = peers.SEARCH_CAP * 400
    assert calibrated == [loadtest.CALIBRATION_HEADROOM * cap]
    # each search starts from a fraction of the server's own closed-loop throughput, and no
    # step offers more than the cap the generator was calibrated for
    steps = [step for step in opened if step[0] != "drain"]
    assert steps[:2] == [
        (peers.OURS, peers.SEARCH_BRACKET[0] * 400),
        (peers.OURS, peers.SEARCH_BRACKET[1] * 400),
    ]
    assert ("LitServe", peers.SEARCH_BRACKET[0] * 100) in steps
    assert max(rate for _, rate in steps) <= cap
    # every step is followed by one request alone, answered once the server has drained
    assert opened[1::2] == [("drain", 1)] * len(steps) and len(opened) == 2 * len(steps)
    sustained = comparison.sustained()
    assert 200 / 1.05 <= sustained[peers.OURS] <= 200
    assert 60 / 1.05 <= sustained["LitServe"] <= 60
    assert all(len(search.rounds) == 2 for search in comparison.open.values())
    assert comparison.threads == 2 and comparison.calibration.passed


def test_a_generator_too_slow_for_the_rates_reports_no_sustained_rate(monkeypatch):
    comparison, started, opened, calibrated = _fake_comparison_run(monkeypatch, 6.0)
    assert not comparison.calibration.passed
    assert started == [peers.OURS, "LitServe"] and len(comparison.closed) == 2
    assert opened == []  # no open-loop step was run at all
    assert comparison.sustained() == {peers.OURS: None, "LitServe": None}
    assert "generator calibration FAILED" in comparison.calibration.describe()


# loadtest.py: calibration and the search ----------------------------------------------------


@pytest.mark.parametrize(
    ("p99_ms", "errors", "passed"), [(4.9, 0, True), (5.0, 0, False), (1.0, 1, False)]
)
def test_calibration_passes_only_with_no_error_and_p99_under_5_ms(p99_ms, errors, passed):
    result = _result("null", 800, p99_ms, rate=800.0, errors=errors)
    assert loadtest.Calibration(result).passed is passed


def _knee_server(knee: float, calls: list | None = None):
    """A fake server whose p99 grows smoothly with the rate and crosses 100 ms at ``knee``."""

    def measure(rate: float) -> LoadResult:
        if calls is not None:
            calls.append(rate)
        return _result("fake", rate, 100 * (rate / knee) ** 3, rate=rate)

    return measure


@pytest.mark.parametrize("knee", [37.0, 237.0, 1234.0])
def test_bisection_finds_the_rate_where_p99_crosses_100_ms_within_5_percent(knee):
    calls = []
    search = loadtest.search_sustained_rate(_knee_server(knee, calls), 20, 1500, tolerance=0.05)
    assert knee / 1.05 <= search.rate <= knee < search.ceiling <= search.rate * 1.05
    assert len(search.steps) == len(calls) <= 12  # a bisection, not a sweep


def test_bisection_moves_the_bracket_and_stops_at_floor_and_cap():
    below = loadtest.search_sustained_rate(_knee_server(30.0), 100, 200)  # low fails: moves down
    assert 30 / 1.05 <= below.rate <= 30
    never = loadtest.search_sustained_rate(_knee_server(1.0), 100, 200)  # below the floor
    assert never.rate == 0.0 and never.ceiling >= 100 / 8
    always = loadtest.search_sustained_rate(_knee_server(1e6), 100, 200, cap=400)
    assert always.rate == 400 and always.ceiling == float("inf")
    with pytest.raises(ValueError, match="expected 0 < low < high"):
        loadtest.search_sustained_rate(_knee_server(1.0), 200, 100)


def test_rounds_give_the_median_and_the_spread_of_the_searches(monkeypatch):
    knees = iter([100.0, 120.0, 90.0])
    current = {"knee": next(knees)}
    finished = []

    def measure(rate):  # the server's knee moves between rounds, as a noisy machine's does
        return _knee_server(current["knee"])(rate)

    def next_round(search):
        finished.append(search)
        current["knee"] = next(knees, current["knee"])
        return search

    original = loadtest.search_sustained_rate

    def search(*args, **kwargs):
        return next_round(original(*args, **kwargs))

    monkeypatch.setattr(loadtest, "search_sustained_rate", search)
    sustained = loadtest.sustained_rounds(measure, 10, 600, rounds=3)
    low, high = sustained.interval
    assert 90 / 1.05 <= low <= 90 and 120 / 1.05 <= high <= 120
    assert 100 / 1.05 <= sustained.rate <= 100
    assert len(sustained.steps) == sum(len(s.steps) for s in finished)
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        loadtest.sustained_rounds(measure, 10, 600, rounds=0)


def test_rounds_above_the_first_bracket_climb_to_the_cap_and_no_further():
    calls = []
    sustained = loadtest.sustained_rounds(_knee_server(500.0, calls), 50, 200, rounds=2, cap=300)
    assert sustained.rates == [300, 300] and max(calls) == 300  # met at the cap: at least it
    bounded = loadtest.sustained_rounds(_knee_server(250.0), 50, 200, rounds=2, cap=300)
    assert all(250 / 1.05 <= rate <= 250 for rate in bounded.rates)


# benchmarks.py: make bench's rows ---------------------------------------------------------------


def test_peer_benchmarks_without_peers_is_empty_and_says_why(monkeypatch, capsys):
    monkeypatch.setattr(peers, "available_peers", lambda: [])
    assert benchmarks.peer_benchmarks("unused", ["a"]) == []
    assert "serving peers skipped: pip install '.[peers]'" in capsys.readouterr().out


def test_peer_benchmarks_rows_are_ratios_to_handbook_serve(monkeypatch):
    comparison = _comparison()
    comparison.open["LitServe"] = loadtest.SustainedRate([_search("LitServe", 0.0, 20, {20: 500})])
    monkeypatch.setattr(peers, "available_peers", lambda: ["LitServe"])
    monkeypatch.setattr(peers, "compare_peers", lambda *args, **kwargs: comparison)
    rows = benchmarks.peer_benchmarks("unused", ["a"], smoke=True)
    calibration = rows[0]
    assert "calibration" in calibration.group and calibration.variant == "passed"
    assert "generator calibration passed: 800 requests/s" in calibration.detail
    closed = [row for row in rows if "closed" in row.group]
    opened = [row for row in rows if "open" in row.group]
    assert [row.variant for row in closed] == [peers.OURS, "LitServe"]
    assert [row.ratio for row in closed] == [1.0, 0.5]
    assert closed[1].median_ms == pytest.approx(5.0)
    assert "2 ORT threads" in closed[0].detail
    assert opened[0].ratio == 1.0 and opened[0].median_ms == pytest.approx(10.0)
    assert opened[0].detail == "sustains 100 req/s (rounds 96-110, n=3); 8 steps"
    assert opened[1].median_ms == float("inf") and opened[1].ratio == 0.0
    comparison.open[peers.OURS] = loadtest.SustainedRate([_search(peers.OURS, 0.0, 20, {20: 500})])
    assert all(
        np.isnan(row.ratio) for row in benchmarks.peer_benchmarks("x", ["a"]) if "open" in row.group
    )


def test_peer_benchmarks_without_a_calibrated_generator_have_no_open_loop_rows(monkeypatch):
    monkeypatch.setattr(peers, "available_peers", lambda: ["LitServe"])
    monkeypatch.setattr(peers, "compare_peers", lambda *a, **k: _comparison(calibrated=False))
    rows = benchmarks.peer_benchmarks("unused", ["a"])
    assert rows[0].variant == "FAILED: no sustained rate reported"
    assert [row for row in rows if "open" in row.group] == []


def test_benchmarks_builds_a_missing_model_and_compares_the_servers(monkeypatch, tmp_path):
    from handbook.serving import model

    built, asked = [], {}
    monkeypatch.setattr(artifact, "default_model_dir", lambda: tmp_path)
    monkeypatch.setattr(model, "build_artifact", built.append)
    monkeypatch.setattr(model, "topic_corpus", lambda *args, seed: ([], [], ["t1", "t2"], []))

    def compare_servers(model_dir, texts, *, clients, requests):
        asked.update(texts=texts, clients=clients, requests=requests)
        return [_result("naive", 100, 50), _result("batched", 300, 20)]

    monkeypatch.setattr(loadtest, "compare_servers", compare_servers)
    monkeypatch.setattr(benchmarks, "tail_ablation", lambda *args, smoke: ["ablation rows"])
    monkeypatch.setattr(benchmarks, "peer_benchmarks", lambda *args, smoke: ["peer rows"])
    rows = benchmarks.benchmarks(smoke=True)
    assert built == [tmp_path]
    assert asked == {"texts": ["t1", "t2"], "clients": [64], "requests": 300}
    assert [row.ratio for row in rows[:2]] == [1.0, 3.0]
    assert rows[1].median_ms == pytest.approx(1000 / 300)
    assert rows[1].detail.startswith("300 req/s, p50 10 ms")
    assert rows[2:] == ["ablation rows", "peer rows"]
    (tmp_path / artifact.MANIFEST).write_text("{}")  # present: not built again
    benchmarks.benchmarks()
    assert built == [tmp_path] and asked["requests"] == 2000


# __main__.py ------------------------------------------------------------------------------


def test_main_build_only_builds_and_exits(monkeypatch, tmp_path, capsys):
    from handbook.serving import model

    built = []
    monkeypatch.setattr(model, "build_artifact", built.append)
    assert serve_main.main(["--build-only", "--model-dir", str(tmp_path)]) == 0
    assert built == [tmp_path]
    assert f"model folder written: {tmp_path}" in capsys.readouterr().out


def test_main_refuses_an_unverified_model_folder(tmp_path, capsys):
    assert serve_main.main(["--model-dir", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_main_serves_the_settings_it_was_given(monkeypatch, tmp_path):
    import uvicorn

    from handbook.serving import app, model

    built, served = [], {}
    monkeypatch.setattr(model, "build_artifact", built.append)
    monkeypatch.setattr(artifact, "verify_artifact", lambda directory: None)
    monkeypatch.setattr(app, "configure_json_logging", lambda level: served.update(level=level))
    monkeypatch.setattr(app, "create_app", lambda settings: ("app", settings))
    monkeypatch.setattr(
        uvicorn, "run", lambda application, **kwargs: served.update(kwargs, app=application)
    )
    argv = [
        "--build",
        "--model-dir",
        str(tmp_path),
        "--no-batching",
        "--threads",
        "3",
        "--port",
        "9",
    ]
    assert serve_main.main(argv) == 0
    assert built == [tmp_path]  # --build and no manifest: built first, then served
    settings = served["app"][1]
    assert (settings.batching, settings.threads, settings.model_dir) == (False, 3, tmp_path)
    assert settings.log_requests and settings.load_in_background
    assert (served["host"], served["port"], served["level"]) == ("127.0.0.1", 9, "info")


# process.py -------------------------------------------------------------------------------


class _FakePopen:
    """A child that ignores SIGTERM (``stubborn``) or ends on it; records what it was sent."""

    pid = 2**22 + 12345  # no such process: os.killpg raises ProcessLookupError, suppressed

    def __init__(self, stubborn: bool, returncode=None):
        self.stubborn, self.returncode, self.sent, self.waits = stubborn, returncode, [], []

    def poll(self):
        return self.returncode

    def send_signal(self, number):
        self.sent.append(number)
        if number == process.signal.SIGKILL or not self.stubborn:
            self.returncode = -number

    def wait(self, timeout=None):
        self.waits.append(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired("server", timeout)
        return self.returncode


def test_stop_kills_a_child_that_ignores_sigterm():
    child = _FakePopen(stubborn=True)
    process._stop(child)
    assert child.sent == [process.signal.SIGTERM, process.signal.SIGKILL]
    assert child.waits == [10, None]
    polite = _FakePopen(stubborn=False)
    process._stop(polite, group=False)
    assert polite.sent == [process.signal.SIGTERM]
    ended = _FakePopen(stubborn=False, returncode=0)
    process._stop(ended, group=True)  # already gone: only the group's leftovers are killed
    assert ended.sent == []


def test_json_or_empty_reads_only_an_object():
    class Response:
        def __init__(self, body):
            self.body = body

        def json(self):
            if isinstance(self.body, Exception):
                raise self.body
            return self.body

    assert process._json_or_empty(Response(ValueError("not JSON"))) == {}
    assert process._json_or_empty(Response([1, 2])) == {}
    assert process._json_or_empty(Response({"detail": "x"})) == {"detail": "x"}


def test_find_prctl_off_linux_and_without_libc(monkeypatch):
    monkeypatch.setattr(process.sys, "platform", "darwin")
    assert process._find_prctl() is None
    monkeypatch.setattr(process.sys, "platform", "linux")

    def no_libc(*args, **kwargs):
        raise OSError("no libc")

    monkeypatch.setattr(process.ctypes, "CDLL", no_libc)
    assert process._find_prctl() is None


def test_die_with_parent_asks_for_sigterm(monkeypatch):
    calls = []
    monkeypatch.setattr(process, "_PRCTL", lambda *args: calls.append(args))
    process._die_with_parent()
    assert calls == [(process._PR_SET_PDEATHSIG, process.signal.SIGTERM)]


class _Ready:
    def __init__(self, status, body):
        self.status_code, self.body = status, body

    def json(self):
        return self.body


def test_wait_until_ready_stops_at_a_model_that_failed_to_load(monkeypatch, tmp_path):
    import httpx

    server = process.ServerProcess(tmp_path, log_path=tmp_path / "server.log")
    server.process = _FakePopen(stubborn=False)
    monkeypatch.setattr(httpx, "get", lambda *args, **kwargs: _Ready(503, {"detail": "bad file"}))
    with pytest.raises(RuntimeError, match="could not load its model: bad file"):
        server._wait_until_ready()


def test_wait_until_ready_gives_up_after_the_startup_timeout(monkeypatch, tmp_path):
    import httpx

    server = process.ServerProcess(tmp_path, log_path=tmp_path / "server.log", startup_timeout=5)
    server.process = _FakePopen(stubborn=False)
    (tmp_path / "server.log").write_text("line 1\nloading\n")
    clock = iter(range(0, 100, 3))  # a fake monotonic clock: 0, 3, 6, ... seconds
    fake_time = types.SimpleNamespace(monotonic=lambda: next(clock), sleep=lambda seconds: None)
    monkeypatch.setattr(process, "time", fake_time)
    monkeypatch.setattr(httpx, "get", lambda *args, **kwargs: _Ready(503, {}))
    with pytest.raises(RuntimeError, match="not ready after 5 s:\nline 1\nloading"):
        server._wait_until_ready()
    server.log_path.unlink()
    assert server.log_tail() == ""


# autoscale.py -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capacity", "target", "message"),
    [(0, 0.5, "capacity_rps must be positive"), (10, 1.5, r"target_utilization must be in")],
)
def test_fleets_refuse_impossible_sizes(capacity, target, message):
    with pytest.raises(ValueError, match=message):
        autoscale.static_fleet(np.ones(3), capacity, target)


@pytest.mark.parametrize(("current", "utilization", "target"), [(0, 0.5, 0.5), (1, -1, 0.5)])
def test_hpa_refuses_impossible_inputs(current, utilization, target):
    with pytest.raises(ValueError, match="expected current >= 1"):
        autoscale.hpa_desired(current, utilization, target)


def test_tail_ablation_starts_each_variant_per_round_and_rates_its_p99_against_the_shipped(
    monkeypatch,
):
    started, tails = [], {"--ort-spinning": 60.0, "arrival": 90.0}

    class Server:
        def __init__(self, model_dir, *, backend, options, log_path=None):
            self.flags = options
            self.url = "http://127.0.0.1:1"
            started.append(options)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return None

    def run_load(url, texts, *, concurrency, requests, label=""):
        flags = started[-1]
        p99 = next((ms for flag, ms in tails.items() if flag in flags), 30.0)
        return _result(label, 500.0, p99)

    monkeypatch.setattr(process, "ServerProcess", Server)
    monkeypatch.setattr(loadtest, "run_load", run_load)
    rows = benchmarks.tail_ablation("unused", ["a"], rounds=2)
    assert len(started) == 2 * len(benchmarks.TAIL_ABLATION)  # fresh servers, A B C A B C
    assert all("--no-request-log" in options and "--threads" in options for options in started)
    by_name = {row.variant: row for row in rows}
    shipped, spinning, arrival = (by_name[name] for name in benchmarks.TAIL_ABLATION)
    assert shipped.ratio == 1.0 and shipped.median_ms == pytest.approx(30.0, abs=1)
    assert spinning.ratio == pytest.approx(0.5, abs=0.02) and spinning.rounds == 2
    assert arrival.ratio == pytest.approx(1 / 3, abs=0.02)
    assert arrival.detail.startswith("500 req/s, p50 45 ms, 0 errors, ")
    assert arrival.detail.endswith("leaves at once with a partial batch")


def test_settings_refuse_an_unknown_batch_window(tmp_path):
    from handbook.serving.app import Settings

    with pytest.raises(ValueError, match="batch_window must be one of worker, arrival"):
        Settings(model_dir=tmp_path, batch_window="first")
    arguments = serve_main.build_parser().parse_args(
        ["--ort-spinning", "--batch-window", "arrival"]
    )
    assert arguments.ort_spinning and arguments.batch_window == "arrival"
