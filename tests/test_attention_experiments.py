"""The chapter-1 experiment helpers of handbook.attention and the chapter-1 figures."""

import os
import subprocess
import sys

import matplotlib
import pytest
import torch

from handbook import attention, bench, models, plots

matplotlib.use("Agg")


def _tiny_transformer() -> models.Transformer:
    torch.manual_seed(0)
    return models.Transformer(11, 13, d_model=16, num_heads=2, d_ff=32, pad_id=0)


def test_cross_attention_weights_are_per_head_distributions_over_the_source() -> None:
    model = _tiny_transformer().train()
    src = torch.tensor([[5, 6, 7, 0], [4, 3, 2, 1]])
    tgt = torch.tensor([[1, 2, 3], [4, 5, 6]])

    weights = attention.cross_attention_weights(model, src, tgt)

    assert weights.shape == (2, 2, 3, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 3))
    assert torch.all(weights[0, :, :, 3] == 0), "the padding key must get no weight"
    assert model.training, "the model's mode is restored"
    layer = model.decoder_layers[-1].cross_attention
    assert not layer._forward_hooks and not layer._forward_pre_hooks


def test_cross_attention_weights_match_a_manual_computation() -> None:
    model = _tiny_transformer().eval()
    src, tgt = torch.tensor([[5, 6, 7]]), torch.tensor([[1, 2]])
    with torch.no_grad():
        memory = model.encode(src)
        x = model._embed(tgt, model.tgt_embedding)
        first, last = model.decoder_layers
        x = first(x, memory)
        block_input = last.norm1(x + last.self_attention(x, causal=True)[0])
        expected = last.cross_attention(block_input, memory, average_attn_weights=False)[1]

    torch.testing.assert_close(attention.cross_attention_weights(model, src, tgt), expected)


def test_layer_gradient_norms_give_one_positive_norm_per_layer() -> None:
    torch.manual_seed(0)
    model = attention.EncoderTagger(8, 8, num_layers=3, d_model=16, num_heads=2, d_ff=32)
    tokens, targets = attention.previous_token_batch(4, 5, 8, torch.Generator().manual_seed(0))

    norms = attention.layer_gradient_norms(model, tokens, targets)

    assert len(norms) == 3 and all(norm > 0 for norm in norms)
    assert all(p.grad is None for p in model.parameters())


def test_previous_token_batch_shifts_by_one() -> None:
    tokens, targets = attention.previous_token_batch(3, 6, 10, torch.Generator().manual_seed(1))
    assert tokens.shape == targets.shape == (3, 6)
    assert torch.equal(targets[:, 1:], tokens[:, :-1]) and torch.equal(targets[:, 0], tokens[:, 0])


def test_depth_experiment_arms_share_data_and_report_every_step() -> None:
    runs = [
        attention.depth_experiment(residual, num_layers=4, steps=3, d_model=16, batch_size=4)
        for residual in (True, False)
    ]
    for run in runs:
        assert len(run.gradient_norms) == 4 and len(run.losses) == 3
        assert 0.0 <= run.accuracy <= 1.0
    assert runs[0].residual and not runs[1].residual
    assert runs[0].gradient_norms != runs[1].gradient_norms


def test_sequential_steps_grow_with_length_for_the_lstm_only() -> None:
    assert attention.sequential_steps(50) == {"LSTM": 50, "self-attention": 1}
    with pytest.raises(ValueError, match="seq_len >= 1"):
        attention.sequential_steps(0)


def test_recurrence_vs_attention_times_both_layers_at_each_length() -> None:
    rows = attention.recurrence_vs_attention(
        [4, 8], batch_size=2, d_model=8, num_heads=2, repeats=1
    )
    assert [(row["seq_len"], row["variant"]) for row in rows] == [
        (4, "LSTM"),
        (4, "self-attention"),
        (8, "LSTM"),
        (8, "self-attention"),
    ]
    assert all(row["ms"] > 0 for row in rows)
    assert rows[2]["sequential_steps"] == 8 and rows[3]["sequential_steps"] == 1


VARIANTS = ("plain", "chunked", "chunked, SDPA per chunk", "torch SDPA")


def test_attention_scaling_measures_four_variants_per_length_and_tabulates_them() -> None:
    measurements = attention.attention_scaling([16, 32], repeats=1, memory=False)
    table = attention.scaling_table(measurements)

    assert [(row["seq_len"], row["variant"]) for row in table] == [
        (length, variant) for length in (16, 32) for variant in VARIANTS
    ]
    assert all(isinstance(row, bench.Measurement) for row in measurements)
    assert all(row["peak_bytes"] is None for row in table)


