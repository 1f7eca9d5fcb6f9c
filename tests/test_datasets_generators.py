"""The seeded generators of chapter 3: their injected ground truth is what they say it is."""

import numpy as np
import pytest

from handbook import datasets


@pytest.fixture(scope="module")
def corpus():
    return datasets.noisy_text_classification(400, seed=0, test_size=100)


def test_text_corpus_has_the_documented_columns_and_sizes(corpus):
    train = corpus["train"]
    assert len(corpus["test"]) == 100
    assert len(train) == 400 + round(0.08 * 400) * 2
    assert train.features["label"].names == list(datasets.TOPIC_WORDS)
    assert set(train["duplicate_kind"]) == {"", "original", "exact", "near"}


def test_flipped_labels_are_exactly_the_rows_whose_label_differs_from_the_truth(corpus):
    train = corpus["train"]
    flipped = np.array(train["label_flipped"])
    assert flipped.sum() == round(0.2 * 400)
    assert np.array_equal(flipped, np.array(train["label"]) != np.array(train["true_label"]))
    groups = np.array(train["duplicate_group"])
    assert not flipped[groups >= 0].any(), "a row with copies must keep its true label"


def test_copies_share_their_original_label_and_exact_copies_normalize_equal(corpus):
    from handbook.data import normalize_text

    train = corpus["train"]
    by_group: dict[int, list[int]] = {}
    for index, group in enumerate(train["duplicate_group"]):
        if group >= 0:
            by_group.setdefault(group, []).append(index)
    for members in by_group.values():
        assert len({train[i]["label"] for i in members}) == 1
        original = [i for i in members if train[i]["duplicate_kind"] == "original"]
        assert len(original) == 1
        for i in members:
            if train[i]["duplicate_kind"] == "exact":
                assert normalize_text(train[i]["text"]) == normalize_text(
                    train[original[0]]["text"]
                )


def test_distinct_sentences_are_really_distinct_and_test_does_not_leak(corpus):
    from handbook.data import normalize_text

    train, test = corpus["train"], corpus["test"]
    singles = [t for t, g in zip(train["text"], train["duplicate_group"], strict=True) if g < 0]
    assert len({normalize_text(t) for t in singles}) == len(singles)
    assert not {normalize_text(t) for t in train["text"]} & {
        normalize_text(t) for t in test["text"]
    }


def test_redundant_rows_marks_all_but_the_first_row_of_each_group():
    assert datasets.redundant_rows([-1, 3, 5, 3, 3, 5, -1]).tolist() == [
        False,
        False,
        False,
        True,
        True,
        True,
        False,
    ]


def test_generators_are_seeded_and_validate_their_arguments():
    first = datasets.noisy_text_classification(50, seed=1, test_size=10)
    second = datasets.noisy_text_classification(50, seed=1, test_size=10)
    assert first["train"]["text"] == second["train"]["text"]
    with pytest.raises(ValueError, match="leave some clean rows"):
        datasets.noisy_text_classification(
            50, exact_duplicates=0.5, near_duplicates=0.3, label_noise=0.3
        )
    with pytest.raises(ValueError, match="at least 20"):
        datasets.noisy_text_classification(5)


def test_malformed_records_reports_every_broken_row():
    records = [{"text": f"row {i}", "label": i % 4} for i in range(30)]
    rows, broken = datasets.malformed_records(records, 12, seed=0)
    assert len(rows) == 42
    clean = [row for i, row in enumerate(rows) if i not in broken]
    assert clean == records, "the untouched rows keep their order"
    assert all(rows[i] not in records for i in broken)


def test_click_logs_split_each_user_and_expose_the_true_probability():
    logs = datasets.click_logs(n_users=50, n_items=40, impressions_per_user=8, seed=0)
    train, test = logs["train"], logs["test"]
    assert len(train) == 50 * 6 and len(test) == 50 * 2
    for split in (train, test):
        assert set(split["clicked"]) <= {0, 1}
        probabilities = np.array(split["click_probability"])
        assert ((probabilities > 0) & (probabilities < 1)).all()
    for user in range(50):
        shown = [item for u, item in zip(train["user"], train["item"], strict=True) if u == user]
        shown += [item for u, item in zip(test["user"], test["item"], strict=True) if u == user]
        assert len(set(shown)) == 8, "a user sees distinct items"
    with pytest.raises(ValueError, match="impressions_per_user"):
        datasets.click_logs(n_items=5, impressions_per_user=6)
