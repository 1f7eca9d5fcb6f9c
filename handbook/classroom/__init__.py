"""A class on one machine: JupyterHub for a roster, each student a Unix user of their own.

``make classroom ROSTER=roster.csv INSTRUCTOR=ada`` (``python -m handbook.classroom start``)
prepares everything below, then runs JupyterHub on 127.0.0.1 with
``deploy/classroom/jupyterhub_config.py``:

- the roster is ``handbook grade --roster``'s file (:func:`handbook.exercises.export.read_roster`):
  its ``submission`` column names each student, and is their login name;
- each student, and the instructor, gets a Unix user ``jupyter-<name>`` (the prefix as The
  Littlest JupyterHub's) with a home of mode 0700; their JupyterLab runs as that user
  (:class:`handbook.classroom.hub.StudentSpawner`), so one student can neither read nor write
  another's files;
- each gets a password, generated once and written to ``<state>/passwords.csv`` (mode 0600, for
  the instructor to hand out); the hub keeps only their scrypt hashes
  (:class:`handbook.classroom.hub.RosterAuthenticator`);
- the student edition (``python -m handbook student``) is built into ``<state>/student`` and
  copied at each spawn into the student's ``~/course`` (files already there are their work and
  are kept); the kernel *Python (handbook)* is installed into ``<state>/kernel``.

The instructor then types ``python -m handbook.classroom collect`` (every student's notebooks
into ``submissions/<student>/``), ``grade --chapter 0`` (``handbook grade`` over them, into
``grades/``) and ``return`` (each feedback file into the student's ``~/course/feedback/``, owned
by the student). Every read or write in a student's home runs as that student
(:mod:`handbook.classroom._as_user`), never as root. ``submissions/`` and ``grades/`` are
created with mode 0700: students are users of this machine too.

Needs root (it creates users), JupyterHub (``pip install -e '.[classroom]'``) and Node's
``configurable-http-proxy`` (``make classroom`` installs it into ``<state>/node``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import hmac
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from handbook import config

#: The Unix users' prefix: ``jupyter-alice``, as The Littlest JupyterHub names them.
DEFAULT_PREFIX = "jupyter-"
#: Marks the Unix users this module created (their GECOS field): only those are ever removed.
MARKER = "handbook classroom"
#: A login name: what useradd accepts once prefixed (32 characters at most in all).
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,22}")
#: The folder of a student's home the course is handed out into.
COURSE = "course"
#: The largest notebook collect takes from a student (bytes).
MAX_NOTEBOOK_BYTES = 20 * 2**20
DEFAULT_PORT = 8020
#: scrypt's cost (n, r, p): about 16 MiB and a few tens of milliseconds per login.
SCRYPT = (2**14, 8, 1)
AS_USER = Path(__file__).with_name("_as_user.py")
HUB_CONFIG = Path("deploy") / "classroom" / "jupyterhub_config.py"


@dataclasses.dataclass
class Settings:
    """What the hub and the instructor's commands share, saved as ``<state>/settings.json``."""

    state: str
    students: list[str]
    instructor: str
    prefix: str = DEFAULT_PREFIX
    port: int = DEFAULT_PORT
    hub_port: int = 0
    proxy_api_port: int = 0
    proxy: str = ""
    #: the students' Python (:func:`student_python`), filled in by :func:`prepare`
    python: str = ""

    @property
    def folder(self) -> Path:
        return Path(self.state)

    @property
    def names(self) -> list[str]:
        """Every login: the students, then the instructor."""
        return [*self.students, self.instructor]

    def unix_name(self, name: str) -> str:
        return unix_name(name, self.prefix)

    def save(self) -> Path:
        path = self.folder / "settings.json"
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, state: Path) -> Settings:
        path = Path(state) / "settings.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"no classroom in {state}: start one first (make classroom ROSTER=roster.csv "
                "INSTRUCTOR=name)"
            )
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def default_state() -> Path:
    """``<checkout>/.classroom``: the hub's files, the passwords, Node's proxy, the edition."""
    return config.project_root() / ".classroom"


# --- the roster and the accounts ------------------------------------------------------------


