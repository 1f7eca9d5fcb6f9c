"""The sandbox's parts, each tested directly (issues 24 and 28): every resource limit a cell
process sets, the probe of what isolation this machine offers, the supervisor's loop and how it
reports a cell's end, the cell process and its ``exec``/``value`` operations, ``main``,
``probe`` and the grader-side :class:`Sandbox` methods that decode a supervisor's failures.
Then, through a real sandbox as grading runs it: each limit, hit by a cell, is the outcome's
limit with its explanation (memory, CPU, processes, descriptors, file size, the scratch folder,
the answer's size, the cell's time), and each isolation holds (no network, no write outside the
scratch folder, the reference answers out of reach, another user's files closed).

The grading tests run all of this inside Linux namespaces, where coverage.py cannot record it;
here the supervisor runs in the test's own process (its cell process is a real fork), and each
limit is set in a plain child Python (coverage's subprocess support measures it). No sleep
orders anything and no wall-clock bound is asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest

from handbook import config
from handbook.exercises import remote, sandbox
from handbook.exercises.remote import wire

# each limit, in a fresh child Python ---------------------------------------------------------


def _limited(limits: str, body: str, tmp_path) -> subprocess.CompletedProcess:
    """Run ``body`` in a child Python after ``_set_limits(Limits(<limits>), 0)``."""
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from handbook.exercises.sandbox import Limits, _set_limits
        _set_limits(Limits({limits}), 0)
        """
    ) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )


