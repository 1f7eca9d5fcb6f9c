"""The sandbox a submission's code runs in: one supervisor per submission, one process per cell.

The grader starts a *supervisor* for each submission. On Linux with ``unshare`` and ``setpriv``
(util-linux) it runs in new network, mount and PID namespaces (a user namespace too when the
grader is not root): no network interface but a down loopback, a private ``tmpfs`` of
``Limits.scratch_bytes`` over ``/tmp`` (the working folder, ``HOME`` and ``TMPDIR`` live there),
``/dev/shm`` and ``/var/tmp``, the protected paths (the submissions, the output folder, the
grader's home, the book's checkout) bind-mounted read-only, every capability dropped, and, when
the grader is root, a user id of its own. What the worker's Python needs (the interpreter, its
``libpython``, the standard library, site-packages, the book's package: :func:`interpreter_paths`)
stays readable and read-only, even where it lives in a folder that user may not enter (a pyenv
or conda Python in root's home, mode 0700): such a folder is masked by an empty one holding only
those paths. The book's reference answers are out of reach (:func:`_reference_mask_lines`): the
checkout is hidden but for the package, whose chapter check modules raise ImportError. Elsewhere
it runs as a plain child process and
:func:`isolation` says, in one line, what is not isolated.

The supervisor imports the heavy libraries the submission's cells import (``torch`` takes
seconds) once, then for each solution cell forks a fresh child, which sets the resource limits
(memory, CPU seconds, processes, file size), sends its prints to a capped file and serves one
:class:`~handbook.exercises.remote.Peer` connection: it executes the cell's source and answers
calls to the functions it defined, or sends the value of a name it assigned as plain data (a
prediction, a derivation, an open answer). When the child ends, the supervisor reports how
(exit status or signal). What that means is decoded here, beside the limits it comes from: an
:class:`Outcome` names the limit a cell hit, if any (``RLIMIT_CPU``'s SIGXCPU is the CPU limit,
``EFBIG`` or SIGXFSZ the file size limit, a ``MemoryError`` the memory limit, ...), and
:meth:`Outcome.explain` gives the sentence the student reads ("CPU time limit 60 s exceeded in
cell 7"); the grader only displays it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import select
import shlex
import shutil
import signal
import site
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import types
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from handbook.exercises import remote
from handbook.exercises.remote import wire

#: Libraries worth importing once in the supervisor when a submission's cells import them.
PRELOADABLE = ("numpy", "torch", "scipy", "sklearn", "pydantic")
#: Where the sandbox's private scratch lives, inside its own mount namespace.
SANDBOX_ROOT = "/tmp"
#: The unused user ids a root grader gives its sandboxes (one per grading process).
FIRST_SANDBOX_UID = 61000
#: How many files a cell's process may hold open at once (``RLIMIT_NOFILE``).
DESCRIPTORS = 256


@dataclass(frozen=True)
class Limits:
    """Resource limits of one solution cell (memory, CPU, processes, files) and wall clocks.

    Bytes and seconds. ``memory_bytes`` caps the data segment (``RLIMIT_DATA``: heap and
    anonymous mappings, what a large allocation uses; shared libraries do not count);
    ``processes`` is how many processes and threads the cell may have; ``file_bytes`` caps each
    file written, the cell's printed output included; ``scratch_bytes`` the whole private
    scratch folder (namespaced sandbox only); ``answer_bytes`` one message from the worker.
    """

    memory_bytes: int = 2 * 2**30
    cpu_seconds: int = 60
    processes: int = 64
    file_bytes: int = 64 * 2**20
    scratch_bytes: int = 256 * 2**20
    answer_bytes: int = 64 * 2**20
    cell_seconds: float = 300.0
    notebook_seconds: float = 1800.0

    def to_json(self) -> dict:
        return asdict(self)


def size_text(count: int) -> str:
    """``2 GiB``, ``256 MiB``, ``512 KiB``: the largest unit that gives a whole number, else MiB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count / 2**20:.1f} MiB"


@dataclass(frozen=True)
class Isolation:
    """How this machine isolates a sandbox: the launch command prefix, and what it lacks."""

    prefix: tuple[str, ...]
    as_root: bool
    missing: str | None = None

    @property
    def namespaced(self) -> bool:
        return bool(self.prefix)

    def warning(self) -> str | None:
        """One line for the instructor when submissions are not isolated, else None."""
        if self.missing is None:
            return None
        return (
            f"warning: {self.missing}; submissions run with your user's rights: they can reach "
            "the network, write wherever you can and read the book's reference answers "
            "(handbook.exercises.chNN) (limits on memory, CPU, processes, file size and time "
            "still apply)"
        )


