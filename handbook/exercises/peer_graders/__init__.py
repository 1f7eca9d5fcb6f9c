"""``handbook grade`` measured against otter-grader and nbgrader on the same 30 submissions.

Chapter 0's five exercises are converted into each tool's format (:func:`otter_master_notebook`,
:func:`nbgrader_source_notebook`), and one class of 30 submissions (:func:`class_of_30`) is
written three times, once per format, from the same solution cells: honest, wrong, not done,
forged, hostile, borrowed from the book's reference implementations, and copied with renamed
variables. Each submission carries the exercises it *should* be credited with, so "grades right
out of 30" is counted, not judged.

The peers run from ``.venv-graders`` (``make bench`` makes it: otter-grader pins ``wrapt<2``,
which would downgrade the book's environment, and both add Jupyter server extensions to it). Every
tool runs inside :func:`contained`: a throwaway PID and network namespace (its own loopback,
where a listener counts the connections a submission makes; every process in it dies with it),
the peers under an address-space and a wall-clock limit, and the fork bomb and the memory hog
are bounded (:data:`BOMB_CHILDREN`, :data:`HOG_BYTES`), so that what a peer lets through cannot
harm the shared machine. What *the tool* contained is read from observables the wrapper does not
decide (:func:`score`): the probe's connections, the canary file, the processes left behind, the
largest resident set, and whether the wall limit had to stop the run.

``python -m handbook.exercises.peer_graders`` measures and writes ``_build/bench/graders.md``;
``--update-page`` also writes the table the book's *How to use* page includes.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

EXERCISES = ("0.1", "0.2", "0.3", "0.4", "0.5")
CATEGORIES = ("honest", "wrong", "not done", "forged", "hostile", "borrowed", "copied")
ATTACKS = ("network", "write outside", "fork bomb", "memory hog", "endless loop")
#: the port a hostile submission tries on the wrapper's private loopback
PROBE_PORT = 47651
#: a memory hog touches this much; a grader that contains it stops the cell before
HOG_BYTES = 3 * 2**30
#: a fork bomb starts at most this many sleeping children (bounded: the machine is shared)
BOMB_CHILDREN = 200
#: seconds per cell for the tools that have such a limit: nbgrader's default, given to
#: handbook grade too (its default is 300 s); otter run has none
CELL_TIMEOUT_S = 30
#: the outer wall limit of a whole tool run over the class; past it the wrapper kills the tool
RUN_WALL_S = 1800
#: the address space the wrapper allows a peer's processes: torch alone maps about 3 GiB
WRAPPER_ADDRESS_SPACE = 8 * 2**30
GRADERS_VENV = ".venv-graders"
PAGE_INCLUDE = Path("book") / "graders_table.inc"

_HONEST = {
    "0.1": [
        """import numpy as np
import torch


def normalize_images(images):
    pixels = np.asarray(images, dtype=np.float32) / 16.0
    return torch.from_numpy(pixels.reshape(len(pixels), 1, 8, 8))
""",
        """import torch


def normalize_images(images):
    tensor = torch.tensor(images, dtype=torch.float32)
    tensor = tensor.reshape(len(tensor), 1, 8, 8)
    return tensor.div(16)
""",
        """import numpy as np
import torch


def normalize_images(images):
    count = images.shape[0]
    out = np.empty((count, 1, 8, 8), dtype=np.float32)
    for index in range(count):
        out[index, 0] = np.reshape(images[index], (8, 8)) / 16
    return torch.from_numpy(out)
""",
        """import torch


def normalize_images(images):
    scale = 1 / 16
    flat = torch.as_tensor(images).clone().float() * scale
    return flat.view(flat.shape[0], 1, 8, 8)
""",
    ],
    "0.2": [
        """def accuracy(logits, labels):
    if len(labels) == 0:
        raise ValueError("no examples")
    return (logits.argmax(1) == labels).sum().item() / len(labels)
""",
        """import torch


def accuracy(logits, labels):
    if labels.numel() == 0:
        raise ValueError("empty batch")
    predicted = torch.argmax(logits, dim=-1)
    return predicted.eq(labels).double().mean().item()
""",
        """def accuracy(logits, labels):
    total = len(labels)
    if not total:
        raise ValueError("accuracy needs at least one example")
    hits = 0
    for row, label in zip(logits.tolist(), labels.tolist()):
        hits += int(row.index(max(row)) == label)
    return hits / total
""",
        """import numpy as np


def accuracy(logits, labels):
    guesses = np.argmax(logits.detach().numpy(), axis=1)
    truth = labels.numpy()
    if truth.size == 0:
        raise ValueError("cannot score zero predictions")
    return float(np.mean(guesses == truth))
""",
    ],
    "0.3": [
        """import torch


def confusion_matrix_counts(predictions, labels, num_classes):
    counts = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for truth, guess in zip(labels.tolist(), predictions.tolist()):
        counts[truth, guess] += 1
    return counts