def test_file_size_limit_stops_a_large_write(tmp_path):
    done = _limited(
        "file_bytes=4096",
        """
        # Python ignores SIGXFSZ (as the cell process does): the write fails with EFBIG
        try:
            with open("big", "wb") as file:
                file.write(b"x" * 65536)
        except OSError as error:
            print("refused", error.errno, flush=True)
        import os
        os._exit(0)  # no clean-up: coverage's data file would meet the same 4 KiB limit
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", "27"]  # EFBIG: what grading reads as the limit
    assert (tmp_path / "big").stat().st_size == 4096


def test_memory_limit_refuses_a_large_allocation(tmp_path):
    done = _limited(
        "memory_bytes=256 * 2**20",
        """
        try:
            block = bytearray(1024 * 2**20)
        except MemoryError:
            print("MemoryError")
        print(resource.getrlimit(resource.RLIMIT_DATA)[0] == 256 * 2**20)
        """,
        tmp_path,
    )
    assert done.stdout.split() == ["MemoryError", "True"], done.stderr


def test_cpu_limit_sends_sigxcpu(tmp_path):
    done = _limited(
        "cpu_seconds=1",
        """
        print(resource.getrlimit(resource.RLIMIT_CPU), flush=True)
        while True:
            pass
        """,
        tmp_path,
    )
    assert done.returncode == -signal.SIGXCPU
    assert done.stdout.strip() == "(1, 3)"  # soft limit, and a hard one 2 s later


def test_descriptor_core_and_process_limits(tmp_path):
    done = _limited(
        "processes=5",
        """
        import os
        opened = []
        try:
            while True:
                opened.append(os.open("/dev/null", os.O_RDONLY))
        except OSError as error:
            print("descriptors", error.errno, len(opened) < 256)
        for descriptor in opened:
            os.close(descriptor)
        print("core", resource.getrlimit(resource.RLIMIT_CORE))
        soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
        print("nproc", soft == hard, soft > 5)  # the tasks of the user then, plus 5
        """,
        tmp_path,
    )
    assert done.stdout.splitlines() == [
        "descriptors 24 True",  # EMFILE at 256 open descriptors
        "core (0, 0)",
        "nproc True True",
    ], done.stderr


def test_limits_never_raise_a_hard_limit_already_lower(monkeypatch):
    calls = {}
    hard_limits = {sandbox.resource.RLIMIT_DATA: 1000, sandbox.resource.RLIMIT_CPU: 5}

    def getrlimit(kind):
        return (0, hard_limits.get(kind, sandbox.resource.RLIM_INFINITY))

    fake = types.SimpleNamespace(
        **{
            name: getattr(sandbox.resource, name)
            for name in dir(sandbox.resource)
            if "RLIM" in name
        },
        getrlimit=getrlimit,
        setrlimit=lambda kind, pair: calls.__setitem__(kind, pair),
    )
    monkeypatch.setattr(sandbox, "resource", fake)
    monkeypatch.setattr(sandbox, "_task_count", lambda uid: 7)
    sandbox._set_limits(sandbox.Limits(memory_bytes=4000, cpu_seconds=60, processes=3), 2)
    assert calls[fake.RLIMIT_DATA] == (1000, 1000)  # capped by the lower hard limit
    assert calls[fake.RLIMIT_CPU] == (5, 5)
    assert calls[fake.RLIMIT_NPROC] == (12, 12)  # 2 outside + 7 visible + 3 allowed
    assert calls[fake.RLIMIT_NOFILE] == (256, 256)


def test_task_count_counts_this_process_threads():
    assert sandbox._task_count(os.getuid()) >= threading.active_count()
    assert sandbox._task_count(2**31 - 7) == 0  # a user id nobody has


# what isolation this machine offers ------------------------------------------------------------


def test_isolation_off_linux(monkeypatch):
    monkeypatch.setattr(sandbox.sys, "platform", "darwin")
    found = sandbox.isolation.__wrapped__()
    assert not found.namespaced
    assert found.missing == "no namespace sandbox on darwin (Linux only)"
    assert "can reach the network" in found.warning()


def test_isolation_without_util_linux(monkeypatch):
    monkeypatch.setattr(sandbox.sys, "platform", "linux")
    monkeypatch.setattr(sandbox.shutil, "which", lambda tool: None)
    assert sandbox.isolation.__wrapped__().missing == "unshare and setpriv not found (util-linux)"


@pytest.mark.parametrize(
    ("outcome", "missing"),
    [
        (OSError("exec failed"), "unshare failed (exec failed)"),
        (
            subprocess.CompletedProcess([], 1, "", "unshare: Operation not permitted\n"),
            "unprivileged namespaces are not available (unshare: Operation not permitted)",
        ),
        (
            subprocess.CompletedProcess([], 1, "", ""),
            "unprivileged namespaces are not available (no message)",
        ),
        (subprocess.CompletedProcess([], 0, "", ""), None),
    ],
)
def test_isolation_probe_outcomes(monkeypatch, outcome, missing):
    def run(command, **kwargs):
        assert command[0] == "unshare" and command[-1].startswith("mount -t tmpfs")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(sandbox.sys, "platform", "linux")
    monkeypatch.setattr(sandbox.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(sandbox.subprocess, "run", run)
    found = sandbox.isolation.__wrapped__()
    assert found.missing == missing
    assert found.namespaced == (missing is None)
    assert (found.warning() is None) == (missing is None)
    if missing is None:
        as_root = os.geteuid() == 0
        assert ("--map-root-user" in found.prefix) == (not as_root) and found.as_root == as_root


# the cell process's operations ------------------------------------------------------------------


@pytest.fixture
def cell_peer(monkeypatch):
    """A grader-side Peer connected to a _CellPeer served in a thread (exec replaces
    ``sys.modules["__main__"]``, put back afterwards)."""
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    ours, theirs = socket.socketpair()
    worker = sandbox._CellPeer(theirs, "worker")
    thread = threading.Thread(target=worker.serve_forever, daemon=True)
    thread.start()
    yield remote.Peer(ours, "grader")
    ours.close()
    thread.join()
    theirs.close()


def test_cell_peer_runs_a_cell_and_answers_its_names(cell_peer):
    assert cell_peer.request({"op": "value", "name": "x"})["raised"]["type"] == "NameError"
    reply = cell_peer.request({"op": "exec", "source": "x = 6 * 7\ndef f(a):\n    return a + x\n"})
    assert reply["names"] == ["f"]
    assert cell_peer.request({"op": "value", "name": "x"})["value"] == 42
    assert remote.RemoteFunction(cell_peer, "f", "f")(1) == 43
    missing = cell_peer.request({"op": "value", "name": "y"})["raised"]
    assert missing["type"] == "NameError" and "'y' is not defined" in missing["message"]
    refused = cell_peer.request({"op": "format the disk"})["raised"]
    assert refused["message"] == "unknown operation 'format the disk'"
    failed = cell_peer.request({"op": "exec", "source": "1 / 0"})["raised"]
    assert failed["type"] == "ZeroDivisionError"


def test_a_memory_error_in_the_cell_is_the_memory_limit_on_the_grader_side(cell_peer):
    """The memory limit's way from the worker to the student: a MemoryError (what RLIMIT_DATA
    raises) in the cell or in a call is a gone peer saying so, which the sandbox decodes."""
    reply = cell_peer.request({"op": "exec", "source": "def hog():\n    raise MemoryError\n"})
    assert reply["names"] == ["hog"]
    with pytest.raises(remote.PeerGone) as in_a_call:
        remote.RemoteFunction(cell_peer, "hog", "hog")()
    with pytest.raises(remote.PeerGone) as in_the_cell:
        cell_peer.request({"op": "exec", "source": "raise MemoryError"})
    for gone in (in_a_call.value, in_the_cell.value):
        assert str(gone) == wire.OUT_OF_MEMORY
        outcome = sandbox.stopped_outcome(2, str(gone), {"code": 70}, sandbox.Limits())
        assert outcome.limit == "memory"
        assert outcome.explain() == "memory limit 2 GiB exceeded in cell 2"


class _Exited(BaseException):
    def __init__(self, code):
        self.code = code


def _fake_os(monkeypatch, calls: list):
    """``sandbox.os`` with the calls that would change this process recorded instead."""
    fake = types.SimpleNamespace(**{name: getattr(os, name) for name in dir(os)})
    fake.setpgid = lambda *args: calls.append(("setpgid", args))
    fake.dup2 = lambda old, new: calls.append(("dup2", new))

    def exit_(code):
        raise _Exited(code)

    fake._exit = exit_
    monkeypatch.setattr(sandbox, "os", fake)


def test_run_cell_serves_until_the_grader_hangs_up(monkeypatch, tmp_path):
    calls = []
    _fake_os(monkeypatch, calls)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sandbox, "_set_limits", lambda limits, outside: calls.append(outside))
    ours, theirs = socket.socketpair()
    ours.close()  # the grader hangs up at once: serve_forever returns
    with pytest.raises(_Exited) as exited:
        sandbox._run_cell(theirs.detach(), sandbox.Limits(), 3)
    assert exited.value.code == 0
    assert calls == [("setpgid", (0, 0)), ("dup2", 1), ("dup2", 2), 3]
    assert [path.name for path in tmp_path.iterdir()] == [f"cell-{os.getpid()}.out"]


def test_run_cell_lets_nothing_escape_into_the_supervisor(monkeypatch, tmp_path):
    calls = []
    _fake_os(monkeypatch, calls)
    monkeypatch.chdir(tmp_path)

    def fails(limits, outside):
        raise KeyboardInterrupt

    monkeypatch.setattr(sandbox, "_set_limits", fails)
    with pytest.raises(_Exited) as exited:
        sandbox._run_cell(-1, sandbox.Limits(), 0)
    assert exited.value.code == 70


# the supervisor, in this process, forking real cell processes ------------------------------------


def test_supervisor_reports_how_each_cell_ended(monkeypatch, tmp_path):
    """Three cells: one killed on request, one that exits by itself, then a message with no
    descriptor (ignored); the supervisor returns when the grader closes its control socket."""
    monkeypatch.chdir(tmp_path)  # the cells' output files
    previous = signal.getsignal(signal.SIGTERM)
    grader, theirs = socket.socketpair()
    reports, failures = [], []

    def read_line() -> dict:
        data = b""
        while not data.endswith(b"\n"):
            chunk = grader.recv(4096)
            assert chunk, "the supervisor hung up"
            data += chunk
        return json.loads(data)

    def new_cell() -> remote.Peer:
        ours, cell = socket.socketpair()
        socket.send_fds(grader, [b'{"op": "cell"}'], [cell.fileno()])
        cell.close()
        return remote.Peer(ours, "grader")

    def drive():
        try:
            assert read_line() == {"ready": True}
            peer = new_cell()
            reply = peer.request({"op": "exec", "source": "def f():\n    return 1\n"})
            assert reply["names"] == ["f"]  # the cell runs: it has its own process group now
            grader.sendall(b'{"op": "kill"}\n')
            reports.append(read_line())
            peer.sock.close()
            peer = new_cell()
            with pytest.raises(remote.PeerGone):
                peer.request({"op": "exec", "source": "import os\nos._exit(3)\n"})
            reports.append(read_line())
            peer.sock.close()
            grader.sendall(b"no descriptor")
        except BaseException as error:  # noqa: BLE001 - reported by the test's own thread
            failures.append(error)
        finally:
            grader.close()

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    try:
        sandbox.supervise(theirs, sandbox.Limits(), 0)
    finally:
        signal.signal(signal.SIGTERM, previous)
        theirs.close()
        thread.join()
    assert not failures, failures
    assert reports == [{"signal": "SIGKILL", "killed": True}, {"code": 3, "killed": False}]
    assert len(list(tmp_path.glob("cell-*.out"))) == 2


def test_supervisor_stops_when_its_control_socket_fails(monkeypatch):
    previous = signal.getsignal(signal.SIGTERM)
    ours, theirs = socket.socketpair()

    def recv_fds(*args):
        raise OSError("gone")

    monkeypatch.setattr(sandbox.socket, "recv_fds", recv_fds)
    try:
        sandbox.supervise(theirs, sandbox.Limits())
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert ours.recv(100) == sandbox._READY
    ours.close()
    theirs.close()


def test_main_starts_the_supervisor_with_its_settings(monkeypatch):
    started = {}
    ours, theirs = socket.socketpair()
    monkeypatch.setattr(sandbox, "supervise", lambda *args: started.update(args=args))
    preloaded = []
    monkeypatch.setattr(sandbox, "_preload", preloaded.extend)
    limits = sandbox.Limits(cpu_seconds=5)
    settings = {"preload": ["numpy"], "limits": limits.to_json(), "tasks": 4}
    sandbox.main([str(theirs.detach()), json.dumps(settings)])
    control, got, tasks = started["args"]
    assert (got, tasks, preloaded) == (limits, 4, ["numpy"])
    control.close()
    ours.close()


def test_preload_imports_only_known_libraries_and_survives_a_broken_one(monkeypatch):
    imported = []

    def fake_import(name, *args):
        imported.append(name)
        raise ImportError(name)

    monkeypatch.setattr("builtins.__import__", fake_import)
    sandbox._preload(["numpy", "os", "torch"])
    monkeypatch.undo()
    assert imported == ["numpy", "torch"]


def test_main_probe_prints_what_ran_or_why_not(monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "probe", lambda: "sandbox ready (isolated)")
    monkeypatch.setattr(sandbox, "isolation", lambda: sandbox.Isolation(("unshare",), False))
    sandbox.main(["--probe"])
    assert capsys.readouterr().out == "sandbox ready (isolated)\n"
    monkeypatch.setattr(sandbox, "isolation", lambda: sandbox.Isolation((), False, "no unshare"))
    sandbox.main(["--probe"])
    assert capsys.readouterr().out.splitlines()[1].startswith("warning: no unshare;")

    def fails():
        raise sandbox.SandboxUnavailable("it did not start")

    monkeypatch.setattr(sandbox, "probe", fails)
    with pytest.raises(SystemExit, match="handbook sandbox: it did not start"):
        sandbox.main(["--probe"])


# probe's verdicts, with a fake sandbox ----------------------------------------------------------


class _FakeBox:
    """Stands in for Sandbox in :func:`sandbox.probe`: its one cell answers ``replies``."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.isolation = sandbox.Isolation((), False, "not isolated here")
        self.ended = []

    def __call__(self, limits, preload, protected):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def cell(self, deadline):
        box = self

        class Peer:
            def request(self, message):
                reply = box.replies.pop(0)
                if isinstance(reply, BaseException):
                    raise reply
                return reply

        import contextlib

        return contextlib.nullcontext(Peer())

    def ending(self, *, kill):
        self.ended.append(kill)

    def _startup_failure(self, what):
        return f"failure: {what}"