_UNSHARE_FLAGS = ("--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc")


@functools.lru_cache(maxsize=1)
def isolation() -> Isolation:
    """Probe once whether ``unshare`` can give a sandbox its own namespaces here."""
    if not sys.platform.startswith("linux"):
        return Isolation((), False, f"no namespace sandbox on {sys.platform} (Linux only)")
    missing = [tool for tool in ("unshare", "setpriv") if shutil.which(tool) is None]
    if missing:
        return Isolation((), False, f"{' and '.join(missing)} not found (util-linux)")
    as_root = os.geteuid() == 0
    flags = _UNSHARE_FLAGS if as_root else ("--user", "--map-root-user", *_UNSHARE_FLAGS)
    prefix = ("unshare", *flags, "--")
    probe = "mount -t tmpfs -o size=1m tmpfs /tmp"
    try:
        done = subprocess.run(
            [*prefix, "/bin/sh", "-c", probe], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return Isolation((), as_root, f"unshare failed ({error})")
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return Isolation((), as_root, f"unprivileged namespaces are not available ({why})")
    return Isolation(prefix, as_root)


#: Folders that can hold a masked folder for a moment inside the sandbox's mount namespace.
_HOLDERS = ("/mnt", "/media", "/srv", "/opt")


def interpreter_paths() -> list[Path]:
    """What the worker's Python must read, whatever the install: the interpreter (a venv's link
    and the real file), its shared ``libpython`` (``LIBDIR``), the standard library, the
    site-packages and every other folder on ``sys.path``, and the book's package."""
    paths = {
        Path(sys.executable).parent,
        Path(os.path.realpath(sys.executable)).parent,
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.exec_prefix),
        Path(sys.base_exec_prefix),
        Path(__file__).resolve().parents[2],
    }
    if libdir := sysconfig.get_config_var("LIBDIR"):
        paths.add(Path(libdir))
    for entry in sys.path:
        if entry and Path(entry).exists():
            path = Path(entry).resolve()
            paths.add(path if path.is_dir() else path.parent)
    return sorted(path.resolve() for path in paths if path.exists())


def _outermost(paths: Sequence[Path]) -> list[Path]:
    """``paths`` without those inside another one of them."""
    unique = sorted(set(paths))
    return [
        path for path in unique if not any(path != o and path.is_relative_to(o) for o in unique)
    ]


def _needed_below(folder: Path, needed: Sequence[Path]) -> list[Path]:
    return _outermost([path for path in needed if path.is_relative_to(folder) and path != folder])


def _closed_folders(needed: Sequence[Path], uid: int) -> dict[Path, list[Path]]:
    """Folders the sandbox's user ``uid`` may not enter on the way to a needed path, each with
    the needed paths below it: ``/root`` (mode 0700) above a pyenv or conda Python installed
    in root's home. Inside the sandbox each is masked by an empty folder that holds only
    read-only copies of the needed paths, so the interpreter starts and nothing else shows."""
    closed: dict[Path, list[Path]] = {}
    for path in needed:
        for folder in reversed(path.parents):  # from / down
            if folder == Path("/") or any(folder.is_relative_to(c) for c in closed):
                continue
            with contextlib.suppress(OSError):
                info = folder.stat()
                enterable = (
                    info.st_mode & 0o001
                    or (info.st_uid == uid and info.st_mode & 0o100)
                    or (info.st_gid == uid and info.st_mode & 0o010)
                )
                if not enterable:
                    closed[folder] = []
                    break
    for folder in closed:
        closed[folder] = _needed_below(folder, needed)
    return closed


def _mask_lines(folder: Path, kept: Sequence[Path], holder: str, mount: str) -> list[str]:
    """Shell lines that mount ``mount`` (a tmpfs) over ``folder`` and bind ``kept`` back into
    it read-only, through ``holder``, where the old folder waits meanwhile."""
    quoted_folder = shlex.quote(str(folder))
    lines = [f"mount --rbind {quoted_folder} {holder}", f"{mount} {quoted_folder}"]
    for path in kept:
        quoted = shlex.quote(str(path))
        old = shlex.quote(f"{holder}/{path.relative_to(folder)}")
        lines.append(f"mkdir -p {quoted}; mount --rbind {old} {quoted}")
        lines.append(f"mount -o remount,bind,ro {quoted} {quoted}")
    lines.append(f"umount -l {holder}")
    return lines