""",
        """import torch


def confusion_matrix_counts(predictions, labels, num_classes):
    matrix = torch.zeros((num_classes, num_classes), dtype=torch.int64)
    matrix.index_put_((labels.long(), predictions.long()),
                      torch.ones(len(labels), dtype=torch.int64), accumulate=True)
    return matrix
""",
        """import numpy as np
import torch


def confusion_matrix_counts(predictions, labels, num_classes):
    table = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(table, (np.asarray(labels), np.asarray(predictions)), 1)
    return torch.from_numpy(table)
""",
        """import torch


def confusion_matrix_counts(predictions, labels, num_classes):
    rows = []
    for true_class in range(num_classes):
        chosen = predictions[labels == true_class]
        rows.append(torch.stack([(chosen == c).sum() for c in range(num_classes)])
                    if num_classes else torch.zeros(0, dtype=torch.long))
    return torch.stack(rows).long() if rows else torch.zeros(0, 0, dtype=torch.long)
""",
    ],
    "0.4": [
        "PREDICTED_PARAMETERS = 21_578\n",
        "PREDICTED_PARAMETERS = 21578\n",
        "PREDICTED_PARAMETERS = 21_600  # roughly\n",
        "PREDICTED_PARAMETERS = 2 * 10_789\n",
    ],
    "0.5": [
        """def train_one_epoch(model, loader, optimizer, loss_fn):
    model.train()
    losses, sizes = [], []
    for batch, target in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(batch), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item() * target.shape[0])
        sizes.append(target.shape[0])
    return sum(losses) / sum(sizes)
""",
        """def train_one_epoch(model, loader, optimizer, loss_fn):
    model.train(True)
    running, count = 0.0, 0
    for x, y in loader:
        out = model(x)
        error = loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)
        error.backward()
        optimizer.step()
        running = running + float(error.detach()) * len(y)
        count = count + len(y)
    return running / count
""",
        """import torch


def train_one_epoch(model, loader, optimizer, loss_fn):
    model.train()
    weighted = torch.zeros(())
    examples = 0
    for features, classes in iter(loader):
        optimizer.zero_grad()
        value = loss_fn(model(features), classes)
        value.backward()
        optimizer.step()
        weighted += value.detach() * classes.numel()
        examples += classes.numel()
    return (weighted / examples).item()
""",
        """def train_one_epoch(model, loader, optimizer, loss_fn):
    model.train()
    history = []
    for inputs, targets in loader:
        predictions = model(inputs)
        batch_loss = loss_fn(predictions, targets)
        optimizer.zero_grad()
        batch_loss.backward()
        optimizer.step()
        history.append((batch_loss.item(), len(targets)))
    seen = sum(n for _, n in history)
    return sum(value * n for value, n in history) / seen
""",
    ],
}

_WRONG = {
    "0.1": (
        "divides by 255 (the range of 8-bit images, not of these digits)",
        """import torch


def normalize_images(images):
    return torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8) / 255
""",
    ),
    "0.2": (
        "counts correct answers instead of their fraction",
        """def accuracy(logits, labels):
    if len(labels) == 0:
        raise ValueError("no examples")
    return float((logits.argmax(dim=1) == labels).sum())
""",
    ),
    "0.3": (
        "rows and columns swapped (predicted classes as rows)",
        """import torch


def confusion_matrix_counts(predictions, labels, num_classes):
    counts = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for truth, guess in zip(labels.tolist(), predictions.tolist()):
        counts[guess, truth] += 1
    return counts
""",
    ),
    "0.4": (
        "forgets that the two poolings shrink the map the linear head sees",
        "PREDICTED_PARAMETERS = 59_978\n",
    ),
    "0.5": (
        "never resets the gradients (they accumulate across batches)",
        """def train_one_epoch(model, loader, optimizer, loss_fn):
    model.train()
    total, seen = 0.0, 0
    for inputs, targets in loader:
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(targets)
        seen += len(targets)
    return total / seen
""",
    ),
}

_FORGED = {
    "always-equal answer": (
        "0.2",
        """class Anything(float):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = float.__hash__


def accuracy(logits, labels):
    return Anything(0.0)
""",
    ),
    "patched comparisons": (
        "0.1",
        """import doctest

import numpy
import torch

doctest.OutputChecker.check_output = lambda self, want, got, optionflags: True
numpy.testing.assert_allclose = lambda *args, **kwargs: None
torch.testing.assert_close = lambda *args, **kwargs: None
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True


def normalize_images(images):
    return torch.zeros(len(images), 1, 8, 8)
""",
    ),
    "fake 'passed' printed": (
        "0.3",
        """import torch

print("✓ exercise 0.3 passed")
print("All tests passed!")


def confusion_matrix_counts(predictions, labels, num_classes):
    return torch.zeros(num_classes, num_classes, dtype=torch.long)
