"""Chapter 4 - Compression for the edge: quantization, distillation, pruning, ONNX Runtime.

From scratch, each tested against the library that does the same job:

- symmetric INT8 quantization, per tensor and per channel (:func:`quantize_symmetric`,
  :func:`dequantize`), checked against ``torch.fake_quantize_per_channel_affine``;
- the distillation loss of Hinton et al. (:func:`distillation_loss`) and a :class:`Distiller`
  that trains a student from a frozen teacher through :func:`handbook.train.fit`;
- magnitude pruning (:func:`magnitude_mask`, as ``torch.nn.utils.prune.l1_unstructured``),
  channel pruning that really shrinks a :class:`handbook.models.SmallCNN`
  (:func:`prune_channels`), and FLOP accounting with ``torch.utils.flop_counter``.

The deployment paths wrap the libraries that are current in this torch release: ONNX export
(:func:`export_onnx`) with ONNX Runtime's dynamic and static INT8 quantization (the CPU/edge
path), torchao's ``quantize_`` (GPU-first), and ``torch.ao.quantization.quantize_dynamic`` as a
clearly labelled legacy baseline (deprecated upstream, removed in a coming release).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import math
import platform
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from handbook import bench

INT8_MAX = 127
#: Layers whose weights are quantized and pruned.
WEIGHT_LAYERS = (nn.Linear, nn.Conv2d)


# Quantization from scratch ---------------------------------------------------------------------


def _channel_view(values: Tensor, axis: int | None, ndim: int) -> Tensor:
    """Reshape per-channel ``values`` ``(C,)`` to broadcast along ``axis`` of an ``ndim`` tensor."""
    if axis is None:
        return values
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


def symmetric_scale(x: Tensor, axis: int | None = None) -> Tensor:
    """The scale ``max|x| / 127`` of symmetric INT8: a scalar, or ``(x.shape[axis],)`` per channel.

    An all-zero tensor (or channel) gets float32's machine epsilon as its scale, so dividing by
    the scale is always defined.
    """
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point tensor to quantize, got {x.dtype}")
    if axis is None:
        largest = x.detach().abs().max() if x.numel() else torch.tensor(0.0)
    else:
        if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
            raise ValueError(f"axis {axis} is out of range for a tensor of shape {tuple(x.shape)}")
        axis = axis % x.ndim
        others = [dim for dim in range(x.ndim) if dim != axis]
        largest = x.detach().abs().amax(dim=others) if others else x.detach().abs()
    tiny = torch.finfo(torch.float32).eps
    return (largest.float() / INT8_MAX).clamp_min(tiny)


def quantize_symmetric(x: Tensor, axis: int | None = None) -> tuple[Tensor, Tensor]:
    """Symmetric INT8 quantization: ``q = clamp(round(x / s), -127, 127)``, zero point 0.

    Returns ``(q, scale)``: ``q`` int8 with the shape of ``x``; ``scale`` a scalar (per tensor,
    ``axis=None``) or ``(x.shape[axis],)`` (per channel, one scale per output channel with
    ``axis=0`` for Linear and Conv weights). Rounding is half to even, as in torch and ONNX.
    """
    scale = symmetric_scale(x, axis)
    axis = None if axis is None else axis % x.ndim
    scaled = x.float() / _channel_view(scale, axis, x.ndim)
    q = torch.round(scaled).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


def dequantize(
    q: Tensor, scale: Tensor, axis: int | None = None, zero_point: Tensor | None = None
) -> Tensor:
    """``x_hat = scale * (q - zero_point)`` as float32; ``scale``/``zero_point`` scalar or per
    channel ``(q.shape[axis],)``."""
    axis = None if axis is None else axis % q.ndim
    shifted = q.float()
    if zero_point is not None:
        shifted = shifted - _channel_view(zero_point.float(), axis, q.ndim)
    return shifted * _channel_view(scale.float(), axis, q.ndim)


def quantization_error(x: Tensor, axis: int | None = None) -> float:
    """Root-mean-square error of a symmetric INT8 round trip of ``x`` (same unit as ``x``)."""
    q, scale = quantize_symmetric(x, axis)
    return float((dequantize(q, scale, axis) - x).pow(2).mean().sqrt())


# Distillation ----------------------------------------------------------------------------------


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    targets: Tensor,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> Tensor:
    """Hinton et al.'s loss: ``alpha * T^2 * KL(p_T || q_T) + (1 - alpha) * CE(q, y)``.

    ``p_T = softmax(teacher / T)`` and ``q_T = softmax(student / T)`` are the softened
    distributions, logits ``(batch, classes)``, ``targets`` ``(batch,)`` class indices. The
    ``T^2`` keeps the soft term's gradients at the scale of the hard term's when ``T`` changes.
    The KL divergence is averaged over the batch (``reduction="batchmean"``, the true KL).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a weight between 0 and 1, got {alpha}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "expected student and teacher logits of the same shape, "
            f"got {tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(-1).mean()
    hard = F.cross_entropy(student_logits, targets)
    return alpha * temperature**2 * kl + (1 - alpha) * hard