#: What a chapter's reference module reads inside the sandbox: importing it fails with a reason.
_OUT_OF_REACH = (
    "raise ImportError(f\"{__name__} holds the book's reference answers: they are out of reach "
    'while a submission is graded")'
)
#: The read-only folder, inside the sandbox's scratch, that holds :data:`_OUT_OF_REACH`.
_OUT_OF_REACH_FOLDER = f"{SANDBOX_ROOT}/.out-of-reach"


def _interpreter_prefixes() -> list[Path]:
    """Where the grader's Python lives (its prefixes, the interpreter, ``libpython``, the
    site-packages): what the sandbox keeps of a checkout that holds a virtualenv."""
    paths = [
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.exec_prefix),
        Path(sys.base_exec_prefix),
        Path(sys.executable).parent,
        Path(os.path.realpath(sys.executable)).parent,
        *(Path(entry) for entry in site.getsitepackages()),
    ]
    if libdir := sysconfig.get_config_var("LIBDIR"):
        paths.append(Path(libdir))
    return [path.resolve() for path in paths if path.exists()]


def _reference_copies() -> list[Path]:
    """Every ``handbook`` package the sandbox's Python could import: the book's own and any
    other copy on ``sys.path`` (a non-editable install in site-packages)."""
    packages = [Path(__file__).resolve().parents[1]]
    for entry in [*sys.path, *site.getsitepackages()]:
        candidate = Path(entry or ".").resolve() / "handbook"
        if (candidate / "exercises").is_dir():
            packages.append(candidate.resolve())
    return list(dict.fromkeys(packages))


def _reference_mask_lines(holder: str | None) -> list[str]:
    """Shell lines that put the reference answers out of the sandbox's reach.

    The book's checkout (when the package is not installed in site-packages) is masked by an
    empty read-only folder that holds only the ``handbook`` package and the grader's Python
    (a virtualenv inside the checkout): its notebooks' solution cells, ``_build``'s executed
    copies, ``.git``'s objects and the tests are gone. In every ``handbook`` package the
    sandbox can import, each chapter's checks (``exercises/chNN.py``, where the reference
    implementations live) read :data:`_OUT_OF_REACH` and ``exercises/__pycache__`` is empty.
    """
    blocker = f"{_OUT_OF_REACH_FOLDER}/reference.py"
    lines = [
        f"mkdir -p {_OUT_OF_REACH_FOLDER}",
        f"mount -t tmpfs -o size=64k,mode=0755 tmpfs {_OUT_OF_REACH_FOLDER}",
        f"printf '%s\\n' {shlex.quote(_OUT_OF_REACH)} > {blocker}",
        f"mount -o remount,ro {_OUT_OF_REACH_FOLDER}",
    ]
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent
    installed = checkout in {Path(entry).resolve() for entry in site.getsitepackages()}
    if holder and not installed and checkout != Path("/"):
        inside = [path for path in _interpreter_prefixes() if path.is_relative_to(checkout)]
        if checkout not in inside:
            kept = _outermost([package, *inside])
            empty = "mount -t tmpfs -o size=1m,mode=0755 tmpfs"
            lines.extend(_mask_lines(checkout, kept, holder, empty))
            lines.append(f"mount -o remount,ro {shlex.quote(str(checkout))}")
    for copy in _reference_copies():
        exercises = shlex.quote(str(copy / "exercises"))
        lines.append(
            f'for module in {exercises}/ch[0-9][0-9].py; do if [ -f "$module" ]; then '
            f'mount --bind {blocker} "$module"; fi; done'
        )
        # made now, so that the grader's own import of a chapter's checks, later, writes its .pyc
        # where every sandbox already has an empty folder, never into a folder a sandbox sees
        with contextlib.suppress(OSError):
            (copy / "exercises" / "__pycache__").mkdir(exist_ok=True)
        cache = shlex.quote(str(copy / "exercises" / "__pycache__"))
        lines.append(
            f"if [ -d {cache} ]; then mount -t tmpfs -o size=64k,mode=0755,ro tmpfs {cache}; fi"
        )
    return lines