def _probe_with(monkeypatch, replies):
    box = _FakeBox(replies)
    monkeypatch.setattr(sandbox, "Sandbox", box)
    return box


def test_probe_reports_the_python_that_ran(monkeypatch):
    version = [sys.version, sandbox._numpy_version()]
    box = _probe_with(monkeypatch, [{"names": ["probe"]}, {"reply": True, "value": version}])
    monkeypatch.setattr(
        remote, "RemoteFunction", lambda peer, target, name: lambda: peer.request({})["value"]
    )
    line = sandbox.probe()
    assert line == (
        f"sandbox ready (not isolated): Python {sys.version.split()[0]}, NumPy {version[1]}"
    )
    assert box.ended == [True]


def test_probe_refuses_another_python(monkeypatch):
    _probe_with(monkeypatch, [{"names": ["probe"]}, {"value": ["3.0.0 (x)", "0.1"]}])
    monkeypatch.setattr(
        remote, "RemoteFunction", lambda peer, target, name: lambda: peer.request({})["value"]
    )
    with pytest.raises(sandbox.SandboxUnavailable, match="runs another Python than the grader"):
        sandbox.probe()


def test_probe_refuses_a_failing_or_silent_cell(monkeypatch):
    raised = {"raised": {"type": "ImportError", "message": "no numpy"}}
    _probe_with(monkeypatch, [raised])
    with pytest.raises(sandbox.SandboxUnavailable, match="known-good cell failed: ImportError"):
        sandbox.probe()
    _probe_with(monkeypatch, [{"names": []}])
    with pytest.raises(sandbox.SandboxUnavailable, match="failed: no probe"):
        sandbox.probe()
    _probe_with(monkeypatch, [remote.PeerGone("timeout")])
    with pytest.raises(sandbox.SandboxUnavailable, match="did not answer \\(timeout\\)"):
        sandbox.probe()


