"""One small training loop for every chapter: seeding, device choice, autocast, progress, history.

``fit`` trains a model for a number of epochs and returns a :class:`History`; ``evaluate``
measures loss and accuracy on a loader; ``evaluation_mode`` runs a block with the model in
evaluation mode and gives it back in the mode it had. The one contract: a loader yields
``(*inputs, targets)`` and ``loss_fn(model(*inputs), targets)`` is a scalar; a sequence-to-sequence
model gets ``(source, target_in)`` as inputs. Accuracy is counted when the targets are class
indices and the model's output has a class dimension last (per token for sequences, ignoring
targets equal to ``IGNORE_INDEX``, the padding convention of ``cross_entropy``); otherwise 0.

The same loop runs under ``torchrun`` (chapter 10): :func:`init_distributed` joins the process
group the launcher describes in the environment, :func:`make_loader` then shards the data with a
``DistributedSampler`` (``batch_size`` stays the *global* batch), :func:`fit` wraps the model in
``DistributedDataParallel``, sums its counts over the processes, and only rank 0 shows progress,
logs to a tracker and writes checkpoints. A tracker (:class:`Tracker`, e.g.
``handbook.tracking.MLflowTracker``) receives the parameters, one set of metrics per epoch and
the trained model.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from handbook import config, sharing

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


#: What ``torchrun`` sets for every process it starts; all of them or none must be present.
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistributedInfo:
    """Where this process stands in a (possibly one-process) job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, tracks and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def distributed_info() -> DistributedInfo:
    """This process's rank and the world size, from the initialised process group (else 0 of 1)."""
    if dist.is_available() and dist.is_initialized():
        return DistributedInfo(
            rank=dist.get_rank(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            world_size=dist.get_world_size(),
        )
    return DistributedInfo()


def init_distributed(backend: str | None = None, timeout_s: float = 60.0) -> DistributedInfo:
    """Join the process group that ``torchrun`` describes in the environment.

    Without any of :data:`TORCHRUN_VARIABLES` this is a one-process run and nothing happens.
    With some but not all of them, or a rank outside the world, the process was launched wrongly
    and a ``RuntimeError`` says how to launch it. ``backend`` defaults to NCCL where CUDA exists,
    gloo on CPUs; ``timeout_s`` bounds every collective, so a lost peer ends the run instead of
    hanging it.
    """
    present = [name for name in TORCHRUN_VARIABLES if name in os.environ]
    if not present:
        return DistributedInfo()
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"launched wrongly: {', '.join(present)} set but {', '.join(missing)} missing; "
            "start a distributed run with `torchrun --nproc-per-node N ...` (it sets all of "
            f"{', '.join(TORCHRUN_VARIABLES)}), or unset them for a one-process run"
        )
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if not 0 <= rank < world_size:
        raise RuntimeError(
            f"launched wrongly: RANK={rank} is outside a world of WORLD_SIZE={world_size} "
            f"processes (expected 0 <= RANK < {world_size})"
        )
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return distributed_info()


def make_loader(
    *tensors: torch.Tensor,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    distributed: bool | None = None,
    whole_batches: bool = False,
) -> DataLoader:
    """A ``DataLoader`` over aligned tensors (inputs first, targets last), seeded, no workers.

    ``distributed`` (default: whether this process belongs to a process group of more than one)
    shards the data with a ``DistributedSampler``: each of the ``world_size`` processes gets
    every ``world_size``-th example of one seeded permutation per epoch and batches of
    ``batch_size // world_size``, so that ``batch_size`` is the global batch. With
    ``distributed=True`` in a one-process run the order is the sampler's, which is what a
    distributed run is compared with. ``whole_batches`` fetches a batch with one indexing per
    tensor instead of one call per example and a stack: the same batches from the same random
    draws, with less Python per step (it matters when the model is small).
    """
    if len(tensors) < 2:
        raise ValueError(f"expected at least inputs and targets, got {len(tensors)} tensor(s)")
    lengths = [len(tensor) for tensor in tensors]
    if len(set(lengths)) != 1:
        raise ValueError(
            f"expected as many inputs as targets, got {' and '.join(map(str, lengths))}"
        )
    info = distributed_info()
    if info.distributed if distributed is None else distributed:
        if batch_size % info.world_size:
            raise ValueError(
                f"the global batch_size {batch_size} must be a multiple of the {info.world_size} "
                "processes, so that each gets an equal share"
            )
        dataset = _WholeBatches(*tensors) if whole_batches else TensorDataset(*tensors)
        sampler = DistributedSampler(
            dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed
        )
        return DataLoader(
            dataset,
            batch_size=batch_size // info.world_size,
            sampler=sampler,
            num_workers=0,
            collate_fn=_as_fetched if whole_batches else None,
        )
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        _WholeBatches(*tensors) if whole_batches else TensorDataset(*tensors),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator if shuffle else None,
        num_workers=0,
        collate_fn=_as_fetched if whole_batches else None,
    )


class _WholeBatches(TensorDataset):
    """A ``TensorDataset`` that a ``DataLoader`` asks for a whole batch at once: one
    ``index_select`` per tensor gives what stacking the examples one by one gives."""

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        return [tensor.index_select(0, index) for tensor in self.tensors]


