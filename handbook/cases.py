"""Chapter 6 - Industry cases: fraud from behaviour sequences, diagnosis from a note and an image.

Three pieces, each written from scratch and tested against the library that does the same job:

- **The LSTM** (:mod:`handbook.models.lstm`, re-exported here; tested against
  ``torch.nn.LSTMCell`` and ``torch.nn.LSTM`` with copied weights): :class:`LSTMCell` is one
  step of the gates, :class:`LSTM` runs it over a padded batch of sequences of different
  lengths, in one direction or both, with the outputs and final states that ``torch.nn.LSTM``
  gives for packed sequences.
- **Fraud detection** on :func:`handbook.datasets.fraud_sequences`: an LSTM that reads a
  user's events in order (:class:`FraudSequenceClassifier`) against order-blind baselines that
  see only how often each event occurs (:func:`event_counts`), compared at the operating points
  a fraud team runs at: the false positives at a fixed recall, the recall at a fixed
  false-positive rate or alert budget (:class:`OperatingPoint`, tested against scikit-learn's
  ``roc_curve``, ``precision_recall_curve`` and ``confusion_matrix``).
- **Multimodal diagnosis** on :func:`handbook.datasets.diagnosis_records`: a BiLSTM note encoder
  and a small CNN image encoder, fused by concatenation and trained end to end
  (:class:`DiagnosisModel`), or trained apart and fused late (:func:`late_fusion`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from handbook import bench, train
from handbook.datasets import DIAGNOSES, FRAUD_EVENTS
from handbook.models.cnn import ChannelsLastMaxPool2d

# the chapter's LSTM lives in the model library; the chapter reads it as cases.LSTM
from handbook.models.lstm import LSTM, LSTMCell, run_lstm, run_lstm_unpacked  # noqa: F401

# Fraud: behaviour sequences ---------------------------------------------------------------------

#: Ids of :data:`handbook.datasets.FRAUD_EVENTS` in the tensors: 0 is padding.
EVENT_IDS = {event: index + 1 for index, event in enumerate(FRAUD_EVENTS)}
#: Minutes in a day: time gaps enter the model as ``log(1 + minutes) / log(1 + MINUTES_PER_DAY)``,
#: 0 for no gap, 1 for a day.
MINUTES_PER_DAY = 24 * 60


@dataclass
class EventSequences:
    """A split of :func:`handbook.datasets.fraud_sequences` as padded tensors.

    ``events``: int64 ``(n, time)``, ids of :data:`EVENT_IDS` (0 after a user's last event);
    ``gaps``: float32 ``(n, time)``, the log-scaled minutes since the previous event (see
    :data:`MINUTES_PER_DAY`), 0 at padding; ``lengths``: int64 ``(n,)`` events per user;
    ``labels``: int64 ``(n,)``, 1 = fraud; ``patterns``: ``(n,)`` str, how each row was made.
    """

    events: torch.Tensor
    gaps: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    patterns: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def event_tensors(split) -> EventSequences:
    """Turn a split of :func:`handbook.datasets.fraud_sequences` into :class:`EventSequences`."""
    missing = {"events", "minutes", "fraud", "pattern"} - set(split.column_names)
    if missing:
        raise ValueError(f"expected a fraud_sequences split, missing columns {sorted(missing)}")
    table = split.to_pandas()
    lengths = table["events"].map(len).to_numpy()
    if len(lengths) and lengths.min() < 1:
        raise ValueError("every user needs at least one event; found an empty sequence")
    time = int(lengths.max()) if len(lengths) else 1
    events = np.zeros((len(table), time), dtype=np.int64)
    gaps = np.zeros((len(table), time), dtype=np.float32)
    for row, (names, minutes) in enumerate(zip(table["events"], table["minutes"], strict=True)):
        try:
            events[row, : len(names)] = [EVENT_IDS[name] for name in names]
        except KeyError as error:
            raise ValueError(
                f"row {row}: unknown event {error.args[0]!r}; expected one of FRAUD_EVENTS"
            ) from None
        gaps[row, : len(minutes)] = np.log1p(minutes) / math.log1p(MINUTES_PER_DAY)
    return EventSequences(
        events=torch.from_numpy(events),
        gaps=torch.from_numpy(gaps),
        lengths=torch.from_numpy(lengths.astype(np.int64)),
        labels=torch.tensor(table["fraud"].to_numpy(dtype=np.int64)),
        patterns=table["pattern"].to_numpy(dtype=str),
    )


def event_counts(sequences: EventSequences, *, bigrams: bool = False) -> np.ndarray:
    """What an order-blind model sees: how often each event type occurs per user.

    Returns float64 ``(n, E)`` with ``E = len(FRAUD_EVENTS)`` (column ``k`` counts event id
    ``k + 1``). With ``bigrams``, ``E * E`` more columns count each ordered pair of consecutive
    events (column ``E + a * E + b`` counts ``a`` directly followed by ``b``): the local order
    a hand-written rule could use.
    """
    kinds = len(FRAUD_EVENTS)
    events = sequences.events.numpy()
    real = events > 0
    rows = np.broadcast_to(np.arange(len(events))[:, None], events.shape)
    counts = np.zeros((len(events), kinds), dtype=np.float64)
    np.add.at(counts, (rows[real], events[real] - 1), 1.0)
    if not bigrams:
        return counts
    pairs = np.zeros((len(events), kinds * kinds), dtype=np.float64)
    both = real[:, :-1] & real[:, 1:]
    codes = (events[:, :-1] - 1) * kinds + (events[:, 1:] - 1)
    np.add.at(pairs, (rows[:, :-1][both], codes[both]), 1.0)
    return np.concatenate([counts, pairs], axis=1)


class FraudSequenceClassifier(nn.Module):
    """An LSTM that reads a user's events in order: ``(events, gaps, lengths) -> (batch, 2)``
    logits (legitimate, fraud).

    Each step's input is the event's embedding ``(embedding_dim,)`` and its log-scaled time gap;
    the LSTM's hidden state after the user's last event and the largest value each hidden unit
    took over the real steps (max-pooling: a pattern anywhere in a long sequence reaches the
    output directly) go through a linear layer. The LSTM is a ``torch.nn.LSTM`` (fast, run by
    :func:`run_lstm_unpacked`); ``model.lstm = LSTM.from_torch(model.lstm)`` swaps a trained one
    for its from-scratch twin.
    """

    def __init__(self, *, embedding_dim: int = 16, hidden_size: int = 32):
        super().__init__()
        self.embedding = nn.Embedding(len(EVENT_IDS) + 1, embedding_dim, padding_idx=0)
        self.lstm = nn.LSTM(embedding_dim + 1, hidden_size, batch_first=True)
        self.head = nn.Linear(2 * hidden_size, 2)

    def forward(
        self, events: torch.Tensor, gaps: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        steps = torch.cat([self.embedding(events), gaps[:, :, None]], dim=2)
        outputs, hidden = run_lstm_unpacked(self.lstm, steps, lengths)
        padding = torch.arange(outputs.shape[1], device=lengths.device)[None, :] >= lengths[:, None]
        # hidden states lie in (-1, 1): filling the padding with -1 keeps it out of the maximum
        strongest = outputs.masked_fill(padding[:, :, None], -1.0).amax(dim=1)
        return self.head(torch.cat([hidden[-1], strongest], dim=1))


def train_fraud_model(
    sequences: EventSequences,
    *,
    epochs: int = 4,
    batch_size: int = 64,
    learning_rate: float = 1e-2,
    hidden_size: int = 32,
    seed: int = 0,
    description: str = "fraud LSTM",
) -> FraudSequenceClassifier:
    """Fit a :class:`FraudSequenceClassifier` with :func:`handbook.train.fit` (AdamW, cosine
    learning-rate decay, cross-entropy) on the CPU; returns it in evaluation mode."""
    train.set_seed(seed)
    model = FraudSequenceClassifier(hidden_size=hidden_size)
    tensors = (sequences.events, sequences.gaps, sequences.lengths, sequences.labels)
    return _fit_on_cpu(model, tensors, epochs, batch_size, learning_rate, seed, description)


def _fit_on_cpu(
    model: nn.Module,
    tensors: tuple[torch.Tensor, ...],
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    description: str,
) -> nn.Module:
    """The recipe both case models train with: AdamW (weight decay 1e-4) and cosine decay over
    ``epochs``, through :func:`handbook.train.fit`; ``tensors`` are ``(*inputs, labels)``."""
    loader = train.make_loader(
        *tensors, batch_size=batch_size, shuffle=True, seed=seed, whole_batches=True
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=learning_rate, weight_decay=1e-4, foreach=True
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    train.fit(
        model,
        loader,
        epochs=epochs,
        optimizer=optimizer,
        scheduler=scheduler,
        device="cpu",
        description=description,
    )
    return model.eval()


@torch.no_grad()
def fraud_probabilities(
    model: nn.Module, sequences: EventSequences, batch_size: int = 1024
) -> np.ndarray:
    """``P(fraud)`` for each user, ``(n,)`` floats in [0, 1]."""
    inputs = (sequences.events, sequences.gaps, sequences.lengths)
    return _class_probabilities(model, inputs, batch_size)[:, 1]


@torch.no_grad()
def _class_probabilities(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], batch_size: int
) -> np.ndarray:
    """Softmax of ``model(*inputs)`` computed ``batch_size`` rows at a time, ``(n, classes)``
    float64; ``inputs`` are aligned tensors whose first dimension is the example."""
    model.eval()
    chunks = [
        torch.softmax(model(*batch), dim=-1)
        for batch in zip(*(tensor.split(batch_size) for tensor in inputs), strict=True)
    ]
    return torch.cat(chunks).numpy().astype(np.float64)


def fit_aggregate_model(
    features: np.ndarray, labels: object, *, kind: str = "logistic regression", seed: int = 0
):
    """A scikit-learn classifier on per-user aggregates ``(n, features)`` such as
    :func:`event_counts`, fitted to the 0/1 ``labels``.

    ``kind``: ``"logistic regression"`` (on ``log(1 + count)``, standardised: a scorecard) or
    ``"gradient boosting"`` (``HistGradientBoostingClassifier``: on counts alone, any
    interaction of them, the strongest order-blind model here). Score with
    ``model.predict_proba(features)[:, 1]``.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    if kind == "logistic regression":
        model = make_pipeline(
            FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=2000)
        )
    elif kind == "gradient boosting":
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed)
    else:
        raise ValueError(
            f"unknown kind {kind!r}: expected 'logistic regression' or 'gradient boosting'"
        )
    return model.fit(np.asarray(features), _as_binary_labels(labels))