""",
    ),
    "always-equal prediction": (
        "0.4",
        """class Whatever(int):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __sub__(self, other):
        return 0

    def __rsub__(self, other):
        return 0

    __hash__ = int.__hash__


PREDICTED_PARAMETERS = Whatever(1)
""",
    ),
    "overwritten check function": (
        "0.5",
        """from handbook.exercises import ch00, checks

ch00.check_train_one_epoch = lambda function: checks.ExerciseResult("0.5", "one epoch", [])


def train_one_epoch(model, loader, optimizer, loss_fn):
    return 0.0
""",
    ),
}

_BORROWED = {
    "import by name": (
        "0.1",
        """import torch

from handbook.exercises.ch00 import _reference_normalized


def normalize_images(images):
    return torch.as_tensor(_reference_normalized(images), dtype=torch.float32)
""",
    ),
    "importlib and strings": (
        "0.3",
        """import importlib

import torch

module = importlib.import_module(".".join(["handbook", "exercises", "ch" + "0" * 2]))
borrowed = getattr(module, "_reference_" + "confusion")


def confusion_matrix_counts(predictions, labels, num_classes):
    return torch.as_tensor(borrowed(predictions.numpy(), labels.numpy(), num_classes))
""",
    ),
    "the source notebook's cell": (
        "0.5",
        """import json
from pathlib import Path

import handbook

_book = Path(handbook.__file__).resolve().parents[1] / "notebooks" / "00_digits.ipynb"
_cells = json.loads(_book.read_text())["cells"]
exec(next("".join(c["source"]) for c in _cells
          if "exercise-0.5" in c.get("metadata", {}).get("tags", [])))
""",
    ),
}


def _hostile_sources(canary: str) -> dict[str, str]:
    """The attack each hostile submission puts in its exercise 0.1 cell (it defines no answer)."""
    return {
        "network": f"""import socket

with socket.create_connection(("127.0.0.1", {PROBE_PORT}), timeout=5) as connection:
    connection.sendall(b"reached")
""",
        "write outside": f"""from pathlib import Path

Path({canary!r}).write_text("written by a submission")
""",
        "fork bomb": f"""import os
import time

children = 0
for _ in range({BOMB_CHILDREN}):
    if os.fork() == 0:
        time.sleep(600)
        os._exit(0)
    children += 1
""",
        "memory hog": f"""hoard = []