# the grader's side of a supervisor that fails -----------------------------------------------------


class _Ended:
    """A supervisor process that has ended with ``code`` and left ``stderr``."""

    def __init__(self, code, stderr=b""):
        self.returncode, self.pid = code, 2**22 + 54321
        self.stderr = __import__("io").BytesIO(stderr)

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        return self.returncode


def _far() -> float:
    """A deadline no test reaches: the answer is already on the socket, or never comes."""
    return time.monotonic() + 600


def _box_with_control(process=None):
    box = sandbox.Sandbox(sandbox.Limits(), isolation=sandbox.Isolation((), False, "test"))
    ours, theirs = socket.socketpair()
    box._control, box._process = ours, process
    return box, theirs


def test_wait_ready_says_why_the_supervisor_did_not_start():
    box, theirs = _box_with_control(_Ended(1, b"Traceback ...\nImportError: no handbook"))
    theirs.sendall(b"something else\n")
    with pytest.raises(sandbox.SandboxUnavailable, match="it sent b'something else") as error:
        box.wait_ready(_far())
    assert "exit status 1" in str(error.value) and "ImportError: no handbook" in str(error.value)
    theirs.close()

    box, theirs = _box_with_control(_Ended(2))
    theirs.close()
    with pytest.raises(sandbox.SandboxUnavailable, match="closed its control socket"):
        box.wait_ready(_far())
    box, theirs = _box_with_control(_Ended(2))
    with pytest.raises(sandbox.SandboxUnavailable, match="ended before it was ready"):
        box.wait_ready(0.0)  # the deadline has passed, and the supervisor is gone
    theirs.close()