#: The detectors :func:`run_detectors` trains: three on per-user aggregates, one on the sequence.
DETECTORS = (
    "logistic regression on counts",
    "gradient boosting on counts",
    "logistic regression on counts + bigrams",
    "LSTM on the sequence",
)


@dataclass
class DetectorRun:
    """What :func:`run_detectors` returns: the test users as :class:`EventSequences`, each
    detector's ``P(fraud)`` for them (``{name: (n,) floats}``) and the fitted models."""

    test: EventSequences
    scores: dict[str, np.ndarray]
    models: dict[str, object]


def run_detectors(
    data, detectors: Sequence[str] = DETECTORS, *, epochs: int = 4, seed: int = 0
) -> DetectorRun:
    """Fit the named :data:`DETECTORS` on ``data["train"]`` of
    :func:`handbook.datasets.fraud_sequences` and score ``data["test"]``.

    The aggregate models see :func:`event_counts` (with bigrams where the name says so) through
    :func:`fit_aggregate_model`; the LSTM is trained with :func:`train_fraud_model` for
    ``epochs`` epochs. ``seed`` seeds both.
    """
    unknown = sorted(set(detectors) - set(DETECTORS))
    if unknown:
        raise ValueError(f"unknown detector(s) {unknown}: expected names from {DETECTORS}")
    training, test = event_tensors(data["train"]), event_tensors(data["test"])
    scores, models = {}, {}
    for name in detectors:
        if name == "LSTM on the sequence":
            models[name] = train_fraud_model(
                training, epochs=epochs, seed=seed, description=f"fraud LSTM, seed {seed}"
            )
            scores[name] = fraud_probabilities(models[name], test)
            continue
        bigrams = name.endswith("bigrams")
        kind = "gradient boosting" if name.startswith("gradient") else "logistic regression"
        models[name] = fit_aggregate_model(
            event_counts(training, bigrams=bigrams), training.labels, kind=kind, seed=seed
        )
        scores[name] = models[name].predict_proba(event_counts(test, bigrams=bigrams))[:, 1]
    return DetectorRun(test=test, scores=scores, models=models)


