"""Chapter 6: the from-scratch LSTM against torch.nn.LSTMCell / torch.nn.LSTM, the operating
points against scikit-learn, late fusion against Bayes' rule on a known joint distribution, and
the models' contracts (shapes, padding, modalities)."""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from handbook import bench, cases, datasets, plots
from handbook.models import lstm

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


# The LSTM cell ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("batch", "inputs", "hidden"), [(1, 1, 1), (3, 4, 5), (8, 2, 7)])
def test_lstm_cell_matches_torch(batch, inputs, hidden, bias):
    torch.manual_seed(batch * 10 + hidden)
    reference = nn.LSTMCell(inputs, hidden, bias=bias).double()
    ours = cases.LSTMCell(inputs, hidden, bias=bias).double()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(batch, inputs, dtype=torch.float64)
    state = (
        torch.randn(batch, hidden, dtype=torch.float64),
        torch.randn(batch, hidden, dtype=torch.float64),
    )
    for expected, actual in zip(reference(x, state), ours(x, state), strict=True):
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-12)
    for expected, actual in zip(reference(x), ours(x), strict=True):  # zero state by default
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-12)


def test_lstm_cell_parameters_have_torch_names_shapes_and_initial_range():
    cell = cases.LSTMCell(3, 4)
    reference = nn.LSTMCell(3, 4)
    assert {name: p.shape for name, p in cell.named_parameters()} == {
        name: p.shape for name, p in reference.named_parameters()
    }
    bound = 1 / math.sqrt(4)
    assert all(p.abs().max() <= bound for p in cell.parameters())
    assert cases.LSTMCell(3, 4, bias=False).bias_ih is None


def test_lstm_cell_gradients_match_torch():
    torch.manual_seed(1)
    reference = nn.LSTMCell(3, 4).double()
    ours = cases.LSTMCell(3, 4).double()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(5, 3, dtype=torch.float64)
    for model in (reference, ours):
        hidden, cell = model(x)
        (hidden.sin().sum() + cell.cos().sum()).backward()
    for name, parameter in ours.named_parameters():
        torch.testing.assert_close(parameter.grad, getattr(reference, name).grad)


def test_lstm_cell_rejects_wrong_input_width_and_sizes():
    with pytest.raises(ValueError, match=r"expected inputs \(batch, 3\), got \(2, 4\)"):
        cases.LSTMCell(3, 4)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="at least 1"):
        cases.LSTMCell(0, 4)


# The LSTM layer ---------------------------------------------------------------------------------


def _torch_packed(reference, inputs, lengths, state=None):
    packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
    outputs, final = reference(packed, state)
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=inputs.shape[1])
    return outputs, final


LAYER_CASES = {
    "one sequence of one step": (1, 1, 2, 3, [1]),
    "full lengths": (3, 5, 4, 6, [5, 5, 5]),
    "unsorted lengths with a length of 1": (4, 7, 5, 6, [7, 3, 5, 1]),
    "sorted lengths, wider hidden": (5, 6, 3, 9, [6, 6, 4, 2, 1]),
    "batch of 8, no sequence at full length": (8, 10, 2, 4, [9, 1, 4, 4, 2, 8, 3, 7]),
}


@pytest.mark.parametrize("bidirectional", [False, True], ids=["one direction", "bidirectional"])
@pytest.mark.parametrize("case", LAYER_CASES)
def test_lstm_matches_torch_on_packed_sequences(case, bidirectional):
    batch, time, size, hidden, lengths = LAYER_CASES[case]
    torch.manual_seed(len(case))
    reference = nn.LSTM(size, hidden, batch_first=True, bidirectional=bidirectional).double()
    ours = cases.LSTM.from_torch(reference)
    inputs = torch.randn(batch, time, size, dtype=torch.float64)
    lengths = torch.tensor(lengths)
    expected_outputs, (expected_h, expected_c) = _torch_packed(reference, inputs, lengths)
    outputs, (h, c) = ours(inputs, lengths)
    assert outputs.shape == (batch, time, (2 if bidirectional else 1) * hidden)
    torch.testing.assert_close(outputs, expected_outputs, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, expected_h, rtol=0, atol=1e-12)
    torch.testing.assert_close(c, expected_c, rtol=0, atol=1e-12)
    padding = torch.arange(time)[None, :] >= lengths[:, None]
    assert (outputs[padding] == 0).all(), "outputs at padded steps must be zero"


