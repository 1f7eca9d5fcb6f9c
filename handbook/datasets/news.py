"""A stream of news periods, each bringing new topics (chapter 7, continual learning)."""

from __future__ import annotations

import numpy as np

from handbook.datasets.topics import FILLER_WORDS, TOPIC_WORDS

#: The topics of :func:`news_stream` in the order they appear in the stream: the four of
#: :data:`TOPIC_WORDS`, then four more in the same style (eight synonym groups of three words).
NEWS_TOPICS = {
    **TOPIC_WORDS,
    "politics": [
        ["election", "vote", "ballot"],
        ["minister", "senator", "governor"],
        ["parliament", "congress", "assembly"],
        ["policy", "law", "bill"],
        ["party", "coalition", "campaign"],
        ["government", "cabinet", "administration"],
        ["debate", "speech", "hearing"],
        ["reform", "amendment", "proposal"],
    ],
    "health": [
        ["doctor", "physician", "surgeon"],
        ["hospital", "clinic", "ward"],
        ["patient", "outpatient", "inpatient"],
        ["vaccine", "jab", "immunisation"],
        ["disease", "illness", "infection"],
        ["treatment", "therapy", "medication"],
        ["nurse", "carer", "paramedic"],
        ["virus", "bacteria", "pathogen"],
    ],
    "science": [
        ["research", "study", "experiment"],
        ["scientist", "researcher", "physicist"],
        ["laboratory", "lab", "observatory"],
        ["discovery", "finding", "breakthrough"],
        ["space", "planet", "galaxy"],
        ["theory", "hypothesis", "equation"],
        ["species", "fossil", "genome"],
        ["telescope", "microscope", "satellite"],
    ],
    "culture": [
        ["film", "movie", "cinema"],
        ["music", "album", "concert"],
        ["actor", "singer", "artist"],
        ["festival", "premiere", "exhibition"],
        ["novel", "book", "author"],
        ["museum", "gallery", "theatre"],
        ["award", "prize", "nomination"],
        ["audience", "fans", "critics"],
    ],
}