class Distiller(nn.Module):
    """A student trained against a frozen teacher, in the shape :func:`handbook.train.fit` wants.

    ``distiller(images)`` returns the student's logits; in training mode it also runs the teacher
    (without gradients) and keeps its logits for :meth:`loss`, the ``loss_fn`` to pass to
    ``fit``. In evaluation mode the loss is the plain cross-entropy, so validation numbers are
    comparable with a student trained without a teacher. The teacher stays in evaluation mode
    (no dropout, frozen batch-norm statistics) even while the student trains. Give the optimizer
    ``distiller.student.parameters()`` only.
    """

    def __init__(
        self, student: nn.Module, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9
    ):
        super().__init__()
        self.student = student
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature = temperature
        self.alpha = alpha
        self._teacher_logits: Tensor | None = None

    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        if self.training:
            with torch.no_grad():
                self._teacher_logits = self.teacher(images)
        return self.student(images)

    def loss(self, student_logits: Tensor, targets: Tensor) -> Tensor:
        """The distillation loss while training, the cross-entropy otherwise."""
        if not self.training or self._teacher_logits is None:
            return F.cross_entropy(student_logits, targets)
        teacher_logits, self._teacher_logits = self._teacher_logits, None
        return distillation_loss(
            student_logits, teacher_logits, targets, self.temperature, self.alpha
        )


# Pruning and FLOPs -----------------------------------------------------------------------------


def magnitude_mask(weight: Tensor, amount: float) -> Tensor:
    """Boolean mask of ``weight``'s shape, False for the ``round(amount * n)`` smallest |w|.

    The same rule as ``torch.nn.utils.prune.l1_unstructured`` (True = keep).
    """
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must be a fraction between 0 and 1, got {amount}")
    to_prune = round(amount * weight.numel())
    mask = torch.ones_like(weight, dtype=torch.bool)
    if to_prune:
        smallest = torch.topk(weight.detach().abs().flatten(), to_prune, largest=False).indices
        mask.view(-1)[smallest] = False
    return mask


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every Linear and Conv2d layer of ``model``, in order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, WEIGHT_LAYERS)
    ]


def prune_unstructured(model: nn.Module, amount: float) -> nn.Module:
    """Zero the ``amount`` smallest-magnitude weights of every Linear/Conv2d layer, in place.

    The masks are attached with ``torch.nn.utils.prune.custom_from_mask``, so the zeros stay
    zero while the model is fine-tuned; :func:`make_pruning_permanent` folds them in.
    """
    from torch.nn.utils import prune

    for _, module in weight_layers(model):
        prune.custom_from_mask(module, "weight", magnitude_mask(module.weight, amount))
    return model


def make_pruning_permanent(model: nn.Module) -> nn.Module:
    """Replace every ``weight_orig * weight_mask`` pair by a plain (sparse-valued) weight."""
    from torch.nn.utils import prune

    for _, module in weight_layers(model):
        if prune.is_pruned(module):
            prune.remove(module, "weight")
    return model