def _as_fetched(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    return batch


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


class Tracker(Protocol):
    """What :func:`fit` reports to (``handbook.tracking.MLflowTracker`` is one)."""

    def log_params(self, params: Mapping[str, object]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_model(self, model: nn.Module) -> None: ...


def save_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Write ``model``'s weights to ``path`` (safetensors) from rank 0 only; in a distributed run
    every process waits until the file is written."""
    from safetensors.torch import save_model

    if distributed_info().is_main:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_model(_unwrapped(model), str(path))
    if distributed_info().distributed:
        dist.barrier()


def _unwrapped(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _sum_over_processes(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums over the process group (the values themselves in a one-process run)."""
    if not distributed_info().distributed:
        return values
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    return totals.tolist()


def _is_sharded(loader: DataLoader) -> bool:
    return isinstance(loader.sampler, DistributedSampler) and distributed_info().distributed


def autocast_context(device: torch.device, enabled: bool):
    """Mixed precision for ``device``: float16 on CUDA and Apple MPS (MPS autocast takes only
    float16), bfloat16 on CPUs; a no-op if disabled."""
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type in ("cuda", "mps") else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with ``model.eval()`` (dropout off, batch-norm statistics frozen), then put the
    model back in the mode it was in: decoding, an attack or a Fisher estimate can happen in the
    middle of a training epoch. Yields the model."""
    was_training = model.training
    try:
        yield model.eval()
    finally:
        model.train(was_training)


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
    if _is_sharded(loader):
        total_loss, correct, counted, count = _sum_over_processes(
            [total_loss, correct, counted, count], device
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
    tracker: Tracker | None = None,
    checkpoint: str | Path | None = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs; return the per-epoch :class:`History`.

    ``scheduler`` (optional) is stepped once per epoch. On CUDA with autocast, a gradient
    scaler guards float16 gradients against underflow. A progress bar (``tqdm.auto``) shows the
    epoch, the training loss and the validation accuracy; where live progress is off
    (``HANDBOOK_PROGRESS=0``, set for the book's executed copies) one summary line is printed.
    ``tracker`` gets the run's parameters, the history's measurements after every epoch (step =
    epoch, from 1) and the trained model; ``checkpoint`` is a path the weights are written to
    (safetensors) after every epoch. In a process group of more than one (:func:`init_distributed`)
    the model trains wrapped in ``DistributedDataParallel``, the history holds means over the
    examples of all processes, and only rank 0 shows progress, tracks and writes the checkpoint.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    device = device if isinstance(device, torch.device) else pick_device(device)
    model.to(device)
    info = distributed_info()
    network = _wrap_for_processes(model, device, info)
    scaler = torch.amp.GradScaler("cuda", enabled=use_autocast and device.type == "cuda")
    history = History()
    from tqdm.auto import tqdm

    tracker = tracker if info.is_main else None
    if tracker is not None:
        tracker.log_params(_run_parameters(model, train_loader, epochs, optimizer, device, info))
    progress = progress and info.is_main
    live = progress and config.live_progress()
    bar = tqdm(range(epochs), desc=description, disable=not live, leave=True)
    for epoch in bar:
        start = sharing.clock()  # perf_counter, less any time stopped for a timed cell
        if isinstance(getattr(train_loader, "sampler", None), DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        network.train()
        total_loss, correct, counted, count = 0.0, 0, 0, 0
        for batch in train_loader:
            inputs, targets = _to_device(batch, device)
            optimizer.zero_grad(set_to_none=True)
            with autocast_context(device, use_autocast):
                logits = network(*inputs)
                loss = loss_fn(logits, targets)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total_loss += float(loss.detach()) * len(targets)
            batch_correct, batch_counted = _count_correct(logits.detach(), targets)
            correct, counted = correct + batch_correct, counted + batch_counted
            count += len(targets)
        total_loss, correct, counted, count = _sum_over_processes(
            [total_loss, correct, counted, count], device
        )
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
        history.seconds.append(sharing.clock() - start)
        if tracker is not None:
            tracker.log_metrics(_last_epoch(history), step=epoch + 1)
        if checkpoint is not None:
            save_checkpoint(model, checkpoint)
        postfix = {"loss": f"{history.train_loss[-1]:.3f}"}
        if history.val_accuracy:
            postfix["val_acc"] = f"{history.val_accuracy[-1]:.3f}"
        bar.set_postfix(postfix)
    bar.close()
    if progress and not live:
        summary = ", ".join(f"{name} {value}" for name, value in postfix.items())
        print(f"{description}: {epochs} epochs in {history.total_seconds:.1f} s, {summary}")
    if tracker is not None:
        tracker.log_model(model)
    return history


def _wrap_for_processes(model: nn.Module, device: torch.device, info: DistributedInfo):
    """``model`` itself in a one-process run, else wrapped in ``DistributedDataParallel`` (which
    starts every process from rank 0's weights and averages the gradients)."""
    if not info.distributed:
        return model
    device_ids = [device.index if device.index is not None else info.local_rank]
    return nn.parallel.DistributedDataParallel(
        model, device_ids=device_ids if device.type == "cuda" else None
    )


def _run_parameters(
    model: nn.Module,
    loader: DataLoader,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    info: DistributedInfo,
) -> dict[str, object]:
    """What a tracker records about a run before it starts."""
    settings = {
        key: value
        for key, value in optimizer.defaults.items()
        if isinstance(value, (int, float, str, bool))
    }
    return {
        "model": type(model).__name__,
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "epochs": epochs,
        "batch_size": (loader.batch_size or 0) * info.world_size,
        "optimizer": type(optimizer).__name__,
        **{f"optimizer.{key}": value for key, value in settings.items()},
        "device": str(device),
        "world_size": info.world_size,
    }


def _last_epoch(history: History) -> dict[str, float]:
    """The measurements of the epoch just finished, by name (empty lists left out)."""
    return {name: values[-1] for name, values in history.as_dict().items() if values}
