"""Chapter 1 - Attention and the Transformer (article section 1.1, claims C1-C2): the lesson's code.

The building blocks (masks, scaled dot-product attention, multi-head attention, positional
encoding, encoder and decoder blocks, the :class:`~handbook.models.transformer.Transformer` and
its decoding) are the model library :mod:`handbook.models`, which other chapters import too.
This module holds what only chapter 1 does with them: the article's attention snippet and its
analysis (claim C1, below), the experiments the notebook runs (where the decoder looks,
:func:`cross_attention_weights`; the depth experiment of claim C2, :func:`depth_experiment`; an
LSTM against self-attention, :func:`recurrence_vs_attention`) and the chapter's benchmark of
plain, chunked and PyTorch attention (:func:`attention_scaling`, :func:`benchmarks`), tested in
``tests/test_attention.py`` and ``tests/test_attention_experiments.py``.

The article's snippet (claim C1)
--------------------------------
The article prints a single-head attention, but flattened onto one line, which does not run::

    import torchdef scaled_dot_product_attention(Q, K, V):# Q,K,V形状均为(batch_size, seq_len,
    d_model)d_k = Q.size(-1)scores = torch.bmm(...) ...

The only fix it needs is restoring the line breaks: :func:`article_attention` is that code, with
the function renamed so that it does not shadow the model library's
:func:`handbook.models.attention.scaled_dot_product_attention`. What it does and lacks, measured
with PyTorch 2.14 on CPU (``tests/test_attention.py`` pins each point):

- ``torch.tensor(d_k)`` is an int64 tensor, and ``torch.sqrt`` of an integer tensor does *not*
  raise: it promotes to the default float dtype (float32), so the divisor is a 0-dim float32
  tensor, which never changes the dtype of a floating-point ``scores`` tensor.
- float32 inputs: correct; matches PyTorch's attention to about 2e-7 (d_k = 64).
- float64 inputs: the result is float64 but the scale was rounded to float32, so when d_k is not
  a perfect square the output is off by about 1e-8 relative (d_k = 10: divisor 3.16227769852
  instead of 3.16227766017) instead of 1e-16. Harmless in practice, visible in a float64 test.
- float16 inputs: runs (on CPU too) and returns float16, within float16 rounding of PyTorch
  (about 1e-3), but the scores ``Q @ K^T`` are formed *before* dividing by sqrt(d_k): a dot
  product above 65504, the float16 maximum, overflows to ``inf`` and the softmax turns the whole
  row into NaN (e.g. entries of 40 with d_k = 64: 64 * 40 * 40 = 102400). On the same input
  PyTorch's ``scaled_dot_product_attention`` returns the right answer, and so does
  :func:`handbook.models.attention.scaled_dot_product_attention`, which scales the queries
  before the product.
- bfloat16 inputs: runs, within bfloat16 rounding (about 1e-2); bfloat16 has float32's range,
  so no overflow.
- Integer inputs fail with ``RuntimeError`` in the second ``bmm`` (float weights times int V).
- Not measured on a GPU: PyTorch lets a 0-dim CPU tensor such as this divisor combine with CUDA
  tensors, so the snippet should behave the same there.
- It lacks masks (no padding, no causal decoding), multiple heads and batched heads:
  ``torch.bmm`` accepts only 3-D tensors, so ``(batch, heads, seq, d)`` inputs raise
  ``RuntimeError: batch1 must be a 3D tensor``. It has no dropout and returns no weights.
"""

from __future__ import annotations

import ctypes
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from handbook import bench, train
from handbook.models.attention import (
    MultiHeadAttention,
    chunked_attention,
    chunked_sdpa_attention,
    scaled_dot_product_attention,
)
from handbook.models.transformer import EncoderBlock, PositionalEncoding, Transformer

__all__ = [
    "ARTICLE_SNIPPET_AS_PRINTED",
    "BENCH_SEQ_LENS",
    "DepthRun",
    "EncoderTagger",
    "SMOKE_BENCH_SEQ_LENS",
    "article_attention",
    "attention_scaling",
    "benchmarks",
    "cross_attention_weights",
    "depth_experiment",
    "layer_gradient_norms",
    "peak_in_fresh_process",
    "peaks_in_fresh_processes",
    "previous_token_batch",
    "recurrence_vs_attention",
    "scaling_table",
    "sequential_steps",
]