def _setup_script(limits: Limits, protected: Sequence[Path], uid: int | None) -> str:
    """The shell lines run inside the new namespaces before dropping every privilege."""
    lines = ["set -e"]
    for path in protected:
        quoted = shlex.quote(str(path))
        lines.append(
            f"if [ -e {quoted} ]; then mount --bind {quoted} {quoted}; "
            f"mount -o remount,bind,ro {quoted} {quoted}; fi"
        )
    owner = f",uid={uid},gid={uid}" if uid is not None else ""
    needed = interpreter_paths()
    holder = next((folder for folder in _HOLDERS if Path(folder).is_dir()), None)
    scratch = f"mount -t tmpfs -o size={limits.scratch_bytes},mode=0700{owner} tmpfs"
    kept = _needed_below(Path(SANDBOX_ROOT), needed)
    if kept and holder:  # a checkout or a venv under /tmp, as in a CI clone
        lines.extend(_mask_lines(Path(SANDBOX_ROOT), kept, holder, scratch))
    else:
        lines.append(f"{scratch} {SANDBOX_ROOT}")
    if uid is not None and holder:  # the sandbox's own user: it must still reach the Python
        outside_tmp = [path for path in needed if not path.is_relative_to(SANDBOX_ROOT)]
        for folder, below in _closed_folders(outside_tmp, uid).items():
            lines.extend(
                _mask_lines(folder, below, holder, "mount -t tmpfs -o size=1m,mode=0755 tmpfs")
            )
    lines.extend(_reference_mask_lines(holder))
    for folder in ("/dev/shm", "/var/tmp"):
        lines.append(
            f"if [ -d {folder} ]; then mount -t tmpfs -o size=1m,mode=0700 tmpfs {folder}; fi"
        )
    lines.append("mkdir -p /tmp/home /tmp/tmp /tmp/work")
    if uid is not None:
        lines.append(f"chown {uid}:{uid} /tmp/home /tmp/tmp /tmp/work")
    lines.append("cd /tmp/work")
    user = f"--reuid={uid} --regid={uid} --clear-groups " if uid is not None else ""
    lines.append(f'exec setpriv {user}--bounding-set=-all --inh-caps=-all --no-new-privs "$@"')
    return "\n".join(lines)


def _environment(home: str, temporary: str) -> dict[str, str]:
    package_root = str(Path(__file__).resolve().parents[2])
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": home,
        "TMPDIR": temporary,
        "PYTHONPATH": package_root,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLCONFIGDIR": temporary,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


#: The limits a cell can hit, as :attr:`Outcome.limit` names them.
LIMIT_NAMES = (
    "memory",
    "cpu",
    "processes",
    "descriptors",
    "file_size",
    "scratch",
    "cell_time",
    "notebook_time",
    "answer",
)
#: How a cell can end otherwise (:attr:`Outcome.ended`): its code raised, it called
#: ``sys.exit()``, its process broke the protocol, the supervisor stopped, a signal killed the
#: process, or it exited with a status.
OTHER_ENDINGS = ("raised", "exit", "protocol", "sandbox", "signal", "status")


@dataclass(frozen=True)
class Outcome:
    """How one cell's run in the sandbox ended, decoded here where its limits are set
    (:meth:`Sandbox.raised`, :meth:`Sandbox.stopped`): the grader only displays it.

    ``ended`` is a limit of :data:`LIMIT_NAMES` (then :attr:`limit` names it) or one of
    :data:`OTHER_ENDINGS`; ``detail`` is what the explanation quotes (the exception's name and
    message, the signal, the status, what the supervisor or the protocol said); ``gone``, for
    an exit status, what the connection said when it closed.
    """

    cell: int
    limits: Limits
    ended: str
    detail: str = ""
    gone: str = ""

    def __post_init__(self) -> None:
        if self.ended not in (*LIMIT_NAMES, *OTHER_ENDINGS):
            raise ValueError(
                f"expected an ending among {(*LIMIT_NAMES, *OTHER_ENDINGS)}, got {self.ended!r}"
            )

    @property
    def limit(self) -> str | None:
        """Which limit the cell hit (one of :data:`LIMIT_NAMES`), or None."""
        return self.ended if self.ended in LIMIT_NAMES else None

    def explain(self) -> str:
        """The sentence a student reads: ``CPU time limit 2 s exceeded in cell 3``."""
        where, limits, detail = f"in cell {self.cell}", self.limits, self.detail
        written = f"{size_text(limits.file_bytes)} exceeded {where} (printing or writing too much)"
        sentences = {
            "memory": f"memory limit {size_text(limits.memory_bytes)} exceeded {where}",
            "cpu": f"CPU time limit {limits.cpu_seconds} s exceeded {where}",
            "processes": f"process limit ({limits.processes} processes) reached {where}",
            "descriptors": f"open file limit ({DESCRIPTORS} at once) reached {where}",
            "file_size": f"file size limit {written}",
            "scratch": f"scratch space limit {size_text(limits.scratch_bytes)} exceeded {where}",
            "cell_time": f"time limit {limits.cell_seconds:g} s exceeded {where}",
            "notebook_time": f"notebook time limit {limits.notebook_seconds:g} s exceeded {where}",
            "answer": f"{detail} {where}",
            "raised": f"cell {self.cell} raised {detail}".rstrip(": "),
            "exit": f"cell {self.cell} called sys.exit() (exit({detail}))",
            "protocol": f"{detail} {where}",
            "sandbox": f"the sandbox stopped {where} ({detail})",
            "signal": f"the cell's process was killed by {detail} {where}",
            "status": f"the cell's process exited with status {detail} {where} ({self.gone})",
        }
        return sentences[self.ended]


