"""Chapter 2: the article's training recipe, one part at a time.

The article trains its translator with "cosine annealing from an initial learning rate of 3e-4,
decaying to 0.9x every 3 epochs", "dropout 0.1 and weight decay (L2 coefficient 1e-5)" and
"mixed precision FP16+FP32" (claims C3-C6). This module writes each part from scratch, small
enough to read, and tests it against the PyTorch piece that does the same job:

- learning-rate schedules as plain functions ``step -> learning rate`` (linear warm-up, cosine
  annealing, step decay, warm-up + cosine, and the three readings of the article's sentence),
  checked against ``torch.optim.lr_scheduler``; :func:`lambda_scheduler` plugs any of them into
  an optimizer;
- one Adam step with decoupled weight decay (AdamW) or with an L2 penalty (Adam + L2), checked
  against ``torch.optim.AdamW`` / ``torch.optim.Adam``;
- a dynamic loss scaler (:class:`DynamicLossScaler`), checked against ``torch.amp.GradScaler``;
- activation memory counted exactly (:func:`saved_tensor_bytes`: the bytes autograd keeps for
  the backward pass) and peak memory from the profiler or the CUDA allocator;
- the chapter's experiment: the chapter-1 translator trained under a :class:`Recipe` on a
  deliberately small sample of the number-words corpus
  (:func:`handbook.datasets.number_words_sample`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from handbook import bench, datasets, train, translation
from handbook.models import Transformer

__all__ = [
    "ARTICLE_BASE_LR",
    "ARTICLE_VARIANTS",
    "BASELINE",
    "ARTICLE_RECIPE",
    "DynamicLossScaler",
    "PrecisionResult",
    "Recipe",
    "SavedTensors",
    "TRANSLATOR_SIZES",
    "TranslationRun",
    "adam_step",
    "article_schedule",
    "benchmarks",
    "build_translator",
    "compare_precision",
    "cosine_annealing",
    "lambda_scheduler",
    "linear_warmup",
    "make_optimizer",
    "peak_memory_bytes",
    "saved_tensor_bytes",
    "schedule_values",
    "step_decay",
    "train_translation",
    "warmup_cosine",
]

#: "cosine annealing from an initial learning rate of 3e-4"
ARTICLE_BASE_LR = 3e-4


# Learning-rate schedules ----------------------------------------------------------------------
#
# Each schedule is a function of the step count (0 = before the first update) returning the
# learning rate for that step. ``handbook.train.fit`` steps a scheduler once per epoch, so in
# this chapter a "step" of a schedule is an epoch.


def _check_step(step: int) -> None:
    if step < 0:
        raise ValueError(f"expected a step count >= 0, got {step}")


def linear_warmup(
    step: int, *, base_lr: float, warmup_steps: int, start_factor: float = 0.0
) -> float:
    """``base_lr * (start_factor + (1 - start_factor) * min(step, warmup_steps) / warmup_steps)``.

    Starts at ``start_factor * base_lr`` and reaches ``base_lr`` at ``warmup_steps``, then stays
    there (``torch.optim.lr_scheduler.LinearLR`` with ``total_iters=warmup_steps``).
    """
    _check_step(step)
    if warmup_steps <= 0:
        return base_lr
    progress = min(step, warmup_steps) / warmup_steps
    return base_lr * (start_factor + (1.0 - start_factor) * progress)


def cosine_annealing(step: int, *, base_lr: float, total_steps: int, min_lr: float = 0.0) -> float:
    """Half a cosine from ``base_lr`` at step 0 down to ``min_lr`` at ``total_steps``:

    ``min_lr + (base_lr - min_lr) * (1 + cos(pi * step / total_steps)) / 2``, then ``min_lr``
    (``CosineAnnealingLR(T_max=total_steps, eta_min=min_lr)`` for steps up to ``total_steps``).
    """
    _check_step(step)
    if total_steps <= 0:
        raise ValueError(f"expected total_steps >= 1, got {total_steps}")
    progress = min(step, total_steps) / total_steps
    return min_lr + (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress)) / 2.0


def step_decay(step: int, *, base_lr: float, step_size: int, gamma: float) -> float:
    """``base_lr * gamma ** (step // step_size)``: "x0.9 every 3 epochs" is ``gamma=0.9,
    step_size=3`` (``torch.optim.lr_scheduler.StepLR``)."""
    _check_step(step)
    if step_size <= 0:
        raise ValueError(f"expected step_size >= 1, got {step_size}")
    return base_lr * gamma ** (step // step_size)


def warmup_cosine(
    step: int,
    *,
    base_lr: float,
    warmup_steps: int,
    total_steps: int,
    min_lr: float = 0.0,
    start_factor: float = 0.0,
) -> float:
    """Linear warm-up for ``warmup_steps``, then cosine annealing to ``min_lr`` at
    ``total_steps`` (``SequentialLR([LinearLR, CosineAnnealingLR], milestones=[warmup_steps])``).
    """
    _check_step(step)
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"expected 0 <= warmup_steps < total_steps, got {warmup_steps} and {total_steps}"
        )
    if step < warmup_steps:
        return linear_warmup(
            step, base_lr=base_lr, warmup_steps=warmup_steps, start_factor=start_factor
        )
    return cosine_annealing(
        step - warmup_steps,
        base_lr=base_lr,
        total_steps=total_steps - warmup_steps,
        min_lr=min_lr,
    )


#: The readings of "cosine annealing from 3e-4, decaying to 0.9x every 3 epochs".
ARTICLE_VARIANTS = {
    "step": "step decay only: x0.9 every 3 epochs, no cosine",
    "cosine x step": "one cosine over the run, multiplied by 0.9 every 3 epochs (this chapter)",
    "restarts": "a cosine over each 3-epoch cycle, restarting at 0.9x the previous peak",
}


def article_schedule(
    epoch: int,
    *,
    variant: str = "cosine x step",
    total_epochs: int,
    base_lr: float = ARTICLE_BASE_LR,
    gamma: float = 0.9,
    every: int = 3,
    min_lr: float = 0.0,
) -> float:
    """The learning rate at ``epoch`` under one reading of the article's schedule.

    ``variant`` is a key of :data:`ARTICLE_VARIANTS`: ``"step"`` is
    ``base_lr * gamma ** (epoch // every)``; ``"cosine x step"`` multiplies that factor with a
    cosine from ``base_lr`` to ``min_lr`` over ``total_epochs``; ``"restarts"`` (SGDR with a
    decaying peak) anneals from ``base_lr * gamma ** cycle`` towards ``min_lr`` within each cycle
    of ``every`` epochs.
    """
    _check_step(epoch)
    decay = gamma ** (epoch // every)
    if variant == "step":
        return base_lr * decay
    if variant == "cosine x step":
        cosine = cosine_annealing(epoch, base_lr=1.0, total_steps=total_epochs)
        return min_lr + (base_lr - min_lr) * cosine * decay
    if variant == "restarts":
        within = cosine_annealing(epoch % every, base_lr=1.0, total_steps=every)
        return min_lr + (base_lr * decay - min_lr) * within
    raise ValueError(f"unknown variant {variant!r}: expected one of {sorted(ARTICLE_VARIANTS)}")


def schedule_values(schedule: Callable[[int], float], steps: int) -> list[float]:
    """``[schedule(0), ..., schedule(steps - 1)]``: the learning rate of each step."""
    return [schedule(step) for step in range(steps)]


def lambda_scheduler(
    optimizer: torch.optim.Optimizer, schedule: Callable[[int], float]
) -> torch.optim.lr_scheduler.LambdaLR:
    """A PyTorch scheduler that sets the learning rate to ``schedule(step)``.

    ``LambdaLR`` multiplies each group's initial learning rate by a factor; the factor here is
    ``schedule(step) / schedule(0)``, so the optimizer's ``lr`` is ``schedule(0)`` from the start.
    """
    first = schedule(0)
    if first <= 0:
        raise ValueError(f"the schedule must start above 0 to be used as a factor, got {first}")
    for group in optimizer.param_groups:
        group["lr"] = first
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step) / first)


# Adam, AdamW and L2 ---------------------------------------------------------------------------


def adam_step(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: int,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """One Adam update; returns new ``(param, exp_avg, exp_avg_sq)`` (inputs are not modified).

    ``step`` counts updates from 1. ``decoupled=True`` is AdamW: the weights shrink by
    ``lr * weight_decay`` outside the adaptive update. ``decoupled=False`` is Adam with an L2
    penalty: ``weight_decay * param`` is added to the gradient *before* the moments, so it is
    divided by ``sqrt(v)`` like the gradient (``torch.optim.Adam(weight_decay=...)``).
    All tensors share one shape.
    """
    if step < 1:
        raise ValueError(f"Adam counts steps from 1, got {step}")
    beta1, beta2 = betas
    if decoupled:
        param = param * (1.0 - lr * weight_decay)
    else:
        grad = grad + weight_decay * param
    exp_avg = beta1 * exp_avg + (1.0 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1.0 - beta2) * grad * grad
    first_moment = exp_avg / (1.0 - beta1**step)
    second_moment = exp_avg_sq / (1.0 - beta2**step)
    param = param - lr * first_moment / (second_moment.sqrt() + eps)
    return param, exp_avg, exp_avg_sq


# Dynamic loss scaling -------------------------------------------------------------------------


class DynamicLossScaler:
    """Loss scaling for float16 training, the rule of ``torch.amp.GradScaler``.

    Float16 gradients below about 6e-8 flush to zero; multiplying the loss by ``scale`` lifts
    them into range, and the gradients are divided by ``scale`` again before the optimizer step.
    If any gradient is inf or NaN the step is skipped and ``scale *= backoff_factor``; after
    ``growth_interval`` clean steps in a row, ``scale *= growth_factor``.
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ):
        if not (growth_factor > 1.0 and 0.0 < backoff_factor < 1.0 and growth_interval >= 1):
            raise ValueError(
                "expected growth_factor > 1, 0 < backoff_factor < 1 and growth_interval >= 1, "
                f"got {growth_factor}, {backoff_factor}, {growth_interval}"
            )
        self.scale = float(init_scale)
        self.growth_factor = growth_factor
        self.backoff_factor = backoff_factor
        self.growth_interval = growth_interval
        self.growth_tracker = 0
        self.skipped_steps = 0

    def scale_loss(self, loss: Tensor) -> Tensor:
        """``loss * scale``: call ``.backward()`` on this."""
        return loss * self.scale

    def unscale_(self, parameters: Iterable[Tensor]) -> bool:
        """Divide every gradient by ``scale`` in place; True if any gradient is inf or NaN."""
        found_inf = False
        for parameter in parameters:
            if parameter.grad is None:
                continue
            parameter.grad.div_(self.scale)
            found_inf = found_inf or not bool(torch.isfinite(parameter.grad).all())
        return found_inf

    def update(self, found_inf: bool) -> None:
        """Back off after an overflow; grow after ``growth_interval`` clean steps."""
        if found_inf:
            self.scale *= self.backoff_factor
            self.growth_tracker = 0
            return
        self.growth_tracker += 1
        if self.growth_tracker == self.growth_interval:
            self.scale *= self.growth_factor
            self.growth_tracker = 0

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Unscale, step unless a gradient overflowed, update the scale; True if it stepped."""
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        found_inf = self.unscale_(parameters)
        if found_inf:
            self.skipped_steps += 1
        else:
            optimizer.step()
        self.update(found_inf)
        return not found_inf


# Memory ---------------------------------------------------------------------------------------


@dataclass
class SavedTensors:
    """What autograd keeps for the backward pass of one forward, in bytes.

    ``activation_bytes`` counts every distinct storage saved that is not a parameter (activations,
    masks, and under autocast the low-precision copies of the weights); ``parameter_bytes`` the
    parameters saved by reference (they exist anyway). ``bytes_by_dtype`` splits the activations.
    """

    activation_bytes: int
    parameter_bytes: int
    tensors: int
    bytes_by_dtype: dict[str, int] = field(default_factory=dict)


def saved_tensor_bytes(
    forward: Callable[[], object], parameters: Iterable[Tensor] = ()
) -> SavedTensors:
    """Run ``forward()`` and count the tensors autograd saves for backward.

    Exact and machine-independent: the count comes from ``torch.autograd.graph.
    saved_tensors_hooks``, not from the allocator. Tensors sharing a storage are counted once
    (whole storage). ``parameters``: the model's parameters, reported apart.
    """
    parameter_storages = {p.untyped_storage().data_ptr() for p in parameters}
    storages: dict[int, tuple[int, str]] = {}
    count = 0

    def pack(tensor: Tensor) -> Tensor:
        nonlocal count
        count += 1
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = (storage.nbytes(), str(tensor.dtype).replace("torch.", ""))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    activation, on_parameters, by_dtype = 0, 0, {}
    for pointer, (nbytes, dtype) in storages.items():
        if pointer in parameter_storages:
            on_parameters += nbytes
            continue
        activation += nbytes
        by_dtype[dtype] = by_dtype.get(dtype, 0) + nbytes
    return SavedTensors(activation, on_parameters, count, by_dtype)


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Peak memory growth while ``fn()`` runs, bytes.

    On CUDA: the caching allocator's peak above what was allocated before. On CPU: from the
    profiler's memory events (``profile_memory=True``), summed in the order the operators started;
    an approximation, since an operator's allocations are all dated at its start.
    """
    if torch.device(device).type == "cuda":
        return bench.peak_memory_bytes(fn, device="cuda")
    # Kineto, the profiler's backend, writes start/stop lines and, on a machine without a GPU,
    # "gpuGetDeviceCount failed" to the process's stderr, where they reach the terminal and the
    # executed notebook; none says anything about a CPU measurement. A level set by the reader wins.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        fn()
    current, peak = 0, 0
    for _, self_bytes in _self_cpu_memory(profiler.profiler.kineto_results.events()):
        current += self_bytes
        peak = max(peak, current)
    return peak


@dataclass(eq=False)
class _Operator:
    name: str
    thread: int
    start: int
    end: int
    memory: int
    synchronous: bool
    parent: _Operator | None = None
    children: list[_Operator] = field(default_factory=list)


#: Profiler events that ``torch.profiler``'s event list leaves out (``_filter_name``).
_UTILITY_EVENTS = frozenset(
    (
        "[memory]",
        "[OutOfMemory]",
        "profiler::_record_function_enter",
        "profiler::_record_function_enter_new",
        "profiler::_record_function_exit",
        "aten::is_leaf",
        "aten::output_nr",
        "aten::_version",
    )
)


def _self_cpu_memory(raw_events) -> list[tuple[int, int]]:
    """``(start ns, bytes)`` of every operator's own CPU memory change, in start order: what
    ``profiler.events()``'s ``self_cpu_memory_usage`` gives, from the profiler's raw events.

    The same rules as ``torch.profiler`` (an allocation belongs to every operator whose time
    range holds it, an operator's own share leaves out its children's, an operator with one child
    of its own name absorbs it, an allocation outside every operator stands alone), without
    building a ``FunctionEvent`` per operator: under bfloat16 autocast on a CPU a training step
    of the translator records 100,000 operators, and that construction took longer than the step.
    """
    from bisect import bisect_left, bisect_right

    from torch.autograd import DeviceType

    cpu_types = (DeviceType.CPU, DeviceType.MKLDNN, DeviceType.IDEEP)
    records = sorted(
        (event.start_ns(), event.nbytes() if event.device_type() in cpu_types else 0, index)
        for index, event in enumerate(raw_events)
        if event.name() == "[memory]"
    )
    starts = [start for start, _, _ in records]
    attributed = [False] * len(records)
    operators = []
    for event in raw_events:
        name = event.name()
        if name in _UTILITY_EVENTS or event.is_hidden_event():
            continue
        start, end = event.start_ns(), event.end_ns()
        cpu = event.device_type() == DeviceType.CPU
        memory = 0
        if cpu:
            first, last = bisect_left(starts, start), bisect_right(starts, end)
            memory = sum(nbytes for _, nbytes, _ in records[first:last])
            attributed[first:last] = [True] * (last - first)
        thread = event.start_thread_id()
        synchronous = cpu and not event.is_async() and thread == event.end_thread_id()
        operators.append(_Operator(name, thread, start, end, memory, synchronous))
    alone = sorted(
        index for (_, _, index), done in zip(records, attributed, strict=True) if not done
    )
    for index in alone:
        event = raw_events[index]
        nbytes = event.nbytes() if event.device_type() in cpu_types else 0
        start = event.start_ns()
        operators.append(_Operator("[memory]", event.start_thread_id(), start, start, nbytes, True))
    operators.sort(key=lambda operator: (operator.start, -operator.end))
    by_thread: dict[int, list[_Operator]] = {}
    for operator in operators:
        if operator.synchronous:
            by_thread.setdefault(operator.thread, []).append(operator)
    for thread_operators in by_thread.values():
        open_operators: list[_Operator] = []
        for operator in thread_operators:
            while open_operators:
                parent = open_operators[-1]
                if operator.start >= parent.end or operator.end > parent.end:
                    open_operators.pop()
                else:
                    parent.children.append(operator)
                    operator.parent = parent
                    break
            open_operators.append(operator)
    while True:
        absorbed = set()
        for operator in operators:
            parent = operator.parent
            if parent is not None and parent.name == operator.name and len(parent.children) == 1:
                parent.children = operator.children
                for child in operator.children:
                    child.parent = parent
                absorbed.add(id(operator))
        if not absorbed:
            break
        operators = [operator for operator in operators if id(operator) not in absorbed]
    own = [
        (operator.start, operator.memory - sum(child.memory for child in operator.children))
        for operator in operators
        if operator.synchronous
    ]
    return sorted((pair for pair in own if pair[1]), key=lambda pair: pair[0])


# The chapter's experiment ---------------------------------------------------------------------

#: The chapter-1 translator: d_model 64, 4 heads, 2 + 2 layers, feed-forward 128.
TRANSLATOR_SIZES = dict(
    d_model=64, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, d_ff=128, max_len=64
)


@dataclass(frozen=True)
class Recipe:
    """One training configuration of the translator.

    ``schedule``: ``None`` for a constant learning rate, else a key of :data:`ARTICLE_VARIANTS`
    (stepped per epoch, starting from ``learning_rate``). ``decoupled_weight_decay``: AdamW if
    True, Adam with an L2 penalty if False. ``mixed_precision``: autocast (bfloat16 on CPU,
    float16 with loss scaling on CUDA, see :func:`handbook.train.fit`).
    """

    name: str
    learning_rate: float = 3e-3
    dropout: float = 0.0
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = True
    schedule: str | None = None
    mixed_precision: bool = False


#: The baseline: constant learning rate, no dropout, no weight decay, float32.
BASELINE = Recipe("baseline")
#: The article's recipe: schedule + dropout 0.1 + weight decay 1e-5 + mixed precision.
ARTICLE_RECIPE = Recipe(
    "article recipe",
    dropout=0.1,
    weight_decay=1e-5,
    schedule="cosine x step",
    mixed_precision=True,
)


def build_translator(task: translation.TranslationTask, dropout: float = 0.0) -> Transformer:
    """The chapter-1 translator (:data:`TRANSLATOR_SIZES`) for ``task``'s vocabularies."""
    return Transformer(
        task.source_vocab_size,
        task.target_vocab_size,
        dropout=dropout,
        pad_id=task.pad_id,
        **TRANSLATOR_SIZES,
    )


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay) or Adam + L2, as ``recipe`` says."""
    kind = torch.optim.AdamW if recipe.decoupled_weight_decay else torch.optim.Adam
    # foreach: one call per operation for all the tensors, where the CPU default loops over them
    # in Python; the same numbers, bit for bit
    return kind(
        model.parameters(),
        lr=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        foreach=True,
    )


@dataclass
class TranslationRun:
    """One trained translator: its recipe, seed, per-epoch history and test scores."""

    recipe: Recipe
    seed: int
    history: train.History
    scores: translation.TranslationScores
    model: Transformer


def train_translation(
    task: translation.TranslationTask,
    recipe: Recipe,
    *,
    seed: int,
    epochs: int,
    batch_size: int = 128,
    validation_split: str | None = None,
    test_split: str = "test",
    device: torch.device | str | None = None,
    progress: bool = True,
) -> TranslationRun:
    """Train the chapter-1 translator on ``task``'s ``train`` split under ``recipe``.

    Validation loss/accuracy (teacher forcing) per epoch on ``validation_split`` if given; test
    scores (character BLEU, chrF, exact match, 0-100) from greedy translation of ``test_split``.
    """
    train.set_seed(seed)
    source, target_in, target_out = translation.teacher_forcing_tensors(task, "train")
    loader = train.make_loader(
        source, target_in, target_out, batch_size=batch_size, shuffle=True, seed=seed
    )
    validation = None
    if validation_split is not None:
        tensors = translation.teacher_forcing_tensors(task, validation_split)
        validation = train.make_loader(*tensors, batch_size=512, shuffle=False)
    model = build_translator(task, dropout=recipe.dropout)
    optimizer = make_optimizer(model, recipe)
    scheduler = None
    if recipe.schedule is not None:
        scheduler = lambda_scheduler(
            optimizer,
            lambda epoch: article_schedule(
                epoch,
                variant=recipe.schedule,
                total_epochs=epochs,
                base_lr=recipe.learning_rate,
            ),
        )
    history = train.fit(
        model,
        loader,
        epochs=epochs,
        optimizer=optimizer,
        loss_fn=translation.sequence_loss,
        val_loader=validation,
        scheduler=scheduler,
        device=device,
        use_autocast=recipe.mixed_precision,
        progress=progress,
        description=f"{recipe.name}, seed {seed}",
    )
    rows = task.data[test_split]
    longest = translation.teacher_forcing_tensors(task, test_split)[1].shape[1]
    hypotheses = translation.translate(model, rows["english"], task, max_len=longest + 2)
    scores = translation.score(hypotheses, rows["german"])
    return TranslationRun(recipe, seed, history, scores, model)


@dataclass
class PrecisionResult:
    """One precision of :func:`compare_precision`: training-step time and memory.

    ``speedup`` and ``memory_ratio`` are relative to float32 (speed-up > 1 is faster;
    memory ratio < 1 is smaller); ``speedup_interval`` is the speed-up's interquartile range
    over the interleaved rounds of :func:`handbook.bench.compare`. ``peak_bytes``: see
    :func:`peak_memory_bytes`.
    """

    variant: str
    step_ms: float
    speedup: float
    activation_bytes: int
    memory_ratio: float
    peak_bytes: int
    speedup_interval: tuple[float, float] | None = None


def _training_step(model, optimizer, batch, device, mixed_precision):
    source, target_in, target_out = batch
    scaler = torch.amp.GradScaler(device.type, enabled=mixed_precision and device.type == "cuda")

    def forward():
        with train.autocast_context(device, mixed_precision):
            return translation.sequence_loss(model(source, target_in), target_out)

    def step():
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(forward()).backward()
        scaler.step(optimizer)
        scaler.update()

    return forward, step


def compare_precision(
    task: translation.TranslationTask,
    *,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    warmup: int = 2,
    repeats: int = 7,
    seed: int = 0,
) -> list[PrecisionResult]:
    """Float32 against mixed precision on one training step of the chapter-1 translator.

    Both variants train the same model from the same weights on the first ``batch_size`` pairs;
    times are measured interleaved (:func:`handbook.bench.compare`), activation memory
    is :func:`saved_tensor_bytes` of one forward pass.
    """
    device = device if isinstance(device, torch.device) else train.pick_device(device)
    tensors = translation.teacher_forcing_tensors(task, "train")
    batch = tuple(tensor[:batch_size].to(device) for tensor in tensors)
    steps, memory, peaks = {}, {}, {}
    for variant, mixed in (("float32", False), ("mixed precision", True)):
        train.set_seed(seed)
        model = build_translator(task).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        forward, step = _training_step(model, optimizer, batch, device, mixed)
        memory[variant] = saved_tensor_bytes(forward, model.parameters())
        peaks[variant] = peak_memory_bytes(step, device)
        steps[variant] = step
    rows = bench.compare(
        "translator training step", steps, baseline="float32", warmup=warmup, repeats=repeats
    )
    base_bytes = memory["float32"].activation_bytes
    return [
        PrecisionResult(
            row.variant,
            row.median_ms,
            row.ratio,
            memory[row.variant].activation_bytes,
            memory[row.variant].activation_bytes / base_bytes,
            peaks[row.variant],
            (row.ratio_low, row.ratio_high),
        )
        for row in rows
    ]


def benchmarks(smoke: bool = False) -> list[bench.Measurement]:
    """``make bench``: float32 against autocast for a training step of the chapter-1 translator.

    The detail column holds the activation bytes saved for backward (exact, from
    :func:`saved_tensor_bytes`).
    """
    data = datasets.number_words_sample({"train": 64 if smoke else 512}, seed=0)
    task = translation.build_task(data)
    results = compare_precision(
        task, batch_size=32 if smoke else 128, warmup=1 if smoke else 2, repeats=2 if smoke else 7
    )
    return [
        bench.Measurement(
            "translator training step",
            result.variant,
            result.step_ms,
            result.speedup,
            None,
            f"activations {result.activation_bytes / 2**20:.2f} MiB "
            f"({result.memory_ratio:.2f}x float32), {train.pick_device()}",
        )
        for result in results
    ]
