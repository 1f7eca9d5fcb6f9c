"""Copies noticed across a class: solution cells compared after names, comments and docstrings
are set aside (handbook.exercises.similarity), on realistic solutions of chapter 0's exercise 0.5
(train_one_epoch) and 0.2 (accuracy), and through ``grade_class`` (the printed report and
``copies.csv``).
"""

from __future__ import annotations

import csv
import io

import pytest
from test_grading import EXERCISES, LIMITS, TOTAL, notebook

from handbook.exercises import discovery, grading, similarity

ALICE = '''\
def train_one_epoch(model, loader, optimizer, loss_fn):
    """One pass over the loader; the mean loss per example."""
    model.train()
    running, count = 0.0, 0
    for batch, target in loader:
        optimizer.zero_grad()
        output = model(batch)
        loss = loss_fn(output, target)
        loss.backward()
        optimizer.step()
        running += float(loss) * target.shape[0]
        count += target.shape[0]
    return running / max(count, 1)
'''
# Alice's work with every name changed, a helper pulled out and put below, comments added.
BOB = """\
# my solution
def train_one_epoch(net, data, opt, criterion):
    net.train()  # training mode
    total, n = 0.0, 0
    for xb, yb in data:
        opt.zero_grad()
        out = net(xb)
        l = criterion(out, yb)
        l.backward()
        opt.step()
        total += float(l) * yb.shape[0]
        n += yb.shape[0]
    return _mean(total, n)


def _mean(s, k):
    return s / max(k, 1)
"""
ALICE_HELPER = '''\
def _mean(total, count):
    return total / max(count, 1)


def train_one_epoch(model, loader, optimizer, loss_fn):
    """One pass over the loader; the mean loss per example."""
    model.train()
    running, count = 0.0, 0
    for batch, target in loader:
        optimizer.zero_grad()
        output = model(batch)
        loss = loss_fn(output, target)
        loss.backward()
        optimizer.step()
        running += float(loss) * target.shape[0]
        count += target.shape[0]
    return _mean(running, count)
'''
# An independent solution: losses kept in a list, weighted by batch size at the end.
CAROL = """\
import torch


def train_one_epoch(model, loader, optimizer, loss_fn):
    model.train()
    losses, sizes = [], []
    for inputs, labels in loader:
        predictions = model(inputs)
        batch_loss = loss_fn(predictions, labels)
        optimizer.zero_grad()
        batch_loss.backward()
        optimizer.step()
        losses.append(batch_loss.item())
        sizes.append(len(labels))
    weights = torch.tensor(sizes, dtype=torch.float32)
    return float((torch.tensor(losses) * weights).sum() / weights.sum())
"""
# Another independent one: enumerate, sum of losses times batch size, len(loader.dataset).
DAVE = """\
def train_one_epoch(model, loader, optimizer, loss_fn):
    model.train()
    total = 0.0
    for step, (x, y) in enumerate(loader):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * x.size(0)
    return total / len(loader.dataset)
"""
ACCURACY_ERIN = (
    "def accuracy(logits, labels):\n    return float((logits.argmax(1) == labels).float().mean())\n"
)
ACCURACY_FRANK = (
    "def accuracy(scores, targets):\n"
    "    return float((scores.argmax(1) == targets).float().mean())\n"
)


def tokens(source: str) -> list[str]:
    stream = similarity.normalized_tokens(source)
    assert stream is not None, source
    return stream


def test_renamed_names_comments_and_reordered_helpers_leave_the_same_stream():
    assert tokens(ALICE_HELPER) == tokens(BOB)
    assert tokens(ACCURACY_ERIN) == tokens(ACCURACY_FRANK)
    assert tokens(ALICE) != tokens(CAROL)
    assert similarity.normalized_tokens("def broken(:\n") is None


def test_what_carries_the_work_is_kept():
    """Constants, operators, attributes and keywords stay: changing one changes the stream."""
    assert tokens("x = y.sum(dim=1) * 2\n") != tokens("x = y.sum(dim=1) * 3\n")
    assert tokens("x = y.sum(dim=1)\n") != tokens("x = y.mean(dim=1)\n")
    assert tokens("x = y.sum(dim=1)\n") != tokens("x = y.sum(axis=1)\n")
    assert tokens("x = a + b\n") != tokens("x = a - b\n")
    answer = "ANSWER = 'Batching trades latency for throughput'\n"
    assert tokens(answer)[-5:] == ["batching", "trades", "latency", "for", "throughput"]