def test_wait_ready_times_out_while_the_supervisor_lives():
    class Running(_Ended):
        def poll(self):
            return None

    box, theirs = _box_with_control(Running(None))
    with pytest.raises(remote.PeerGone, match="timeout"):
        box.wait_ready(0.0)
    theirs.sendall(sandbox._READY)
    box.wait_ready(_far())
    box.wait_ready(0.0)  # ready already: no wait at all
    assert box._ready
    theirs.close()
    box._process = None
    box.close()


def test_ending_reads_the_last_report_and_survives_a_dead_supervisor():
    box, theirs = _box_with_control()
    assert sandbox.Sandbox(sandbox.Limits()).ending(kill=True) == {"supervisor": "not running"}
    theirs.sendall(sandbox._READY + b'{"code": 0, "killed": false}\n')
    assert box.ending(kill=False) == {"code": 0, "killed": False}
    theirs.sendall(b'{"signal": "SIGKILL", "killed": true}\n')
    assert box.ending(kill=True) == {"signal": "SIGKILL", "killed": True}
    assert theirs.recv(100) == b'{"op": "kill"}\n'
    theirs.close()
    ended = box.ending(kill=False, grace=0.0)
    assert ended["supervisor"].startswith("stopped answering")
    assert box._control is None


def test_startup_error_names_the_supervisor_last_line():
    box = sandbox.Sandbox(sandbox.Limits())
    assert box._startup_error() == "no answer"
    box._process = _Ended(3, b"first\nlast line\n")
    assert box._startup_error() == "last line"
    box._process = _Ended(4)
    assert box._startup_error() == "exit status 4"


