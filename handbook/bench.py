"""Timing, memory and model-size measurement, done one way for the whole book.

Timings are medians over repeats after warm-up; memory is the peak growth while a function runs
(CUDA allocator statistics on a GPU, the process's peak resident set on Linux CPUs). Chapters
measure side by side with :func:`compare`, so ratios come from one run on one machine.
"""

from __future__ import annotations

import gc
import io
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


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


@dataclass
class Measurement:
    """One variant of a side-by-side comparison."""

    group: str
    variant: str
    median_ms: float
    ratio: float
    peak_bytes: int | None = None
    detail: str = ""


def compare(
    group: str,
    variants: dict[str, Callable[[], object]],
    *,
    baseline: str,
    warmup: int = 2,
    repeats: int = 7,
    measure_memory: bool = False,
    details: dict[str, str] | None = None,
) -> list[Measurement]:
    """Time every variant in the same run; ``ratio`` is the baseline's median over the variant's.

    A ratio above 1 means the variant is faster than the baseline (a speed-up).
    """
    if baseline not in variants:
        raise ValueError(f"baseline {baseline!r} is not one of the variants {sorted(variants)}")
    details = details or {}
    timings = {
        name: time_callable(fn, warmup=warmup, repeats=repeats) for name, fn in variants.items()
    }
    base = timings[baseline].median_ms
    rows = []
    for name, timing in timings.items():
        peak = None
        if measure_memory and cpu_peak_supported():
            peak = peak_memory_bytes(variants[name])
        rows.append(
            Measurement(
                group, name, timing.median_ms, base / timing.median_ms, peak, details.get(name, "")
            )
        )
    return rows


def format_table(rows: Sequence[Measurement]) -> str:
    """A plain-text table of measurements, one line per variant."""
    header = (
        f"{'benchmark':34} {'variant':26} {'median ms':>10} {'speed-up':>9} {'peak MiB':>9}  detail"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        peak = "" if row.peak_bytes is None else f"{row.peak_bytes / 2**20:.1f}"
        lines.append(
            f"{row.group:34} {row.variant:26} {row.median_ms:10.3f} {row.ratio:8.2f}x "
            f"{peak:>9}  {row.detail}"
        )
    return "\n".join(lines)