def sparsity(model: nn.Module) -> float:
    """Fraction of Linear/Conv2d weights that are exactly zero."""
    weights = [module.weight.detach() for _, module in weight_layers(model)]
    total = sum(weight.numel() for weight in weights)
    if total == 0:
        raise ValueError("the model has no Linear or Conv2d weights")
    return sum(int((weight == 0).sum()) for weight in weights) / total


def count_flops(model: nn.Module, *inputs: Tensor) -> int:
    """Floating-point operations of one forward pass on ``inputs``, as torch counts them.

    ``torch.utils.flop_counter.FlopCounterMode`` counts a multiply-add as 2 FLOPs in matrix
    products and convolutions and nothing for element-wise work (activations, normalisation).
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(*inputs)
    return int(counter.get_total_flops())


def effective_flops(model: nn.Module, *inputs: Tensor) -> int:
    """FLOPs a kernel that skipped zero weights would do: each layer's count times its density.

    This is the number papers on unstructured pruning quote; dense kernels (what PyTorch and
    ONNX Runtime run here) still do :func:`count_flops` of work.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(*inputs)
    per_module = counter.get_flop_counts()
    prefix = type(model).__name__
    total = counter.get_total_flops()
    for name, module in weight_layers(model):
        layer_flops = sum(per_module.get(f"{prefix}.{name}", {}).values())
        density = float((module.weight.detach() != 0).float().mean())
        total -= layer_flops * (1.0 - density)
    return int(round(total))


def _keep_indices(weight: Tensor, keep: int) -> Tensor:
    """Indices of the ``keep`` output channels with the largest L1 norm, in their order."""
    norms = weight.detach().abs().flatten(1).sum(dim=1)
    return torch.topk(norms, keep).indices.sort().values


def prune_channels(model: nn.Module, keep_fraction: float) -> nn.Module:
    """A smaller copy of a :class:`handbook.models.SmallCNN` with fewer convolution channels.

    Keeps the ``keep_fraction`` output channels of each convolution with the largest L1 norm
    (Li et al. 2017), and slices what reads them: the batch norm after it, the next
    convolution's input channels, the linear head's input features. The layers really shrink,
    so dense kernels do less work. The copy usually needs a short fine-tuning.
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    features = getattr(model, "features", None)
    head = getattr(model, "head", None)
    if not isinstance(features, nn.Sequential) or not isinstance(head, nn.Sequential):
        raise TypeError(f"expected a SmallCNN (features and head), got {type(model).__name__}")
    pruned = copy.deepcopy(model)
    convs = [index for index, layer in enumerate(features) if isinstance(layer, nn.Conv2d)]
    kept_inputs = None
    for index in convs:
        conv, norm = pruned.features[index], pruned.features[index + 1]
        keep = _keep_indices(conv.weight, max(1, round(keep_fraction * conv.out_channels)))
        weight = conv.weight.detach()[keep]
        if kept_inputs is not None:
            weight = weight[:, kept_inputs]
        smaller = nn.Conv2d(weight.shape[1], len(keep), conv.kernel_size, conv.stride, conv.padding)
        smaller.weight.data.copy_(weight)
        smaller.bias.data.copy_(conv.bias.detach()[keep])
        pruned.features[index] = smaller
        pruned.features[index + 1] = _slice_batch_norm(norm, keep)
        kept_inputs = keep
    linear_index = next(i for i, layer in enumerate(pruned.head) if isinstance(layer, nn.Linear))
    linear = pruned.head[linear_index]
    positions = linear.in_features // features[convs[-1]].out_channels
    columns = (kept_inputs[:, None] * positions + torch.arange(positions)).flatten()
    smaller_head = nn.Linear(len(columns), linear.out_features)
    smaller_head.weight.data.copy_(linear.weight.detach()[:, columns])
    smaller_head.bias.data.copy_(linear.bias.detach())
    pruned.head[linear_index] = smaller_head
    return pruned


def _slice_batch_norm(norm: nn.BatchNorm2d, keep: Tensor) -> nn.BatchNorm2d:
    smaller = nn.BatchNorm2d(len(keep), eps=norm.eps, momentum=norm.momentum)
    smaller.weight.data.copy_(norm.weight.detach()[keep])
    smaller.bias.data.copy_(norm.bias.detach()[keep])
    smaller.running_mean.copy_(norm.running_mean[keep])
    smaller.running_var.copy_(norm.running_var[keep])
    return smaller


# Deployment paths: torch, torchao, ONNX Runtime ------------------------------------------------


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads in torch (None: leave as is); restore."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def quantize_torchao(model: nn.Module) -> nn.Module:
    """A copy whose Linear layers run INT8 x INT8 (dynamic activations) through torchao.

    torchao's ``quantize_`` with ``Int8DynamicActivationInt8WeightConfig`` swaps the weights for
    INT8 tensor subclasses; its fast kernels target GPUs and ``torch.compile``.
    """
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantized = copy.deepcopy(model).eval()
    quantize_(quantized, Int8DynamicActivationInt8WeightConfig())
    return quantized


def quantize_legacy_dynamic(model: nn.Module) -> nn.Module:
    """LEGACY baseline: ``torch.ao.quantization.quantize_dynamic`` (INT8 Linear layers).

    Deprecated in this torch release in favour of torchao; its warnings are silenced here
    because the chapter says so in prose. Use ONNX Runtime or torchao for new work.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8
        )