def raised_outcome(cell: int, raised: dict, limits: Limits) -> Outcome:
    """What a cell's exception means (``raised``: its ``type`` and ``message``, as the worker
    described it): the limit it reports, or the exception itself."""
    name, message = raised.get("type"), raised.get("message", "")
    if name == "BlockingIOError":  # fork() or a new thread refused: RLIMIT_NPROC
        return Outcome(cell, limits, "processes")
    if "[Errno 24]" in message:  # EMFILE: RLIMIT_NOFILE
        return Outcome(cell, limits, "descriptors")
    if "[Errno 27]" in message:  # EFBIG: RLIMIT_FSIZE (Python ignores SIGXFSZ)
        return Outcome(cell, limits, "file_size")
    if "[Errno 28]" in message:  # ENOSPC: the private scratch folder is full
        return Outcome(cell, limits, "scratch")
    if name == "SystemExit":
        return Outcome(cell, limits, "exit", message or "")
    return Outcome(cell, limits, "raised", f"{name}: {message}")


def stopped_outcome(
    cell: int, gone: str, ending: dict, limits: Limits, *, notebook_time: bool = False
) -> Outcome:
    """Why a cell's process stopped answering: ``gone`` is what the connection said
    (:class:`~handbook.exercises.remote.PeerGone`'s message), ``ending`` the supervisor's report
    (:meth:`Sandbox.ending`); ``notebook_time`` when the cell's deadline was the notebook's."""
    stopped = ending.get("signal")
    if gone == wire.OUT_OF_MEMORY:  # RLIMIT_DATA: the worker's MemoryError
        return Outcome(cell, limits, "memory")
    if stopped == "SIGXCPU":  # RLIMIT_CPU's soft limit
        return Outcome(cell, limits, "cpu")
    if stopped == "SIGXFSZ":  # RLIMIT_FSIZE, where the signal was not ignored
        return Outcome(cell, limits, "file_size")
    if gone == wire.TIMEOUT:
        return Outcome(cell, limits, "notebook_time" if notebook_time else "cell_time")
    if gone.startswith("the answer is"):  # over Limits.answer_bytes: wire.too_large_text
        return Outcome(cell, limits, "answer", gone)
    if gone.startswith("the worker sent"):
        return Outcome(cell, limits, "protocol", gone)
    if "supervisor" in ending:
        return Outcome(cell, limits, "sandbox", str(ending["supervisor"]))
    if stopped:
        return Outcome(cell, limits, "signal", str(stopped))
    return Outcome(cell, limits, "status", str(ending.get("code")), gone)


class SandboxUnavailable(RuntimeError):
    """The sandbox itself cannot run (the supervisor died before it was ready, or a known-good
    probe cell failed): a fault of this machine's set-up, never of a submission. The message
    holds the supervisor's own stderr and what to do."""


#: The line the supervisor sends on its control socket once it is ready for cells.
_READY = b'{"ready": true}\n'
#: What to do when the sandbox cannot start, appended to :class:`SandboxUnavailable`.
_ADVICE = (
    "nothing was graded. Check that the grader's Python runs for another user (its files "
    "readable by all, e.g. `chmod -R o+rX` on its install), or grade as a non-root user; "
    "`python -m handbook.exercises.sandbox --probe` repeats this check"
)