def news_stream(
    periods: int = 4,
    train_per_period: int = 2000,
    test_per_period: int = 500,
    seed: int = 0,
    *,
    classes_per_period: int = 2,
    old_class_share: float = 0.0,
    topic_words: int = 2,
    other_topic_words: int = 1,
    filler_words: int = 10,
):
    """A news feed that brings new topics over time: the class-incremental stream of chapter 7.

    Period ``p`` (0, 1, ...) introduces ``classes_per_period`` new topics of :data:`NEWS_TOPICS`
    (period 0: sports, weather; period 1: business, technology; ...). Returns a
    ``datasets.DatasetDict`` whose ``train`` and ``test`` splits hold ``train_per_period`` and
    ``test_per_period`` sentences per period, in stream order (period by period, shuffled within
    a period), with the columns

    - ``text`` (str): ``topic_words`` words of the label's topic (from distinct synonym groups),
      ``other_topic_words`` words of another topic of the stream and ``filler_words`` of
      :data:`FILLER_WORDS`, in random order, as in :func:`noisy_text_classification`;
    - ``label`` (``ClassLabel`` over the ``periods * classes_per_period`` topics of the stream,
      numbered in order of arrival): the topic;
    - ``period`` (int): when the sentence arrived.

    In period 0 every label is one of that period's topics. In a later period a fraction
    ``old_class_share`` of the sentences (train and test alike) belong to topics introduced
    earlier, uniformly; the rest to the period's new topics, uniformly. With the default 0 a
    period holds only its new topics: the setting of the article ("when training on data of new
    classes, keep 10% of the old data"), where a model fine-tuned on the new period alone
    forgets the old topics entirely.

    What it simulates: a feed whose topics arrive over time, a training budget per period, and
    an evaluation on every topic seen so far with a single output layer (no task id at test
    time). What it does not: drift of a topic's own vocabulary or of the share of each topic,
    topics that fade away, dates within a period, real news text (the words come in random
    order, and a sentence's own topic always outnumbers the other topic's words when
    ``topic_words > other_topic_words``, so a reader who knows every topic is never in doubt),
    duplicates or label noise.
    """
    topics_needed = periods * classes_per_period
    if periods < 1 or classes_per_period < 1:
        raise ValueError(
            f"expected at least one period and one class per period, got periods={periods}, "
            f"classes_per_period={classes_per_period}"
        )
    if not 2 <= topics_needed <= len(NEWS_TOPICS):
        raise ValueError(
            f"periods * classes_per_period must be between 2 and {len(NEWS_TOPICS)} (the topics "
            f"of NEWS_TOPICS), got {periods} * {classes_per_period} = {topics_needed}"
        )
    if train_per_period < 1 or test_per_period < 1:
        raise ValueError(
            f"expected at least one sentence per period and split, got "
            f"train_per_period={train_per_period}, test_per_period={test_per_period}"
        )
    if not 0.0 <= old_class_share < 1.0:
        raise ValueError(f"old_class_share must be a fraction in [0, 1), got {old_class_share}")
    groups_per_topic = min(len(groups) for groups in NEWS_TOPICS.values())
    if not 1 <= topic_words <= groups_per_topic:
        raise ValueError(
            f"topic_words must be between 1 and {groups_per_topic} (synonym groups per topic), "
            f"got {topic_words}"
        )
    if other_topic_words < 0 or filler_words < 0:
        raise ValueError(
            f"expected non-negative word counts, got other_topic_words={other_topic_words}, "
            f"filler_words={filler_words}"
        )
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    topics = list(NEWS_TOPICS)[:topics_needed]
    # (topics, synonym groups, synonyms): every topic has 8 groups of 3 words
    table = np.array([NEWS_TOPICS[topic] for topic in topics])
    fillers = np.array(FILLER_WORDS)
    rng = np.random.default_rng(seed)

    def labels_of(period: int, count: int) -> np.ndarray:
        new = period * classes_per_period + rng.integers(classes_per_period, size=count)
        if period == 0 or old_class_share == 0.0:
            return new
        old = rng.integers(period * classes_per_period, size=count)
        return np.where(rng.random(count) < old_class_share, old, new)

    def sentences(labels: np.ndarray) -> list[str]:
        count = len(labels)
        chosen_groups = np.argsort(rng.random((count, table.shape[1])), axis=1)[:, :topic_words]
        synonyms = rng.integers(table.shape[2], size=(count, topic_words))
        words = [table[labels[:, None], chosen_groups, synonyms]]
        if other_topic_words:
            shift = rng.integers(1, len(topics), size=(count, other_topic_words))
            other = (labels[:, None] + shift) % len(topics)
            group = rng.integers(table.shape[1], size=(count, other_topic_words))
            synonym = rng.integers(table.shape[2], size=(count, other_topic_words))
            words.append(table[other, group, synonym])
        words.append(fillers[rng.integers(len(fillers), size=(count, filler_words))])
        rows = np.concatenate(words, axis=1)
        rows = np.take_along_axis(rows, np.argsort(rng.random(rows.shape), axis=1), axis=1)
        return [" ".join(row).capitalize() + "." for row in rows.tolist()]

    features = Features(
        {"text": Value("string"), "label": ClassLabel(names=topics), "period": Value("int64")}
    )
    splits = {}
    for split, size in (("train", train_per_period), ("test", test_per_period)):
        labels = np.concatenate([labels_of(period, size) for period in range(periods)])
        splits[split] = Dataset.from_dict(
            {
                "text": sentences(labels),
                "label": labels.astype(np.int64),
                "period": np.repeat(np.arange(periods, dtype=np.int64), size),
            },
            features=features,
        )
    return DatasetDict(splits)