def test_cell_on_a_closed_control_socket_is_a_gone_peer():
    box, theirs = _box_with_control(_Ended(1, b"it crashed"))
    box._ready = True
    box.start = lambda: None  # the supervisor has ended: cell() would start another one
    box._control.close()
    gone = pytest.raises(remote.PeerGone, match="the sandbox did not start \\(it crashed\\)")
    with gone, box.cell(float("inf")):
        pass
    theirs.close()


# each limit, through a real sandbox: the cell that hits it, the outcome, the explanation -------

#: Small limits, so that each is hit in a moment (the namespaced machine's scratch included).
SMALL = sandbox.Limits(
    memory_bytes=256 * 2**20,
    cpu_seconds=1,
    processes=8,
    file_bytes=64 * 2**10,
    scratch_bytes=8 * 2**20,
    answer_bytes=64 * 2**10,
)
#: The machines whose sandbox has namespaces: only there are the isolations (and the private
#: scratch folder's size) enforced; elsewhere the grader prints a warning saying so.
NAMESPACED = pytest.mark.skipif(
    not sandbox.isolation().namespaced,
    reason="the grader's containment needs Linux namespaces (util-linux unshare, setpriv)",
)


@pytest.fixture(scope="module")
def secret():
    """A file in a folder of the grader's home that only its owner may enter (mode 0700)."""
    folder = Path(tempfile.mkdtemp(prefix=".handbook-sandbox-test-", dir=Path.home()))
    (folder / "secret.txt").write_text("the grader's secret")
    yield folder / "secret.txt"
    shutil.rmtree(folder)


@pytest.fixture(scope="module")
def box():
    """One sandbox (one supervisor) for the module, protecting what grading protects (the
    book's checkout, the grader's home); each test runs a fresh cell process in it."""
    with sandbox.Sandbox(SMALL, protected=[config.project_root(), Path.home()]) as started:
        yield started


