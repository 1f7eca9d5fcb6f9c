"""The comparison: each tool's run scored (:func:`score`), the class graded by the three tools
(:func:`measure`), the table for ``_build/bench`` and the book's page, and ``make bench``'s
rows."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from handbook.exercises.peer_graders.answers import HOG_BYTES
from handbook.exercises.peer_graders.formats import peer_tests
from handbook.exercises.peer_graders.run import (
    ToolRun,
    merge_runs,
    run_handbook,
    run_nbgrader,
    run_otter,
)
from handbook.exercises.peer_graders.submissions import Submission, class_of_30

PAGE_INCLUDE = Path("book") / "graders_table.inc"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def says_expected(text: str, expected_values: Sequence[str]) -> bool:
    """True when feedback ``text`` names what was expected: the word (expected, Expecting) or
    one of the exercise's expected values (``True`` excepted: it says nothing)."""
    plain = _ANSI.sub("", text)
    return bool(re.search(r"expect", plain, re.IGNORECASE)) or any(
        value in plain for value in expected_values if value != "True"
    )


def score(run: ToolRun, subs: Sequence[Submission], tests) -> dict:
    """The comparison's numbers for one tool, each counted from its run."""
    by_name = {sub.name: sub for sub in subs}
    right = [s.name for s in subs if run.credited.get(s.name, set()) == set(s.credited)]
    forged = [s for s in subs if s.category == "forged"]
    borrowed = [s for s in subs if s.category == "borrowed"]

    def attacked_exercise(sub: Submission) -> str:
        return sub.description.split(":", 1)[0]

    caught = [s.name for s in forged if attacked_exercise(s) not in run.credited.get(s.name, set())]
    refused = [
        s.name for s in borrowed if attacked_exercise(s) not in run.credited.get(s.name, set())
    ]
    observed = run.observed
    endless_killed = run.per_submission.get("hostile-endless-loop", {}).get("killed", False)
    graded = {name for name in by_name if name in run.credited}
    attack_of = {s.attack: s.name for s in subs if s.attack}
    stopped_early = observed["returncode"] not in (0, 1) and not observed["stopped_by_wall_limit"]
    contained_attacks = {
        "network": observed["connections"] == 0,
        "write outside": not observed["canary_written"],
        "fork bomb": observed["left_behind"] == 0 and not observed["stopped_by_wall_limit"],
        "memory hog": observed["peak_rss_bytes"] < HOG_BYTES,
        "endless loop": not observed["stopped_by_wall_limit"] and not endless_killed,
    }
    for attack, name in attack_of.items():
        if attack == "endless loop" and endless_killed:
            continue  # our per-submission limit stopped it: reached, and not contained
        if name not in graded or (attack == "fork bomb" and stopped_early):
            contained_attacks[attack] = None  # not reached before the run was stopped
    copied = [s for s in subs if s.copy_of]
    expected_pairs = {frozenset({s.name, s.copy_of}) for s in copied}
    noticed = None if run.copies is None else len(expected_pairs & run.copies)
    false_pairs = None if run.copies is None else len(run.copies - expected_pairs)
    wrong = [s for s in subs if s.wrong]
    explained = [
        s.name
        for s in wrong
        if says_expected(
            run.feedback.get(s.name, {}).get(s.wrong[0], ""),
            [value for _, _, value in tests[s.wrong[0]]] + list(s.expected_values),
        )
    ]
    return {
        "tool": run.tool,
        "mode": run.mode,
        "seconds_per_submission": observed["wall_s"] / observed.get("gradings", len(subs)),
        "wall_s": observed["wall_s"],
        "right": len(right),
        "graded": len(graded),
        "wrongly_graded": sorted(set(by_name) - set(right)),
        "forgeries_caught": len(caught),
        "forgeries": len(forged),
        "borrowed_refused": len(refused),
        "borrowed": len(borrowed),
        "contained": contained_attacks,
        "copies_noticed": noticed,
        "copies": len(expected_pairs),
        "false_copy_pairs": false_pairs,
        "feedback_says_expected": len(explained),
        "wrong_submissions": len(wrong),
        "observed": observed,
    }