def sinusoids(seq_len: int | Tensor, d_model: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The first ``seq_len`` rows ``(seq_len, d_model)`` of
    :func:`handbook.models.sinusoidal_positional_encoding`, computed instead of looked up.

    Exported to ONNX this is a handful of ``Range``/``Sin``/``Cos`` nodes instead of the whole
    512 x d_model float32 table stored in the file. ``d_model`` must be even.
    """
    if d_model % 2:
        raise ValueError(f"sinusoids need an even d_model, got {d_model}")
    positions = torch.arange(seq_len, dtype=dtype)[:, None]
    speeds = torch.exp(torch.arange(0, d_model, 2, dtype=dtype) * (-math.log(10000.0) / d_model))
    angles = positions * speeds  # (seq_len, d_model / 2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)


class ExportableTranslator(nn.Module):
    """The chapter-1 :class:`handbook.models.Transformer`'s teacher-forcing forward, for export.

    ``(src (batch, S), tgt (batch, T)) -> logits (batch, T, V)``, the same computation as
    ``model(src, tgt)`` without the input checks: those read token values
    (``tokens.min() < 0``), which ``torch.export`` cannot trace for every input. The positional
    encodings are computed (:func:`sinusoids`), so the file carries no table for them, and
    there is no ``max_len`` in the exported graph.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def _embed(self, tokens: Tensor, embedding: nn.Embedding) -> Tensor:
        d_model = self.model.d_model
        x = embedding(tokens) * math.sqrt(d_model)
        return x + sinusoids(tokens.shape[1], d_model, x.dtype)

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        model = self.model
        src_key_mask = model._key_mask(src)
        memory = self._embed(src, model.src_embedding)
        for layer in model.encoder_layers:
            memory = layer(memory, key_mask=src_key_mask)
        memory = model.encoder_norm(memory)
        x = self._embed(tgt, model.tgt_embedding)
        tgt_key_mask = model._key_mask(tgt)
        for layer in model.decoder_layers:
            x = layer(x, memory, key_mask=tgt_key_mask, memory_key_mask=src_key_mask)
        return model.output_projection(model.decoder_norm(x))


def export_onnx(
    model: nn.Module,
    example_inputs: tuple[Tensor, ...],
    path: str | Path,
    *,
    input_names: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]],
    dynamo: bool = True,
) -> Path:
    """Export ``model`` to one ONNX file (weights inside), ``dynamic_axes`` left free.

    ``dynamo=True`` (the default since torch 2.9) captures the graph with ``torch.export``;
    ``dynamo=False`` uses the deprecated TorchScript tracer, which is much faster to run and
    fine for a model with no data-dependent control flow. ``dynamic_axes``:
    ``{input name: {dimension: name}}``; dimensions sharing a name (the batch) stay equal.
    The exporter's progress lines and warnings are kept out of the output.
    """
    dims: dict[str, torch.export.Dim] = {}
    shapes = []
    for name in input_names:
        axes = dynamic_axes.get(name, {})
        shapes.append(
            {axis: dims.setdefault(label, torch.export.Dim(label)) for axis, label in axes.items()}
        )
    path = Path(path)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not dynamo:
            torch.onnx.export(
                model.eval(),
                example_inputs,
                str(path),
                dynamo=False,
                input_names=list(input_names),
                output_names=["logits"],
                dynamic_axes=dict(dynamic_axes),
            )
            return path
        torch.onnx.export(
            model.eval(),
            example_inputs,
            str(path),
            dynamo=True,
            input_names=list(input_names),
            output_names=["logits"],
            dynamic_shapes=tuple(shapes),
            external_data=False,
        )
    return path