def run_cell(box, source: str, *, call: str | None = None, args=(), seconds: float = 120.0):
    """Run ``source`` in a fresh cell process as the grader does, then call ``call(*args)`` in
    it if given: the :class:`sandbox.Outcome` of a cell that raised or stopped answering, else
    the answer of ``call`` (None without one)."""
    deadline = time.monotonic() + seconds
    try:
        with box.cell(deadline) as peer:
            reply = peer.request({"op": "exec", "source": source, "cell": 5})
            if reply.get("raised"):
                answer = box.raised(5, reply["raised"])
            else:
                answer = remote.RemoteFunction(peer, call, call)(*args) if call else None
    except remote.PeerGone as gone:
        return box.stopped(5, gone, notebook_time=False)
    box.ending(kill=True)
    return answer


@pytest.mark.parametrize(
    ("source", "limit", "explanation"),
    [
        (
            "block = bytearray(1024 * 2**20)",
            "memory",
            "memory limit 256 MiB exceeded in cell 5",
        ),
        ("while True:\n    pass", "cpu", "CPU time limit 1 s exceeded in cell 5"),
        (
            "import os\nwhile True:\n    os.fork()",
            "processes",
            "process limit (8 processes) reached in cell 5",
        ),
        (
            "import os\nheld = [os.open('/dev/null', os.O_RDONLY) for _ in range(1000)]",
            "descriptors",
            "open file limit (256 at once) reached in cell 5",
        ),
        (
            "with open('big.bin', 'wb') as handle:\n    handle.write(bytes(2**20))",
            "file_size",
            "file size limit 64 KiB exceeded in cell 5 (printing or writing too much)",
        ),
        (
            "print('x' * 2**20, flush=True)",
            "file_size",
            "file size limit 64 KiB exceeded in cell 5 (printing or writing too much)",
        ),
    ],
    ids=["memory", "cpu", "fork-bomb", "descriptors", "file-write", "printing"],
)
def test_each_limit_is_the_outcome_of_the_cell_that_hits_it(box, source, limit, explanation):
    outcome = run_cell(box, source)
    assert isinstance(outcome, sandbox.Outcome), outcome
    assert (outcome.limit, outcome.explain()) == (limit, explanation)


def test_an_answer_over_the_limit_is_its_outcome(box):
    outcome = run_cell(box, "def big():\n    return 'x' * 2**20", call="big")
    assert outcome.limit == "answer"
    assert outcome.explain().startswith("the answer is 1.0 MiB, over the limit of 65,536 bytes")
    assert run_cell(box, "def small():\n    return 'x' * 10", call="small") == "x" * 10


def test_a_cell_past_its_deadline_is_stopped_and_told_the_time_limit(box):
    outcome = run_cell(box, "import time\ntime.sleep(600)", seconds=3)
    assert (outcome.limit, outcome.explain()) == (
        "cell_time",
        "time limit 300 s exceeded in cell 5",
    )
    assert run_cell(box, "def f():\n    return 1", call="f") == 1  # the next cell runs


def test_a_cell_that_exits_or_raises_is_no_limit(box):
    exited = run_cell(box, "import sys\nsys.exit(3)")
    assert (exited.limit, exited.explain()) == (None, "cell 5 called sys.exit() (exit(3))")
    raised = run_cell(box, "{}['key']")
    assert (raised.limit, raised.explain()) == (None, "cell 5 raised KeyError: 'key'")


@NAMESPACED
def test_the_scratch_folder_limit_is_its_outcome(box):
    source = (  # the files go at the end: the other tests share this sandbox's scratch
        "import os\n"
        "try:\n"
        "    for number in range(1000):\n"
        "        with open(f'part{number}.bin', 'wb') as handle:\n"
        "            handle.write(bytes(60 * 2**10))\n"
        "finally:\n"
        "    for name in os.listdir('.'):\n"
        "        if name.startswith('part'):\n"
        "            os.remove(name)\n"
    )
    outcome = run_cell(box, source)
    assert (outcome.limit, outcome.explain()) == (
        "scratch",
        "scratch space limit 8 MiB exceeded in cell 5",
    )


