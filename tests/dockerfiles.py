"""Reading a Dockerfile as Docker does, for the deploy tests (tests/test_deploy.py,
tests/test_deploy_classroom.py): continuation lines joined, comment lines dropped (also inside a
continued instruction)."""

from __future__ import annotations

from pathlib import Path


def instructions(path: Path) -> tuple[tuple[int, str, str], ...]:
    """``(stage index, INSTRUCTION, arguments)`` for each instruction of the Dockerfile at
    ``path``; the stage index counts the FROM lines (the first FROM is stage 0)."""
    found, pending, stage = [], "", -1
    for line in Path(path).read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        found.append((stage, keyword.upper(), arguments.strip()))
    assert not pending, f"{path} ends inside a continued line"
    return tuple(found)