for _ in range({HOG_BYTES // 2**28}):
    hoard.append(bytearray(2**28))
""",
        "endless loop": """while True:
    pass
""",
    }


@dataclass(frozen=True)
class Submission:
    """One student's work: the source of each exercise's cell (an exercise left out is the
    stub, *not done*) and the exercises it should be credited with."""

    name: str
    category: str
    description: str
    answers: Mapping[str, str]
    credited: frozenset[str]
    attack: str | None = None
    copy_of: str | None = None
    wrong: tuple[str, ...] = field(default=())
    #: how feedback may write the expected value besides the peers' test outputs
    expected_values: tuple[str, ...] = field(default=())

    @property
    def points(self) -> int:
        return len(self.credited)


def rename_variables(source: str, suffix: str = "_mine") -> str:
    """A copyist's disguise: every name the cell assigns or takes as an argument gets
    ``suffix``, comments change, the cell keeps working."""
    import ast

    tree = ast.parse(source)
    chosen = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            chosen.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            chosen.add(node.id)
    public = {
        "normalize_images",
        "accuracy",
        "confusion_matrix_counts",
        "train_one_epoch",
        "PREDICTED_PARAMETERS",
    }
    renamed = chosen - public

    class Renamer(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.Name:
            if node.id in renamed:
                node.id += suffix
            return node

        def visit_arg(self, node: ast.arg) -> ast.arg:
            if node.arg in renamed:
                node.arg += suffix
            return node

    return "# my own work\n" + ast.unparse(Renamer().visit(tree)) + "\n"


def _spelled_parameter_count() -> tuple[str, ...]:
    """SmallCNN's true parameter count as feedback may print it (``21578``, ``21,578``)."""
    from handbook.exercises import ch00

    total = sum(ch00.parameter_breakdown().values())
    return (str(total), f"{total:,}")


def class_of_30(canary: str = "/tmp/handbook-graders-canary") -> list[Submission]:
    """Thirty submissions of chapter 0: 6 honest, 5 wrong, 3 not done, 5 forged, 5 hostile,
    3 borrowed from the references, 3 copied; ``canary`` is the file the writing attack aims at.
    """
    prediction = _HONEST["0.4"][0]
    subs: list[Submission] = []
    for number in range(4):
        answers = {exercise: _HONEST[exercise][number] for exercise in EXERCISES}
        subs.append(
            Submission(
                f"honest{number + 1}",
                "honest",
                "every exercise solved",
                answers,
                frozenset(EXERCISES),
            )
        )
    subs.append(
        Submission(
            "honest5",
            "honest",
            "0.2 and 0.4 solved, the rest not started",
            {
                "0.2": _HONEST["0.2"][0].replace("no examples", "nothing to score"),
                "0.4": _HONEST["0.4"][1],
            },
            frozenset({"0.2", "0.4"}),
        )
    )
    subs.append(
        Submission(
            "honest6",
            "honest",
            "only the prediction",
            {"0.4": _HONEST["0.4"][2]},
            frozenset({"0.4"}),
        )
    )
    for exercise, (mistake, source) in _WRONG.items():
        answers = {exercise: source}
        credited = set()
        if exercise != "0.4":
            answers["0.4"] = prediction
            credited.add("0.4")
        subs.append(
            Submission(
                f"wrong{exercise.replace('.', '')}",
                "wrong",
                f"{exercise} {mistake}",
                answers,
                frozenset(credited),
                wrong=(exercise,),
                expected_values=_spelled_parameter_count() if exercise == "0.4" else (),
            )
        )
    subs.append(
        Submission("notdone1", "not done", "the student edition untouched", {}, frozenset())
    )
    subs.append(
        Submission("notdone2", "not done", "handed in twice: still untouched", {}, frozenset())
    )
    subs.append(
        Submission(
            "notdone3",
            "not done",
            "0.4 left as None",
            {"0.4": "PREDICTED_PARAMETERS = None\n"},
            frozenset(),
        )
    )
    for number, (trick, (exercise, source)) in enumerate(_FORGED.items(), start=1):
        answers = {exercise: source}
        credited = set()
        if exercise != "0.4":
            answers["0.4"] = prediction
            credited.add("0.4")
        subs.append(
            Submission(
                f"forged{number}", "forged", f"{exercise}: {trick}", answers, frozenset(credited)
            )
        )
    for attack, source in _hostile_sources(canary).items():
        subs.append(
            Submission(
                f"hostile-{attack.replace(' ', '-')}",
                "hostile",
                f"0.1: {attack}",
                {"0.1": source, "0.4": prediction},
                frozenset({"0.4"}),
                attack=attack,
            )
        )
    for number, (trick, (exercise, source)) in enumerate(_BORROWED.items(), start=1):
        subs.append(
            Submission(
                f"borrowed{number}",
                "borrowed",
                f"{exercise}: {trick}",
                {exercise: source, "0.4": prediction},
                frozenset({"0.4"}),
            )
        )
    for number in range(3):
        original = subs[number]
        answers = {
            exercise: rename_variables(source, f"_{number}")
            for exercise, source in original.answers.items()
        }
        subs.append(
            Submission(
                f"copied{number + 1}",
                "copied",
                f"{original.name} with renamed variables",
                answers,
                original.credited,
                copy_of=original.name,
            )
        )
    if len(subs) != 30:
        raise AssertionError(f"expected 30 submissions, built {len(subs)}")
    return subs


# --- the exercises in each tool's format -------------------------------------------------------

#: chapter 0's exercises as the peers test them: per exercise, ``(setup, expression)`` pairs;
#: the expected value of each expression is computed from the book's solution (:func:`peer_tests`)
_PEER_TESTS: dict[str, list[tuple[str, str]]] = {
    "0.1": [
        ("", "normalize_images(np.zeros((2, 64), dtype=np.int64)).shape"),
        ("", "normalize_images(np.zeros((2, 64))).dtype"),
        ("", "normalize_images(np.array([[0, 8, 16] + [0] * 61]))[0, 0, 0, :3].tolist()"),
        ("", "normalize_images(np.zeros((0, 64))).shape"),
        ("images = np.full((1, 64), 16.0)\n_ = normalize_images(images)", "float(images.max())"),
    ],
    "0.2": [
        ("", "round(accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])), 4)"),
        (
            "logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, 3.0, 1.0]])",
            "round(accuracy(logits, torch.tensor([0, 2, 0])), 4)",
        ),
    ],
    "0.3": [
        (
            "",
            "confusion_matrix_counts(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), 3)"
            ".tolist()",
        ),
        ("", "confusion_matrix_counts(torch.tensor([1, 0]), torch.tensor([0, 0]), 2).tolist()"),
    ],
    "0.4": [
        (
            "from handbook.digits import SmallCNN\n"
            "count = sum(p.numel() for p in SmallCNN(side=8).parameters())",
            "abs(PREDICTED_PARAMETERS - count) <= 0.05 * count",
        ),
    ],
    "0.5": [
        (
            "_ = torch.manual_seed(0)\nmodel = nn.Linear(4, 3)\n"
            "batches = [(torch.randn(5, 4), torch.randint(0, 3, (5,))) for _ in range(3)]\n"
            "start = model.weight.detach().clone()\n"
            "loss = train_one_epoch(model, batches, torch.optim.SGD(model.parameters(), lr=0.5), "
            "nn.CrossEntropyLoss())",
            "round(loss, 4)",
        ),
    ],
}
_SETUP = "import numpy as np\nimport torch\nfrom torch import nn\n"
_TITLES = {
    "0.1": "normalise the images: `normalize_images(images)`, (n, 64) pixels 0..16 to a float32 "
    "tensor (n, 1, 8, 8) in [0, 1]",
    "0.2": "accuracy: `accuracy(logits, labels)`, the fraction of rows whose argmax is the label",
    "0.3": "the confusion matrix: `confusion_matrix_counts(predictions, labels, num_classes)`, "
    "rows are true classes",
    "0.4": "predict, then run: `PREDICTED_PARAMETERS`, how many parameters SmallCNN(side=8) has",
    "0.5": "one epoch as a function: `train_one_epoch(model, loader, optimizer, loss_fn)`, the "
    "mean loss per example",
}


@functools.cache
def book_solutions() -> dict[str, str]:
    """The source of each chapter-0 solution cell, read from the book's notebook."""
    import nbformat

    from handbook import config

    notebook = nbformat.read(config.project_root() / "notebooks" / "00_digits.ipynb", 4)
    found = {}
    for cell in notebook.cells:
        for tag in cell.metadata.get("tags", []):
            if tag.startswith("exercise-") and tag.removeprefix("exercise-") in EXERCISES:
                found[tag.removeprefix("exercise-")] = cell.source.rstrip() + "\n"
    return found


@functools.cache
def peer_tests() -> dict[str, list[tuple[str, str, str]]]:
    """``(setup, expression, expected repr)`` per exercise, the expected value computed by
    running the book's own solution: nothing typed by hand."""
    solutions = book_solutions()
    tests: dict[str, list[tuple[str, str, str]]] = {}
    for exercise, cases in _PEER_TESTS.items():
        tests[exercise] = []
        for setup, expression in cases:
            namespace: dict = {}
            exec(_SETUP + solutions[exercise] + "\n" + setup, namespace)
            tests[exercise].append((setup, expression, repr(eval(expression, namespace))))
    return tests


def _marker(exercise: str) -> str:
    return f"# exercise {exercise}"


def otter_master_notebook(tests: Mapping[str, list[tuple[str, str, str]]]):
    """Chapter 0's exercises as an ``otter assign`` master notebook: one question per exercise,
    the book's solution between ``# BEGIN SOLUTION`` markers, OK-format test cells whose
    expected output is the solution's (read by ``otter assign`` from the cells' outputs)."""
    import nbformat

    v4 = nbformat.v4
    solutions = book_solutions()
    cells = [
        v4.new_raw_cell(
            "# ASSIGNMENT CONFIG\nname: ch00\ninit_cell: false\ncheck_all_cell: false\n"
            "export_cell: false\nrun_tests: false\n"
        ),
        v4.new_markdown_cell("# Chapter 0: handwritten digits, the exercises"),
        v4.new_code_cell(_SETUP.rstrip()),
    ]
    for exercise in EXERCISES:
        name = "q" + exercise.replace(".", "_")
        cells += [
            v4.new_raw_cell(f"# BEGIN QUESTION\nname: {name}\npoints: 1"),
            v4.new_markdown_cell(f"**Exercise {exercise}**: {_TITLES[exercise]}"),
            v4.new_raw_cell("# BEGIN SOLUTION"),
            v4.new_code_cell(
                f"{_marker(exercise)}\n# BEGIN SOLUTION\n{solutions[exercise].rstrip()}\n"
                "# END SOLUTION"
            ),
            v4.new_raw_cell("# END SOLUTION"),
            v4.new_raw_cell("# BEGIN TESTS"),
        ]
        for setup, expression, expected in tests[exercise]:
            cell = v4.new_code_cell((setup + "\n" if setup else "") + expression)
            cell.outputs = [
                v4.new_output("execute_result", {"text/plain": expected}, execution_count=1)
            ]
            cells.append(cell)
        cells += [v4.new_raw_cell("# END TESTS"), v4.new_raw_cell("# END QUESTION")]
    return _notebook(cells)


def nbgrader_source_notebook(tests: Mapping[str, list[tuple[str, str, str]]]):
    """Chapter 0's exercises as an nbgrader source notebook: a solution cell per exercise
    (``### BEGIN SOLUTION``) and a locked autograder test cell worth 1 point, whose asserts
    compare with the solution's values."""
    import nbformat

    v4 = nbformat.v4
    solutions = book_solutions()

    def metadata(grade_id: str, *, solution: bool, grade: bool, locked: bool) -> dict:
        nb = {
            "grade": grade,
            "grade_id": grade_id,
            "locked": locked,
            "schema_version": 3,
            "solution": solution,
            "task": False,
        }
        if grade:
            nb["points"] = 1
        return {"nbgrader": nb}

    setup = v4.new_code_cell(_SETUP.rstrip())
    setup.metadata = metadata("setup", solution=False, grade=False, locked=True)
    cells = [v4.new_markdown_cell("# Chapter 0: handwritten digits, the exercises"), setup]
    for exercise in EXERCISES:
        name = exercise.replace(".", "_")
        solution = v4.new_code_cell(
            f"{_marker(exercise)}\n### BEGIN SOLUTION\n{solutions[exercise].rstrip()}\n"
            "### END SOLUTION"
        )
        solution.metadata = metadata(f"ex{name}", solution=True, grade=False, locked=False)
        lines = []
        for setup_code, expression, expected in tests[exercise]:
            if setup_code:
                lines.append(setup_code)
            lines.append(
                f"assert {expression}"
                if expected == "True"
                else f"assert {expression} == {expected}"
            )
        test = v4.new_code_cell("\n".join(lines))
        test.metadata = metadata(f"test{name}", solution=False, grade=True, locked=True)
        cells += [
            v4.new_markdown_cell(f"**Exercise {exercise}**: {_TITLES[exercise]}"),
            solution,
            test,
        ]
    return _notebook(cells)


def _notebook(cells):
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def fill_in(notebook, answers: Mapping[str, str], find) -> object:
    """A copy of ``notebook`` with each exercise's cell (``find(cell)`` names its exercise or
    returns None) replaced by the submission's answer; the others are left as handed out."""
    import copy

    filled = copy.deepcopy(notebook)
    seen = set()
    for cell in filled.cells:
        exercise = find(cell) if cell.cell_type == "code" else None
        if exercise is not None and exercise in answers:
            cell.source = f"{_marker(exercise)}\n{answers[exercise]}"
            seen.add(exercise)
    missing = set(answers) - seen
    if missing:
        raise ValueError(f"no cell for exercise(s) {', '.join(sorted(missing))} in the notebook")
    return filled


def by_marker(cell) -> str | None:
    """The exercise whose solution cell this is in the peers' notebooks (first line marker)."""
    first = cell.source.split("\n", 1)[0].strip()
    for exercise in EXERCISES:
        if first == _marker(exercise):
            return exercise
    return None


def by_tag(cell) -> str | None:
    """The exercise whose solution cell this is in the book's notebook (``exercise-N.M``)."""
    for tag in cell.metadata.get("tags", []):
        if tag.startswith("exercise-") and tag.removeprefix("exercise-") in EXERCISES:
            return tag.removeprefix("exercise-")
    return None


# --- a throwaway place for each tool's run ------------------------------------------------------


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


# --- the three tools on one class ---------------------------------------------------------------


@dataclass
class ToolRun:
    """What one tool did with the class: the exercises it credited per submission, the
    feedback text per submission and exercise, the copy pairs it reported, and what the
    wrapper observed (:func:`contain_main`); ``per_submission`` holds per-submission notes
    (otter's pool: a submission the wall limit stopped)."""

    tool: str
    mode: str
    credited: dict[str, set[str]]
    feedback: dict[str, dict[str, str]]
    copies: set[frozenset[str]] | None
    observed: dict
    per_submission: dict = field(default_factory=dict)


def _graders_python() -> Path:
    from handbook import config

    python = config.project_root() / GRADERS_VENV / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(
            f"{python} is missing: `make bench` makes {GRADERS_VENV} with otter-grader and "
            "nbgrader (the `graders` extra)"
        )
    return python


def _graders_path(python: Path) -> str:
    """PATH for the peers: their venv, then the book's (whose packages theirs reuses: alembic)."""
    return os.pathsep.join(
        [str(python.parent), str(Path(sys.executable).parent), os.environ["PATH"]]
    )


def _instructor_step(command: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None):
    """Run one of the instructor's steps (no student code in it); its output on failure."""
    done = subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        output = (done.stdout + done.stderr)[-3000:]
        raise RuntimeError(f"{' '.join(command[:3])} failed ({done.returncode}): {output}")
    return done


def run_handbook(root: Path, subs: Sequence[Submission], canary: Path, jobs: int = 2) -> ToolRun:
    """``python -m handbook grade --jobs 2`` on the class, in the book's chapter-0 format."""
    import nbformat

    from handbook import config
    from handbook.exercises import student

    source = config.project_root() / "notebooks" / "00_digits.ipynb"
    work = root / "handbook"
    edition = nbformat.read(student.make_student_edition(source, work / "edition.ipynb"), 4)
    for sub in subs:
        target = work / "class" / sub.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(fill_in(edition, sub.answers, by_tag), target)
    out = work / "out"
    observed = contained(
        [
            sys.executable,
            "-m",
            "handbook",
            "grade",
            str(work / "class"),
            "--out",
            str(out),
            "--jobs",
            str(jobs),
            "--timeout",
            str(CELL_TIMEOUT_S),
        ],
        cwd=config.project_root(),
        work=work / "run",
        canary=canary,
        limited=False,
    )
    return handbook_results(out, subs, observed, jobs)


def _student(label: str) -> str:
    """The student a ``handbook grade`` label names (``alice/00_digits.ipynb``: ``alice``)."""
    return Path(label).parts[0]


def handbook_results(out: Path, subs: Sequence[Submission], observed: dict, jobs: int) -> ToolRun:
    """Read ``handbook grade``'s output folder: ``points.csv``, ``feedback/``, ``copies.csv``."""
    credited, feedback = {}, {}
    points = out / "points.csv"
    if not points.exists():
        raise RuntimeError(f"handbook grade wrote no {points}: see {observed}")
    with points.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            credited[_student(row["submission"])] = {ex for ex in EXERCISES if row.get(ex) == "1"}
    for sub in subs:
        text = next(iter(sorted((out / "feedback" / sub.name).glob("*.md"))), None)
        sections = re.split(r"(?=Exercise 0\.\d)", text.read_text(encoding="utf-8")) if text else []
        feedback[sub.name] = {
            ex: "".join(s for s in sections if s.startswith(f"Exercise {ex}")) for ex in EXERCISES
        }
    copies = set()
    if (out / "copies.csv").exists():
        with (out / "copies.csv").open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                copies.add(frozenset({_student(row["first"]), _student(row["second"])}))
    return ToolRun(
        "handbook grade",
        f"--jobs {jobs} --timeout {CELL_TIMEOUT_S}, its own sandbox",
        credited,
        feedback,
        copies,
        observed,
    )


def run_otter(root: Path, subs: Sequence[Submission], canary: Path, jobs: int = 2) -> ToolRun:
    """``otter assign`` on the master notebook, then ``otter run`` (no Docker here) on each
    submission, ``jobs`` at a time."""
    import nbformat

    python = _graders_python()
    work = root / "otter"
    (work / "subs").mkdir(parents=True, exist_ok=True)
    tests = peer_tests()
    nbformat.write(otter_master_notebook(tests), work / "ch00.ipynb")
    _instructor_step(
        [str(python.parent / "otter"), "assign", "--no-pdfs", "ch00.ipynb", "dist"], work
    )
    autograder = next((work / "dist" / "autograder").glob("*.zip"))
    handed_out = nbformat.read(work / "dist" / "student" / "ch00.ipynb", 4)
    for sub in subs:
        nbformat.write(
            fill_in(handed_out, sub.answers, by_marker), work / "subs" / f"{sub.name}.ipynb"
        )
    out = work / "out"
    per_submission_wall = 240
    observed = contained(
        [
            str(python),
            "-m",
            "handbook.exercises.peer_graders",
            "otter-pool",
            str(autograder),
            str(work / "subs"),
            str(out),
            "--jobs",
            str(jobs),
            "--wall",
            str(per_submission_wall),
        ],
        cwd=work,
        work=work / "run",
        canary=canary,
        limited=True,
        env={**os.environ, "HOME": str(work), "PATH": _graders_path(python)},
    )
    return otter_results(work, subs, observed, jobs, per_submission_wall)


def otter_results(
    work: Path, subs: Sequence[Submission], observed: dict, jobs: int, wall_s: float
) -> ToolRun:
    """Read ``otter run``'s ``results.json`` per submission; one it did not grade is left out
    of ``credited``."""
    out = work / "out"
    pool = json.loads((out / "pool.json").read_text()) if (out / "pool.json").exists() else {}
    credited, feedback = {}, {}
    for sub in subs:
        results = out / sub.name / "results.json"
        if not results.exists():
            continue
        credited[sub.name], feedback[sub.name] = set(), {}
        for test in json.loads(results.read_text()).get("tests", []):
            if not test["name"].startswith("q"):
                continue  # "Public Tests": the same tests, as the student's check shows them
            exercise = test["name"].removeprefix("q").replace("_", ".")
            if test.get("score") == test.get("max_score"):
                credited[sub.name].add(exercise)
            feedback[sub.name][exercise] = test.get("output", "")
    return ToolRun(
        "otter-grader",
        f"`otter run` (no Docker), {jobs} at a time, {wall_s:.0f} s wall limit each (ours)",
        credited,
        feedback,
        None,
        observed,
        pool,
    )


def run_nbgrader(root: Path, subs: Sequence[Submission], canary: Path) -> ToolRun:
    """``nbgrader generate_assignment``, then ``nbgrader autograde`` over the class (one at a
    time: nbgrader has no parallel autograding), then ``generate_feedback``."""
    import nbformat

    python = _graders_python()
    nbgrader = str(python.parent / "nbgrader")
    work = root / "nbgrader"
    (work / "source" / "ch00").mkdir(parents=True, exist_ok=True)
    (work / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = 'ch00'\n"
        f"c.CourseDirectory.root = {str(work)!r}\nc.Execute.timeout = {CELL_TIMEOUT_S}\n"
    )
    tests = peer_tests()
    nbformat.write(nbgrader_source_notebook(tests), work / "source" / "ch00" / "ch00.ipynb")
    environment = {
        **os.environ,
        "HOME": str(work),
        "PATH": _graders_path(python),
        # nbconvert's templates (generate_feedback) are installed in the book's environment
        "JUPYTER_PATH": str(Path(sys.executable).parent.parent / "share" / "jupyter"),
    }
    _instructor_step([nbgrader, "generate_assignment", "ch00", "--force"], work, environment)
    handed_out = nbformat.read(work / "release" / "ch00" / "ch00.ipynb", 4)
    for sub in subs:
        target = work / "submitted" / sub.name / "ch00" / "ch00.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(fill_in(handed_out, sub.answers, by_marker), target)
    observed = contained(
        [nbgrader, "autograde", "ch00", "--force"],
        cwd=work,
        work=work / "run",
        canary=canary,
        limited=True,
        env=environment,
    )
    _instructor_step([nbgrader, "generate_feedback", "ch00", "--force"], work, environment)
    return nbgrader_results(work, subs, observed)


def nbgrader_results(work: Path, subs: Sequence[Submission], observed: dict) -> ToolRun:
    """Read nbgrader's gradebook (scores per test cell) and the autograded notebooks (what the
    feedback shows under each test cell); a submission it did not grade is left out."""
    import nbformat

    python = _graders_python()
    gradebook = work / "gradebook.db"
    scores = json.loads(
        _instructor_step([str(python), "-c", _GRADEBOOK_SCORES, str(gradebook)], work).stdout
    )
    credited, feedback = {}, {}
    for sub in subs:
        graded = work / "autograded" / sub.name / "ch00" / "ch00.ipynb"
        if not graded.exists() or sub.name not in scores:
            continue
        credited[sub.name], feedback[sub.name] = set(), {}
        notebook = nbformat.read(graded, 4)
        for cell in notebook.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            if not grade_id.startswith("test"):
                continue
            exercise = grade_id.removeprefix("test").replace("_", ".")
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if scores.get(sub.name, {}).get(grade_id) == 1:
                credited[sub.name].add(exercise)
            shown = [cell.source] + ["\n".join(o.get("traceback", [])) for o in errors]
            feedback[sub.name][exercise] = "\n".join(shown)
    return ToolRun(
        "nbgrader",
        "`nbgrader autograde`, one at a time (no parallel mode)",
        credited,
        feedback,
        None,
        observed,
    )


#: prints ``{student: {grade_id: score}}`` from an nbgrader gradebook (run in .venv-graders)
_GRADEBOOK_SCORES = """
import json, sys
from nbgrader.api import Gradebook
scores = {}
with Gradebook("sqlite:///" + sys.argv[1]) as gradebook:
    for submission in gradebook.assignment_submissions("ch00"):
        for notebook in submission.notebooks:
            scores.setdefault(submission.student_id, {}).update(
                {grade.name: grade.score for grade in notebook.grades})
print(json.dumps(scores))
"""


def merge_runs(first: ToolRun, second: ToolRun) -> ToolRun:
    """One tool's class graded in two runs: ``first`` was stopped by the wall limit, ``second``
    graded what it had not reached and the hostile submissions again. The second's grade wins
    where both graded a submission; containment is the second run's (it reached every attack);
    the seconds of both runs are divided by every grading done (``gradings``)."""
    observed = dict(second.observed)
    observed["wall_s"] = first.observed["wall_s"] + second.observed["wall_s"]
    observed["gradings"] = len(first.credited) + len(second.credited)
    return ToolRun(
        second.tool,
        f"{second.mode.split('; ')[0]}; continued after the first run stopped at the "
        f"{first.observed['wall_s'] / 60:.0f}-min wall limit",
        {**first.credited, **second.credited},
        {**first.feedback, **second.feedback},
        second.copies,
        observed,
        {**first.per_submission, **second.per_submission},
    )


# --- the comparison -----------------------------------------------------------------------------


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


def make_graders_venv(folder: Path | None = None) -> Path:
    """Make ``.venv-graders`` (once): a virtual environment that sees the book's packages
    through a ``.pth`` file and installs the ``graders`` extra over them, so that otter-grader's
    ``wrapt<2`` and both tools' Jupyter extensions stay out of the book's environment."""
    import sysconfig

    from handbook import config

    folder = folder or config.project_root() / GRADERS_VENV
    python = folder / "bin" / "python"
    if python.exists():
        probe = subprocess.run([str(python), "-c", "import otter, nbgrader"], capture_output=True)
        if probe.returncode == 0 and (folder / "bin" / "alembic").exists():
            return folder
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    theirs = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    # after their own site-packages: their wrapt 1.x shadows the book's 2.x, nothing else differs
    (Path(theirs) / "zz_handbook_book_env.pth").write_text(
        f"import site; site.addsitedir({ours!r})\n"
    )
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + ["-e", f"{config.project_root()}[graders]"], check=True)
    # nbgrader runs the `alembic` command: its script must start their Python, not the book's
    subprocess.run(pip + ["--no-deps", "--ignore-installed", "alembic"], check=True)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m handbook.exercises.peer_graders", description=__doc__.split("\n\n")[0]
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