def check_name(name: str) -> str:
    """``name`` if it can be a login and (prefixed) a Unix user name; ValueError says why not."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"{name!r} cannot be a login name: use 1 to 23 lower-case letters, digits, '-' or "
            "'_', starting with a letter (it becomes the Unix user jupyter-<name>)"
        )
    return name


def roster_names(roster: Path) -> list[str]:
    """The students of a roster (``handbook grade --roster``'s file), in its order."""
    from handbook.exercises import export

    return [check_name(name) for name in export.read_roster(Path(roster))]


def unix_name(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The Unix user a login runs as: ``jupyter-alice``."""
    return f"{prefix}{check_name(name)}"


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$<salt hex>$<hash hex>``: what the hub stores instead of the password."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    n, r, p = SCRYPT
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches a :func:`hash_password` value (a missing one never does,
    after the same work, so that a wrong name takes as long as a wrong password)."""
    if not stored or stored.count("$") != 2:
        hash_password(password, b"\0" * 16)
        return False
    _, salt, _ = stored.split("$")
    return hmac.compare_digest(hash_password(password, bytes.fromhex(salt)), stored)


def _private_file(path: Path) -> Path:
    """Create ``path`` (mode 0600) if it does not exist; make sure it is 0600 if it does."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)
    return path


def ensure_passwords(names: Sequence[str], state: Path) -> dict[str, str]:
    """A password for each name that has none yet, generated once: appended to
    ``<state>/passwords.csv`` (the instructor's copy, mode 0600) and hashed into
    ``<state>/hub/passwords.json`` (the hub's, mode 0600). Returns the new passwords."""
    handout = _private_file(Path(state) / "passwords.csv")
    hashes_path = _private_file(Path(state) / "hub" / "passwords.json")
    text = hashes_path.read_text(encoding="utf-8").strip()
    hashes = json.loads(text) if text else {}
    new = {name: secrets.token_urlsafe(9) for name in names if name not in hashes}
    if new:
        with handout.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if handout.stat().st_size == 0:
                writer.writerow(["login", "password"])
            writer.writerows(new.items())
        hashes.update({name: hash_password(password) for name, password in new.items()})
        hashes_path.write_text(json.dumps(hashes, indent=1) + "\n", encoding="utf-8")
    return new


def read_passwords(state: Path) -> dict[str, str]:
    """The instructor's copy: login -> password."""
    with (Path(state) / "passwords.csv").open(newline="", encoding="utf-8") as handle:
        return {row["login"]: row["password"] for row in csv.DictReader(handle)}


def account(name: str) -> pwd.struct_passwd | None:
    """The Unix user ``name``, or None."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def ensure_user(name: str) -> pwd.struct_passwd:
    """The Unix user ``name`` (created with a home of mode 0700 and no password if missing).

    An existing user this module did not create (no :data:`MARKER`) is refused: a roster must
    not hand someone's account to a student."""
    found = account(name)
    if found is None:
        subprocess.run(
            ["useradd", "--create-home", "--user-group", "--shell", "/bin/bash"]
            + ["--comment", MARKER, name],
            check=True,
            capture_output=True,
            text=True,
        )
        found = pwd.getpwnam(name)
    elif found.pw_gecos != MARKER:
        raise ValueError(
            f"the Unix user {name} exists and was not created by the classroom; rename the "
            "student in the roster or choose another --prefix"
        )
    os.chmod(found.pw_dir, 0o700)
    return found


def remove_user(name: str) -> bool:
    """Delete the Unix user ``name`` and its home, if this module created it."""
    found = account(name)
    if found is None or found.pw_gecos != MARKER:
        return False
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    subprocess.run(["userdel", "--remove", name], check=True, capture_output=True, text=True)
    return True


# --- acting as a student ---------------------------------------------------------------------


def run_as(
    name: str, arguments: Sequence[str], payload: object = None, *, python: str = sys.executable
) -> object:
    """Run :mod:`handbook.classroom._as_user` as the Unix user ``name`` (its uid, gid and no
    other group, in its home, with a bare environment); return its JSON answer."""
    user = pwd.getpwnam(name)
    environment = {"HOME": user.pw_dir, "USER": name, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    done = subprocess.run(
        [python, "-I", str(AS_USER), *arguments],
        input=None if payload is None else json.dumps(payload),
        capture_output=True,
        text=True,
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        cwd=user.pw_dir,
        env=environment,
        timeout=120,
    )
    if done.returncode:
        raise RuntimeError(f"as {name}: {' '.join(arguments)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def hand_out(name: str, edition: Path, *, python: str = sys.executable) -> list[str]:
    """Copy into ``~/course`` of the Unix user ``name`` what it lacks of the student edition."""
    home = pwd.getpwnam(name).pw_dir
    return run_as(name, ["hand-out", str(edition), f"{home}/{COURSE}"], python=python)


# --- preparing and starting the hub ----------------------------------------------------------


def missing_requirements(state: Path) -> list[str]:
    """What ``start`` needs and this machine lacks, one phrase each (empty: nothing)."""
    missing = []
    if os.geteuid() != 0:
        missing.append(
            "root: the classroom creates a Unix user per student (run `sudo make classroom`)"
        )
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        missing.append("JupyterHub: pip install -e '.[classroom]' (make classroom does)")
    if not proxy_command(state):
        missing.append(
            "configurable-http-proxy: it needs Node (apt-get install nodejs npm), then "
            f"npm install --prefix {Path(state) / 'node'} configurable-http-proxy "
            "(make classroom does)"
        )
    for command in ("useradd", "userdel"):
        if not shutil.which(command):
            missing.append(f"{command} (Debian: apt-get install passwd)")
    return missing


def proxy_command(state: Path) -> str | None:
    """configurable-http-proxy: ``<state>/node``'s, ``.classroom/node``'s (where make installs
    it), else the one on the PATH."""
    for folder in (Path(state), default_state()):
        local = folder / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
        if local.is_file():
            return str(local.resolve())
    return shutil.which("configurable-http-proxy")


def build_edition(state: Path, chapters: Sequence[str] = ()) -> Path:
    """The student edition in ``<state>/student`` (rebuilt: it is the hand-out, not anyone's
    work), readable by every student."""
    edition = Path(state) / "student"
    subprocess.run(
        [sys.executable, "-m", "handbook", "student", *chapters, "--out", str(edition), "--force"],
        check=True,
        capture_output=True,
        text=True,
        cwd=config.project_root(),
    )
    readable_by_all(edition)
    return edition


def install_kernel(state: Path, python: str) -> Path:
    """The kernel *Python (handbook)* in ``<state>/kernel`` (the servers' JUPYTER_PATH),
    run by ``python`` (:func:`student_python`)."""
    prefix = Path(state) / "kernel"
    subprocess.run(
        [python, "-m", "ipykernel", "install", "--prefix", str(prefix)]
        + ["--name", "handbook", "--display-name", "Python (handbook)"],
        check=True,
        capture_output=True,
        text=True,
    )
    return prefix / "share" / "jupyter"


def readable_by_all(folder: Path) -> None:
    """Folders 0755 and files 0644 under ``folder``; a symlink is left alone (chmod would change
    what it points to, such as the system's Python)."""
    for parent, folders, files in os.walk(folder):
        for name in [*folders, *files]:
            path = Path(parent) / name
            if not path.is_symlink():
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
    os.chmod(folder, 0o755)


def world_runnable(path: Path) -> bool:
    """Whether any user may run ``path``: others may search every folder above it and
    execute it (after symlinks)."""
    path = Path(path).resolve()
    if not path.is_file() or not path.stat().st_mode & 0o001:
        return False
    return all(folder.stat().st_mode & 0o001 for folder in path.parents)


def student_python(state: Path) -> Path:
    """A Python every student may run that sees this environment's packages.

    ``<state>/python`` is a virtual environment whose interpreter is a Python of this version
    that others may run (this one's base, else ``/usr/bin/python3.X``: pyenv's lives in root's
    home, of mode 0700), whose one ``.pth`` adds this environment's site-packages and whose
    ``share`` and ``etc`` are this environment's (JupyterLab finds its assets, its extensions and
    its server configuration under ``sys.prefix``)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [Path(getattr(sys, "_base_executable", sys.executable))]
    candidates += [Path(f"{folder}/python{version}") for folder in ("/usr/bin", "/usr/local/bin")]
    base = next((path for path in candidates if world_runnable(path)), None)
    if base is None:
        raise RuntimeError(
            f"no Python {version} that other users may run (tried {', '.join(map(str, candidates))}"
            f"): install one (Debian: apt-get install python{version})"
        )
    bridge = Path(state) / "python"
    site_packages = bridge / "lib" / f"python{version}" / "site-packages"
    site_packages.mkdir(parents=True, exist_ok=True)
    (bridge / "bin").mkdir(exist_ok=True)
    (bridge / "pyvenv.cfg").write_text(
        f"home = {base.parent}\ninclude-system-site-packages = false\nversion = {version}\n"
    )
    python = bridge / "bin" / "python"
    python.unlink(missing_ok=True)
    python.symlink_to(base)
    for shared in ("share", "etc"):  # JupyterLab, its extensions and its server configuration
        link = bridge / shared
        if link.is_symlink():
            link.unlink()
        if (Path(sys.prefix) / shared).is_dir():
            link.symlink_to(Path(sys.prefix) / shared)
    paths = dict.fromkeys(sysconfig.get_paths()[kind] for kind in ("purelib", "platlib"))
    (site_packages / "handbook-classroom.pth").write_text(
        "".join(f"import site; site.addsitedir({path!r})\n" for path in paths)
    )
    readable_by_all(bridge)
    return python


def check_reachable(name: str, python: str) -> None:
    """Fail with one line when the Unix user ``name`` cannot run this environment's Python and
    import JupyterHub and the book (a checkout in a home folder of mode 0700, for one)."""
    user = pwd.getpwnam(name)
    done = subprocess.run(
        [python, "-c", "import handbook, jupyterhub"],
        capture_output=True,
        text=True,
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        cwd=user.pw_dir,
        env={"HOME": user.pw_dir, "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(
            f"the students' servers run {python} as {name}, who cannot use it ({last}): put "
            "the checkout where every user may read it (e.g. /opt/handbook)"
        )


def prepare(settings: Settings, chapters: Sequence[str] = ()) -> dict[str, str]:
    """Everything the hub needs before it starts; return the passwords generated this time."""
    state = settings.folder
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o755)  # the servers read the edition and the kernel from it
    (state / "hub").mkdir(exist_ok=True)
    os.chmod(state / "hub", 0o700)  # the database, the cookie secret, the password hashes
    for name in settings.names:
        ensure_user(settings.unix_name(name))
    settings.python = str(student_python(state))
    check_reachable(settings.unix_name(settings.students[0]), settings.python)
    new = ensure_passwords(settings.names, state)
    build_edition(state, chapters)
    install_kernel(state, settings.python)
    settings.save()
    return new


def hub_command() -> list[str]:
    """The command that runs the hub (as root, this environment's Python) with this checkout's
    configuration."""
    return [sys.executable, "-m", "jupyterhub", "-f", str(config.project_root() / HUB_CONFIG)]


def start(settings: Settings, chapters: Sequence[str] = ()) -> int:
    """Prepare, then become JupyterHub (in the foreground, until Ctrl-C or SIGTERM, which stop
    the students' servers too)."""
    new = prepare(settings, chapters)
    passwords = settings.folder / "passwords.csv"
    if new:
        print(f"{len(new)} new password(s) in {passwords} (mode 0600): hand them out")
    print(
        f"the class: http://127.0.0.1:{settings.port}/ ({len(settings.students)} student(s), "
        f"instructor {settings.instructor}); passwords in {passwords}",
        flush=True,
    )
    environment = {**os.environ, "HANDBOOK_CLASSROOM_STATE": str(settings.folder.resolve())}
    command = hub_command()
    os.chdir(settings.folder / "hub")
    os.execve(command[0], command, environment)  # the hub gets the signals: Ctrl-C stops it
    return 1  # not reached


def remove(settings: Settings) -> list[str]:
    """Delete the class's Unix users and their homes (the end of a course, or of a test)."""
    return [name for name in map(settings.unix_name, settings.names) if remove_user(name)]


# --- collect, grade, return ------------------------------------------------------------------


def private_folder(path: Path) -> Path:
    """``path`` created if missing, mode 0700: students are users of this machine too."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def collect(settings: Settings, submissions: Path) -> dict[str, list[str]]:
    """Every student's notebooks of ``~/course`` into ``submissions/<student>/`` (read as the
    student); return student -> the notebooks collected."""
    submissions = private_folder(submissions)
    collected = {}
    for name in settings.students:
        unix = settings.unix_name(name)
        if account(unix) is None:
            print(f"{name}: no Unix user {unix}, nothing collected", file=sys.stderr)
            continue
        home = pwd.getpwnam(unix).pw_dir
        answer = run_as(
            unix, ["read", f"{home}/{COURSE}", str(MAX_NOTEBOOK_BYTES)], python=settings.python
        )
        for skipped in answer["too_large"]:
            print(f"{name}: {skipped} is over {MAX_NOTEBOOK_BYTES} bytes, not collected")
        folder = private_folder(submissions / name)
        for notebook, text in answer["notebooks"].items():
            (folder / notebook).write_text(text, encoding="utf-8")
        collected[name] = sorted(answer["notebooks"])
    return collected


def chapter_files(submissions: Path, chapter: int, students: Sequence[str]) -> list[Path]:
    """Each student's collected notebook of ``chapter`` (``submissions/alice/00_*.ipynb``)."""
    files = []
    for name in students:
        found = sorted((Path(submissions) / name).glob(f"{chapter:02d}_*.ipynb"))
        if found:
            files.append(found[0])
        else:
            print(f"{name}: no chapter-{chapter} notebook collected, not graded", file=sys.stderr)
    return files


def grade_command(
    files: Sequence[Path], out: Path, *, chapter: int, roster: Path | None, jobs: int
) -> list[str]:
    """``python -m handbook grade`` over the collected notebooks."""
    command = [sys.executable, "-m", "handbook", "grade", *map(str, files), "--out", str(out)]
    command += ["--chapter", str(chapter), "--jobs", str(jobs)]
    return command + (["--roster", str(roster)] if roster else [])


def grade(
    settings: Settings,
    submissions: Path,
    out: Path,
    *,
    chapter: int,
    roster: Path | None = None,
    jobs: int = 2,
) -> int:
    """Grade every student's collected notebook of ``chapter`` with ``handbook grade``, into
    ``out`` (mode 0700); its exit status."""
    files = chapter_files(submissions, chapter, settings.students)
    if not files:
        print(f"no chapter-{chapter} notebook in {submissions}: collect first", file=sys.stderr)
        return 1
    private_folder(out)
    command = grade_command(files, out, chapter=chapter, roster=roster, jobs=jobs)
    return subprocess.call(command, cwd=config.project_root())


def feedback_of(grades: Path, name: str, students: Sequence[str]) -> dict[str, str]:
    """``{file name: text}`` of a student's feedback in ``grades/feedback`` (``alice/00_x.md``;
    with a single student graded, handbook grade writes ``00_x.md`` directly)."""
    folder = Path(grades) / "feedback"
    own = folder / name
    if own.is_dir():
        files = sorted(own.glob("*.md"))
    elif len(students) == 1:
        files = sorted(folder.glob("*.md"))
    else:
        files = []
    return {path.name: path.read_text(encoding="utf-8") for path in files}


def return_feedback(settings: Settings, grades: Path) -> dict[str, list[str]]:
    """Each student's feedback files into ``~/course/feedback/`` (written as the student, so
    they are theirs); return student -> the files returned."""
    graded = [name for name in settings.students if (Path(grades) / "feedback" / name).is_dir()]
    returned = {}
    for name in settings.students:
        files = feedback_of(grades, name, graded or settings.students)
        unix = settings.unix_name(name)
        if not files or account(unix) is None:
            continue
        home = pwd.getpwnam(unix).pw_dir
        returned[name] = run_as(
            unix, ["write", f"{home}/{COURSE}/feedback"], files, python=settings.python
        )
    return returned


# --- the command line ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m handbook.classroom",
        description="A class on JupyterHub on this machine: start it, then collect, grade and "
        "return the students' work (see book/classroom.md).",
    )
    parser.add_argument(
        "--state", type=Path, default=None, help="the classroom's folder (default: .classroom)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="say in one line what this machine lacks")
    check.set_defaults(handler=command_check)
    begin = commands.add_parser("start", help="create the users and run the hub")
    begin.add_argument("--roster", type=Path, required=True, help="handbook grade's roster CSV")
    begin.add_argument("--instructor", required=True, help="the instructor's login (hub admin)")
    begin.add_argument("--prefix", default=DEFAULT_PREFIX, help="Unix user names' prefix")
    begin.add_argument("--port", type=int, default=DEFAULT_PORT, help="the class's port")
    begin.add_argument("--hub-port", type=int, default=0, help="the hub's own (default 8081)")
    begin.add_argument("--proxy-api-port", type=int, default=0, help="the proxy's API (8001)")
    begin.add_argument("--chapters", nargs="*", default=[], help="default: every chapter")
    begin.set_defaults(handler=command_start)
    gather = commands.add_parser("collect", help="students' notebooks into submissions/")
    gather.add_argument("--submissions", type=Path, default=Path("submissions"))
    gather.set_defaults(handler=command_collect)
    mark = commands.add_parser("grade", help="handbook grade over the collected notebooks")
    mark.add_argument("--chapter", type=int, required=True)
    mark.add_argument("--submissions", type=Path, default=Path("submissions"))
    mark.add_argument("--out", type=Path, default=Path("grades"))
    mark.add_argument("--roster", type=Path, help="Canvas ids for canvas.csv")
    mark.add_argument("--jobs", type=int, default=2)
    mark.set_defaults(handler=command_grade)
    give = commands.add_parser("return", help="feedback files into each student's ~/course")
    give.add_argument("--grades", type=Path, default=Path("grades"))
    give.set_defaults(handler=command_return)
    end = commands.add_parser("remove", help="delete the class's Unix users and their homes")
    end.set_defaults(handler=command_remove)
    return parser


def command_check(arguments: argparse.Namespace) -> int:
    missing = missing_requirements(arguments.state)
    if missing:
        print("make classroom needs " + "; ".join(missing), file=sys.stderr)
    return 1 if missing else 0


def command_start(arguments: argparse.Namespace) -> int:
    if command_check(arguments):
        return 1
    settings = Settings(
        state=str(arguments.state.resolve()),
        students=roster_names(arguments.roster),
        instructor=check_name(arguments.instructor),
        prefix=arguments.prefix,
        port=arguments.port,
        hub_port=arguments.hub_port,
        proxy_api_port=arguments.proxy_api_port,
        proxy=proxy_command(arguments.state) or "",
    )
    if settings.instructor in settings.students:
        raise ValueError(f"{settings.instructor} is both on the roster and the instructor")
    return start(settings, arguments.chapters)


def command_collect(arguments: argparse.Namespace) -> int:
    settings = Settings.load(arguments.state)
    for name, notebooks in collect(settings, arguments.submissions).items():
        print(f"{name}: {len(notebooks)} notebook(s) into {arguments.submissions / name}")
    return 0


def command_grade(arguments: argparse.Namespace) -> int:
    settings = Settings.load(arguments.state)
    return grade(
        settings,
        arguments.submissions,
        arguments.out,
        chapter=arguments.chapter,
        roster=arguments.roster,
        jobs=arguments.jobs,
    )


def command_return(arguments: argparse.Namespace) -> int:
    settings = Settings.load(arguments.state)
    returned = return_feedback(settings, arguments.grades)
    for name, files in returned.items():
        print(f"{name}: {', '.join(files)} into ~{settings.unix_name(name)}/{COURSE}/feedback")
    if not returned:
        print(f"no feedback in {arguments.grades / 'feedback'}: grade first", file=sys.stderr)
    return 0 if returned else 1


def command_remove(arguments: argparse.Namespace) -> int:
    removed = remove(Settings.load(arguments.state))
    print(f"removed {len(removed)} Unix user(s): {', '.join(removed) or 'none'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    arguments.state = arguments.state or default_state()
    try:
        return arguments.handler(arguments)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"classroom: {error}", file=sys.stderr)
        return 1
