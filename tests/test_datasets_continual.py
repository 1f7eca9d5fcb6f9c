"""The news stream of chapter 7: topics arrive period by period, sentences are built as
documented, the stream is reproducible, and bad arguments are refused with a useful message."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from handbook import datasets


@pytest.fixture(scope="module")
def stream():
    return datasets.news_stream(periods=4, train_per_period=300, test_per_period=100, seed=3)


def _vocabulary(topic: str) -> set[str]:
    return {word for group in datasets.NEWS_TOPICS[topic] for word in group}


def test_splits_columns_and_topics(stream):
    assert set(stream) == {"train", "test"}
    assert stream["train"].num_rows == 1200 and stream["test"].num_rows == 400
    assert stream["train"].column_names == ["text", "label", "period"]
    assert stream["train"].features["label"].names == list(datasets.NEWS_TOPICS)
    assert list(datasets.NEWS_TOPICS)[:4] == list(datasets.TOPIC_WORDS)


def test_each_period_brings_its_own_new_topics(stream):
    for split in ("train", "test"):
        periods = np.array(stream[split]["period"])
        labels = np.array(stream[split]["label"])
        assert (np.diff(periods) >= 0).all(), "rows come in stream order"
        for period in range(4):
            counts = np.bincount(labels[periods == period], minlength=8)
            expected = {2 * period, 2 * period + 1}
            assert set(np.flatnonzero(counts)) == expected
            # both new topics are drawn about equally often: the difference of the two counts
            # has a standard deviation of sqrt(n)
            assert abs(counts[2 * period] - counts[2 * period + 1]) < 4 * np.sqrt(counts.sum())


def test_sentences_are_built_as_documented(stream):
    names = stream["train"].features["label"].names
    fillers = set(datasets.FILLER_WORDS)
    topic_words = {topic: _vocabulary(topic) for topic in names}
    shared = {word for a, b in itertools.combinations(topic_words.values(), 2) for word in a & b}
    assert shared == {"company"}  # a business and a technology word
    for row in stream["train"].select(range(0, 1200, 7)):
        words = row["text"].rstrip(".").lower().split()
        assert len(words) == 2 + 1 + 10
        assert sum(word in fillers for word in words) == 10
        own_vocabulary = topic_words[names[row["label"]]]
        assert sum(word in own_vocabulary for word in words) >= 2
        others = [word for word in words if word not in fillers]
        assert all(any(word in vocab for vocab in topic_words.values()) for word in others)
        # the third topic word comes from another topic
        assert any(word not in own_vocabulary or word in shared for word in others)


def test_the_new_topics_share_no_word_with_the_old_ones_or_the_fillers():
    seen: set[str] = set(datasets.FILLER_WORDS)
    for topic in list(datasets.NEWS_TOPICS)[4:]:
        words = _vocabulary(topic)
        assert len(words) == 24, f"{topic}: 8 groups of 3 distinct words"
        assert not words & seen, (topic, words & seen)
        seen |= words | {w for t in datasets.TOPIC_WORDS for w in _vocabulary(t)}


def test_old_class_share_mixes_earlier_topics_into_later_periods():
    data = datasets.news_stream(
        periods=3, train_per_period=2000, test_per_period=10, seed=0, old_class_share=0.3
    )
    periods = np.array(data["train"]["period"])
    labels = np.array(data["train"]["label"])
    assert set(labels[periods == 0]) == {0, 1}
    for period in (1, 2):
        in_period = labels[periods == period]
        old = in_period < 2 * period
        assert abs(old.mean() - 0.3) < 0.04  # binomial sd 0.01
        assert set(in_period[old]) == set(range(2 * period))


def test_same_seed_same_stream_other_seed_other_stream():
    first = datasets.news_stream(periods=2, train_per_period=50, test_per_period=20, seed=5)
    again = datasets.news_stream(periods=2, train_per_period=50, test_per_period=20, seed=5)
    other = datasets.news_stream(periods=2, train_per_period=50, test_per_period=20, seed=6)
    assert first["train"]["text"] == again["train"]["text"]
    assert first["test"]["label"] == again["test"]["label"]
    assert first["train"]["text"] != other["train"]["text"]
    assert not set(first["train"]["text"]) & set(first["test"]["text"])


def test_sentence_shape_options():
    data = datasets.news_stream(
        periods=2,
        classes_per_period=3,
        train_per_period=30,
        test_per_period=5,
        topic_words=4,
        other_topic_words=0,
        filler_words=2,
    )
    assert data["train"].features["label"].names == list(datasets.NEWS_TOPICS)[:6]
    for text in data["train"]["text"]:
        assert len(text.split()) == 6


@pytest.mark.parametrize(
    "options, message",
    [
        ({"periods": 0}, "at least one period"),
        ({"periods": 5}, r"between 2 and 8 .* got 5 \* 2 = 10"),
        ({"periods": 1, "classes_per_period": 1}, "between 2 and 8"),
        ({"train_per_period": 0}, "at least one sentence per period"),
        ({"old_class_share": 1.0}, r"old_class_share must be a fraction in \[0, 1\)"),
        ({"topic_words": 9}, "topic_words must be between 1 and 8"),
        ({"filler_words": -1}, "non-negative word counts"),
    ],
)
def test_bad_arguments_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        datasets.news_stream(**options)