# Operating points -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatingPoint:
    """A detector's decision rule "alert when score >= threshold" and its confusion counts.

    ``threshold`` is ``inf`` for the rule that never alerts. Counts are numbers of users.
    """

    threshold: float
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int

    @property
    def alerts(self) -> int:
        return self.true_positives + self.false_positives

    @property
    def recall(self) -> float:
        """Share of the positives (frauds) that raise an alert."""
        positives = self.true_positives + self.false_negatives
        return self.true_positives / positives if positives else math.nan

    @property
    def false_positive_rate(self) -> float:
        """Share of the negatives (legitimate users) that raise an alert."""
        negatives = self.false_positives + self.true_negatives
        return self.false_positives / negatives if negatives else math.nan

    @property
    def precision(self) -> float:
        """Share of the alerts that are frauds (1 when nothing is alerted, as in scikit-learn)."""
        return self.true_positives / self.alerts if self.alerts else 1.0


def _as_binary_labels(labels: object) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"expected labels as a flat sequence (n,), got shape {array.shape}")
    unexpected = sorted(set(array.tolist()) - {0, 1}, key=repr)
    if unexpected:
        raise ValueError(f"expected labels of 0s and 1s (1 = fraud), found {unexpected[:5]}")
    return array.astype(np.int64)


def _labels_and_scores(labels: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    truth = _as_binary_labels(labels)
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != truth.shape:
        raise ValueError(
            f"expected one score per label, got {values.shape[0] if values.ndim else 0} scores "
            f"and {len(truth)} labels"
        )
    if np.isnan(values).any():
        raise ValueError("scores contain NaN: a detector must score every user")
    if truth.sum() == 0 or truth.sum() == len(truth):
        raise ValueError(
            "expected both positives and negatives among the labels, got "
            f"{int(truth.sum())} positives of {len(truth)}"
        )
    return truth, values


def _threshold_table(truth: np.ndarray, values: np.ndarray):
    """Every distinct score, highest first, with the true and false positives of alerting at
    it (the cumulative counts behind scikit-learn's ROC and precision-recall curves)."""
    order = np.argsort(-values, kind="stable")
    ranked, hits = values[order], truth[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    true_positives = np.cumsum(hits)[last_of_each]
    false_positives = (last_of_each + 1) - true_positives
    return ranked[last_of_each], true_positives, false_positives


def _point(truth: np.ndarray, threshold: float, true_positives: int, false_positives: int):
    positives = int(truth.sum())
    negatives = len(truth) - positives
    return OperatingPoint(
        threshold=float(threshold),
        true_positives=int(true_positives),
        false_positives=int(false_positives),
        false_negatives=positives - int(true_positives),
        true_negatives=negatives - int(false_positives),
    )


def operating_point(labels: object, scores: object, threshold: float) -> OperatingPoint:
    """The confusion counts of alerting when ``score >= threshold``.

    ``labels``: 0/1 ``(n,)`` (1 = fraud); ``scores``: ``(n,)``, higher = more suspicious.
    """
    truth, values = _labels_and_scores(labels, scores)
    alerted = values >= threshold
    return _point(truth, threshold, (alerted & (truth == 1)).sum(), (alerted & (truth == 0)).sum())


def operating_point_at_recall(labels: object, scores: object, recall: float) -> OperatingPoint:
    """The highest score that, as the threshold, reaches ``recall`` (a fraction of the
    frauds): the fewest false positives at which that share of the frauds is caught."""
    if not 0.0 < recall <= 1.0:
        raise ValueError(f"recall must be a fraction in (0, 1], got {recall}")
    truth, values = _labels_and_scores(labels, scores)
    thresholds, true_positives, false_positives = _threshold_table(truth, values)
    first = int(np.argmax(true_positives >= recall * truth.sum() - 1e-9))
    return _point(truth, thresholds[first], true_positives[first], false_positives[first])


def operating_point_at_false_positive_rate(
    labels: object, scores: object, false_positive_rate: float
) -> OperatingPoint:
    """The lowest score that, as the threshold, keeps the false-positive rate at or under
    ``false_positive_rate`` (a fraction of the legitimate users): the highest recall within
    that budget. ``threshold`` is ``inf`` (no alert) when even the top score breaks it."""
    if not 0.0 <= false_positive_rate <= 1.0:
        raise ValueError(
            f"false_positive_rate must be a fraction in [0, 1], got {false_positive_rate}"
        )
    truth, values = _labels_and_scores(labels, scores)
    thresholds, true_positives, false_positives = _threshold_table(truth, values)
    within = np.flatnonzero(false_positives <= false_positive_rate * (len(truth) - truth.sum()))
    if len(within) == 0:
        return _point(truth, math.inf, 0, 0)
    last = within[-1]
    return _point(truth, thresholds[last], true_positives[last], false_positives[last])


def operating_point_at_alerts(labels: object, scores: object, alerts: int) -> OperatingPoint:
    """The lowest score that, as the threshold, raises at most ``alerts`` alerts (the capacity
    of the team that reviews them; users tied at the threshold are all alerted or none is)."""
    if alerts < 0:
        raise ValueError(f"alerts must be a number of users >= 0, got {alerts}")
    truth, values = _labels_and_scores(labels, scores)
    thresholds, true_positives, false_positives = _threshold_table(truth, values)
    within = np.flatnonzero(true_positives + false_positives <= alerts)
    if len(within) == 0:
        return _point(truth, math.inf, 0, 0)
    last = within[-1]
    return _point(truth, thresholds[last], true_positives[last], false_positives[last])


def compare_detectors(
    labels: object,
    scores: Mapping[str, object],
    *,
    baseline: str,
    recall: float,
    false_positive_rate: float,
):
    """A ``pandas.DataFrame`` with one row per detector at the two operating points of a claim
    like "false positives -35%, recall +18%".

    At recall ``recall``: the false positives and their change against ``baseline`` (%).
    At false-positive rate ``false_positive_rate``: the recall (%), its gain in percentage
    points and relative to the baseline's recall (%). Also the ROC AUC.
    """
    from sklearn.metrics import roc_auc_score

    if baseline not in scores:
        raise ValueError(f"baseline {baseline!r} is not one of the detectors {sorted(scores)}")
    at_recall = {name: operating_point_at_recall(labels, s, recall) for name, s in scores.items()}
    at_rate = {
        name: operating_point_at_false_positive_rate(labels, s, false_positive_rate)
        for name, s in scores.items()
    }
    base_false, base_recall = at_recall[baseline].false_positives, at_rate[baseline].recall
    rows = {}
    for name, values in scores.items():
        false_positives, caught = at_recall[name].false_positives, at_rate[name].recall
        rows[name] = {
            f"false positives at {recall:.0%} recall": false_positives,
            "false positives vs baseline (%)": 100 * (false_positives / base_false - 1)
            if base_false
            else math.nan,
            f"recall at {false_positive_rate:.0%} FPR (%)": 100 * caught,
            "recall gain (pp)": 100 * (caught - base_recall),
            "recall gain (relative %)": 100 * (caught / base_recall - 1)
            if base_recall
            else math.nan,
            "ROC AUC": roc_auc_score(_as_binary_labels(labels), np.asarray(values)),
        }
    import pandas as pd

    return pd.DataFrame.from_dict(rows, orient="index")


# Diagnosis: a note and an image -----------------------------------------------------------------

PADDING, UNKNOWN = 0, 1


def build_vocabulary(notes: Sequence[str], min_count: int = 1) -> dict[str, int]:
    """Word -> id for the words of ``notes`` seen at least ``min_count`` times (split on
    spaces), most frequent first; ids 0 and 1 are kept for padding and unknown words."""
    counts: dict[str, int] = {}
    for note in notes:
        for word in note.split():
            counts[word] = counts.get(word, 0) + 1
    kept = sorted(
        (word for word, count in counts.items() if count >= min_count),
        key=lambda word: (-counts[word], word),
    )
    return {"<pad>": PADDING, "<unk>": UNKNOWN} | {
        word: index + 2 for index, word in enumerate(kept)
    }


@dataclass
class DiagnosisRecords:
    """A split of :func:`handbook.datasets.diagnosis_records` as tensors.

    ``tokens``: int64 ``(n, words)`` word ids of :func:`build_vocabulary` (0 = padding);
    ``lengths``: int64 ``(n,)`` words per note (at least 1); ``images``: float32
    ``(n, 1, side, side)``; ``labels``: int64 ``(n,)`` indices of :data:`DIAGNOSES`.
    """

    tokens: torch.Tensor
    lengths: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def diagnosis_tensors(split, vocabulary: Mapping[str, int]) -> DiagnosisRecords:
    """Turn a split of :func:`handbook.datasets.diagnosis_records` into :class:`DiagnosisRecords`;
    words missing from ``vocabulary`` become the unknown id, an empty note one unknown word."""
    missing = {"note", "image", "label"} - set(split.column_names)
    if missing:
        raise ValueError(f"expected a diagnosis_records split, missing columns {sorted(missing)}")
    table = split.to_pandas()
    notes = [note.split() or ["<unk>"] for note in table["note"]]
    lengths = np.array([len(words) for words in notes], dtype=np.int64)
    tokens = np.zeros((len(notes), int(lengths.max()) if len(notes) else 1), dtype=np.int64)
    for row, words in enumerate(notes):
        tokens[row, : len(words)] = [vocabulary.get(word, UNKNOWN) for word in words]
    pixels = np.stack(table["image"].to_numpy()).astype(np.float32)
    side = int(round(math.sqrt(pixels.shape[1])))
    if side * side != pixels.shape[1]:
        raise ValueError(f"rows of {pixels.shape[1]} pixels do not form a square image")
    return DiagnosisRecords(
        tokens=torch.from_numpy(tokens),
        lengths=torch.from_numpy(lengths),
        images=torch.from_numpy(pixels).reshape(-1, 1, side, side),
        labels=torch.tensor(table["label"].to_numpy(dtype=np.int64)),
    )


class NoteEncoder(nn.Module):
    """A BiLSTM over word embeddings: ``(tokens (batch, words), lengths (batch,))`` ->
    ``(batch, 2 * hidden_size)``, the forward LSTM's state after the last word next to the
    backward LSTM's state after the first."""

    def __init__(self, vocabulary_size: int, *, embedding_dim: int = 16, hidden_size: int = 24):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim, padding_idx=PADDING)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True, bidirectional=True)
        self.features = 2 * hidden_size

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        _, hidden = run_lstm_unpacked(self.lstm, self.embedding(tokens), lengths)
        return torch.cat([hidden[0], hidden[1]], dim=1)