@dataclass
class Sandbox:
    """One submission's supervisor (see the module docstring); use as a context manager."""

    limits: Limits
    preload: Sequence[str] = ()
    protected: Sequence[Path] = ()
    isolation: Isolation = field(default_factory=lambda: isolation())
    _process: subprocess.Popen | None = None
    _control: socket.socket | None = None
    _scratch: str | None = None
    _ready: bool = False

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> None:
        """Start the supervisor (it imports ``preload`` before forking any cell)."""
        self.close()
        ours, theirs = socket.socketpair()
        command = self._supervisor_command(theirs.fileno())
        if self.isolation.namespaced:
            uid = FIRST_SANDBOX_UID + os.getpid() % 4000 if self.isolation.as_root else None
            script = _setup_script(self.limits, self.protected, uid)
            command = [*self.isolation.prefix, "/bin/sh", "-c", script, "sandbox", *command]
            environment = _environment("/tmp/home", "/tmp/tmp")
            cwd = None
        else:
            self._scratch = tempfile.mkdtemp(prefix="handbook-sandbox-")
            for name in ("home", "tmp", "work"):
                os.mkdir(os.path.join(self._scratch, name))
            environment = _environment(
                os.path.join(self._scratch, "home"), os.path.join(self._scratch, "tmp")
            )
            cwd = os.path.join(self._scratch, "work")
        self._process = subprocess.Popen(
            command,
            pass_fds=(theirs.fileno(),),
            env=environment,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        theirs.close()
        self._control = ours
        self._ready = False

    def _supervisor_command(self, fd: int) -> list[str]:
        """``python -m handbook.exercises.sandbox FD SETTINGS``, run by this very Python."""
        settings = {
            "preload": list(self.preload),
            "limits": self.limits.to_json(),
            "tasks": self._tasks_outside(),
        }
        # abspath: a path through a folder the sandbox masks (``tests/../.venv``) would not run
        python = os.path.abspath(sys.executable)
        return [python, "-m", "handbook.exercises.sandbox", str(fd), json.dumps(settings)]

    def wait_ready(self, deadline: float) -> None:
        """Wait until the supervisor has imported what it preloads and waits for cells.

        Raises :class:`SandboxUnavailable` when it ends first: it ran no learner code yet, so
        that is this machine's fault, never a submission's.
        """
        if self._ready:
            return
        assert self._control is not None, "start() the sandbox first"
        data = b""
        try:
            while not data.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no answer before the deadline")
                self._control.settimeout(remaining)
                chunk = self._control.recv(4096)
                if not chunk:
                    raise ConnectionError("the supervisor closed its control socket")
                data += chunk
        except TimeoutError:
            if self.alive:
                raise remote.PeerGone(wire.TIMEOUT) from None
            raise SandboxUnavailable(
                self._startup_failure("it ended before it was ready")
            ) from None
        except OSError as error:
            raise SandboxUnavailable(self._startup_failure(str(error))) from None
        finally:
            if self._control is not None:
                self._control.settimeout(None)
        if data != _READY:
            raise SandboxUnavailable(self._startup_failure(f"it sent {data[:200]!r}"))
        self._ready = True

    def _startup_failure(self, what: str) -> str:
        """The message of :class:`SandboxUnavailable`: what happened, the supervisor's stderr."""
        status, stderr = "still running", ""
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            if self._process.returncode is not None:
                status = f"exit status {self._process.returncode}"
            if self._process.stderr is not None and self._process.returncode is not None:
                stderr = self._process.stderr.read().decode("utf-8", "replace").strip()
        said = f"; it said:\n{stderr[-4000:]}\n" if stderr else " with nothing on stderr; "
        return f"the grading sandbox did not start ({what}; supervisor {status}){said}{_ADVICE}"

    def _tasks_outside(self) -> int:
        """Tasks the kernel counts against the sandbox's user that the sandbox cannot see."""
        if self.isolation.namespaced and self.isolation.as_root:
            return 0  # a user id of its own
        return _task_count(os.getuid())

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def close(self) -> None:
        """Stop the supervisor and everything it started; remove the scratch folder."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=10)
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    @contextlib.contextmanager
    def cell(self, deadline: float) -> Iterator[remote.Peer]:
        """A fresh process for one cell, as a connected :class:`remote.Peer` (grader side).

        ``deadline`` (``time.monotonic()``) bounds every wait. Leaving the block ends the
        process; :meth:`ending` then says how it ended.
        """
        if not self.alive:
            self.start()
        self.wait_ready(deadline)
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(self._control, [b'{"op": "cell"}'], [theirs.fileno()])
        except OSError as error:
            raise remote.PeerGone(f"the sandbox did not start ({self._startup_error()})") from error
        finally:
            theirs.close()
        peer = remote.Peer(ours, "grader", max_frame_bytes=self.limits.answer_bytes)
        peer.deadline = deadline
        try:
            yield peer
        finally:
            ours.close()

    def raised(self, cell: int, raised: dict) -> Outcome:
        """What the exception a cell raised means under this sandbox's limits."""
        return raised_outcome(cell, raised, self.limits)

    def stopped(self, cell: int, gone: remote.PeerGone, *, notebook_time: bool) -> Outcome:
        """Why cell ``cell``'s process stopped answering (``gone``): how it ended (killed at
        once after a timeout, else given a moment to end by itself), decoded."""
        ending = self.ending(kill=str(gone) == wire.TIMEOUT)
        return stopped_outcome(cell, str(gone), ending, self.limits, notebook_time=notebook_time)

    def ending(self, *, kill: bool, grace: float = 2.0) -> dict:
        """How the last cell's process ended: ``{"code": n}`` or ``{"signal": "SIGXCPU"}``.

        ``kill`` kills it at once (after a timeout, or once the grader is done with it);
        otherwise it gets ``grace`` seconds to end by itself first. ``{"supervisor": "..."}``
        when the supervisor itself is gone.
        """
        if self._control is None:
            return {"supervisor": "not running"}
        try:
            if kill:
                self._control.sendall(b'{"op": "kill"}\n')
            else:
                readable, _, _ = select.select([self._control], [], [], grace)
                if not readable:
                    self._control.sendall(b'{"op": "kill"}\n')
            self._control.settimeout(15)
            data = b""
            while not data.endswith(b"\n") or data.endswith(_READY):  # a late "ready" line
                chunk = self._control.recv(4096)
                if not chunk:
                    raise ConnectionError("closed")
                data += chunk
            self._ready = True
            return json.loads(data.decode("utf-8").splitlines()[-1])
        except (OSError, ValueError) as error:
            self.close()
            return {"supervisor": f"stopped answering ({error})"}

    def _startup_error(self) -> str:
        if self._process is not None and self._process.poll() is not None and self._process.stderr:
            text = self._process.stderr.read().decode("utf-8", "replace").strip()
            return text.splitlines()[-1] if text else f"exit status {self._process.returncode}"
        return "no answer"


#: A cell any working sandbox runs: it reports the Python and NumPy that the worker runs.
PROBE_SOURCE = """import sys

import numpy


def probe():
    return [sys.version, numpy.__version__]
"""


def probe(
    limits: Limits | None = None, protected: Sequence[Path] = (), timeout: float = 120.0
) -> str:
    """Run :data:`PROBE_SOURCE` in a sandbox as grading runs a solution cell; return a line
    saying what ran. Raises :class:`SandboxUnavailable` when the supervisor cannot start, the
    cell fails, or the worker runs another Python than the grader (a library or standard
    library it could not reach, replaced by the system's)."""
    deadline = time.monotonic() + timeout
    expected = [sys.version, _numpy_version()]
    with Sandbox(limits or Limits(), preload=("numpy",), protected=protected) as box:
        try:
            with box.cell(deadline) as peer:
                reply = peer.request({"op": "exec", "source": PROBE_SOURCE, "cell": 0})
                if reply.get("raised") or "probe" not in reply.get("names", []):
                    raised = reply.get("raised") or {}
                    raise SandboxUnavailable(
                        box._startup_failure(
                            "a known-good cell failed: "
                            f"{raised.get('type', 'no probe()')}: {raised.get('message', '')}"
                        )
                    )
                got = remote.RemoteFunction(peer, "probe", "probe")()
        except remote.PeerGone as gone:
            raise SandboxUnavailable(
                box._startup_failure(f"a known-good cell did not answer ({gone})")
            ) from None
        box.ending(kill=True)
    if list(got) != expected:
        raise SandboxUnavailable(
            "the grading sandbox runs another Python than the grader: "
            f"{got[0].split()[0]} with NumPy {got[1]} against {expected[0].split()[0]} with NumPy "
            f"{expected[1]} (the grader's own libpython or standard library is out of its reach); "
            + _ADVICE
        )
    isolated = "isolated" if box.isolation.namespaced else "not isolated"
    return f"sandbox ready ({isolated}): Python {got[0].split()[0]}, NumPy {got[1]}"


def _numpy_version() -> str:
    import numpy

    return numpy.__version__


# The supervisor and the cell process (run in the sandbox) ---------------------------------


def _preload(names: Sequence[str]) -> None:
    for name in names:
        if name in PRELOADABLE:
            with contextlib.suppress(Exception):
                __import__(name)


def supervise(control: socket.socket, limits: Limits, tasks_outside: int = 0) -> None:
    """Fork one cell process per request; report how each ended; reap orphans (we may be PID 1)."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # a handler, so PID 1 can be stopped
    control.sendall(_READY)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 4096, 1)
        except OSError:
            return
        if not message:
            return
        if not fds:
            continue
        child = os.fork()
        if child == 0:
            control.close()
            _run_cell(fds[0], limits, tasks_outside)
        os.close(fds[0])
        control.sendall((json.dumps(_wait_for(child, control)) + "\n").encode())


def _wait_for(child: int, control: socket.socket) -> dict:
    killed = False
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid == child:
            break
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:  # orphans of a learner's forks
                pass
        readable, _, _ = select.select([control], [], [], 0.05)
        if readable and not killed:
            request = control.recv(4096)
            if not request or b"kill" in request:
                killed = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child, signal.SIGKILL)
            if not request:
                os.waitpid(child, 0)
                os._exit(0)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child, signal.SIGKILL)  # whatever the cell left running
    if os.WIFSIGNALED(status):
        return {"signal": signal.Signals(os.WTERMSIG(status)).name, "killed": killed}
    return {"code": os.WEXITSTATUS(status), "killed": killed}


def _set_limits(limits: Limits, tasks_outside: int) -> None:
    def cap(kind: int, value: int, hard: int | None = None) -> None:
        current_hard = resource.getrlimit(kind)[1]
        hard = value if hard is None else hard
        if current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
            value = min(value, hard)
        resource.setrlimit(kind, (value, hard))

    cap(resource.RLIMIT_DATA, limits.memory_bytes)
    cap(resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 2)
    cap(resource.RLIMIT_FSIZE, limits.file_bytes)
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_NOFILE, DESCRIPTORS)
    cap(resource.RLIMIT_NPROC, tasks_outside + _task_count(os.getuid()) + limits.processes)


def _task_count(uid: int) -> int:
    """Processes and threads of ``uid`` now (what ``RLIMIT_NPROC`` counts), as far as visible."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            text = status.read_text()
            fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields.get("Threads", "1"))
    return count