def test_a_copy_is_flagged_and_independent_solutions_are_not():
    book = discovery.book_cells(0)
    class_cells = {
        "alice.ipynb": {"0.5": ALICE_HELPER, "0.2": ACCURACY_ERIN},
        "bob.ipynb": {"0.5": BOB, "0.2": ACCURACY_FRANK},
        "carol.ipynb": {"0.5": CAROL},
        "dave.ipynb": {"0.5": DAVE},
    }
    pairs = similarity.find_copies(class_cells, book)
    assert pairs == [similarity.CopyPair("0.5", "alice.ipynb", "bob.ipynb", 1.0)]


def test_a_copy_with_a_helper_pulled_out_is_still_above_the_threshold():
    (pair,) = similarity.find_copies({"alice": {"0.5": ALICE}, "bob": {"0.5": BOB}})
    assert similarity.THRESHOLD <= pair.similarity < 1.0


def test_two_identical_one_line_solutions_are_too_short_to_flag():
    """The one-line accuracy is written the same way by many: it proves nothing."""
    assert len(tokens(ACCURACY_ERIN)) < similarity.MIN_TOKENS
    assert similarity.find_copies({"e": {"0.2": ACCURACY_ERIN}, "f": {"0.2": ACCURACY_FRANK}}) == []
    assert similarity.find_copies(
        {"e": {"0.2": ACCURACY_ERIN}, "f": {"0.2": ACCURACY_FRANK}}, min_tokens=10
    )  # the same pair, once short solutions count


def test_the_books_own_solution_and_its_stub_are_set_aside():
    """Two students who hand in the book's solution (renamed) or leave the stub resemble each
    other through the book, not through each other."""
    solution, stub = discovery.book_cells(0)["0.5"]
    renamed = solution.replace("total_loss", "running").replace("seen", "count")
    class_cells = {
        "a": {"0.5": solution},
        "b": {"0.5": renamed},
        "c": {"0.5": stub},
        "d": {"0.5": stub},
    }
    book = discovery.book_cells(0)
    assert similarity.find_copies(class_cells, book, min_tokens=1) == []  # stubs are short
    found = similarity.find_copies(class_cells, min_tokens=1)  # without the book: both pairs
    assert {(pair.first, pair.second) for pair in found} == {("a", "b"), ("c", "d")}


def test_a_threshold_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="above 0 and at most 1, got 1.5"):
        similarity.find_copies({}, threshold=1.5)


#: A longer solution of the synthetic exercise 9.1 (test_grading's ``double``), long enough to
#: compare, and its copy: names changed, helper moved below, comments and a docstring added.
LONG_DOUBLE = """\
def _as_number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return value


def double(x):
    number = _as_number(x)
    result = number + number
    if result - number != number:
        raise ArithmeticError("doubling lost precision")
    return result
"""
COPIED_DOUBLE = '''\
def double(n):
    """Twice n."""
    checked = _number(n)  # check first
    twice = checked + checked
    if twice - checked != checked:
        raise ArithmeticError("doubling lost precision")
    return twice


def _number(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"expected a number, got {type(v).__name__}")
    return v
'''
OWN_DOUBLE = """\
import numbers


def double(x):
    if not isinstance(x, numbers.Number):
        raise TypeError("double expects a number")
    doubled = 2 * x
    return doubled
"""


def test_grading_a_class_reports_the_copied_pair_after_the_table(tmp_path):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    for name, source in (("ana", LONG_DOUBLE), ("ben", COPIED_DOUBLE), ("cai", OWN_DOUBLE)):
        cells = [(source, "9.1"), ("check_double(double)", None), (TOTAL, "9.2")]
        (submissions / f"{name}.ipynb").write_text(notebook(cells), encoding="utf-8")
    printed = io.StringIO()
    grades = grading.grade_class(
        [submissions],
        out_dir=tmp_path / "grades",
        exercises=EXERCISES,
        limits=LIMITS,
        stream=printed,
    )
    assert [grade.score for grade in grades] == [2, 2, 2]
    text = printed.getvalue()
    table_end = text.index("\ncai.ipynb")
    report = text.index("Possible copies (similarity at least 0.85")
    assert table_end < report
    assert "exercise 9.1: ana.ipynb  ~  ben.ipynb  1.000" in text[report:]
    assert "cai" not in text[report:].split("\n\n")[0]
    with (tmp_path / "grades" / "copies.csv").open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["exercise", "first", "second", "similarity"],
        ["9.1", "ana.ipynb", "ben.ipynb", "1.000"],
    ]
