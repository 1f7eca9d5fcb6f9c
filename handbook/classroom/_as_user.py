"""What the instructor's commands do inside a student's home, run AS that student.

:mod:`handbook.classroom` runs this file with the student's uid and gid (never root's), so the
kernel's own permission checks apply: a symlink the student planted can only reach what the
student may read or write, never ``/etc/shadow`` or another student's folder. Standard library
only, and run by path (``python -I _as_user.py ...``), so that nothing of the package is imported
with the student's environment.

Operations (JSON on stdin where there is a payload, JSON on stdout where there is an answer):

- ``hand-out SOURCE FOLDER``: copy the files of SOURCE (the student edition) that FOLDER lacks;
  a file already there is the student's work and is kept.
- ``read FOLDER MAX_BYTES``: the ``*.ipynb`` files directly in FOLDER, ``{name: text}``, each at
  most MAX_BYTES (a larger one is listed under ``"too_large"``).
- ``write FOLDER``: write ``{relative name: text}`` from stdin under FOLDER (feedback files).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path


def hand_out(source: Path, folder: Path) -> list[str]:
    """Copy what ``folder`` lacks from ``source``; return the relative paths copied."""
    copied = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        target = folder / relative
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif not target.exists() and not target.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            copied.append(relative.as_posix())
    return copied


def read(folder: Path, max_bytes: int) -> dict:
    """``{"notebooks": {name: text}, "too_large": [names]}`` for the notebooks in ``folder``."""
    notebooks, too_large = {}, []
    if folder.is_dir():
        for path in sorted(folder.glob("*.ipynb")):
            if not path.is_file():
                continue
            if path.stat().st_size > max_bytes:
                too_large.append(path.name)
                continue
            notebooks[path.name] = path.read_text(encoding="utf-8", errors="replace")
    return {"notebooks": notebooks, "too_large": too_large}


def write(folder: Path, files: dict[str, str]) -> list[str]:
    """Write each ``{relative name: text}`` under ``folder``; return the names written."""
    written = []
    for name, text in files.items():
        target = folder / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise ValueError(f"refusing to write outside {folder}: {name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(name)
    return written


def main(argv: list[str]) -> int:
    os.umask(0o077)  # what the student's commands create is the student's alone
    operation, *arguments = argv
    if operation == "hand-out":
        answer = hand_out(Path(arguments[0]), Path(arguments[1]))
    elif operation == "read":
        answer = read(Path(arguments[0]), int(arguments[1]))
    elif operation == "write":
        answer = write(Path(arguments[0]), json.load(sys.stdin))
    else:
        raise SystemExit(f"unknown operation {operation!r}")
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