#: The article's code exactly as printed: one line, so it is a SyntaxError as it stands.
ARTICLE_SNIPPET_AS_PRINTED = (
    "import torchdef scaled_dot_product_attention(Q, K, V):# Q,K,V形状均为(batch_size, seq_len, "
    "d_model)d_k = Q.size(-1)scores = torch.bmm(Q, K.transpose(1,2)) / "
    "torch.sqrt(torch.tensor(d_k))weights = torch.softmax(scores, dim=-1)return "
    "torch.bmm(weights, V)"
)


# The article's snippet with its line breaks restored and nothing else changed (see the module
# docstring for what it does in each dtype): Q, K, V of shape (batch, seq, d_model), 3-D only.
# fmt: off
def article_attention(Q, K, V):
    # Q,K,V形状均为(batch_size, seq_len, d_model)
    d_k = Q.size(-1)
    scores = torch.bmm(Q, K.transpose(1,2)) / torch.sqrt(torch.tensor(d_k))
    weights = torch.softmax(scores, dim=-1)
    return torch.bmm(weights, V)
# fmt: on


# ----------------------------------------------------------------------------------------------
# Chapter 1 experiments: what the notebook measures (claims C1-C2, the RNN comparison, bench)
# ----------------------------------------------------------------------------------------------


def cross_attention_weights(
    model: Transformer, src: Tensor, tgt: Tensor, layer: int = -1
) -> Tensor:
    """Where each target token looks in the source: the cross-attention weights of one layer.

    Runs ``model`` with teacher forcing on ``src`` ``(batch, S)`` and ``tgt`` ``(batch, T)`` (in
    evaluation mode, no gradient) and returns the weights of decoder layer ``layer`` (the last by
    default), per head: ``(batch, heads, T, S)``; row ``t`` is what the decoder attends to while
    predicting ``tgt[:, t + 1]``. The blocks ask their attention for no weights, so a forward
    pre-hook switches ``need_weights`` on for this one call; the model is left unchanged.
    """
    attention = model.decoder_layers[layer].cross_attention
    recorded: list[Tensor] = []

    def ask_for_weights(module, args, kwargs):
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def keep_weights(module, args, kwargs, output):
        recorded.append(output[1])

    handles = [
        attention.register_forward_pre_hook(ask_for_weights, with_kwargs=True),
        attention.register_forward_hook(keep_weights, with_kwargs=True),
    ]
    try:
        with torch.no_grad(), train.evaluation_mode(model):
            model(src, tgt)
    finally:
        for handle in handles:
            handle.remove()
    return recorded[0]


