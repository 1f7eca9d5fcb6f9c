"""Timing, memory and model-size measurement, done one way for the whole book.

Timings are medians over repeats after warm-up; memory is the peak growth while a function runs
(CUDA allocator statistics on a GPU, the process's peak resident set on Linux CPUs). Chapters
compare variants with :func:`compare`, which times them interleaved, round by round, and gives
every speed-up as the median of its per-round values with their interquartile range: a ratio
comes from one run on one machine, and its interval says how much the machine's noise moved it.
"""

from __future__ import annotations

import gc
import io
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Timing:
    """Wall-clock timing of a callable: median and spread over ``repeats`` runs, milliseconds."""

    median_ms: float
    min_ms: float
    max_ms: float
    repeats: int


def time_callable(fn: Callable[[], object], *, warmup: int = 2, repeats: int = 7) -> Timing:
    """Median wall time of ``fn()`` in milliseconds after ``warmup`` untimed calls.

    On CUDA, each call is followed by a synchronisation so the time covers the kernels.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    synchronize = _synchronizer()
    for _ in range(warmup):
        fn()
    synchronize()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize()
        samples.append((time.perf_counter() - start) * 1000.0)
    return Timing(statistics.median(samples), min(samples), max(samples), repeats)


def _synchronizer() -> Callable[[], None]:
    try:
        import torch
    except ImportError:
        return lambda: None
    if torch.cuda.is_available():
        return torch.cuda.synchronize
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.mps.synchronize
    return lambda: None


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in {_STATUS}")


def cpu_peak_supported() -> bool:
    """True where the peak resident set can be reset and read (Linux /proc)."""
    try:
        _CLEAR_REFS.write_text("5")
        _status_kib("VmHWM")
    except (OSError, RuntimeError):
        return False
    return True


def peak_memory_bytes(fn: Callable[[], object], *, device: str = "cpu") -> int:
    """Peak memory growth, in bytes, while ``fn()`` runs.

    ``device="cuda"``: peak allocated by the CUDA caching allocator above what was allocated
    before. ``device="cpu"``: peak resident set size above the resident size before (Linux only:
    the kernel's high-water mark is reset through /proc/self/clear_refs). Allocations freed and
    reused inside ``fn`` count once, as they do in the process.
    """
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return max(torch.cuda.max_memory_allocated() - before, 0)
    if device != "cpu":
        raise ValueError(f"peak memory is measured on 'cpu' or 'cuda', got {device!r}")
    if not cpu_peak_supported():
        raise RuntimeError(
            "CPU peak memory needs Linux's /proc/self/clear_refs; not available here"
        )
    _CLEAR_REFS.write_text("5")
    before = _status_kib("VmRSS")
    fn()
    return max(_status_kib("VmHWM") - before, 0) * 1024


def parameter_bytes(model) -> int:
    """Bytes held by a module's parameters and buffers in memory."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def serialized_bytes(model) -> int:
    """Bytes of ``torch.save(model.state_dict())``: the size of the model on disk."""
    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def count_parameters(model, trainable_only: bool = False) -> int:
    """Number of scalar parameters of a module."""
    return sum(
        parameter.numel()
        for parameter in model.parameters()
        if parameter.requires_grad or not trainable_only
    )


@dataclass(frozen=True)
class Ratio:
    """A speed ratio measured round by round: ``value`` is the median of the per-round ratios,
    ``low``..``high`` their interquartile range (the middle half of the rounds)."""

    value: float
    low: float
    high: float
    rounds: int

    @property
    def interval(self) -> tuple[float, float]:
        """``(low, high)``: what :func:`handbook.claims.record` takes as ``interval``."""
        return (self.low, self.high)

    @property
    def spread(self) -> float:
        """The interquartile range relative to the median (0.1: the middle half within 10%)."""
        return (self.high - self.low) / self.value if self.value else float("inf")

    def __str__(self) -> str:
        return f"{self.value:.2f}x ({self.low:.2f}–{self.high:.2f})"


def ratio_of(numerators: Sequence[float], denominators: Sequence[float]) -> Ratio:
    """Median and interquartile range of ``numerators[i] / denominators[i]`` over rounds."""
    if len(numerators) != len(denominators) or not numerators:
        raise ValueError(
            f"expected as many rounds on both sides, at least one; got {len(numerators)} "
            f"and {len(denominators)}"
        )
    ratios = [top / bottom for top, bottom in zip(numerators, denominators, strict=True)]
    low, median, high = (float(value) for value in np.percentile(ratios, [25, 50, 75]))
    return Ratio(median, low, high, len(ratios))


@dataclass
class Measurement:
    """One variant of a side-by-side comparison.

    ``median_ms`` is the median over rounds of the milliseconds per call; ``ratio`` the median
    of the per-round speed-ups over the baseline, ``ratio_low``..``ratio_high`` their
    interquartile range; ``round_ms`` the per-round milliseconds per call, aligned with every
    other variant's of the same comparison (see :func:`speedup`).
    """

    group: str
    variant: str
    median_ms: float
    ratio: float
    peak_bytes: int | None = None
    detail: str = ""
    ratio_low: float | None = None
    ratio_high: float | None = None
    round_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def rounds(self) -> int:
        return len(self.round_ms)


def speedup(slower: Measurement, faster: Measurement) -> Ratio:
    """How many times faster ``faster`` ran than ``slower``, round by round, with its interval.

    Both rows must come from one :func:`compare` (their rounds interleaved): a burst of load
    then slows both in the same round and the ratio of that round stays honest.
    """
    if slower.rounds != faster.rounds or not slower.rounds:
        raise ValueError(
            f"{slower.variant!r} and {faster.variant!r} were not measured in the same rounds "
            f"({slower.rounds} and {faster.rounds}): take both from one bench.compare"
        )
    return ratio_of(slower.round_ms, faster.round_ms)


def _calls_per_sample(once_ms: float | None, min_sample_ms: float) -> int:
    """How many calls make one timed sample last at least ``min_sample_ms`` (timer and
    scheduler noise swamp a sample of a few microseconds); one when nothing was timed yet."""
    if once_ms is None:
        return 1
    return max(1, min(1000, math.ceil(min_sample_ms / max(once_ms, 1e-3))))


def _time_calls(fn: Callable[[], object], calls: int, synchronize) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize()
    return (time.perf_counter() - start) * 1000.0 / calls


def default_budget_s() -> float:
    """Seconds a comparison may keep adding rounds to narrow its interval: 3, or 0.5 in smoke
    mode (where the suite checks that the code runs, not what it measures)."""
    from handbook import config

    return 0.5 if config.smoke_mode() else 3.0


def interleaved_rounds(
    variants: dict[str, Callable[[], object]],
    *,
    baseline: str,
    warmup: int = 2,
    min_rounds: int = 7,
    max_rounds: int = 200,
    budget_s: float | None = None,
    target_spread: float = 0.1,
    min_sample_ms: float = 2.0,
    samples_per_round: int = 1,
) -> dict[str, list[float]]:
    """Per-round milliseconds per call of every variant, measured round-robin.

    Each round times every variant once (the order rotates from round to round), so a burst
    of load on a shared machine slows all of them alike and the per-round ratios stay close.
    The warm-up calls (``warmup`` each, untimed as far as the result goes) also decide how many
    calls one sample makes, so that a sample lasts at least ``min_sample_ms``. Rounds continue
    until at least ``min_rounds`` are done and every variant's speed-up over ``baseline`` has an
    interquartile range within ``target_spread`` of its median, or until ``budget_s`` seconds
    (default :func:`default_budget_s`) or ``max_rounds`` rounds.

    ``samples_per_round`` > 1 times every variant that many times in a round (still in turn)
    and keeps each variant's fastest sample of the round: on a crowded machine a short sample
    is either undisturbed or preempted, and the fastest of a few is the undisturbed one.
    """
    if baseline not in variants:
        raise ValueError(f"baseline {baseline!r} is not one of the variants {sorted(variants)}")
    budget_s = default_budget_s() if budget_s is None else budget_s
    if samples_per_round < 1:
        raise ValueError(f"samples_per_round must be at least 1, got {samples_per_round}")
    if min_rounds < 1 or max_rounds < min_rounds:
        raise ValueError(
            f"expected 1 <= min_rounds <= max_rounds, got {min_rounds} and {max_rounds}"
        )
    synchronize = _synchronizer()
    names = list(variants)
    last_warmup_ms: dict[str, float | None] = dict.fromkeys(names)
    for _ in range(warmup):
        for name in names:
            last_warmup_ms[name] = _time_calls(variants[name], 1, synchronize)
    calls = {name: _calls_per_sample(last_warmup_ms[name], min_sample_ms) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    started = time.perf_counter()
    turn = 0
    for round_index in range(max_rounds):
        fastest = dict.fromkeys(names, math.inf)
        for _ in range(samples_per_round):
            shift = turn % len(names)
            turn += 1
            for name in names[shift:] + names[:shift]:
                sample = _time_calls(variants[name], calls[name], synchronize)
                fastest[name] = min(fastest[name], sample)
        for name in names:
            samples[name].append(fastest[name])
        done = round_index + 1
        if done >= min_rounds and (
            time.perf_counter() - started >= budget_s
            or all(
                ratio_of(samples[baseline], samples[name]).spread <= target_spread for name in names
            )
        ):
            break
    return samples


def compare(
    group: str,
    variants: dict[str, Callable[[], object]],
    *,
    baseline: str,
    warmup: int = 2,
    repeats: int = 7,
    measure_memory: bool = False,
    details: dict[str, str] | None = None,
    budget_s: float | None = None,
    target_spread: float = 0.1,
    samples_per_round: int = 1,
) -> list[Measurement]:
    """Time every variant interleaved (:func:`interleaved_rounds`, at least ``repeats`` rounds);
    ``ratio`` is the median over rounds of the baseline's time over the variant's, with its
    interquartile range in ``ratio_low``..``ratio_high``.

    A ratio above 1 means the variant is faster than the baseline (a speed-up).
    """
    details = details or {}
    samples = interleaved_rounds(
        variants,
        baseline=baseline,
        warmup=warmup,
        min_rounds=repeats,
        max_rounds=max(repeats, 200),
        budget_s=budget_s,
        target_spread=target_spread,
        samples_per_round=samples_per_round,
    )
    rows = []
    for name, round_ms in samples.items():
        peak = None
        if measure_memory and cpu_peak_supported():
            peak = peak_memory_bytes(variants[name])
        ratio = ratio_of(samples[baseline], round_ms)
        rows.append(
            Measurement(
                group,
                name,
                statistics.median(round_ms),
                ratio.value,
                peak,
                details.get(name, ""),
                ratio.low,
                ratio.high,
                round_ms,
            )
        )
    return rows


def format_table(rows: Sequence[Measurement]) -> str:
    """A plain-text table of measurements, one line per variant; the speed-up's interquartile
    range over rounds beside it."""
    header = (
        f"{'benchmark':34} {'variant':26} {'median ms':>10} {'speed-up':>9} {'middle half':>13} "
        f"{'peak MiB':>9}  detail"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        peak = "" if row.peak_bytes is None else f"{row.peak_bytes / 2**20:.1f}"
        interval = (
            ""
            if row.ratio_low is None or row.ratio_high is None
            else f"{row.ratio_low:.2f}–{row.ratio_high:.2f}"
        )
        lines.append(
            f"{row.group:34} {row.variant:26} {row.median_ms:10.3f} {row.ratio:8.2f}x "
            f"{interval:>13} {peak:>9}  {row.detail}"
        )
    return "\n".join(lines)
