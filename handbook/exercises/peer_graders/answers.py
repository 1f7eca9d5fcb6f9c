"""The answer cells the class of 30 is made from: honest solutions, wrong ones, forgeries,
answers borrowed from the book's references, and the hostile submissions' attacks (bounded by
:data:`HOG_BYTES` and :data:`BOMB_CHILDREN`: the machine is shared)."""

from __future__ import annotations

#: the port a hostile submission tries on the wrapper's private loopback
PROBE_PORT = 47651
#: a memory hog touches this much; a grader that contains it stops the cell before
HOG_BYTES = 3 * 2**30
#: a fork bomb starts at most this many sleeping children (bounded: the machine is shared)
BOMB_CHILDREN = 200

HONEST = {
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

WRONG = {
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

FORGED = {
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

BORROWED = {
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


def hostile_sources(canary: str) -> dict[str, str]:
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
