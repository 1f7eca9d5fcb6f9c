"""One small training loop for every chapter: seeding, device choice, autocast, progress, history.

``fit`` trains a model for a number of epochs and returns a :class:`History`; ``evaluate``
measures loss and accuracy on a loader. The one contract: a loader yields
``(*inputs, targets)`` and ``loss_fn(model(*inputs), targets)`` is a scalar; a sequence-to-sequence
model gets ``(source, target_in)`` as inputs. Accuracy is counted when the targets are class
indices and the model's output has a class dimension last (per token for sequences, ignoring
targets equal to ``IGNORE_INDEX``, the padding convention of ``cross_entropy``); otherwise 0.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from handbook import config

#: Targets with this value are padding: ignored by the loss and by accuracy.
IGNORE_INDEX = -100


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way for loaders."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def pick_device(preferred: str | None = None) -> torch.device:
    """``preferred`` if given, else the first available of cuda, mps, cpu."""
    if preferred is not None:
        device = torch.device(preferred)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA GPU here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def make_loader(
    *tensors: torch.Tensor,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
) -> DataLoader:
    """A ``DataLoader`` over aligned tensors (inputs first, targets last), seeded, no workers."""
    if len(tensors) < 2:
        raise ValueError(f"expected at least inputs and targets, got {len(tensors)} tensor(s)")
    lengths = [len(tensor) for tensor in tensors]
    if len(set(lengths)) != 1:
        raise ValueError(
            f"expected as many inputs as targets, got {' and '.join(map(str, lengths))}"
        )
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorDataset(*tensors),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator if shuffle else None,
        num_workers=0,
    )


@dataclass
class History:
    """Per-epoch measurements of one training run (losses are means over samples)."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    def as_dict(self) -> dict[str, list[float]]:
        return {name: list(values) for name, values in self.__dict__.items()}


def autocast_context(device: torch.device, enabled: bool):
    """Mixed precision for ``device``: float16 on CUDA and Apple MPS (MPS autocast takes only
    float16), bfloat16 on CPUs; a no-op if disabled."""
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type in ("cuda", "mps") else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _count_correct(logits: torch.Tensor, targets: torch.Tensor) -> tuple[int, int]:
    """(correct, counted) predictions; padding targets are not counted."""
    if logits.ndim != targets.ndim + 1 or targets.dtype not in (torch.int64, torch.int32):
        return 0, 0
    counted = targets != IGNORE_INDEX
    correct = (logits.argmax(dim=-1) == targets) & counted
    return int(correct.sum()), int(counted.sum())


def _to_device(batch, device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor]:
    *inputs, targets = (tensor.to(device) for tensor in batch)
    return inputs, targets


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: Callable = nn.functional.cross_entropy,
    *,
    device: torch.device | None = None,
    use_autocast: bool = False,
) -> tuple[float, float]:
    """Mean loss and accuracy (fraction, 0 for non-classification targets) over ``loader``."""
    device = device or next(model.parameters()).device
    model.eval()
    total_loss, correct, counted, count = 0.0, 0, 0, 0
    for batch in loader:
        inputs, targets = _to_device(batch, device)
        with autocast_context(device, use_autocast):
            logits = model(*inputs)
            loss = loss_fn(logits, targets)
        total_loss += float(loss) * len(targets)
        batch_correct, batch_counted = _count_correct(logits, targets)
        correct, counted, count = (
            correct + batch_correct,
            counted + batch_counted,
            count + len(targets),
        )
    if count == 0:
        raise ValueError("cannot evaluate on an empty loader")
    return total_loss / count, correct / max(counted, 1)


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Class predictions ``(n,)`` for ``inputs`` ``(n, ...)``, in evaluation mode."""
    model.eval()
    device = next(model.parameters()).device
    outputs = [model(chunk.to(device)).argmax(dim=-1).cpu() for chunk in inputs.split(batch_size)]
    return torch.cat(outputs) if outputs else torch.empty(0, dtype=torch.int64)


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable = nn.functional.cross_entropy,
    val_loader: DataLoader | None = None,
    scheduler=None,
    device: torch.device | str | None = None,
    use_autocast: bool = False,
    progress: bool = True,
    description: str = "training",
) -> History:
    """Train ``model`` for ``epochs`` epochs; return the per-epoch :class:`History`.

    ``scheduler`` (optional) is stepped once per epoch. On CUDA with autocast, a gradient
    scaler guards float16 gradients against underflow. A progress bar (``tqdm.auto``) shows the
    epoch, the training loss and the validation accuracy; where live progress is off
    (``HANDBOOK_PROGRESS=0``, set for the book's executed copies) one summary line is printed.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    device = device if isinstance(device, torch.device) else pick_device(device)
    model.to(device)
    scaler = torch.amp.GradScaler("cuda", enabled=use_autocast and device.type == "cuda")
    history = History()
    from tqdm.auto import tqdm

    live = progress and config.live_progress()
    bar = tqdm(range(epochs), desc=description, disable=not live, leave=True)
    for _ in bar:
        start = time.perf_counter()
        model.train()
        total_loss, correct, counted, count = 0.0, 0, 0, 0
        for batch in train_loader:
            inputs, targets = _to_device(batch, device)
            optimizer.zero_grad(set_to_none=True)
            with autocast_context(device, use_autocast):
                logits = model(*inputs)
                loss = loss_fn(logits, targets)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total_loss += float(loss.detach()) * len(targets)
            batch_correct, batch_counted = _count_correct(logits.detach(), targets)
            correct, counted = correct + batch_correct, counted + batch_counted
            count += len(targets)
        history.learning_rate.append(optimizer.param_groups[0]["lr"])
        if scheduler is not None:
            scheduler.step()
        history.train_loss.append(total_loss / max(count, 1))
        history.train_accuracy.append(correct / max(counted, 1))
        if val_loader is not None:
            val_loss, val_accuracy = evaluate(
                model, val_loader, loss_fn, device=device, use_autocast=use_autocast
            )
            history.val_loss.append(val_loss)
            history.val_accuracy.append(val_accuracy)
        history.seconds.append(time.perf_counter() - start)
        postfix = {"loss": f"{history.train_loss[-1]:.3f}"}
        if history.val_accuracy:
            postfix["val_acc"] = f"{history.val_accuracy[-1]:.3f}"
        bar.set_postfix(postfix)
    bar.close()
    if progress and not live:
        summary = ", ".join(f"{name} {value}" for name, value in postfix.items())
        print(f"{description}: {epochs} epochs in {history.total_seconds:.1f} s, {summary}")
    return history