class ImageEncoder(nn.Module):
    """Two 3x3 convolution blocks: ``(batch, 1, side, side)`` -> ``(batch, features)``;
    ``side`` divisible by 4."""

    def __init__(self, side: int = 16, *, channels: int = 8, features: int = 32):
        super().__init__()
        if side % 4:
            raise ValueError(
                f"the encoder halves the image twice: side must be divisible by 4, got {side}"
            )
        self.layers = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            ChannelsLastMaxPool2d(2),  # nn.MaxPool2d(2), faster on the CPU
            nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
            nn.ReLU(),
            ChannelsLastMaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * channels * (side // 4) ** 2, features),
            nn.ReLU(),
        )
        self.features = features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


#: The inputs a :class:`DiagnosisModel` can read.
MODALITIES = ("text", "image")


class DiagnosisModel(nn.Module):
    """Diagnosis from a note, an image or both: ``(tokens, lengths, images) -> (batch, classes)``
    logits.

    With ``modalities=("text", "image")`` the :class:`NoteEncoder`'s and the
    :class:`ImageEncoder`'s features are concatenated and a two-layer head reads them, trained
    end to end (joint, or intermediate, fusion); with one modality the other input is ignored.
    """

    def __init__(
        self,
        vocabulary_size: int,
        *,
        modalities: Sequence[str] = MODALITIES,
        classes: int = len(DIAGNOSES),
        side: int = 16,
        hidden: int = 32,
        dropout: float = 0.3,
    ):
        super().__init__()
        unknown = sorted(set(modalities) - set(MODALITIES))
        if unknown or not modalities:
            raise ValueError(
                f"modalities must be a non-empty subset of {MODALITIES}, got {modalities}"
            )
        self.modalities = tuple(modality for modality in MODALITIES if modality in modalities)
        self.note_encoder = NoteEncoder(vocabulary_size) if "text" in modalities else None
        self.image_encoder = ImageEncoder(side) if "image" in modalities else None
        width = sum(
            encoder.features
            for encoder in (self.note_encoder, self.image_encoder)
            if encoder is not None
        )
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, classes)
        )

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor, images: torch.Tensor
    ) -> torch.Tensor:
        features = []
        if self.note_encoder is not None:
            features.append(self.note_encoder(tokens, lengths))
        if self.image_encoder is not None:
            features.append(self.image_encoder(images))
        return self.head(torch.cat(features, dim=1))


