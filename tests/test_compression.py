"""Chapter 4: every from-scratch piece against the library doing the same job, on tiny models."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import prune

from handbook import bench, compression, plots, train
from handbook.digits import MLP
from handbook.models import SmallCNN, Transformer

matplotlib.use("Agg")


# Quantization ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (4, 7), (8, 3, 3, 3), (1, 1)])
def test_per_tensor_round_trip_matches_torch_fake_quantize(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 3
    q, scale = compression.quantize_symmetric(x)
    expected = torch.fake_quantize_per_tensor_affine(x, float(scale), 0, -127, 127)

    assert q.dtype == torch.int8 and q.shape == x.shape and scale.ndim == 0
    torch.testing.assert_close(compression.dequantize(q, scale), expected)
    assert int(q.abs().max()) == 127


@pytest.mark.parametrize(
    ("shape", "axis"), [((4, 7), 0), ((4, 7), 1), ((8, 3, 3, 3), 0), ((6, 5), -1)]
)
def test_per_channel_round_trip_matches_torch_fake_quantize(shape, axis):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    x = x * torch.linspace(0.01, 10, shape[axis]).reshape(
        [-1 if d == axis % len(shape) else 1 for d in range(len(shape))]
    )
    q, scale = compression.quantize_symmetric(x, axis=axis)
    zero = torch.zeros(shape[axis], dtype=torch.int32)
    expected = torch.fake_quantize_per_channel_affine(x, scale, zero, axis % x.ndim, -127, 127)

    assert scale.shape == (shape[axis],)
    torch.testing.assert_close(compression.dequantize(q, scale, axis=axis), expected)


def test_symmetric_scale_matches_torchao_and_handles_zero_channels():
    from torchao.quantization.quant_primitives import MappingType, choose_qparams_affine

    x = torch.randn(6, 10)
    x[2] = 0.0
    scale = compression.symmetric_scale(x, axis=0)
    reference, _ = choose_qparams_affine(
        x, MappingType.SYMMETRIC, (1, 10), torch.int8, -127, 127, eps=torch.finfo(torch.float32).eps
    )
    torch.testing.assert_close(scale, reference.flatten())
    q, scale = compression.quantize_symmetric(x, axis=0)
    assert torch.all(q[2] == 0) and torch.isfinite(scale).all()


def test_per_channel_error_is_smaller_when_channels_differ_in_range():
    x = torch.randn(16, 32) * torch.logspace(-2, 1, 16)[:, None]

    assert compression.quantization_error(x, axis=0) < 0.5 * compression.quantization_error(x)


def test_quantization_rejects_integers_and_bad_axes():
    with pytest.raises(ValueError, match="floating-point"):
        compression.quantize_symmetric(torch.arange(4))
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        compression.symmetric_scale(torch.randn(3, 3), axis=2)


# Distillation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("temperature", "alpha"), [(1.0, 0.5), (4.0, 0.9), (10.0, 1.0), (2.0, 0.0)]
)
def test_distillation_loss_matches_the_formula_with_kl_div(temperature, alpha):
    generator = torch.Generator().manual_seed(2)
    student, teacher = (
        torch.randn(8, 10, generator=generator),
        torch.randn(8, 10, generator=generator),
    )
    targets = torch.randint(0, 10, (8,), generator=generator)
    soft = F.kl_div(
        F.log_softmax(student / temperature, -1),
        F.log_softmax(teacher / temperature, -1),
        reduction="batchmean",
        log_target=True,
    )
    expected = alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(student, targets)

    torch.testing.assert_close(
        compression.distillation_loss(student, teacher, targets, temperature, alpha), expected
    )


def test_distillation_loss_is_the_cross_entropy_alone_when_alpha_is_zero_and_checks_inputs():
    student, targets = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    loss = compression.distillation_loss(student, student + 1, targets, alpha=0.0)

    torch.testing.assert_close(loss, F.cross_entropy(student, targets))
    assert float(
        compression.distillation_loss(student, student, targets, alpha=1.0)
    ) == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        compression.distillation_loss(student, torch.randn(4, 5), targets)
    with pytest.raises(ValueError, match="temperature"):
        compression.distillation_loss(student, student, targets, temperature=0)


def test_distiller_trains_the_student_only_and_keeps_the_teacher_frozen():
    train.set_seed(0)
    images, labels = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    teacher, student = SmallCNN(channels=4), MLP(hidden=16)
    teacher_state = {name: value.clone() for name, value in teacher.state_dict().items()}
    distiller = compression.Distiller(student, teacher, temperature=3.0, alpha=0.7)
    loader = train.make_loader(images, labels, batch_size=16, shuffle=True)
    history = train.fit(
        distiller,
        loader,
        epochs=2,
        optimizer=torch.optim.SGD(distiller.student.parameters(), lr=0.1),
        loss_fn=distiller.loss,
        val_loader=loader,
        device="cpu",
        progress=False,
    )

    assert not teacher.training and len(history.val_loss) == 2
    for name, value in teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_state[name], msg=name)
    distiller.eval()
    torch.testing.assert_close(
        distiller.loss(student(images), labels), F.cross_entropy(student(images), labels)
    )


# Pruning and FLOPs -----------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_magnitude_mask_matches_torch_l1_unstructured(amount):
    layer = nn.Linear(20, 12)
    prune.l1_unstructured(layer, "weight", amount=amount)
    ours = compression.magnitude_mask(layer.weight_orig, amount)

    assert torch.equal(ours, layer.weight_mask.bool())


def test_unstructured_pruning_zeroes_weights_keeps_them_zero_and_leaves_flops():
    model = SmallCNN(channels=8)
    images = torch.rand(4, 1, 8, 8)
    dense_flops = compression.count_flops(model, images)
    compression.prune_unstructured(model, 0.75)
    model.train()
    loss = model(images).sum()
    loss.backward()
    with torch.no_grad():
        for _, module in compression.weight_layers(model):
            module.weight_orig -= 0.1 * module.weight_orig.grad
    compression.make_pruning_permanent(model)

    assert compression.sparsity(model) == pytest.approx(0.75, abs=0.01)
    assert compression.count_flops(model, images) == dense_flops
    assert compression.effective_flops(model, images) < 0.3 * dense_flops


def test_count_flops_counts_a_linear_layer_as_two_per_multiply_add():
    layer = nn.Sequential(nn.Linear(10, 6, bias=False))

    assert compression.count_flops(layer, torch.rand(3, 10)) == 2 * 3 * 10 * 6


@pytest.mark.parametrize("keep", [1.0, 0.5, 0.25])
def test_channel_pruning_shrinks_the_cnn_and_keeps_the_kept_channels_exact(keep):
    torch.manual_seed(0)
    model = SmallCNN(channels=8).eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2)
    pruned = compression.prune_channels(model, keep).eval()
    images = torch.rand(5, 1, 8, 8)

    assert pruned.features[0].out_channels == round(8 * keep)
    assert pruned.features[4].out_channels == round(16 * keep)
    assert pruned(images).shape == (5, 10)
    assert bench.count_parameters(pruned) <= bench.count_parameters(model)
    if keep == 1.0:
        torch.testing.assert_close(pruned(images), model(images))
    else:
        flops = compression.count_flops(pruned, images) / compression.count_flops(model, images)
        assert flops < keep * 1.05
    kept = compression._keep_indices(model.features[0].weight, round(8 * keep))
    torch.testing.assert_close(pruned.features[0].weight, model.features[0].weight[kept])


def test_channel_pruning_rejects_other_models_and_bad_fractions():
    with pytest.raises(TypeError, match="expected a SmallCNN"):
        compression.prune_channels(MLP(), 0.5)
    with pytest.raises(ValueError, match="keep_fraction"):
        compression.prune_channels(SmallCNN(), 0.0)


# Deployment paths ------------------------------------------------------------------------------


def test_onnx_export_and_static_quantization_of_the_cnn(tmp_path: Path):
    torch.manual_seed(0)
    model = SmallCNN(channels=16).eval()
    images = torch.rand(8, 1, 8, 8)
    path = compression.export_onnx(
        model,
        (images[:1],),
        tmp_path / "cnn.onnx",
        input_names=["images"],
        dynamic_axes={"images": {0: "batch"}},
    )
    fp32 = compression.OnnxModel(path, threads=1)
    torch.testing.assert_close(fp32(images), model(images).detach(), atol=1e-4, rtol=1e-4)
    calibration = [{"images": images.numpy()}]
    int8 = compression.OnnxModel(
        compression.quantize_onnx_static(path, tmp_path / "cnn.int8.onnx", calibration)
    )

    assert (fp32(images).argmax(-1) == int8(images).argmax(-1)).float().mean() >= 0.75
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cnn.int8.onnx",
        "cnn.onnx",
    ]  # one file each
    with pytest.raises(ValueError, match="takes 1 inputs"):
        fp32(images, images)


def test_translator_paths_agree_and_onnx_int8_is_smaller(tmp_path: Path):
    torch.manual_seed(0)
    model = Transformer(30, 40, d_model=32, num_heads=2, d_ff=64, pad_id=0).eval()
    src, tgt = torch.randint(1, 30, (3, 6)), torch.randint(1, 40, (3, 4))
    src[0, -2:] = 0
    exported = compression.ExportableTranslator(model)
    torch.testing.assert_close(exported(src, tgt), model(src, tgt))
    path = compression.export_onnx(
        exported,
        (src, tgt),
        tmp_path / "t.onnx",
        input_names=["src", "tgt"],
        dynamic_axes={"src": {0: "batch", 1: "src_len"}, "tgt": {0: "batch", 1: "tgt_len"}},
        dynamo=False,
    )
    int8_path = compression.quantize_onnx_dynamic(path, tmp_path / "t.int8.onnx")
    fp32, int8 = compression.OnnxModel(path), compression.OnnxModel(int8_path)
    longer_src, longer_tgt = torch.randint(1, 30, (2, 9)), torch.randint(1, 40, (2, 7))

    torch.testing.assert_close(
        fp32(longer_src, longer_tgt), model(longer_src, longer_tgt), atol=1e-4, rtol=1e-4
    )
    assert int8.file_bytes < fp32.file_bytes  # tiny model: embeddings and positions dominate
    for quantized in (
        compression.quantize_torchao(model),
        compression.quantize_legacy_dynamic(model),
        int8,
    ):
        with torch.no_grad():
            difference = (quantized(src, tgt) - model(src, tgt)).abs().max()
        assert float(difference) < 0.5


def test_greedy_translate_matches_the_transformers_own_greedy_decode():
    from handbook import datasets, translation

    task = translation.build_task(datasets.number_words(max_number=60, seed=0))
    torch.manual_seed(0)
    model = Transformer(
        task.source_vocab_size,
        task.target_vocab_size,
        d_model=16,
        num_heads=2,
        d_ff=32,
        pad_id=task.pad_id,
    ).eval()
    texts = task.data["test"]["english"][:4]

    assert compression.greedy_translate(model, texts, task, max_len=6) == translation.translate(
        model, texts, task, max_len=6
    )


def test_torch_threads_restores_the_setting():
    before = torch.get_num_threads()
    with compression.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_accuracy_of_and_latency_rows():
    model = SmallCNN(channels=4).eval()
    images, labels = torch.rand(10, 1, 8, 8), torch.randint(0, 10, (10,))
    expected = float((train.predict(model, images) == labels).float().mean())

    assert compression.accuracy_of(model, images, labels) == pytest.approx(expected)
    rows = compression.latency(
        {"a": lambda: model(images), "b": lambda: model(images[:1])},
        group="g",
        baseline="a",
        threads=1,
        repeats=2,
    )
    assert [row.variant for row in rows] == ["a", "b"] and rows[0].ratio == 1.0
    with pytest.raises(ValueError, match="empty"):
        compression.accuracy_of(model, images[:0], labels[:0])


# Figure ----------------------------------------------------------------------------------------


def test_compression_tradeoff_plots_two_panels_and_marks_the_front():
    variants = {
        "fp32": {"accuracy": 0.98, "size_bytes": 200_000, "latency_ms": 1.0},
        "int8": {"accuracy": 0.975, "size_bytes": 60_000, "latency_ms": 0.3},
        "bad": {"accuracy": 0.90, "size_bytes": 300_000, "latency_ms": 2.0},
    }
    figure = plots.compression_tradeoff(variants, title="t")

    assert len(figure.axes) == 2
    legend_names = {text.get_text() for text in figure.legends[0].get_texts()}
    assert legend_names == {"fp32", "int8", "bad", "Pareto front"}
    front_line = next(line for line in figure.axes[0].lines if line.get_label() == "Pareto front")
    assert list(front_line.get_xdata()) == [60_000 / 1024, 200_000 / 1024]
    assert plots.pareto_front([(1.0, 0.98), (0.3, 0.975), (2.0, 0.9)]) == [1, 0]
    with pytest.raises(ValueError, match="accuracy"):
        plots.compression_tradeoff({"x": {"size_bytes": 1, "latency_ms": 1}})
    assert np.isfinite(figure.get_size_inches()).all()


def test_sinusoids_match_the_positional_table():
    from handbook.models import sinusoidal_positional_encoding

    torch.testing.assert_close(
        compression.sinusoids(40, 16), sinusoidal_positional_encoding(40, 16), atol=1e-5, rtol=0
    )
    with pytest.raises(ValueError, match="even d_model"):
        compression.sinusoids(4, 7)


@pytest.fixture(scope="module")
def tiny_translator_onnx(tmp_path_factory):
    """An untrained chapter-1 Transformer, its ONNX export, and one example input."""
    tmp_path = tmp_path_factory.mktemp("translator")
    torch.manual_seed(0)
    model = Transformer(30, 40, d_model=32, num_heads=2, d_ff=64, pad_id=0).eval()
    src, tgt = torch.randint(1, 30, (3, 6)), torch.randint(1, 40, (3, 4))
    path = compression.export_onnx(
        compression.ExportableTranslator(model),
        (src, tgt),
        tmp_path / "t.onnx",
        input_names=["src", "tgt"],
        dynamic_axes={"src": {0: "batch", 1: "src_len"}, "tgt": {0: "batch", 1: "tgt_len"}},
        dynamo=False,
    )
    return model, path, (src, tgt)


def test_onnx_byte_breakdown_adds_up_and_finds_what_compaction_removes(
    tmp_path: Path, tiny_translator_onnx
):
    model, path, _ = tiny_translator_onnx
    plain = compression.quantize_onnx_dynamic(path, tmp_path / "plain.onnx")
    small = compression.quantize_onnx_dynamic(
        path, tmp_path / "small.onnx", per_channel=True, preprocess=True, compact=True
    )
    parts = {name: compression.onnx_byte_breakdown(file) for name, file in
             [("fp32", path), ("plain", plain), ("small", small)]}  # fmt: skip

    for name, file in [("fp32", path), ("plain", plain), ("small", small)]:
        assert list(parts[name]) == list(compression.BYTE_PARTS)
        assert sum(parts[name].values()) == file.stat().st_size
        assert min(parts[name].values()) >= 0
    weights = sum(m.weight.numel() for _, m in compression.weight_layers(model))
    # every Linear weight is fp32 before quantization, INT8 after (one byte per weight)
    assert parts["fp32"]["fp32 weight matrices"] >= 4 * weights
    assert parts["plain"]["INT8 weight matrices"] >= weights
    assert parts["plain"]["fp32 weight matrices"] == 0
    assert parts["plain"]["INT8 embedding tables"] == 30 * 32 + 40 * 32
    # no 512 x 32 positional table (64 KiB): the encodings are computed in the graph
    assert parts["fp32"]["constants inside nodes"] < 4096
    graph = "graph: nodes, names, shapes"
    assert parts["small"][graph] < parts["plain"][graph]
    assert small.stat().st_size < plain.stat().st_size
    fp32, int8 = compression.OnnxModel(path), compression.OnnxModel(small)
    longer_src, longer_tgt = torch.randint(1, 30, (2, 9)), torch.randint(1, 40, (2, 7))
    with torch.no_grad():
        reference = model(longer_src, longer_tgt)
    torch.testing.assert_close(fp32(longer_src, longer_tgt), reference, atol=1e-4, rtol=1e-4)
    assert float((int8(longer_src, longer_tgt) - reference).abs().max()) < 0.5


def test_compact_onnx_changes_no_output(tmp_path: Path, tiny_translator_onnx):
    _, path, (src, tgt) = tiny_translator_onnx
    compact = compression.compact_onnx(path, tmp_path / "compact.onnx")
    assert compact.stat().st_size < path.stat().st_size
    torch.testing.assert_close(
        compression.OnnxModel(compact)(src, tgt),
        compression.OnnxModel(path)(src, tgt),
        atol=0,
        rtol=0,
    )


def test_onnx_byte_breakdown_figure_stacks_one_bar_per_file():
    from handbook import plots

    parts = {"INT8 weight matrices": 4096, "graph: nodes, names, shapes": 1024}
    figure = plots.onnx_byte_breakdown(
        {"a": parts, "b": {**parts, "fp32 weight matrices": 16384}}, reference_bytes=20000
    )
    axis = figure.axes[0]
    assert [label.get_text() for label in axis.get_yticklabels()] == ["a", "b"]
    assert len(axis.patches) == 3 * 2  # one segment per part present in any file, per file
    assert len(axis.get_lines()) == 2  # the reference and its quarter
    with pytest.raises(ValueError, match="at least one breakdown"):
        plots.onnx_byte_breakdown({})