@pytest.mark.parametrize("bidirectional", [False, True], ids=["one direction", "bidirectional"])
def test_lstm_matches_torch_without_lengths_and_with_an_initial_state(bidirectional):
    torch.manual_seed(2)
    directions = 2 if bidirectional else 1
    reference = nn.LSTM(3, 4, batch_first=True, bidirectional=bidirectional).double()
    ours = cases.LSTM.from_torch(reference)
    inputs = torch.randn(2, 6, 3, dtype=torch.float64)
    state = (
        torch.randn(directions, 2, 4, dtype=torch.float64),
        torch.randn(directions, 2, 4, dtype=torch.float64),
    )
    expected = reference(inputs, state)
    actual = ours(inputs, state=state)
    torch.testing.assert_close(actual[0], expected[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(actual[1], expected[1], rtol=0, atol=1e-12)
    lengths = torch.tensor([6, 2])
    expected = _torch_packed(reference, inputs, lengths, state)
    actual = ours(inputs, lengths, state)
    torch.testing.assert_close(actual[0], expected[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(actual[1], expected[1], rtol=0, atol=1e-12)


def test_lstm_without_bias_and_in_float32_matches_torch():
    torch.manual_seed(3)
    reference = nn.LSTM(4, 5, batch_first=True, bidirectional=True, bias=False)
    ours = cases.LSTM.from_torch(reference)
    assert ours.forward_cell.bias_ih is None
    inputs, lengths = torch.randn(3, 4, 4), torch.tensor([4, 1, 3])
    expected = _torch_packed(reference, inputs, lengths)
    actual = ours(inputs, lengths)
    torch.testing.assert_close(actual[0], expected[0])
    torch.testing.assert_close(actual[1], expected[1])


def test_lstm_gradients_match_torch_through_padding_and_both_directions():
    torch.manual_seed(4)
    reference = nn.LSTM(3, 4, batch_first=True, bidirectional=True).double()
    ours = cases.LSTM.from_torch(reference)
    inputs = torch.randn(3, 5, 3, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 4])
    gradients = []
    for run in (lambda x: _torch_packed(reference, x, lengths), lambda x: ours(x, lengths)):
        x = inputs.clone().requires_grad_(True)
        outputs, (h, _) = run(x)
        (outputs.tanh().sum() + h.square().sum()).backward()
        gradients.append(x.grad)
    torch.testing.assert_close(gradients[1], gradients[0], rtol=0, atol=1e-12)
    assert (gradients[0][1, 2:] == 0).all(), "padding must get no gradient"
    torch.testing.assert_close(
        ours.backward_cell.weight_hh.grad, reference.weight_hh_l0_reverse.grad, rtol=0, atol=1e-12
    )


def test_reversal_index_reverses_within_each_length_and_is_its_own_inverse():
    index = lstm._reversal_index(torch.tensor([3, 1, 4]), 4)
    assert index.tolist() == [[2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]]
    assert torch.equal(index.gather(1, index), torch.arange(4).expand(3, 4))


def test_lstm_validates_its_inputs():
    lstm = cases.LSTM(3, 4, bidirectional=True)
    with pytest.raises(ValueError, match=r"expected inputs \(batch, time, 3\)"):
        lstm(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="at least one step, got time = 0"):
        lstm(torch.zeros(2, 0, 3))
    with pytest.raises(ValueError, match="lengths between 1 and the padded length 5, got values"):
        lstm(torch.zeros(2, 5, 3), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="lengths between 1 and the padded length 5"):
        lstm(torch.zeros(2, 5, 3), [6, 5])
    with pytest.raises(ValueError, match=r"one length per sequence \(2,\), got shape \(3,\)"):
        lstm(torch.zeros(2, 5, 3), [1, 2, 3])
    with pytest.raises(ValueError, match=r"initial state .* \(2, 2, 4\) each, got \(1, 2, 4\)"):
        lstm(torch.zeros(2, 5, 3), state=(torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)))
    with pytest.raises(ValueError, match="num_layers=2"):
        cases.LSTM.from_torch(nn.LSTM(3, 4, num_layers=2))
    with pytest.raises(ValueError, match="batch_first=True"):
        cases.run_lstm(nn.LSTM(3, 4), torch.zeros(2, 5, 3), torch.tensor([5, 5]))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["one direction", "bidirectional"])
@pytest.mark.parametrize("case", LAYER_CASES)
def test_unpacked_run_matches_the_packed_one_with_its_gradients(case, bidirectional, bias):
    batch, time, size, hidden, lengths = LAYER_CASES[case]
    torch.manual_seed(len(case))
    reference = nn.LSTM(size, hidden, bias=bias, batch_first=True, bidirectional=bidirectional)
    reference = reference.double()
    inputs = torch.randn(batch, time + 2, size, dtype=torch.float64)
    lengths = torch.tensor(lengths)

    def packed_run(x):
        outputs, (h, _) = cases.run_lstm(reference, x, lengths)
        return outputs, h

    results = []
    for run in (packed_run, lambda x: cases.run_lstm_unpacked(reference, x, lengths)):
        reference.zero_grad()
        x = inputs.clone().requires_grad_(True)
        outputs, h = run(x)
        (outputs.tanh().sum() + h.square().sum()).backward()
        results.append((outputs, h, x.grad, [p.grad.clone() for p in reference.parameters()]))
    (packed, packed_h, packed_grad, packed_weights), (outputs, h, grad, weights) = results
    assert outputs.shape == packed.shape and h.shape == packed_h.shape
    torch.testing.assert_close(outputs, packed, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, packed_h, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad, packed_grad, rtol=0, atol=1e-12)
    for ours, expected in zip(weights, packed_weights, strict=True):
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    scratch_outputs, scratch_h = cases.run_lstm_unpacked(
        cases.LSTM.from_torch(reference), inputs, lengths
    )
    torch.testing.assert_close(scratch_outputs, packed.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(scratch_h, packed_h.detach(), rtol=0, atol=1e-12)


def test_unpacked_run_rejects_what_it_cannot_run():
    with pytest.raises(ValueError, match="batch_first=True"):
        cases.run_lstm_unpacked(nn.LSTM(3, 4), torch.zeros(2, 5, 3), torch.tensor([5, 5]))
    with pytest.raises(ValueError, match="one-layer"):
        lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True)
        cases.run_lstm_unpacked(lstm, torch.zeros(2, 5, 3), torch.tensor([5, 5]))
    with pytest.raises(ValueError, match="lengths between 1 and the padded length 5"):
        lstm = nn.LSTM(3, 4, batch_first=True)
        cases.run_lstm_unpacked(lstm, torch.zeros(2, 5, 3), torch.tensor([0, 5]))


# Fraud ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fraud_split():
    return datasets.fraud_sequences(n_users=400, seed=1)


def test_event_tensors_pad_and_encode_every_user(fraud_split):
    split = fraud_split["train"]
    sequences = cases.event_tensors(split)
    lengths = [len(events) for events in split["events"]]
    assert len(sequences) == len(split)
    assert sequences.events.shape == (len(split), max(lengths))
    assert sequences.lengths.tolist() == lengths
    assert sequences.labels.tolist() == list(split["fraud"])
    row = split[3]
    assert sequences.events[3, : len(row["events"])].tolist() == [
        cases.EVENT_IDS[event] for event in row["events"]
    ]
    assert (sequences.events[3, len(row["events"]) :] == 0).all()
    expected_gaps = np.log1p(row["minutes"]) / math.log1p(24 * 60)
    np.testing.assert_allclose(sequences.gaps[3, : len(row["events"])], expected_gaps, rtol=1e-6)
    assert sequences.gaps[:, 0].abs().max() == 0, "the first event has no gap"


def test_event_tensors_reject_unknown_events_and_other_tables(fraud_split):
    broken = (
        fraud_split["train"]
        .select(range(3))
        .map(lambda row: {"events": ["login", "teleport"], "minutes": [0.0, 1.0]})
    )
    with pytest.raises(ValueError, match="row 0: unknown event 'teleport'"):
        cases.event_tensors(broken)
    with pytest.raises(ValueError, match=r"missing columns \['events', 'fraud'"):
        cases.event_tensors(datasets.diagnosis_records(n=60)["train"])


def test_event_counts_match_a_plain_python_count(fraud_split):
    split = fraud_split["test"]
    sequences = cases.event_tensors(split)
    counts = cases.event_counts(sequences, bigrams=True)
    kinds = len(datasets.FRAUD_EVENTS)
    assert counts.shape == (len(split), kinds + kinds * kinds)
    for row, events in enumerate(split["events"]):
        singles = collections.Counter(events)
        pairs = collections.Counter(zip(events, events[1:], strict=False))
        for index, event in enumerate(datasets.FRAUD_EVENTS):
            assert counts[row, index] == singles[event]
        for (first, second), count in pairs.items():
            a, b = datasets.FRAUD_EVENTS.index(first), datasets.FRAUD_EVENTS.index(second)
            assert counts[row, kinds + a * kinds + b] == count
        assert counts[row, kinds:].sum() == len(events) - 1
    np.testing.assert_array_equal(cases.event_counts(sequences), counts[:, :kinds])


def test_fraud_classifier_ignores_padding_and_keeps_its_output_with_a_from_scratch_lstm():
    torch.manual_seed(5)
    model = cases.FraudSequenceClassifier(hidden_size=6).eval()
    events = torch.randint(1, len(cases.EVENT_IDS) + 1, (4, 9))
    gaps = torch.rand(4, 9)
    lengths = torch.tensor([9, 3, 6, 1])
    padding = torch.arange(9)[None, :] >= lengths[:, None]
    events[padding], gaps[padding] = 0, 0.0
    with torch.no_grad():
        logits = model(events, gaps, lengths)
        longer = model(
            torch.cat([events, torch.zeros(4, 5, dtype=torch.int64)], dim=1),
            torch.cat([gaps, torch.zeros(4, 5)], dim=1),
            lengths,
        )
        model.lstm = cases.LSTM.from_torch(model.lstm)
        scratch = model(events, gaps, lengths)
    assert logits.shape == (4, 2)
    torch.testing.assert_close(longer, logits)
    torch.testing.assert_close(scratch, logits, rtol=0, atol=1e-6)


def test_training_and_scoring_return_probabilities_for_every_user(fraud_split):
    run = cases.run_detectors(fraud_split, cases.DETECTORS, epochs=1, seed=0)
    assert list(run.scores) == list(cases.DETECTORS)
    for scores in run.scores.values():
        assert scores.shape == (len(fraud_split["test"]),)
        assert ((scores >= 0) & (scores <= 1)).all()
    assert not run.models["LSTM on the sequence"].training
    with pytest.raises(ValueError, match=r"unknown detector\(s\) \['rules'\]"):
        cases.run_detectors(fraud_split, ["rules"])
    with pytest.raises(ValueError, match="unknown kind 'forest'"):
        cases.fit_aggregate_model(np.zeros((4, 2)), [0, 1, 0, 1], kind="forest")


# Operating points against scikit-learn ----------------------------------------------------------


def _scored(seed: int, count: int, *, ties: bool = False):
    rng = np.random.default_rng(seed)
    labels = (rng.random(count) < 0.2).astype(int)
    labels[:2] = [0, 1]
    scores = rng.normal(labels * 1.2, 1.0)
    if ties:
        scores = np.round(scores, 1)
    return labels, scores


SCORED = {
    "200 continuous scores": _scored(0, 200),
    "500 scores rounded to 0.1 (many ties)": _scored(1, 500, ties=True),
    "two users": (np.array([0, 1]), np.array([0.3, 0.2])),
    "perfect separation": (np.array([0, 0, 1, 1, 0]), np.array([0.1, 0.2, 0.9, 0.8, 0.3])),
}


@pytest.mark.parametrize("case", SCORED)
def test_operating_point_counts_match_confusion_matrix(case):
    labels, scores = SCORED[case]
    for threshold in (-np.inf, np.median(scores), scores.max(), np.inf):
        point = cases.operating_point(labels, scores, threshold)
        (tn, fp), (fn, tp) = confusion_matrix(labels, scores >= threshold, labels=[0, 1])
        assert (point.true_positives, point.false_positives) == (tp, fp)
        assert (point.false_negatives, point.true_negatives) == (fn, tn)


@pytest.mark.parametrize("target", [0.05, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("case", SCORED)
def test_operating_point_at_recall_matches_precision_recall_curve(case, target):
    labels, scores = SCORED[case]
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    reaching = recall[:-1] >= target - 1e-12
    expected = thresholds[reaching].max()
    point = cases.operating_point_at_recall(labels, scores, target)
    assert point.threshold == expected
    assert point.recall >= target
    index = int(np.flatnonzero(thresholds == expected)[0])
    assert point.recall == pytest.approx(recall[index])
    assert point.precision == pytest.approx(precision[index])


@pytest.mark.parametrize("budget", [0.0, 0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("case", SCORED)
def test_operating_point_at_false_positive_rate_matches_roc_curve(case, budget):
    labels, scores = SCORED[case]
    false_positive_rate, true_positive_rate, thresholds = roc_curve(
        labels, scores, drop_intermediate=False
    )
    last = np.flatnonzero(false_positive_rate <= budget)[-1]
    point = cases.operating_point_at_false_positive_rate(labels, scores, budget)
    assert point.threshold == thresholds[last]
    assert point.recall == pytest.approx(true_positive_rate[last])
    assert point.false_positive_rate == pytest.approx(false_positive_rate[last])
    assert point.false_positive_rate <= budget


@pytest.mark.parametrize("alerts", [0, 1, 7, 50, 10_000])
@pytest.mark.parametrize("case", SCORED)
def test_operating_point_at_alerts_is_the_lowest_threshold_within_the_budget(case, alerts):
    labels, scores = SCORED[case]
    point = cases.operating_point_at_alerts(labels, scores, alerts)
    assert point.alerts <= alerts
    assert point.alerts == (scores >= point.threshold).sum()
    lower = scores[scores < point.threshold]
    if len(lower):  # the next lower score would break the budget
        assert (scores >= lower.max()).sum() > alerts


def test_operating_points_for_a_detector_that_never_alerts_within_budget():
    labels, scores = np.array([0, 1, 1]), np.array([0.9, 0.5, 0.4])
    point = cases.operating_point_at_false_positive_rate(labels, scores, 0.0)
    assert point.threshold == np.inf and point.alerts == 0 and point.recall == 0
    assert point.precision == 1.0, "no alert, no false alarm (scikit-learn's convention)"
    assert cases.operating_point_at_alerts(labels, scores, 0).threshold == np.inf


def test_operating_points_validate_their_inputs():
    labels, scores = np.array([0, 1, 0]), np.array([0.2, 0.8, 0.4])
    with pytest.raises(ValueError, match=r"labels of 0s and 1s \(1 = fraud\), found \[2\]"):
        cases.operating_point(np.array([0, 2, 1]), scores, 0.5)
    with pytest.raises(ValueError, match="one score per label, got 2 scores and 3 labels"):
        cases.operating_point(labels, scores[:2], 0.5)
    with pytest.raises(ValueError, match="NaN"):
        cases.operating_point(labels, np.array([0.1, np.nan, 0.3]), 0.5)
    with pytest.raises(ValueError, match="both positives and negatives"):
        cases.operating_point(np.zeros(3, int), scores, 0.5)
    with pytest.raises(ValueError, match=r"recall must be a fraction in \(0, 1\]"):
        cases.operating_point_at_recall(labels, scores, 0.0)
    with pytest.raises(ValueError, match="false_positive_rate must be a fraction"):
        cases.operating_point_at_false_positive_rate(labels, scores, 1.5)
    with pytest.raises(ValueError, match="alerts must be a number of users >= 0"):
        cases.operating_point_at_alerts(labels, scores, -1)


def test_compare_detectors_reads_both_operating_points_against_the_baseline():
    labels, base = SCORED["200 continuous scores"]
    better = base + labels * 0.8
    table = cases.compare_detectors(
        labels, {"old": base, "new": better}, baseline="old", recall=0.8, false_positive_rate=0.1
    )
    assert table.loc["old", "false positives vs baseline (%)"] == 0
    old_fp = cases.operating_point_at_recall(labels, base, 0.8).false_positives
    new_fp = cases.operating_point_at_recall(labels, better, 0.8).false_positives
    assert table.loc["new", "false positives at 80% recall"] == new_fp
    assert table.loc["new", "false positives vs baseline (%)"] == pytest.approx(
        100 * (new_fp / old_fp - 1)
    )
    old_recall = cases.operating_point_at_false_positive_rate(labels, base, 0.1).recall
    new_recall = cases.operating_point_at_false_positive_rate(labels, better, 0.1).recall
    assert table.loc["new", "recall gain (pp)"] == pytest.approx(100 * (new_recall - old_recall))
    assert table.loc["new", "recall gain (relative %)"] == pytest.approx(
        100 * (new_recall / old_recall - 1)
    )
    assert table.loc["new", "ROC AUC"] > table.loc["old", "ROC AUC"]
    with pytest.raises(ValueError, match="baseline 'rules' is not one of the detectors"):
        cases.compare_detectors(
            labels, {"new": better}, baseline="rules", recall=0.8, false_positive_rate=0.1
        )


# Diagnosis --------------------------------------------------------------------------------------


def test_late_fusion_is_bayes_rule_when_the_modalities_are_independent_given_the_class():
    rng = np.random.default_rng(6)
    classes, notes, images = 4, 5, 3
    prior = rng.dirichlet(np.ones(classes))
    note_given_class = rng.dirichlet(np.ones(notes), size=classes)  # (classes, notes)
    image_given_class = rng.dirichlet(np.ones(images), size=classes)
    joint = prior[:, None, None] * note_given_class[:, :, None] * image_given_class[:, None, :]
    posterior = joint / joint.sum(axis=0, keepdims=True)  # P(class | note, image)
    by_note = (prior[:, None] * note_given_class) / (prior @ note_given_class)  # (classes, notes)
    by_image = (prior[:, None] * image_given_class) / (prior @ image_given_class)
    pairs = [(note, image) for note in range(notes) for image in range(images)]
    fused = cases.late_fusion(
        np.array([by_note[:, note] for note, _ in pairs]),
        np.array([by_image[:, image] for _, image in pairs]),
        prior,
    )
    expected = np.array([posterior[:, note, image] for note, image in pairs])
    np.testing.assert_allclose(fused, expected, rtol=1e-12)


def test_late_fusion_validates_its_tables():
    with pytest.raises(ValueError, match=r"got \(2, 3\), \(2, 2\) and \(3,\)"):
        cases.late_fusion(np.ones((2, 3)), np.ones((2, 2)), np.ones(3) / 3)
    with pytest.raises(ValueError, match="every class above 0"):
        cases.late_fusion(np.ones((2, 2)), np.ones((2, 2)), np.array([1.0, 0.0]))


def test_vocabulary_orders_words_by_frequency_and_reserves_padding_and_unknown():
    vocabulary = cases.build_vocabulary(["b a b", "c b a", "d"], min_count=1)
    assert vocabulary == {"<pad>": 0, "<unk>": 1, "b": 2, "a": 3, "c": 4, "d": 5}
    assert cases.build_vocabulary(["b a b", "c b a"], min_count=2) == {
        "<pad>": 0,
        "<unk>": 1,
        "b": 2,
        "a": 3,
    }


@pytest.fixture(scope="module")
def diagnosis_split():
    records = datasets.diagnosis_records(n=120, seed=2)
    vocabulary = cases.build_vocabulary(records["train"]["note"], min_count=2)
    return records, vocabulary


def test_diagnosis_tensors_encode_notes_and_images(diagnosis_split):
    records, vocabulary = diagnosis_split
    split = records["test"]
    tensors = cases.diagnosis_tensors(split, vocabulary)
    assert tensors.images.shape == (len(split), 1, 16, 16)
    np.testing.assert_array_equal(tensors.images[5, 0].numpy().ravel(), split[5]["image"])
    words = split[5]["note"].split()
    assert tensors.lengths[5] == len(words)
    assert tensors.tokens[5, : len(words)].tolist() == [
        vocabulary.get(word, cases.UNKNOWN) for word in words
    ]
    assert (tensors.tokens[5, len(words) :] == cases.PADDING).all()
    assert tensors.labels.tolist() == list(split["label"])
    with pytest.raises(ValueError, match=r"missing columns \['image', 'label', 'note'\]"):
        cases.diagnosis_tensors(datasets.fraud_sequences(n_users=60)["train"], vocabulary)


def test_diagnosis_models_read_only_their_modalities(diagnosis_split):
    records, vocabulary = diagnosis_split
    tensors = cases.diagnosis_tensors(records["test"], vocabulary)
    torch.manual_seed(7)
    inputs = (tensors.tokens[:6], tensors.lengths[:6], tensors.images[:6])
    other_images = torch.randn_like(inputs[2])
    other_notes = torch.randint(2, len(vocabulary), inputs[0].shape)
    for modalities, unchanged_by in (
        (("text",), (inputs[0], inputs[1], other_images)),
        (("image",), (other_notes, inputs[1], inputs[2])),
    ):
        model = cases.DiagnosisModel(len(vocabulary), modalities=modalities).eval()
        with torch.no_grad():
            logits = model(*inputs)
            assert logits.shape == (6, len(datasets.DIAGNOSES))
            torch.testing.assert_close(model(*unchanged_by), logits)
    fused = cases.DiagnosisModel(len(vocabulary)).eval()
    with torch.no_grad():
        assert not torch.allclose(fused(*inputs), fused(inputs[0], inputs[1], other_images))
    with pytest.raises(ValueError, match="modalities must be a non-empty subset"):
        cases.DiagnosisModel(10, modalities=("audio",))
    with pytest.raises(ValueError, match="side must be divisible by 4, got 10"):
        cases.ImageEncoder(10)


def test_note_encoder_ignores_padding():
    torch.manual_seed(8)
    encoder = cases.NoteEncoder(20).eval()
    tokens = torch.randint(2, 20, (3, 6))
    lengths = torch.tensor([6, 2, 4])
    tokens[torch.arange(6)[None, :] >= lengths[:, None]] = cases.PADDING
    with torch.no_grad():
        features = encoder(tokens, lengths)
        padded = encoder(torch.cat([tokens, torch.zeros(3, 3, dtype=torch.int64)], 1), lengths)
    assert features.shape == (3, encoder.features)
    torch.testing.assert_close(padded, features)


def test_diagnosis_training_returns_a_model_in_evaluation_mode(diagnosis_split):
    records, vocabulary = diagnosis_split
    tensors = cases.diagnosis_tensors(records["train"], vocabulary)
    model = cases.train_diagnosis_model(
        tensors, len(vocabulary), modalities=("image",), epochs=1, seed=0
    )
    probabilities = cases.diagnosis_probabilities(model, tensors)
    assert not model.training
    assert probabilities.shape == (len(tensors), len(datasets.DIAGNOSES))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


# Benchmarks and figures -------------------------------------------------------------------------


def test_benchmarks_time_both_lstms_in_both_directions():
    rows = cases.benchmarks(smoke=True)
    assert all(isinstance(row, bench.Measurement) for row in rows)
    assert [row.group for row in rows] == ["ch06 LSTM forward, one direction"] * 3 + [
        "ch06 LSTM forward, bidirectional"
    ] * 3
    assert {row.variant for row in rows} == {
        "torch.nn.LSTM, packed",
        "torch.nn.LSTM, no lengths",
        "from scratch, masked",
    }
    assert all(row.median_ms > 0 for row in rows)


def test_chapter_figures_draw_and_check_their_inputs():
    labels, scores = SCORED["200 continuous scores"]
    points = {
        "model": [
            cases.operating_point_at_recall(labels, scores, 0.8),
            cases.operating_point_at_false_positive_rate(labels, scores, 0.1),
        ]
    }
    curves = plots.detection_curves(
        labels, {"model": scores}, operating_points=points, point_names=["a", "b"]
    )
    assert isinstance(curves, Figure) and len(curves.axes) == 2
    assert len(curves.axes[0].lines) == 3, "one curve and two operating points"
    events = ["login", "browse", "click", "add_to_cart", "buy"] * 4
    timeline = plots.event_timelines(
        {"user": events, "other": events[:7]},
        datasets.FRAUD_EVENTS,
        session_starts={"user": [event == "login" for event in events]},
    )
    assert len(timeline.axes[0].patches) == 20 + 7
    with pytest.raises(ValueError, match=r"events \['teleport'\] are not among event_names"):
        plots.event_timelines({"user": ["teleport"]}, datasets.FRAUD_EVENTS)
    mix = plots.gain_by_mix([0.0, 0.5], {"x": [0, -50]}, {"x": [0, 20]}, article=(-35, 18))
    assert len(mix.axes) == 2
    with pytest.raises(ValueError, match="expected 2 values"):
        plots.gain_by_mix([0.0, 0.5], {"x": [0]}, {"x": [0, 20]})
    examples = plots.diagnosis_examples(np.zeros((3, 1, 16, 16)), ["a", "b", "c"], ["x", "y", "z"])
    assert [axis.get_title() for axis in examples.axes[:3]] == ["x", "y", "z"]
    with pytest.raises(ValueError, match="one note and one label per image"):
        plots.diagnosis_examples(np.zeros((3, 16, 16)), ["a"], ["x", "y", "z"])
    bars = plots.accuracy_by_class(
        {"a": {"x": 0.5, "overall": 0.6}, "b": {"x": 0.9, "overall": 0.8}}, reference=0.91
    )
    assert len(bars.axes[0].patches) == 4
    with pytest.raises(ValueError, match="'b' has classes"):
        plots.accuracy_by_class({"a": {"x": 0.5}, "b": {"y": 0.9}})
