"""The seeded generators of chapter 6: the ground truth they plant is what they say it is, and
the patterns meant to be invisible to one view of the data really are."""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from handbook import datasets

TAKEOVER = ("login_new_device", "change_password", "buy_high_value")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shop():
    """A shop with many takeovers and decoys, so that their comparison is sharp."""
    data = datasets.fraud_sequences(
        n_users=6000, seed=3, fraud_rate=0.3, takeover_share=0.6, decoy_rate=0.3
    )
    rows = [row for split in ("train", "test") for row in data[split]]
    return data, rows


def _counts(rows, bigrams: bool = False) -> np.ndarray:
    kinds = len(datasets.FRAUD_EVENTS)
    index = {event: position for position, event in enumerate(datasets.FRAUD_EVENTS)}
    counts = np.zeros((len(rows), kinds + (kinds * kinds if bigrams else 0)))
    for row_number, row in enumerate(rows):
        ids = [index[event] for event in row["events"]]
        for event in ids:
            counts[row_number, event] += 1
        if bigrams:
            for first, second in zip(ids, ids[1:], strict=False):
                counts[row_number, kinds + first * kinds + second] += 1
    return counts


def _separability(features: np.ndarray, target: np.ndarray, model) -> float:
    """Cross-validated ROC AUC of telling target 1 from 0 with ``model``."""
    scores = cross_val_predict(model, features, target, cv=3, method="predict_proba")[:, 1]
    return roc_auc_score(target, scores)


def _script_runs(events: list[str]) -> list[tuple[int, int]]:
    """(first, last) positions of every run of the takeover's three steps in order, at most two
    events apart from one step to the next."""
    runs = []
    for first, event in enumerate(events):
        if event != TAKEOVER[0]:
            continue
        position = first
        for step in TAKEOVER[1:]:
            window = events[position + 1 : position + 4]
            if step not in window:
                break
            position += 1 + window.index(step)
        else:
            runs.append((first, position))
    return runs


def test_fraud_sequences_have_the_documented_columns_sizes_and_labels():
    data = datasets.fraud_sequences(n_users=1000, seed=0)
    train, test = data["train"], data["test"]
    assert (len(train), len(test)) == (600, 400)
    assert train.features["fraud"].names == ["legitimate", "fraud"]
    for split in (train, test):
        for row in split:
            assert len(row["events"]) == len(row["minutes"]) >= 4
            assert set(row["events"]) <= set(datasets.FRAUD_EVENTS)
            assert row["minutes"][0] == 0 and min(row["minutes"]) >= 0
            assert row["pattern"] in datasets.FRAUD_PATTERNS
            assert row["fraud"] == datasets.FRAUD_PATTERNS[row["pattern"]].startswith("fraud")
    frauds = sum(train["fraud"]) + sum(test["fraud"])
    assert sum(test["fraud"]) == round(0.4 * frauds), "the split keeps the fraud rate"
    users = set(train["user"]) | set(test["user"])
    assert users == set(range(1000)), "every user in exactly one split"


def test_fraud_sequences_are_seeded():
    first = datasets.fraud_sequences(n_users=200, seed=5)
    again = datasets.fraud_sequences(n_users=200, seed=5)
    other = datasets.fraud_sequences(n_users=200, seed=6)
    assert first["train"]["events"] == again["train"]["events"]
    assert first["test"]["minutes"] == again["test"]["minutes"]
    assert first["train"]["events"] != other["train"]["events"]


def test_pattern_shares_follow_the_arguments(shop):
    _, rows = shop
    patterns = np.array([row["pattern"] for row in rows])
    frauds = patterns[np.isin(patterns, ["account takeover", "card testing", "hidden"])]
    assert abs(len(frauds) / len(rows) - 0.3) < 0.02
    assert abs(np.mean(frauds == "account takeover") - 0.6) < 0.04
    assert abs(np.mean(frauds == "hidden") - 0.1) < 0.03
    legitimate = patterns[~np.isin(patterns, frauds)]
    assert abs(np.mean(legitimate == "decoy") - 0.3) < 0.03


def test_a_takeover_is_its_three_steps_in_order_within_minutes(shop):
    _, rows = shop
    for row in rows:
        if row["pattern"] in ("account takeover", "lookalike"):
            scripted = [
                (first, last)
                for first, last in _script_runs(row["events"])
                if sum(row["minutes"][first + 1 : last + 1]) < 30
                and set(row["events"][first + 1 : last]) <= {"browse", "click", TAKEOVER[1]}
            ]
            assert scripted, row["events"]
        if row["pattern"] == "decoy":
            assert all(step in row["events"] for step in TAKEOVER)


def test_account_takeovers_are_invisible_to_counts_and_visible_to_order(shop):
    _, rows = shop
    pair = [row for row in rows if row["pattern"] in ("account takeover", "decoy")]
    is_takeover = np.array([row["pattern"] == "account takeover" for row in pair], dtype=int)
    assert min(is_takeover.sum(), len(is_takeover) - is_takeover.sum()) > 400
    boosting = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    counts = _counts(pair)
    assert 0.4 < _separability(counts, is_takeover, boosting) < 0.6
    for column, event in enumerate(datasets.FRAUD_EVENTS):
        takeover, decoy = counts[is_takeover == 1, column], counts[is_takeover == 0, column]
        error = np.sqrt(takeover.var() / len(takeover) + decoy.var() / len(decoy))
        assert abs(takeover.mean() - decoy.mean()) < 4 * error + 1e-9, event
    bigrams = np.log1p(_counts(pair, bigrams=True))
    assert _separability(bigrams, is_takeover, LogisticRegression(max_iter=2000)) > 0.9