def markdown_table(results: Sequence[dict], *, machine: str, command: str) -> str:
    """The comparison as a Markdown table, one column per tool, every cell from ``results``."""

    def cell(result: dict, row: str) -> str:
        if row == "seconds per submission":
            return f"{result['seconds_per_submission']:.1f} ({result['mode']})"
        if row == "grades right out of 30":
            return str(result["right"])
        if row == "submissions graded":
            return str(result["graded"])
        if row == "forgeries caught":
            return f"{result['forgeries_caught']} of {result['forgeries']}"
        if row == "borrowed references refused":
            return f"{result['borrowed_refused']} of {result['borrowed']}"
        if row == "hostile submissions contained":
            held = [name for name, ok in result["contained"].items() if ok]
            missed = [name for name, ok in result["contained"].items() if ok is False]
            unknown = [name for name, ok in result["contained"].items() if ok is None]
            text = f"{len(held)} of {len(result['contained'])}"
            text += f" (not: {', '.join(missed)})" if missed else ""
            return text + (f" (not reached: {', '.join(unknown)})" if unknown else "")
        if row == "copies noticed":
            if result["copies_noticed"] is None:
                return "no copy report"
            return (
                f"{result['copies_noticed']} of {result['copies']}, "
                f"{result['false_copy_pairs']} other pair(s)"
            )
        if row == "feedback says what was expected":
            return f"{result['feedback_says_expected']} of {result['wrong_submissions']} wrong"
        raise KeyError(row)

    rows = [
        "submissions graded",
        "seconds per submission",
        "grades right out of 30",
        "forgeries caught",
        "borrowed references refused",
        "hostile submissions contained",
        "copies noticed",
        "feedback says what was expected",
    ]
    lines = [
        "| | " + " | ".join(r["tool"] for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    lines += [f"| {row} | " + " | ".join(cell(r, row) for r in results) + " |" for row in rows]
    return (
        "\n".join(lines)
        + f"\n\nMeasured by `{command}` on {machine}; "
        + "what each row counts: {doc}`how-to-use` (How `handbook grade` compares).\n"
    )


def measure(
    root: Path, tools: Sequence[str] = ("handbook", "otter", "nbgrader"), only: Sequence[str] = ()
) -> list[dict]:
    """Write the class under ``root`` and grade it with each of ``tools``; one result per tool
    (see :func:`score`). ``only`` keeps those submissions (for a quick try)."""
    canary_folder = root / "outside"
    canary_folder.mkdir(parents=True, exist_ok=True)
    os.chmod(canary_folder, 0o1777)
    os.chmod(root, 0o755)
    canary = canary_folder / "canary.txt"
    subs = [s for s in class_of_30(str(canary)) if not only or s.name in only]
    tests = peer_tests()
    runners = {"handbook": run_handbook, "otter": run_otter, "nbgrader": run_nbgrader}
    results = []
    for tool in tools:
        saved = root / f"{tool}-run.json"
        if saved.exists():  # graded by an earlier call on this folder (--keep): scored again
            fields = json.loads(saved.read_text())
            fields["credited"] = {name: set(found) for name, found in fields["credited"].items()}
            if fields["copies"] is not None:
                fields["copies"] = {frozenset(pair) for pair in fields["copies"]}
            run = ToolRun(**fields)
        else:
            print(f"grading {len(subs)} submissions with {tool} ...", flush=True)
            run = runners[tool](root, subs, canary)
            if run.observed["stopped_by_wall_limit"]:
                # the class took longer than the wall limit: the rest, and every attack (whose
                # containment the stop spoiled), graded again in a run of their own
                again = [s for s in subs if s.name not in run.credited or s.attack]
                print(f"{tool} stopped at the wall limit: {len(again)} graded again", flush=True)
                rest = runners[tool](root / "continued", again, canary)
                run = merge_runs(run, rest)
            saved.write_text(json.dumps(dataclasses.asdict(run), default=sorted))
        results.append(score(run, subs, tests))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "observed"}), flush=True)
    return results


def machine_description() -> str:
    import platform

    cores = os.cpu_count()
    return f"{platform.machine()} Linux, {cores} CPU cores, Python {platform.python_version()}"


def write_report(results: Sequence[dict], out_dir: Path, command: str) -> Path:
    """``out_dir/graders.md`` (the table) and ``graders.json`` (every number behind it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "graders.json").write_text(json.dumps(list(results), indent=1, default=str))
    table = out_dir / "graders.md"
    table.write_text(markdown_table(results, machine=machine_description(), command=command))
    return table


BENCH_COMMAND = "make bench BENCH=exercises.peer_graders"


def benchmarks(smoke: bool = False) -> list:
    """``make bench``'s rows: seconds per submission of each tool on the class of 30 (the
    whole table goes to ``_build/bench/graders.md``)."""
    from handbook import bench, config

    with tempfile.TemporaryDirectory(prefix="handbook-graders-") as folder:
        results = measure(Path(folder))
    table = write_report(results, config.build_dir() / "bench", BENCH_COMMAND)
    print(table.read_text())
    ours = results[0]["seconds_per_submission"]
    return [
        bench.Measurement(
            group="grading: 30 submissions, 3 graders",
            variant=result["tool"],
            median_ms=result["seconds_per_submission"] * 1000,
            ratio=result["seconds_per_submission"] / ours,
            detail=f"{result['right']}/30 right, one run; table in {table}",
        )
        for result in results
    ]
