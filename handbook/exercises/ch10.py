"""Checks for the exercises of chapter 10, the toolchain.

Each check runs the learner's function on several inputs, edge cases included, and compares it
with the library or the tested reference that does the same job: the run MLflow would rank first
(10.1), ``torch.utils.data.DistributedSampler`` (10.2), and
:func:`handbook.toolchain.task_label` (10.3). Exercise 10.4 is a derivation, checked against
what a real ``DistributedSampler`` hands out, with the typical slips named. Call them from the
check cells: ``ch10.check_best_run(best_run)``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from handbook import toolchain
from handbook.exercises.checks import (
    DERIVATION,
    Case,
    ExerciseResult,
    check_exercise,
    check_number,
    describe,
    expect,
    expect_close,
    expect_type,
)
from handbook.i18n import _

# Exercise 10.1 --------------------------------------------------------------------------------


def _runs(rows: list[tuple[str, str, float | None, float | None]]) -> pd.DataFrame:
    """A runs table like ``handbook.tracking.runs_table``: run_id, status, two metrics."""
    return pd.DataFrame(
        {
            "run_id": [row[0] for row in rows],
            "status": [row[1] for row in rows],
            "metrics.val_accuracy": [np.nan if row[2] is None else row[2] for row in rows],
            "metrics.val_loss": [np.nan if row[3] is None else row[3] for row in rows],
        }
    )


def _reference_best_run(runs: pd.DataFrame, metric: str, higher_is_better: bool) -> str | None:
    column = f"metrics.{metric}"
    usable = runs[(runs["status"] == "FINISHED") & runs[column].notna()]
    if usable.empty:
        return None
    ranked = usable.sort_values(column, ascending=not higher_is_better, kind="stable")
    return str(ranked["run_id"].iloc[0])


def check_best_run(best_run: Callable[[pd.DataFrame, str, bool], str | None]) -> ExerciseResult:
    """Exercise 10.1: ``best_run(runs, metric, higher_is_better)``.

    ``runs``: a DataFrame with columns ``run_id``, ``status`` and ``metrics.<name>`` (NaN where a
    run never logged the metric), as ``handbook.tracking.runs_table`` returns it. The answer is
    the ``run_id`` (a str) of the finished run with the best value of ``metrics.<metric>``
    (largest if ``higher_is_better``, else smallest; the first such row on a tie), or ``None``
    when no finished run has the metric.
    """
    table = _runs(
        [
            ("a", "FINISHED", 0.91, 0.30),
            ("b", "FINISHED", 0.95, 0.25),
            ("c", "FINISHED", 0.89, 0.20),
        ]
    )
    with_failed = _runs(
        [
            ("ok", "FINISHED", 0.90, 0.40),
            ("crashed", "FAILED", 0.99, 0.10),
            ("running", "RUNNING", 0.97, 0.05),
        ]
    )
    with_missing = _runs([("early", "FINISHED", None, None), ("late", "FINISHED", 0.80, 0.5)])
    tie = _runs([("first", "FINISHED", 0.9, 0.3), ("second", "FINISHED", 0.9, 0.3)])
    cases = [
        _best_run_case(
            best_run, _("three finished runs, highest accuracy"), table, "val_accuracy", True
        ),
        _best_run_case(best_run, _("three finished runs, lowest loss"), table, "val_loss", False),
        _best_run_case(
            best_run,
            _("a failed and a running run score better"),
            with_failed,
            "val_accuracy",
            True,
        ),
        _best_run_case(
            best_run, _("a run that never logged the metric (NaN)"), with_missing, "val_loss", False
        ),
        _best_run_case(best_run, _("two runs tie: the first row wins"), tie, "val_accuracy", True),
        _best_run_case(
            best_run,
            _("no finished run has the metric"),
            _runs([("x", "FAILED", 0.5, 0.5), ("y", "FINISHED", None, None)]),
            "val_accuracy",
            True,
        ),
        Case(_("the table is left unchanged"), lambda: _expect_table_unchanged(best_run, table)),
    ]
    return check_exercise("10.1", _("the best run"), cases)


def _best_run_case(best_run, description, runs, metric, higher_is_better) -> Case:
    def run() -> None:
        what = f"best_run(runs, {metric!r}, higher_is_better={higher_is_better})"
        result = best_run(runs.copy(), metric, higher_is_better)
        expected = _reference_best_run(runs, metric, higher_is_better)
        if expected is None:
            expect(
                result is None,
                _("{what}: expected None (no finished run has it), got {result}").format(
                    what=what, result=repr(result)
                ),
            )
            return
        expect_type(result, str, what)
        expect(
            result == expected,
            _("{what}: expected run {expected}, got {result}").format(
                what=what, expected=repr(expected), result=repr(result)
            ),
        )

    return Case(description, run)


def _expect_table_unchanged(best_run, table: pd.DataFrame) -> None:
    original = table.copy()
    best_run(table, "val_accuracy", True)
    expect(table.equals(original), _("the runs table passed in was modified (sorted in place?)"))


# Exercise 10.2 --------------------------------------------------------------------------------


def _sampler_indices(n: int, world_size: int, rank: int, epoch: int, seed: int) -> list[int]:
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(
        range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed
    )
    sampler.set_epoch(epoch)
    return list(sampler)


def check_shard_indices(
    shard_indices: Callable[[int, int, int, int, int], list[int]],
) -> ExerciseResult:
    """Exercise 10.2: ``shard_indices(n, world_size, rank, epoch, seed)``.

    The answer is the list of example indices (ints) that process ``rank`` of ``world_size``
    reads in ``epoch`` from a data set of ``n`` examples, exactly as
    ``torch.utils.data.DistributedSampler(shuffle=True, seed=seed)`` after ``set_epoch(epoch)``
    gives them: a permutation of ``range(n)`` from ``torch.randperm(n, generator=g)`` with
    ``g.manual_seed(seed + epoch)``, padded by repeating its start until its length is a
    multiple of ``world_size``, then every ``world_size``-th index starting at ``rank``.
    """
    settings = [
        (_("8 examples, 2 processes, rank 0"), (8, 2, 0, 0, 0)),
        (_("8 examples, 2 processes, rank 1"), (8, 2, 1, 0, 0)),
        (_("10 examples, 4 processes, rank 3 (padding needed)"), (10, 4, 3, 0, 0)),
        (_("a later epoch reshuffles (epoch 5)"), (12, 3, 1, 5, 0)),
        (_("another seed (seed 7)"), (12, 3, 2, 0, 7)),
        (_("one process reads the whole permutation"), (9, 1, 0, 2, 3)),
        (_("fewer examples than processes (3 examples, 4 processes)"), (3, 4, 2, 0, 0)),
    ]
    cases = [_shard_case(shard_indices, name, arguments) for name, arguments in settings]
    cases.append(
        Case(
            _("all ranks together read every example (13 examples, 3 processes)"),
            lambda: _expect_cover(shard_indices),
        )
    )
    return check_exercise("10.2", _("the shard of one process"), cases)


def _shard_case(shard_indices, description: str, arguments: tuple[int, ...]) -> Case:
    def run() -> None:
        n, world_size, rank, epoch, seed = arguments
        what = f"shard_indices({n}, {world_size}, rank={rank}, epoch={epoch}, seed={seed})"
        result = shard_indices(*arguments)
        expected = _sampler_indices(*arguments)
        expect_type(result, list, what)
        result = [int(index) for index in result]
        expect(
            len(result) == len(expected),
            _("{what}: expected {expected} indices (ceil(n / world_size)), got {count}").format(
                what=what, expected=len(expected), count=len(result)
            ),
        )
        expect(
            result == expected,
            _("{what}: expected {expected}, got {result}").format(
                what=what, expected=expected, result=describe(result)
            ),
        )

    return Case(description, run)


def _expect_cover(shard_indices) -> None:
    read = [index for rank in range(3) for index in shard_indices(13, 3, rank, 1, 0)]
    expect(
        set(read) == set(range(13)),
        _("ranks 0-2 together read {read}, expected every index 0..12").format(
            read=sorted(set(read))
        ),
    )


# Exercise 10.3 --------------------------------------------------------------------------------

LABELS = ["sports", "weather", "business", "technology"]


def _annotation(choice: str | None, control: str = "topic", cancelled: bool = False) -> dict:
    result = (
        []
        if choice is None
        else [
            {
                "from_name": control,
                "to_name": "text",
                "type": "choices",
                "value": {"choices": [choice]},
            }
        ]
    )
    return {"was_cancelled": cancelled, "result": result}


def _task(*annotations: dict) -> dict:
    return {"id": 1, "data": {"text": "a sentence"}, "annotations": list(annotations)}


def check_task_label(
    task_label: Callable[[dict, list[str]], tuple[int, float] | None],
) -> ExerciseResult:
    """Exercise 10.3: ``task_label(task, label_names)``.

    ``task``: one task of a Label Studio JSON export, a dict with ``"annotations"``: a list of
    ``{"was_cancelled": bool, "result": [{"from_name", "type": "choices", "value": {"choices":
    [name]}}]}``;
    ``label_names``: the class names. The answer is ``(label, agreement)``: the index in
    ``label_names`` of the class most completed annotations of the ``"topic"`` control chose (a
    tie goes to the class listed first in ``label_names``) and the fraction of those annotations
    that chose it; ``None`` when no completed annotation chose a class. Cancelled annotations
    and other controls are ignored. Compared with :func:`handbook.toolchain.task_label`.
    """
    tasks = {
        _("three annotators agree"): _task(*(_annotation("weather") for _annotator in range(3))),
        _("two of three agree"): _task(
            _annotation("business"), _annotation("sports"), _annotation("business")
        ),
        _("a cancelled annotation is ignored"): _task(
            _annotation("sports"),
            _annotation("technology", cancelled=True),
            _annotation("technology", cancelled=True),
        ),
        _("a tie goes to the class listed first"): _task(
            _annotation("technology"), _annotation("weather")
        ),
        _("another control's results are ignored"): _task(
            _annotation("weather"), _annotation("sports", control="sentiment")
        ),
        _("a task nobody labelled"): _task(),
        _("only cancelled annotations"): _task(_annotation(None, cancelled=True)),
    }
    cases = [_task_case(task_label, name, task) for name, task in tasks.items()]
    cases.append(Case(_("the task is left unchanged"), lambda: _expect_task_unchanged(task_label)))
    return check_exercise("10.3", _("a Label Studio task's label"), cases)


def _task_case(task_label, description: str, task: dict) -> Case:
    def run() -> None:
        what = "task_label(task, label_names)"
        result = task_label(copy.deepcopy(task), list(LABELS))
        expected = toolchain.task_label(task, LABELS)
        if expected is None:
            expect(
                result is None,
                _("{what}: expected None (no completed choice), got {result}").format(
                    what=what, result=repr(result)
                ),
            )
            return
        expect_type(result, tuple, what)
        expect(
            len(result) == 2,
            _("{what}: expected (label, agreement), got {result}").format(
                what=what, result=repr(result)
            ),
        )
        label, agreement = result
        expect(
            not isinstance(label, str),
            _("{what}: expected the label's index in label_names ({expected}), got {label}").format(
                what=what, expected=expected[0], label=repr(label)
            ),
        )
        expect(
            int(label) == expected[0],
            _("{what}: expected label {expected} ({name}), got {label}").format(
                what=what, expected=expected[0], name=LABELS[expected[0]], label=label
            ),
        )
        expect(
            not math.isclose(float(agreement), expected[1] * expected[2]) or expected[2] == 1,
            _("{what}: expected the agreement as a fraction ({expected:.3g}), got a count").format(
                what=what, expected=expected[1]
            ),
        )
        expect_close(
            float(agreement), expected[1], _("{what} agreement").format(what=what), atol=1e-9
        )

    return Case(description, run)


def _expect_task_unchanged(task_label) -> None:
    task = _task(_annotation("sports"), _annotation("weather", cancelled=True))
    original = copy.deepcopy(task)
    task_label(task, list(LABELS))
    expect(task == original, _("the task passed in was modified"))


# Exercise 10.4 --------------------------------------------------------------------------------

#: Exercise 10.4's job: the 1,437 training digits, four processes.
DERIVATION_EXAMPLES, DERIVATION_PROCESSES = 1437, 4


def repeated_per_epoch(examples: int, processes: int) -> int:
    """How many examples ``torch.utils.data.DistributedSampler`` (``drop_last=False``) hands
    out twice per epoch: the length of all the ranks' shards together, minus the data set's."""
    import torch
    from torch.utils.data import DistributedSampler

    data = torch.utils.data.TensorDataset(torch.zeros(examples))
    handed_out = sum(
        len(list(DistributedSampler(data, num_replicas=processes, rank=rank, shuffle=True)))
        for rank in range(processes)
    )
    return handed_out - examples


def repeated_slips() -> dict[int, str]:
    """Exercise 10.4's typical wrong answers (value -> what it corresponds to; two slips that
    give the same number are both named)."""
    n, p = DERIVATION_EXAMPLES, DERIVATION_PROCESSES
    slips: dict[int, str] = {}
    for value, meaning in (
        (
            n % p,
            _(
                "{n} mod {p}, the examples left over after equal shares (the sampler does not "
                "drop them, it pads every share up to the largest)"
            ).format(n=n, p=p),
        ),
        (0, _("what drop_last=False would give if the data divided evenly; 1,437 does not")),
        (repeated_per_epoch(n, 2), _("the count with the chapter's two processes, not four")),
    ):
        slips[value] = (
            _("{first}; or {second}").format(first=slips[value], second=meaning)
            if value in slips
            else meaning
        )
    return slips


def check_repeated_examples_derivation(repeated: object) -> ExerciseResult:
    """Exercise 10.4 (derive): how many of the :data:`DERIVATION_EXAMPLES` examples a
    ``DistributedSampler`` hands out twice per epoch over :data:`DERIVATION_PROCESSES`
    processes. The true value is :func:`repeated_per_epoch`, measured on the sampler itself;
    the answer must be exact."""
    n, p = DERIVATION_EXAMPLES, DERIVATION_PROCESSES
    expected = repeated_per_epoch(n, p)
    per_rank = math.ceil(n / p)
    explain = _(
        "Each rank gets ceil({n} / {p}) = {per_rank} indices, so the ranks together read "
        "{p} x {per_rank} = {total} per epoch: the permutation is padded by repeating "
        "its first {repeated}, i.e. ceil(n / p) p - n."
    ).format(n=n, p=p, per_rank=per_rank, total=p * per_rank, repeated=p * per_rank - n)
    slip = ""
    if isinstance(repeated, (int, float, np.integer, np.floating)) and not isinstance(
        repeated, bool
    ):
        value = float(repeated)
        if math.isfinite(value) and value != expected:
            meaning = repeated_slips().get(int(value)) if value.is_integer() else None
            slip = _("Your number is {meaning}. ").format(meaning=meaning) if meaning else ""
    return check_number(
        "10.4",
        _("the examples a DistributedSampler repeats"),
        repeated,
        expected,
        tolerance=0,
        unit=_("examples"),
        kind=DERIVATION,
        explain=slip + explain,
    )
