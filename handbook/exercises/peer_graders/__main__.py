"""``python -m handbook.exercises.peer_graders``: measure, make the peers' venv, or (inside
the wrapper) contain one tool's run and pool otter's runs."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

from handbook.exercises import peer_graders
from handbook.exercises.peer_graders.contain import contain_main, otter_pool_main
from handbook.exercises.peer_graders.run import GRADERS_VENV, make_graders_venv
from handbook.exercises.peer_graders.table import PAGE_INCLUDE, measure, write_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m handbook.exercises.peer_graders",
        description=peer_graders.__doc__.split("\n\n")[0],
    )
    commands = parser.add_subparsers(dest="command")
    measure_parser = commands.add_parser("measure", help="grade the class with the three tools")
    measure_parser.add_argument("--tools", nargs="+", default=["handbook", "otter", "nbgrader"])
    measure_parser.add_argument("--only", nargs="*", default=[], help="these submissions only")
    measure_parser.add_argument("--keep", type=Path, help="grade under this folder and keep it")
    measure_parser.add_argument(
        "--update-page",
        action="store_true",
        help=f"also write {PAGE_INCLUDE}, which the book includes",
    )
    commands.add_parser("make-venv", help=f"make {GRADERS_VENV} with the graders extra")
    contain_parser = commands.add_parser("contain", help=argparse.SUPPRESS)
    contain_parser.add_argument("spec", type=Path)
    pool_parser = commands.add_parser("otter-pool", help=argparse.SUPPRESS)
    pool_parser.add_argument("autograder", type=Path)
    pool_parser.add_argument("submissions", type=Path)
    pool_parser.add_argument("out", type=Path)
    pool_parser.add_argument("--jobs", type=int, default=2)
    pool_parser.add_argument("--wall", type=float, default=240)
    arguments = parser.parse_args(argv)
    if arguments.command == "make-venv":
        print(f"{make_graders_venv()} has otter-grader and nbgrader")
        return 0
    if arguments.command == "contain":
        return contain_main(arguments.spec)
    if arguments.command == "otter-pool":
        return otter_pool_main(
            arguments.autograder,
            arguments.submissions,
            arguments.out,
            arguments.jobs,
            arguments.wall,
        )
    if arguments.command != "measure":
        parser.print_help()
        return 2
    from handbook import config

    if arguments.keep:
        arguments.keep.mkdir(parents=True, exist_ok=True)
        results = measure(arguments.keep.resolve(), arguments.tools, arguments.only)
    else:
        with tempfile.TemporaryDirectory(prefix="handbook-graders-") as folder:
            results = measure(Path(folder), arguments.tools, arguments.only)
    command = "python -m handbook.exercises.peer_graders measure --update-page"
    table = write_report(results, config.build_dir() / "bench", command)
    print(table.read_text())
    if arguments.update_page:
        if len(results) != 3 or arguments.only:
            raise SystemExit("--update-page needs the whole class graded by the three tools")
        page = config.project_root() / PAGE_INCLUDE
        page.write_text(table.read_text())
        print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