# each isolation, through a real sandbox ----------------------------------------------------


@NAMESPACED
def test_no_network_reaches_outside(box):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    source = (
        "import socket\n"
        "def reach():\n"
        "    seen = [name for _, name in socket.if_nameindex()]\n"
        "    try:\n"
        f"        socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'out')\n"
        "        return [seen, 'connected']\n"
        "    except OSError as error:\n"
        "        return [seen, type(error).__name__]\n"
    )
    seen, connected = run_cell(box, source, call="reach")
    listener.settimeout(0.5)
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    assert seen == ["lo"] and connected != "connected"


@NAMESPACED
def test_no_write_lands_outside_the_scratch_folder(box):
    name = f"escaped-{os.getpid()}.txt"
    targets = [
        config.project_root() / name,  # the book's checkout: out of sight, read-only
        Path.home() / name,  # protected: read-only
        Path("/var/tmp") / name,  # the sandbox's own tmpfs: whatever lands there stays there
        Path("/tmp/work") / name,  # the scratch folder: written, never seen outside
    ]
    source = (
        "def write(paths):\n"
        "    done = []\n"
        "    for path in paths:\n"
        "        try:\n"
        "            with open(path, 'w') as handle:\n"
        "                handle.write('escaped')\n"
        "            done.append('written')\n"
        "        except OSError as error:\n"
        "            done.append(type(error).__name__)\n"
        "    return done\n"
    )
    done = run_cell(box, source, call="write", args=([str(path) for path in targets],))
    escaped = [path for path in targets if path.exists()]
    for path in escaped:
        path.unlink()
    assert escaped == []
    assert "written" not in done[:2] and done[3] == "written", done


@NAMESPACED
def test_the_reference_answers_are_out_of_reach(box):
    notebook = next((config.project_root() / "notebooks").glob("00_*.ipynb"))
    source = (
        "def borrow(notebook):\n"
        "    tried = []\n"
        "    try:\n"
        "        import handbook.exercises.ch00\n"
        "        tried.append('imported')\n"
        "    except ImportError as error:\n"
        "        tried.append(str(error))\n"
        "    try:\n"
        "        open(notebook).read()\n"
        "        tried.append('read')\n"
        "    except OSError as error:\n"
        "        tried.append(type(error).__name__)\n"
        "    return tried\n"
    )
    imported, read = run_cell(box, source, call="borrow", args=(str(notebook),))
    assert "holds the book's reference answers: they are out of reach" in imported
    assert read == "FileNotFoundError"  # the checkout is masked but for the package
    assert notebook.is_file()  # it is there, outside


@NAMESPACED
def test_another_users_files_are_closed_to_the_sandbox(box, secret):
    if not box.isolation.as_root:
        pytest.skip("a grader that is not root shares its own user id with its sandboxes")
    source = (
        "import os\n"
        "def peek(paths):\n"
        "    seen = [os.getuid()]\n"
        "    for path in paths:\n"
        "        try:\n"
        "            seen.append(open(path).read())\n"
        "        except OSError as error:\n"
        "            seen.append(type(error).__name__)\n"
        "    return seen\n"
    )
    uid, in_home, shadow = run_cell(box, source, call="peek", args=([str(secret), "/etc/shadow"],))
    assert uid != os.getuid()  # a user id of its own
    # hidden (a home that holds the grader's Python is masked but for it) or closed (0700)
    assert in_home in ("FileNotFoundError", "PermissionError")
    assert shadow == "PermissionError"  # root's file, mode 0640
    assert secret.read_text() == "the grader's secret"  # there, outside, for its owner