def test_card_testing_is_visible_in_the_counts(shop):
    _, rows = shop
    pair = [row for row in rows if row["pattern"] in ("card testing", "ordinary")]
    is_card_testing = np.array([row["pattern"] == "card testing" for row in pair], dtype=int)
    model = LogisticRegression(max_iter=2000)
    assert _separability(np.log1p(_counts(pair)), is_card_testing, model) > 0.95


def test_fraud_sequences_validate_their_arguments():
    with pytest.raises(ValueError, match="n_users must be at least 50"):
        datasets.fraud_sequences(n_users=10)
    with pytest.raises(ValueError, match="fraud_rate must be a fraction between 0 and 1"):
        datasets.fraud_sequences(fraud_rate=1.5)
    with pytest.raises(ValueError, match=r"takeover_share \+ hidden_share must be at most 1"):
        datasets.fraud_sequences(takeover_share=0.8, hidden_share=0.3)
    with pytest.raises(ValueError, match="test_size must be a fraction"):
        datasets.fraud_sequences(test_size=1.0)
    every_fraud_a_takeover = datasets.fraud_sequences(
        n_users=200, takeover_share=0.9, hidden_share=0.1, fraud_rate=1.0
    )
    assert "card testing" not in every_fraud_a_takeover["train"]["pattern"]


# Diagnosis records -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clinic():
    data = datasets.diagnosis_records(n=3000, seed=4)
    rows = [row for split in ("train", "test") for row in data[split]]
    return data, rows


def test_diagnosis_records_have_the_documented_columns_and_findings(clinic):
    data, rows = clinic
    assert (len(data["train"]), len(data["test"])) == (2100, 900)
    assert data["train"].features["label"].names == list(datasets.DIAGNOSES)
    for row in rows:
        diagnosis = datasets.DIAGNOSES[row["label"]]
        assert (row["image_finding"], row["text_finding"]) == datasets.DIAGNOSIS_FINDINGS[diagnosis]
        assert len(row["image"]) == 256
        assert 5 <= len(row["note"].split()) <= 15
    counts = np.bincount([row["label"] for row in rows], minlength=5)
    np.testing.assert_allclose(counts / len(rows), (0.3, 0.2, 0.2, 0.15, 0.15), atol=0.025)
    in_test = np.bincount(data["test"]["label"], minlength=5)
    np.testing.assert_array_equal(in_test, np.round(0.3 * counts), "stratified by diagnosis")


def test_notes_report_their_finding_and_negate_only_other_findings(clinic):
    _, rows = clinic
    reported = {finding: [] for finding in ("none", *datasets.SYMPTOM_WORDS)}
    for row in rows:
        words = row["note"].split()
        pairs = zip(words, words[1:], strict=False)
        negated = {after for before, after in pairs if before in ("no", "denies")}
        own = set(datasets.SYMPTOM_WORDS.get(row["text_finding"], ()))
        assert not negated & own, row["note"]
        reported[row["text_finding"]].append(bool(own & (set(words) - negated)))
    for finding in datasets.SYMPTOM_WORDS:
        assert 0.85 < np.mean(reported[finding]) < 0.95, "silent notes are 10%"


def test_each_modality_alone_is_blind_to_the_pairs_it_should_be_blind_to(clinic):
    _, rows = clinic
    pixels = np.array([row["image"] for row in rows])
    vocabulary = sorted({word for row in rows for word in row["note"].split()})
    column = {word: index for index, word in enumerate(vocabulary)}
    words = np.zeros((len(rows), len(vocabulary)))
    for index, row in enumerate(rows):
        for word in row["note"].split():
            words[index, column[word]] = 1
    labels = np.array([row["label"] for row in rows])
    name = {diagnosis: index for index, diagnosis in enumerate(datasets.DIAGNOSES)}
    model = LogisticRegression(max_iter=3000, C=0.1)

    def separability(features, first, second):
        chosen = np.isin(labels, [name[first], name[second]])
        return _separability(features[chosen], (labels[chosen] == name[second]).astype(int), model)

    assert separability(pixels, "healthy", "bronchitis") < 0.6
    assert separability(pixels, "benign nodule", "lung cancer") < 0.6
    assert separability(pixels, "bronchitis", "pneumonia") > 0.75
    assert separability(words, "bronchitis", "pneumonia") < 0.6
    assert separability(words, "healthy", "benign nodule") < 0.6
    assert separability(words, "benign nodule", "lung cancer") > 0.85


def test_diagnosis_records_are_seeded_and_validate_their_arguments():
    first = datasets.diagnosis_records(n=100, seed=1)
    again = datasets.diagnosis_records(n=100, seed=1)
    assert first["train"]["note"] == again["train"]["note"]
    np.testing.assert_array_equal(first["test"]["image"], again["test"]["image"])
    assert datasets.diagnosis_records(n=100, seed=2)["train"]["note"] != first["train"]["note"]
    with pytest.raises(ValueError, match="prior must give 5 non-negative probabilities"):
        datasets.diagnosis_records(prior=(0.5, 0.5))
    with pytest.raises(ValueError, match="silent_note_rate must be a probability"):
        datasets.diagnosis_records(silent_note_rate=-0.1)
    with pytest.raises(ValueError, match="side must be at least 8"):
        datasets.diagnosis_records(side=4)
    assert len(datasets.diagnosis_records(n=60, side=8)["train"][0]["image"]) == 64
