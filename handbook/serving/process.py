"""Run the server in a child process for a notebook or a test, and always stop it.

:class:`ServerProcess` starts ``python -m handbook.serving`` on 127.0.0.1 and a free port, waits
until ``GET /ready`` answers 200, and stops the process when the ``with`` block ends, on an
exception, when the interpreter exits, and (on Linux) when the parent process dies, so a
crashed or restarted notebook kernel never leaves a server behind. The server's JSON log goes
to ``log_path``. A separate process also keeps the load generator and the server out of each
other's way (no shared interpreter lock), as a real client and server are.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _find_prctl():
    """libc's ``prctl``, looked up here in the parent: between fork and exec, in a process with
    threads (a Jupyter kernel), the child may only call functions that are already resolved."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child, between fork and exec: no imports here
    # The signal is sent when the thread that forked the child exits; notebooks and tests
    # start servers from their main thread, so that is when the kernel or pytest exits.
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _temporary_log() -> Path:
    descriptor, name = tempfile.mkstemp(prefix="handbook-serve-", suffix=".log")
    os.close(descriptor)  # start() reopens it by name; an open descriptor here would leak
    return Path(name)


def _stop(process: subprocess.Popen, group: bool = False) -> None:
    """Stop the child (and, with ``group=True``, every process of its session: a server that
    forks workers of its own); SIGTERM first, SIGKILL after 10 s."""
    if process.poll() is None:
        _signal(process, signal.SIGTERM, group)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal(process, signal.SIGKILL, group)
            process.wait()
    if group:  # workers that outlived their parent
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def _signal(process: subprocess.Popen, number: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(process.pid, number)
        else:
            process.send_signal(number)


def _json_or_empty(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class ServerProcess:
    """``with ServerProcess(model_dir, backend="onnx") as server: httpx.get(server.url + ...)``.

    ``options`` are extra command-line flags of ``python -m handbook.serving`` (for example
    ``["--no-batching"]``). Raises ``RuntimeError`` with the end of the server's log if it exits
    or is not ready within ``startup_timeout`` seconds.

    Another server (chapter 5's peers) subclasses it: :meth:`command` is what runs,
    ``ready_path`` what answers 200 once it is ready, and ``process_group=True`` starts it in
    a session of its own so that stopping it also stops the workers it forks.
    """

    ready_path = "/ready"
    process_group = False

    def __init__(
        self,
        model_dir: str | Path,
        *,
        backend: str = "onnx",
        options: list[str] | None = None,
        port: int | None = None,
        log_path: str | Path | None = None,
        startup_timeout: float = 60.0,
    ):
        self.model_dir = Path(model_dir)
        self.backend = backend
        self.options = list(options or [])
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else _temporary_log()
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self._finalizer = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        """The command line of the child process."""
        return [
            sys.executable, "-m", "handbook.serving", "--model-dir", str(self.model_dir),
            "--backend", self.backend, "--host", LOOPBACK, "--port", str(self.port), *self.options,
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        """The child's environment variables."""
        return {**os.environ, "HANDBOOK_PROGRESS": "0"}

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if _PRCTL is not None else None,
                env=self.environment(),
                start_new_session=self.process_group,
            )
        self._finalizer = weakref.finalize(self, _stop, self.process, self.process_group)
        atexit.register(self._finalizer)
        try:
            self._wait_until_ready()
        except BaseException:  # an error, or Ctrl-C while waiting: never leave the server behind
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                # trust_env=False: no HTTP(S)_PROXY from the environment for a loopback call
                ready = httpx.get(self.url + self.ready_path, timeout=1.0, trust_env=False)
                if ready.status_code == 200:
                    return
                detail = _json_or_empty(ready).get("detail")
                if detail:  # the model failed to load: waiting will not help
                    raise RuntimeError(f"the server could not load its model: {detail}")
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"the server was not ready after {self.startup_timeout:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server's log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs _stop once, however many times stop() is called

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
