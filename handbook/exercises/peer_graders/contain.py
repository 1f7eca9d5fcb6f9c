"""A throwaway place for each tool's run: a PID and network namespace (:func:`contained`),
what happened inside it observed (:func:`contain_main`), and otter's pool of runs with a wall
limit each (:func:`otter_pool_main`)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from handbook.exercises.peer_graders.answers import PROBE_PORT

#: the outer wall limit of a whole tool run over the class; past it the wrapper kills the tool
RUN_WALL_S = 1800
#: the address space the wrapper allows a peer's processes: torch alone maps about 3 GiB
WRAPPER_ADDRESS_SPACE = 8 * 2**30


def contain_main(spec_path: Path) -> int:
    """Run one tool inside this PID and network namespace (started by :func:`contained`) and
    write what was observed: wall seconds, whether the wall limit had to stop it, connections
    made to the loopback probe, processes left behind, the largest resident set of any process,
    whether the canary was written."""
    import resource
    import signal
    import socket
    import threading

    spec = json.loads(Path(spec_path).read_text())
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    reached: list[bytes] = []
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", PROBE_PORT))
    server.listen(16)

    def listen() -> None:
        while True:
            connection, _ = server.accept()
            with connection:
                connection.settimeout(5)
                try:
                    reached.append(connection.recv(64))
                except OSError:
                    reached.append(b"")

    threading.Thread(target=listen, daemon=True).start()
    limited = spec["limited"]

    def limits() -> None:
        os.setsid()
        if limited:  # a peer runs student code as the grader: the wrapper's limit, not theirs
            resource.setrlimit(resource.RLIMIT_AS, (WRAPPER_ADDRESS_SPACE, WRAPPER_ADDRESS_SPACE))

    started = time.perf_counter()
    with open(spec["log"], "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            spec["command"],
            cwd=spec["cwd"],
            env=spec["env"],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=limits,
        )
        try:
            process.wait(timeout=spec["wall_s"])
            stopped = False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            stopped = True
    wall = time.perf_counter() - started
    time.sleep(1)
    _reap()
    left = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    _reap()
    result = {
        "wall_s": wall,
        "returncode": process.returncode,
        "stopped_by_wall_limit": stopped,
        "connections": len(reached),
        "left_behind": len(left),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "canary_written": Path(spec["canary"]).exists(),
    }
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def contained(
    command: Sequence[str],
    *,
    cwd: Path,
    work: Path,
    canary: Path,
    limited: bool,
    wall_s: float = RUN_WALL_S,
    env: Mapping[str, str] | None = None,
) -> dict:
    """Run ``command`` in a throwaway PID and network namespace (``unshare``), under the
    wrapper's address-space limit when ``limited``, and return what
    :func:`contain_main` observed."""
    work.mkdir(parents=True, exist_ok=True)
    canary.unlink(missing_ok=True)
    environment = dict(os.environ if env is None else env)
    spec = {
        "command": list(command),
        "cwd": str(cwd),
        "env": environment,
        "limited": limited,
        "wall_s": wall_s,
        "canary": str(canary),
        "log": str(work / "log.txt"),
        "result": str(work / "observed.json"),
    }
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    subprocess.run(
        [
            "unshare",
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            sys.executable,
            "-m",
            "handbook.exercises.peer_graders",
            "contain",
            str(spec_path),
        ],
        check=True,
        timeout=wall_s + 120,
    )
    return json.loads((work / "observed.json").read_text())


def otter_pool_main(
    autograder: Path, submissions: Path, out: Path, jobs: int, wall_s: float
) -> int:
    """``otter run`` (its non-containerised mode) on every submission, ``jobs`` at a time, each
    stopped after ``wall_s`` seconds (recorded in ``out/pool.json``): otter has no parallel
    mode without Docker, and no timeout of its own there."""
    import signal
    from concurrent.futures import ThreadPoolExecutor

    otter = Path(sys.executable).parent / "otter"

    def one(notebook: Path) -> tuple[str, dict]:
        target = out / notebook.stem
        target.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with open(target / "log.txt", "w", encoding="utf-8") as log:
            process = subprocess.Popen(
                [
                    str(otter),
                    "run",
                    "--no-logo",
                    "-a",
                    str(autograder),
                    "-o",
                    str(target),
                    str(notebook),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                process.wait(timeout=wall_s)
                killed = False
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                killed = True
        return notebook.stem, {
            "wall_s": time.perf_counter() - started,
            "killed": killed,
            "returncode": process.returncode,
        }

    with ThreadPoolExecutor(jobs) as pool:
        runs = dict(pool.map(one, sorted(submissions.glob("*.ipynb"))))
    (out / "pool.json").write_text(json.dumps(runs))
    return 0