def quantize_onnx_dynamic(
    source: str | Path,
    target: str | Path,
    *,
    per_channel: bool = False,
    preprocess: bool = False,
    compact: bool = False,
) -> Path:
    """ONNX Runtime dynamic quantization: INT8 weights, activations quantized on the fly.

    The defaults are ONNX Runtime's (one scale per weight tensor). ``preprocess=True`` first runs
    ONNX Runtime's recommended ``quant_pre_process`` (shape inference, graph optimisations that
    fold the exporter's shape arithmetic); ``per_channel=True`` gives every output column of a
    weight its own scale; ``compact=True`` rewrites the result with :func:`compact_onnx`.
    Embedding tables (``Gather`` inputs) are quantized too (ONNX Runtime does that by default).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = Path(target)
    with _quiet_onnxruntime(), tempfile.TemporaryDirectory(prefix="handbook-quant-") as scratch:
        if preprocess:
            prepared = Path(scratch) / "prepared.onnx"
            quant_pre_process(str(source), str(prepared))
            source = prepared
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8 if ort_has_int8_conv() else QuantType.QUInt8,
            per_channel=per_channel,
            reduce_range=not cpu_has_vnni(),
        )
    return compact_onnx(target, target) if compact else target


@functools.cache
def ort_has_int8_conv() -> bool:
    """Whether this ONNX Runtime runs ``ConvInteger`` with int8 weights (uint8 activations).

    Releases before 1.24 (the newest for Python 3.10 is 1.23) implement it for uint8 weights
    only, so a dynamically quantized CNN with int8 weights cannot even be loaded there: on such a
    runtime :func:`quantize_onnx_dynamic` stores weights as uint8 (an asymmetric grid of the same
    256 levels, with a zero point per scale). Probed once, on a one-node graph.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper

    node = helper.make_node("ConvInteger", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 1, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
        [helper.make_tensor("w", TensorProto.INT8, [1, 1, 1, 1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    model.ir_version = min(model.ir_version, 8)
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - NOT_IMPLEMENTED is ORT's own exception type
        if "NOT_IMPLEMENTED" in str(error) or "implementation" in str(error):
            return False
        raise
    return True


def cpu_has_vnni() -> bool:
    """True where the CPU multiplies int8 with VNNI (or where we cannot tell: not Linux).

    Without it (AVX2-only x86), ONNX Runtime's uint8 x int8 matrix kernel sums pairs of products
    in 16-bit registers, which saturate: a quantized small transformer's logits can be off by up
    to about 1.0. Where this returns False, :func:`quantize_onnx_dynamic` and
    :func:`quantize_onnx_static` quantize weights to 7 bits (``reduce_range``), which keeps those
    sums in range, as ONNX Runtime's documentation advises.
    """
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return True
    flags = cpuinfo.read_text()
    return "vnni" in flags or platform.machine() not in ("x86_64", "AMD64", "i686")


def compact_onnx(source: str | Path, target: str | Path) -> Path:
    """Rewrite an ONNX file without what inference does not read: every internal tensor gets a
    short name (hex numbers; the graph's inputs and outputs keep theirs), node names and
    doc strings are dropped, and so is the ``value_info`` shape annotation (ONNX Runtime infers
    shapes itself). The computation is unchanged, bit for bit."""
    import onnx

    model = onnx.load(str(source))
    graph = model.graph
    del graph.value_info[:]
    kept = {value.name for value in [*graph.input, *graph.output]}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in kept:
            return name
        return names.setdefault(name, format(len(names), "x"))

    for initializer in graph.initializer:
        initializer.name = short(initializer.name)
    for node in graph.node:
        if any(attribute.type == onnx.AttributeProto.GRAPH for attribute in node.attribute):
            raise ValueError("compact_onnx handles flat graphs only (no If/Loop subgraphs)")
        node.name, node.doc_string = "", ""
        node.input[:] = [short(name) for name in node.input]
        node.output[:] = [short(name) for name in node.output]
    graph.doc_string = ""
    onnx.save(model, str(target))
    return Path(target)


#: The parts :func:`onnx_byte_breakdown` splits a file into, in the order it reports them.
BYTE_PARTS = (
    "INT8 weight matrices",
    "INT8 embedding tables",
    "fp32 weight matrices",
    "fp32 embedding tables",
    "fp32 biases and norms",
    "scales and zero points",
    "constants inside nodes",
    "graph: nodes, names, shapes",
)


def _initializer_part(name: str, array: np.ndarray, consumers: set[str]) -> str:
    if name.endswith(("_scale", "_zero_point")) or array.size == 1:
        return "scales and zero points"
    if array.ndim < 2:
        return "fp32 biases and norms" if array.dtype == np.float32 else "scales and zero points"
    is_table = "Gather" in consumers or "embedding" in name
    if array.dtype in (np.int8, np.uint8):
        return "INT8 embedding tables" if is_table else "INT8 weight matrices"
    return "fp32 embedding tables" if is_table else "fp32 weight matrices"


def onnx_byte_breakdown(path: str | Path) -> dict[str, int]:
    """Where an ONNX file keeps its bytes: ``{part: bytes}`` over :data:`BYTE_PARTS`.

    Initializers are sorted by type and use: 2-D (or larger) INT8/UINT8 tensors are quantized
    weights, those read by a ``Gather`` (or named ``*embedding*``) are embedding tables, 1-D
    float32 tensors are biases and layer-norm parameters, and ``*_scale``/``*_zero_point`` (or
    one-element) tensors are quantization parameters. Tensors held by ``Constant`` nodes count
    as "constants inside nodes", and whatever else the file holds (nodes, names, shape
    annotations, protobuf framing) as "graph". Raw data bytes are counted, so the parts add up
    to the file's size exactly.
    """
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    model = onnx.load(str(path))
    consumers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    parts = dict.fromkeys(BYTE_PARTS, 0)
    for initializer in model.graph.initializer:
        array = numpy_helper.to_array(initializer)
        part = _initializer_part(initializer.name, array, consumers.get(initializer.name, set()))
        parts[part] += array.nbytes
    for node in model.graph.node:
        if node.op_type == "Constant":
            parts["constants inside nodes"] += sum(
                numpy_helper.to_array(attribute.t).nbytes
                for attribute in node.attribute
                if attribute.type == onnx.AttributeProto.TENSOR
            )
    parts["graph: nodes, names, shapes"] = path.stat().st_size - sum(parts.values())
    return parts


def quantize_onnx_static(
    source: str | Path, target: str | Path, calibration: Iterable[dict[str, np.ndarray]]
) -> Path:
    """ONNX Runtime static quantization (QDQ format, per-channel INT8 weights, UINT8 activations).

    ``calibration`` yields input feeds ``{input name: array}``; their activation ranges fix the
    scales once, so no range is computed at inference time. The model is pre-processed first
    (shape inference, Conv+BatchNorm folding), as ONNX Runtime recommends.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    feeds = iter(list(calibration))

    class _Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    prepared = Path(target).with_suffix(".prepared.onnx")
    with _quiet_onnxruntime():
        quant_pre_process(str(source), str(prepared))
        quantize_static(
            str(prepared),
            str(target),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            reduce_range=not cpu_has_vnni(),
        )
    prepared.unlink(missing_ok=True)
    return Path(target)


@contextlib.contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class OnnxModel:
    """An ONNX file run by ONNX Runtime on the CPU, called like a torch module.

    ``OnnxModel(path, threads=1)(*tensors)`` returns the first output as a torch tensor;
    ``threads`` sets ``intra_op_num_threads`` (None: ONNX Runtime's default, all cores).
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [node.name for node in self.session.get_inputs()]

    def __call__(self, *inputs: Tensor) -> Tensor:
        if len(inputs) != len(self.input_names):
            raise ValueError(
                f"{self.path.name} takes {len(self.input_names)} inputs "
                f"({', '.join(self.input_names)}), got {len(inputs)}"
            )
        feeds = {
            name: tensor.numpy() for name, tensor in zip(self.input_names, inputs, strict=True)
        }
        return torch.from_numpy(self.session.run(None, feeds)[0])

    @property
    def file_bytes(self) -> int:
        """Size of the ONNX file on disk, bytes."""
        return self.path.stat().st_size


@torch.no_grad()
def greedy_translate(
    forward: Callable[[Tensor, Tensor], Tensor],
    texts: list[str],
    task,
    *,
    max_len: int = 24,
    batch_size: int = 256,
) -> list[str]:
    """Greedy translation with any ``forward(src, tgt) -> logits (batch, T, V)``.

    The same search as ``Transformer.greedy_decode`` but through a plain callable (a torch
    model, a quantized one, an :class:`OnnxModel`), re-running the whole forward pass at each
    step, so every path is scored by the same loop. ``task`` is a
    :class:`handbook.translation.TranslationTask`.
    """
    from handbook import translation

    outputs = []
    for start in range(0, len(texts), batch_size):
        src = translation.encode(
            texts[start : start + batch_size], task.source_tokenizer, pad_id=task.pad_id
        )
        tokens = torch.full((len(src), 1), task.bos_id, dtype=torch.long)
        finished = torch.zeros(len(src), dtype=torch.bool)
        for _ in range(max_len):
            next_token = forward(src, tokens)[:, -1].argmax(dim=-1)
            next_token = next_token.masked_fill(finished, task.pad_id)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)
            finished |= next_token == task.eos_id
            if finished.all():
                break
        outputs.extend(translation.decode_ids(tokens, task))
    return outputs


@torch.no_grad()
def accuracy_of(forward: Callable[[Tensor], Tensor], images: Tensor, labels: Tensor) -> float:
    """Fraction of ``images`` ``(n, 1, side, side)`` whose arg-max logit is the label."""
    if len(labels) == 0:
        raise ValueError("cannot measure accuracy on an empty set")
    predictions = torch.cat([forward(chunk).argmax(-1) for chunk in images.split(256)])
    return float((predictions == labels).float().mean())


def latency(
    variants: dict[str, Callable[[], object]],
    *,
    group: str,
    baseline: str,
    threads: int | None,
    repeats: int = 20,
    details: dict[str, str] | None = None,
    budget_s: float | None = None,
    samples_per_round: int = 1,
) -> list[bench.Measurement]:
    """:func:`handbook.bench.compare` under ``torch.no_grad`` with ``threads`` torch threads:
    the variants interleaved, at least ``repeats`` rounds, more (up to ``budget_s`` seconds)
    while the speed-ups' interquartile ranges are wider than 10%; ``samples_per_round``: see
    :func:`handbook.bench.interleaved_rounds`.

    ONNX Runtime sessions fix their threads when created: build :class:`OnnxModel` with the
    same ``threads``.
    """
    with torch_threads(threads), torch.inference_mode():
        return bench.compare(
            group,
            variants,
            baseline=baseline,
            warmup=3,
            repeats=repeats,
            details=details,
            budget_s=budget_s,
            samples_per_round=samples_per_round,
        )


def temporary_folder() -> tempfile.TemporaryDirectory:
    """A temporary folder for ONNX files (never the repository); use it as a context manager
    or call ``.cleanup()``."""
    return tempfile.TemporaryDirectory(prefix="handbook-onnx-")


# make bench ------------------------------------------------------------------------------------


def benchmarks(smoke: bool = False) -> list[bench.Measurement]:
    """INT8 vs fp32 for a Transformer (each path), dense vs channel-pruned CNN; one thread.

    Untrained weights (speed and size do not depend on them). The ``detail`` column holds the
    size ratio against the fp32 state dict; ``ratio`` is the speed-up over the fp32 eager
    baseline of each group. "INT8 ORT, defaults" is ``quantize_dynamic`` as it comes; "INT8 ONNX
    Runtime" adds pre-processing and :func:`compact_onnx`.
    """
    from handbook.models import SmallCNN, Transformer

    torch.manual_seed(0)
    repeats = 5 if smoke else 30
    d_model = 64 if smoke else 128
    translator = Transformer(60, 60, d_model=d_model, d_ff=4 * d_model, pad_id=0).eval()
    src, tgt = torch.randint(1, 60, (1, 10)), torch.randint(1, 60, (1, 10))
    rows: list[bench.Measurement] = []
    with temporary_folder() as folder:
        fp32_path = export_onnx(
            ExportableTranslator(translator),
            (src, tgt),
            Path(folder) / "translator.onnx",
            input_names=["src", "tgt"],
            dynamic_axes={"src": {0: "batch", 1: "src_len"}, "tgt": {0: "batch", 1: "tgt_len"}},
            dynamo=False,
        )
        plain_path = quantize_onnx_dynamic(fp32_path, Path(folder) / "translator.plain.int8.onnx")
        int8_path = quantize_onnx_dynamic(
            fp32_path, Path(folder) / "translator.int8.onnx", preprocess=True, compact=True
        )
        fp32_ort, int8_ort = OnnxModel(fp32_path, threads=1), OnnxModel(int8_path, threads=1)
        plain_ort = OnnxModel(plain_path, threads=1)
        torchao_model = quantize_torchao(translator)
        legacy_model = quantize_legacy_dynamic(translator)
        fp32_bytes = bench.serialized_bytes(translator)
        sizes = {
            "fp32 eager": fp32_bytes,
            "INT8 torchao eager": bench.serialized_bytes(torchao_model),
            "INT8 torch.ao legacy": bench.serialized_bytes(legacy_model),
            "fp32 ONNX Runtime": fp32_ort.file_bytes,
            "INT8 ORT, defaults": plain_ort.file_bytes,
            "INT8 ONNX Runtime": int8_ort.file_bytes,
        }
        rows += latency(
            {
                "fp32 eager": lambda: translator(src, tgt),
                "INT8 torchao eager": lambda: torchao_model(src, tgt),
                "INT8 torch.ao legacy": lambda: legacy_model(src, tgt),
                "fp32 ONNX Runtime": lambda: fp32_ort(src, tgt),
                "INT8 ORT, defaults": lambda: plain_ort(src, tgt),
                "INT8 ONNX Runtime": lambda: int8_ort(src, tgt),
            },
            group="ch04 Transformer forward, batch 1, 1 thread",
            baseline="fp32 eager",
            threads=1,
            repeats=repeats,
            details={name: f"{fp32_bytes / size:.2f}x smaller" for name, size in sizes.items()},
        )
    dense = SmallCNN(channels=48).eval()
    pruned = prune_channels(dense, 0.5).eval()
    images = torch.rand(32, 1, 8, 8)
    flops = count_flops(dense, images)
    rows += latency(
        {"dense SmallCNN": lambda: dense(images), "channel-pruned 50%": lambda: pruned(images)},
        group="ch04 SmallCNN, batch 32, 1 thread",
        baseline="dense SmallCNN",
        threads=1,
        repeats=repeats,
        details={
            "channel-pruned 50%": f"{1 - count_flops(pruned, images) / flops:.0%} fewer FLOPs"
        },
    )
    return rows