def _run_cell(fd: int, limits: Limits, tasks_outside: int) -> None:
    """The cell process: limits, prints to a capped file, then serve the grader till it hangs up."""
    try:
        os.setpgid(0, 0)
        output = os.open(f"cell-{os.getpid()}.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        _set_limits(limits, tasks_outside)
        peer = _CellPeer(socket.socket(fileno=fd), "worker", max_frame_bytes=limits.answer_bytes)
        peer.serve_forever()
    except BaseException:  # noqa: BLE001 - nothing may escape into the supervisor's loop
        os._exit(70)
    os._exit(0)


class _CellPeer(remote.Peer):
    """The worker side: adds ``exec``, which runs a cell's source in a fresh namespace, and
    ``value``, which sends the value of a name that source defined as plain data
    (:func:`remote.plain_value`: a number or a text; a NameError when it is not defined)."""

    namespace: dict | None = None

    def extra_operation(self, message: dict) -> dict:
        if message.get("op") == "value":
            name = str(message.get("name"))
            if self.namespace is None or name not in self.namespace:
                raise NameError(f"name {name!r} is not defined")
            value = remote.plain_value(self.namespace[name], self.max_frame_bytes)
            return {"reply": True, "value": value}
        if message.get("op") != "exec":
            return super().extra_operation(message)
        module = types.ModuleType("__main__")  # as in a kernel: pydantic resolves names there
        sys.modules["__main__"] = module
        namespace = module.__dict__
        code = compile(str(message["source"]), f"<cell {message.get('cell')}>", "exec")
        exec(code, namespace)  # noqa: S102 - the learner's cell, inside the sandbox
        self.namespace = namespace
        self.functions = {name: value for name, value in namespace.items() if callable(value)}
        return {"reply": True, "names": sorted(self.functions)}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m handbook.exercises.sandbox FD SETTINGS``: the supervisor (started by Sandbox).

    ``python -m handbook.exercises.sandbox --probe``: check that grading can run here.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--probe"]:
        try:
            print(probe())
        except SandboxUnavailable as error:
            raise SystemExit(f"handbook sandbox: {error}") from None
        if warning := isolation().warning():
            print(warning)
        return
    settings = json.loads(argv[1])
    control = socket.socket(fileno=int(argv[0]))
    _preload(settings.get("preload", []))
    supervise(control, Limits(**settings["limits"]), int(settings.get("tasks", 0)))


if __name__ == "__main__":
    main()