def train_diagnosis_model(
    records: DiagnosisRecords,
    vocabulary_size: int,
    *,
    modalities: Sequence[str] = MODALITIES,
    epochs: int = 15,
    batch_size: int = 64,
    learning_rate: float = 1e-2,
    seed: int = 0,
    description: str | None = None,
) -> DiagnosisModel:
    """Fit a :class:`DiagnosisModel` with :func:`handbook.train.fit` (AdamW, cosine decay) on
    the CPU; returns it in evaluation mode."""
    train.set_seed(seed)
    model = DiagnosisModel(vocabulary_size, modalities=modalities, side=records.images.shape[-1])
    tensors = (records.tokens, records.lengths, records.images, records.labels)
    description = description or " + ".join(model.modalities)
    return _fit_on_cpu(model, tensors, epochs, batch_size, learning_rate, seed, description)


@torch.no_grad()
def diagnosis_probabilities(
    model: nn.Module, records: DiagnosisRecords, batch_size: int = 1024
) -> np.ndarray:
    """Class probabilities ``(n, classes)`` for every record."""
    return _class_probabilities(
        model, (records.tokens, records.lengths, records.images), batch_size
    )


def late_fusion(
    text_probabilities: np.ndarray, image_probabilities: np.ndarray, prior: np.ndarray
) -> np.ndarray:
    """Combine two single-modality models' class probabilities, each ``(n, classes)``.

    If the note and the image are independent given the diagnosis, Bayes' rule gives
    ``P(y | note, image) ∝ P(y | note) P(y | image) / P(y)``; ``prior`` ``(classes,)`` is
    ``P(y)`` (the training labels' shares). Returns ``(n, classes)`` rows summing to 1.
    """
    text = np.asarray(text_probabilities, dtype=np.float64)
    image = np.asarray(image_probabilities, dtype=np.float64)
    prior = np.asarray(prior, dtype=np.float64)
    if text.ndim != 2 or text.shape != image.shape or prior.shape != (text.shape[1],):
        raise ValueError(
            "expected two probability tables (n, classes) of the same shape and a prior "
            f"(classes,), got {text.shape}, {image.shape} and {prior.shape}"
        )
    if (prior <= 0).any():
        raise ValueError("expected a prior with every class above 0 (it divides)")
    joint = text * image / prior
    return joint / joint.sum(axis=1, keepdims=True)