def test_smoke_benchmarks_return_measurements(monkeypatch) -> None:
    asked = []
    # the fresh-process measurement is tested below; here, only that every row asks for it
    monkeypatch.setattr(
        attention,
        "peaks_in_fresh_processes",
        lambda rows, **_: asked.extend(rows) or list(range(1, len(rows) + 1)),
    )
    rows = attention.benchmarks(smoke=True)
    assert {row.variant for row in rows} == set(VARIANTS)
    assert len(rows) == 4 * len(attention.SMOKE_BENCH_SEQ_LENS)
    if bench.cpu_peak_supported():
        assert asked == [(length, variant) for length in (64, 256) for variant in VARIANTS]
        assert [row.peak_bytes for row in rows] == list(range(1, len(rows) + 1))


@pytest.mark.skipif(not bench.cpu_peak_supported(), reason="needs Linux /proc peak memory")
def test_fresh_process_peaks_grow_linearly_for_chunked_and_quadratically_for_plain() -> None:
    """Four child processes (this replaces an in-process test whose peak could not resolve
    chunked attention's few MiB): plain attention's (L, L) float32 matrices quadruple from
    L = 2048 to 4096 (16 -> 64 MiB each); chunked attention's (L, 128) blocks double (1 -> 2
    MiB)."""
    rows = [(length, variant) for length in (2048, 4096) for variant in ("plain", "chunked")]
    peak = dict(zip(rows, attention.peaks_in_fresh_processes(rows), strict=True))
    assert peak[4096, "plain"] > 3 * peak[2048, "plain"] > 3 * 2 * 16 * 2**20
    # chunked doubles (5.1 -> 10.1 MiB measured; pages and q, k, v blur the exact 2x a little)
    assert 1.7 * peak[2048, "chunked"] < peak[4096, "chunked"] < 2.5 * peak[2048, "chunked"]
    chunked_growth = peak[4096, "chunked"] / peak[2048, "chunked"]
    assert chunked_growth < (peak[4096, "plain"] / peak[2048, "plain"]) / 1.5
    assert peak[4096, "chunked"] < peak[4096, "plain"] / 4  # about 1/9 measured


def test_attention_heatmap_labels_both_axes() -> None:
    weights = torch.softmax(torch.randn(3, 4), dim=-1).numpy()
    figure = plots.attention_heatmap(weights, list("abcd"), ["x", "y", "z"], title="t")
    axis = figure.axes[0]
    assert [label.get_text() for label in axis.get_xticklabels()] == list("abcd")
    assert [label.get_text() for label in axis.get_yticklabels()] == ["x", "y", "z"]
    with pytest.raises(ValueError, match="expected weights of shape"):
        plots.attention_heatmap(weights, list("abc"), ["x", "y", "z"])


def test_gradient_norm_and_loss_figures_draw_one_line_per_run() -> None:
    figure = plots.layer_gradient_norms({"a": [1.0, 0.5, 0.1], "b": [1.0, 1.0, 1.0]})
    assert len(figure.axes[0].get_lines()) == 2
    assert figure.axes[0].get_yscale() == "log"
    figure = plots.loss_curves({"a": [3.0, 2.0], "b": [3.0, 2.9]}, reference=2.7)
    assert len(figure.axes[0].get_lines()) == 3


def test_scaling_plot_draws_a_memory_panel_only_when_memory_was_measured() -> None:
    rows = [
        {"seq_len": n, "variant": v, "ms": 1.0 + n, "peak_bytes": p}
        for n in (8, 16)
        for v, p in (("plain", 2**20 * n), ("chunked", 2**20))
    ]
    assert len(plots.scaling_plot(rows).axes) == 2
    timing_only = [{**row, "peak_bytes": None} for row in rows]
    assert len(plots.scaling_plot(timing_only).axes) == 1
    with pytest.raises(ValueError, match="at least one row"):
        plots.scaling_plot([])


@pytest.mark.skipif(not bench.cpu_peak_supported(), reason="needs Linux /proc peak memory")
def test_a_forked_child_reads_the_peak_a_newly_started_process_reads() -> None:
    """The forked children map their parent's library pages in again before measuring: without
    that, PyTorch's SDPA per 2,048-key chunk at 4,096 tokens read 0.9 MiB (10%) more than in a
    newly started process, the code pages it faulted in again."""
    row = (4096, "chunked, SDPA per chunk")
    arguments = (*row, 1, 64, 128, 2048, 0)
    started = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from handbook.attention import _child_peak as p; print(p{arguments!r})",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"},
    )
    fresh = int(started.stdout.split()[-1])
    forked = attention.peak_in_fresh_process(*row)
    assert abs(forked - fresh) < 0.4 * 2**20, (forked, fresh)
