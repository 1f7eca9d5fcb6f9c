"""Chapter 0's exercises in otter's and nbgrader's formats: the tests, with expected values
computed from the book's solutions, the instructor's notebooks, and a submission's answers
filled into the notebook a tool hands out."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from handbook.exercises.peer_graders.submissions import EXERCISES

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