# Benchmarks -------------------------------------------------------------------------------------


def _timed_forward(
    lstm: nn.Module, inputs: torch.Tensor, lengths: torch.Tensor | None
) -> Callable[[], None]:
    """A call for :func:`handbook.bench.compare`: one forward pass without autograd, over the
    real steps only (``lengths``) or over the padding too (``lengths=None``)."""

    def call() -> None:
        with torch.inference_mode():
            if lengths is None:
                lstm(inputs)
            else:
                run_lstm(lstm, inputs, lengths)

    return call


def benchmarks(smoke: bool = False) -> list[bench.Measurement]:
    """Forward time of the from-scratch :class:`LSTM` against ``torch.nn.LSTM`` (the CPU kernel,
    no cuDNN) with the same weights: 64 sequences of 40 steps, 17 inputs, 32 hidden units,
    padded from lengths of 5 to 40; one direction and both. Smoke mode: fewer repeats."""
    train.set_seed(0)
    batch, time, size, hidden = 64, 40, 17, 32
    inputs = torch.randn(batch, time, size)
    lengths = torch.randint(5, time + 1, (batch,))
    rows = []
    for bidirectional in (False, True):
        reference = nn.LSTM(size, hidden, batch_first=True, bidirectional=bidirectional).eval()
        scratch = LSTM.from_torch(reference).eval()
        rows += bench.compare(
            f"ch06 LSTM forward, {'bidirectional' if bidirectional else 'one direction'}",
            {
                "torch.nn.LSTM, packed": _timed_forward(reference, inputs, lengths),
                "torch.nn.LSTM, no lengths": _timed_forward(reference, inputs, None),
                "from scratch, masked": _timed_forward(scratch, inputs, lengths),
            },
            baseline="torch.nn.LSTM, packed",
            repeats=3 if smoke else 10,
            details={
                "from scratch, masked": "handbook.cases.LSTM: a Python loop over 40 steps",
                "torch.nn.LSTM, no lengths": "reads the padding too",
            },
        )
    return rows