class EncoderTagger(nn.Module):
    """An encoder-only stack for the depth experiment (claim C2): one label per input token.

    Token ids ``(batch, seq)`` -> embedding * sqrt(d_model) + sinusoidal positions ->
    ``num_layers`` :class:`EncoderBlock` (dropout 0) -> logits ``(batch, seq, num_classes)``.
    ``residual=False`` removes the residual connection around every sublayer, nothing else.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        num_layers: int,
        d_model: int = 64,
        num_heads: int = 4,
        d_ff: int = 128,
        residual: bool = True,
        norm_first: bool = False,
        max_len: int = 64,
    ):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_len=max_len)
        self.layers = nn.ModuleList(
            EncoderBlock(
                d_model, num_heads, d_ff, dropout=0.0, norm_first=norm_first, residual=residual
            )
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.positional_encoding(self.embedding(tokens) * math.sqrt(self.d_model))
        for layer in self.layers:
            x = layer(x)
        return self.head(self.final_norm(x))


def previous_token_batch(
    batch_size: int, seq_len: int, vocab_size: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """A batch of the toy task of the depth experiment: output the previous token.

    Returns ``tokens`` and ``targets``, both int64 ``(batch_size, seq_len)``, with
    ``targets[:, i] = tokens[:, i - 1]`` (and ``tokens[:, 0]`` at position 0): each position must
    fetch its neighbour's token, which takes attention and positions.
    """
    tokens = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator)
    return tokens, torch.cat([tokens[:, :1], tokens[:, :-1]], dim=1)


def layer_gradient_norms(model: EncoderTagger, tokens: Tensor, targets: Tensor) -> list[float]:
    """L2 norm of the loss gradient with respect to each layer's parameters, first layer first.

    ``tokens``, ``targets`` ``(batch, seq)``; the loss is the mean token cross-entropy. The
    model's gradients are cleared before and after, so this can be called at initialization.
    """
    model.zero_grad(set_to_none=True)
    logits = model(tokens)
    F.cross_entropy(logits.transpose(1, 2), targets).backward()
    norms = []
    for layer in model.layers:
        squares = [p.grad.pow(2).sum() for p in layer.parameters() if p.grad is not None]
        norms.append(float(torch.stack(squares).sum().sqrt()))
    model.zero_grad(set_to_none=True)
    return norms


@dataclass
class DepthRun:
    """One arm of the depth experiment: gradient norms at initialization, then a short training.

    ``gradient_norms`` has one entry per layer (first layer first); ``losses`` one per step;
    ``accuracy`` is the token accuracy on a fresh batch after training (0-1).
    """

    residual: bool
    gradient_norms: list[float]
    losses: list[float]
    accuracy: float


def depth_experiment(
    residual: bool,
    *,
    num_layers: int = 24,
    steps: int = 150,
    batch_size: int = 32,
    seq_len: int = 10,
    vocab_size: int = 16,
    d_model: int = 64,
    learning_rate: float = 3e-4,
    seed: int = 0,
) -> DepthRun:
    """Build a ``num_layers``-deep post-norm :class:`EncoderTagger` with or without residual
    connections, measure :func:`layer_gradient_norms` at initialization, then train it with Adam
    for ``steps`` steps on :func:`previous_token_batch` (a fresh batch per step) and report the loss
    curve and the final token accuracy. Same seed, same data, same weights for both arms."""
    torch.manual_seed(seed)
    model = EncoderTagger(vocab_size, vocab_size, num_layers, d_model=d_model, residual=residual)
    generator = torch.Generator().manual_seed(seed)
    tokens, targets = previous_token_batch(batch_size, seq_len, vocab_size, generator)
    norms = layer_gradient_norms(model, tokens, targets)
    # foreach: one call per step updates every tensor (the same numbers as a loop over them, less
    # Python per step for this stack of many small layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, foreach=True)
    losses = []
    model.train()
    for _ in range(steps):
        tokens, targets = previous_token_batch(batch_size, seq_len, vocab_size, generator)
        loss = F.cross_entropy(model(tokens).transpose(1, 2), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    tokens, targets = previous_token_batch(256, seq_len, vocab_size, generator)
    with torch.no_grad():
        accuracy = float((model(tokens).argmax(dim=-1) == targets).float().mean())
    return DepthRun(residual, norms, losses, accuracy)


def sequential_steps(seq_len: int) -> dict[str, int]:
    """Operations that must run one after another in one layer over ``seq_len`` tokens.

    An RNN (LSTM) computes ``h_t`` from ``h_{t-1}``: ``seq_len`` dependent steps. Self-attention
    computes every position from the previous layer at once: 1 step (a few matrix products).
    """
    if seq_len < 1:
        raise ValueError(f"expected seq_len >= 1, got {seq_len}")
    return {"LSTM": seq_len, "self-attention": 1}


def recurrence_vs_attention(
    seq_lens: Sequence[int],
    *,
    batch_size: int = 16,
    d_model: int = 64,
    num_heads: int = 4,
    repeats: int = 5,
    seed: int = 0,
) -> list[dict]:
    """Forward time of one ``torch.nn.LSTM`` layer and one :class:`MultiHeadAttention` layer
    (same ``d_model``) on a batch ``(batch_size, L, d_model)``, for each ``L`` in ``seq_lens``.

    Returns rows ``{"seq_len", "variant", "ms", "peak_bytes": None, "sequential_steps"}``,
    the median milliseconds over ``repeats`` of :func:`handbook.bench.time_callable`.
    """
    torch.manual_seed(seed)
    lstm = nn.LSTM(d_model, d_model, batch_first=True).eval()
    attention = MultiHeadAttention(d_model, num_heads).eval()
    rows = []
    for seq_len in seq_lens:
        x = torch.randn(batch_size, seq_len, d_model)
        steps = sequential_steps(seq_len)
        variants = {
            "LSTM": lambda x=x: lstm(x),
            "self-attention": lambda x=x: attention(x, need_weights=False),
        }
        for name, fn in variants.items():
            with torch.inference_mode():
                timing = bench.time_callable(fn, warmup=1, repeats=repeats)
            rows.append(
                {
                    "seq_len": seq_len,
                    "variant": name,
                    "ms": timing.median_ms,
                    "peak_bytes": None,
                    "sequential_steps": steps[name],
                }
            )
    return rows


def _attention_variants(
    seq_len: int, heads: int, d_head: int, chunk_size: int, sdpa_chunk_size: int, seed: int
) -> dict[str, Callable[[], Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, heads, seq_len, d_head, generator=generator) for _ in range(3))

    def plain() -> Tensor:
        with torch.inference_mode():
            return scaled_dot_product_attention(q, k, v)[0]

    def chunked() -> Tensor:
        with torch.inference_mode():
            return chunked_attention(q, k, v, chunk_size=chunk_size)

    def chunked_sdpa() -> Tensor:
        with torch.inference_mode():
            return chunked_sdpa_attention(q, k, v, chunk_size=sdpa_chunk_size)

    def torch_sdpa() -> Tensor:
        with torch.inference_mode():
            return F.scaled_dot_product_attention(q, k, v)

    return {
        "plain": plain,
        "chunked": chunked,
        "chunked, SDPA per chunk": chunked_sdpa,
        "torch SDPA": torch_sdpa,
    }


def peak_in_fresh_process(seq_len: int, variant: str, **settings) -> int:
    """Peak resident-memory growth, bytes, of one call of one :func:`attention_scaling` variant,
    measured in a new process: :func:`peaks_in_fresh_processes` for one row (``settings``: its
    keywords, ``heads``, ``d_head``, ``chunk_size``, ``sdpa_chunk_size``, ``seed``,
    ``timeout_s``)."""
    return peaks_in_fresh_processes([(seq_len, variant)], **settings)[0]


def peaks_in_fresh_processes(
    rows: Sequence[tuple[int, str]],
    *,
    heads: int = 1,
    d_head: int = 64,
    chunk_size: int = 128,
    sdpa_chunk_size: int = 2048,
    seed: int = 0,
    timeout_s: float = 600.0,
) -> list[int]:
    """Peak resident-memory growth, bytes, of one call of each ``(seq_len, variant)`` in
    ``rows`` (variants of :func:`attention_scaling`), each measured in a new process.

    In a process that has run other variants, the allocator hands out memory it already holds
    and the peak barely moves (this read 0.0 MiB for chunked attention); a fresh process that
    has only run the same variant once on 64 tokens (to load its kernels) and then allocated q,
    k and v charges the call with every page it touches. Linux only (/proc, fork), like
    :func:`handbook.bench.peak_memory_bytes`.

    The processes run on one thread with glibc's mmap threshold fixed at 64 KiB: every block
    larger than that is its own mapping, returned to the kernel when freed, so the high-water
    mark is the peak of what was live, at page resolution. (With glibc's defaults, a threshold
    that moves after the first large free and per-thread arenas, chunked attention read 7.3 and
    10.4 MiB at 2,048 tokens in two runs; fixed, 5.1 MiB both times, and twice that at 4,096.)

    One new Python process imports torch and this module (a few seconds), computes nothing, and
    forks one child per row: each child starts from a process that has run no tensor operation,
    as a newly started one would, without importing everything again. Fork copies the page
    tables of the parent's data but not those of its read-only file mappings (the libraries'
    code), so each child first maps in again the pages its parent had mapped
    (:func:`_resident_file_pages`); otherwise the measured call would fault them in and count
    them (0.1 to 0.9 MiB more than a fresh process read at 256 and 4,096 tokens).
    """
    import json
    import subprocess
    import sys

    settings = (heads, d_head, chunk_size, sdpa_chunk_size, seed)
    code = (
        "from handbook.attention import _peaks_by_fork; "
        f"print(_peaks_by_fork({[tuple(row) for row in rows]!r}, *{settings!r}))"
    )
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=environment,
    )
    if finished.returncode != 0:
        raise RuntimeError(f"measuring peak memory failed:\n{finished.stderr[-2000:]}")
    return json.loads(finished.stdout.splitlines()[-1])


def _peaks_by_fork(
    rows: Sequence[tuple[int, str]],
    heads: int,
    d_head: int,
    chunk_size: int,
    sdpa_chunk: int,
    seed: int,
) -> str:
    """Runs in the process of :func:`peaks_in_fresh_processes`: one forked child per row, which
    measures :func:`_child_peak` and writes it to a pipe; returns the peaks as a JSON list."""
    import json
    import sys
    import traceback

    # its first call imports sympy (1.4 s): once here, not in every child; it allocates no tensor
    torch.broadcast_shapes((1,), (1,))
    mapped = _resident_file_pages()
    peaks = []
    for seq_len, variant in rows:
        sys.stdout.flush()
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read_end)
            status = 1
            try:
                _map_in_again(mapped)
                peak = _child_peak(seq_len, variant, heads, d_head, chunk_size, sdpa_chunk, seed)
                os.write(write_end, str(peak).encode())
                status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(status)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as answer:
            written = answer.read()
        _, wait_status = os.waitpid(child, 0)
        if os.waitstatus_to_exitcode(wait_status) != 0:
            raise RuntimeError(f"measuring {variant} at L={seq_len} failed (see above)")
        peaks.append(int(written))
    return json.dumps(peaks)


def _resident_file_pages() -> list[tuple[int, int]]:
    """``(address, bytes)`` of every run of pages of this process's readable file mappings (the
    interpreter's and the libraries' code and constants) that are mapped in now, read from
    Linux's /proc/self/maps and /proc/self/pagemap (bit 63 of a page's entry: present)."""
    page = os.sysconf("SC_PAGE_SIZE")
    runs = []
    with open("/proc/self/maps") as maps, open("/proc/self/pagemap", "rb") as pagemap:
        for line in maps:
            fields = line.split()
            if len(fields) < 6 or not fields[5].startswith("/") or fields[1][0] != "r":
                continue
            start, end = (int(bound, 16) for bound in fields[0].split("-"))
            pagemap.seek(start // page * 8)
            present = [
                entry >> 63
                for entry in memoryview(pagemap.read((end - start) // page * 8)).cast("Q")
            ]
            first = None
            for index, is_present in enumerate([*present, 0]):
                if is_present and first is None:
                    first = index
                elif not is_present and first is not None:
                    runs.append((start + first * page, (index - first) * page))
                    first = None
    return runs


#: Linux's madvise advice that faults pages in as reads (5.14 and later).
_MADV_POPULATE_READ = 22


def _map_in_again(runs: Sequence[tuple[int, int]]) -> None:
    """Map in the pages of ``runs`` (from :func:`_resident_file_pages`) without copying them:
    madvise(MADV_POPULATE_READ) since Linux 5.14, reading one byte per page before."""
    page = os.sysconf("SC_PAGE_SIZE")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    for address, length in runs:
        if libc.madvise(address, length, _MADV_POPULATE_READ) != 0:
            for page_address in range(address, address + length, page):
                ctypes.string_at(page_address, 1)


def _child_peak(
    seq_len: int, variant: str, heads: int, d_head: int, chunk_size: int, sdpa_chunk: int, seed: int
) -> int:
    """Runs in a fresh process of :func:`peaks_in_fresh_processes`."""
    _attention_variants(64, heads, d_head, chunk_size, sdpa_chunk, seed)[variant]()
    call = _attention_variants(seq_len, heads, d_head, chunk_size, sdpa_chunk, seed)[variant]
    return bench.peak_memory_bytes(call)


def attention_scaling(
    seq_lens: Sequence[int],
    *,
    heads: int = 1,
    d_head: int = 64,
    chunk_size: int = 128,
    sdpa_chunk_size: int = 2048,
    repeats: int = 3,
    seed: int = 0,
    memory: bool = True,
    budget_s: float | None = None,
) -> list[bench.Measurement]:
    """Time and peak memory of the four attentions at each sequence length, side by side.

    Variants: ``plain`` (:func:`scaled_dot_product_attention`, builds the ``(L, L)`` scores),
    ``chunked`` (:func:`chunked_attention`, ``(L, chunk_size)`` at a time), ``chunked, SDPA per
    chunk`` (:func:`chunked_sdpa_attention`, ``sdpa_chunk_size`` keys at a time through
    PyTorch's fused kernel) and ``torch SDPA`` (PyTorch's
    ``scaled_dot_product_attention``) on q, k, v of shape ``(1, heads, L, d_head)`` in float32,
    inference mode. One
    :class:`handbook.bench.Measurement` per variant and length (group ``"ch01 attention, L=..."``;
    ``ratio`` = plain's time over the variant's; at least ``repeats`` rounds, more up to
    ``budget_s`` seconds per length, see :func:`handbook.bench.interleaved_rounds`).
    ``peak_bytes`` (with ``memory=True``, on Linux) is :func:`peaks_in_fresh_processes`: one new
    process per variant and length, measured after all the timings.
    """
    rows, lengths = [], []
    for seq_len in seq_lens:
        variants = _attention_variants(seq_len, heads, d_head, chunk_size, sdpa_chunk_size, seed)
        measured = bench.compare(
            f"ch01 attention, L={seq_len}",
            variants,
            baseline="plain",
            warmup=1,
            repeats=repeats,
            budget_s=budget_s,
            details={
                "chunked": f"chunk_size={chunk_size}",
                "chunked, SDPA per chunk": f"chunk_size={sdpa_chunk_size}",
            },
        )
        del variants
        rows += measured
        lengths += [seq_len] * len(measured)
    if memory and bench.cpu_peak_supported():
        peaks = peaks_in_fresh_processes(
            [(seq_len, row.variant) for seq_len, row in zip(lengths, rows, strict=True)],
            heads=heads, d_head=d_head, chunk_size=chunk_size,
            sdpa_chunk_size=sdpa_chunk_size, seed=seed,
        )  # fmt: skip
        for row, peak in zip(rows, peaks, strict=True):
            row.peak_bytes = peak
    return rows


def scaling_table(measurements: Sequence[bench.Measurement]) -> list[dict]:
    """Rows ``{"seq_len", "variant", "ms", "peak_bytes"}`` of :func:`attention_scaling`'s output,
    for :func:`handbook.plots.scaling_plot` (``peak_bytes`` is None where memory is not
    measurable)."""
    return [
        {
            "seq_len": int(row.group.rsplit("L=", 1)[1]),
            "variant": row.variant,
            "ms": row.median_ms,
            "peak_bytes": row.peak_bytes,
        }
        for row in measurements
    ]


#: Sequence lengths of ``make bench`` (see :func:`benchmarks`).
BENCH_SEQ_LENS = (128, 512, 1024, 2048, 4096, 8192, 16384)
SMOKE_BENCH_SEQ_LENS = (64, 256)


def benchmarks(smoke: bool = False) -> list[bench.Measurement]:
    """``make bench``: plain vs chunked vs PyTorch attention, one head of width 64, float32.

    Full mode: L = 128 ... 16,384, peak memory from a fresh process per row. At 16,384 plain
    attention holds ``(L, L)`` float32 matrices of 1 GiB each and takes seconds per call on a
    2-core CPU, so lengths past 4,096 are timed twice instead of five times.
    """
    if smoke:
        return attention_scaling(SMOKE_BENCH_SEQ_LENS, repeats=2)
    short = [length for length in BENCH_SEQ_LENS if length <= 4096]
    long = [length for length in BENCH_SEQ_LENS if length > 4096]
    return attention_scaling(short, repeats=5) + attention_scaling(long, repeats=2)
