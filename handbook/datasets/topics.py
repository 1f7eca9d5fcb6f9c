"""Topic sentences with planted label noise and duplicates, and malformed records
(chapters 3 and 5)."""

from __future__ import annotations

import numpy as np

#: The topics of :func:`noisy_text_classification`, each a list of synonym groups: a sentence
#: about a topic uses one word of several of its groups, picked at random within the group.
TOPIC_WORDS = {
    "sports": [
        ["match", "game", "fixture"],
        ["team", "side", "squad"],
        ["won", "triumphed", "prevailed"],
        ["coach", "manager", "trainer"],
        ["goal", "score", "point"],
        ["league", "championship", "tournament"],
        ["player", "athlete", "striker"],
        ["stadium", "arena", "ground"],
    ],
    "weather": [
        ["rain", "showers", "drizzle"],
        ["storm", "gale", "tempest"],
        ["cold", "chilly", "freezing"],
        ["forecast", "outlook", "prediction"],
        ["sunny", "bright", "clear"],
        ["wind", "breeze", "gust"],
        ["temperature", "heat", "warmth"],
        ["cloud", "fog", "mist"],
    ],
    "business": [
        ["profit", "earnings", "revenue"],
        ["company", "firm", "corporation"],
        ["shares", "stocks", "equities"],
        ["market", "exchange", "trading"],
        ["investor", "shareholder", "backer"],
        ["bank", "lender", "creditor"],
        ["growth", "expansion", "increase"],
        ["deal", "merger", "acquisition"],
    ],
    "technology": [
        ["software", "program", "application"],
        ["computer", "laptop", "device"],
        ["internet", "web", "online"],
        ["chip", "processor", "semiconductor"],
        ["startup", "venture", "company"],
        ["data", "information", "records"],
        ["robot", "machine", "automaton"],
        ["update", "release", "upgrade"],
    ],
}


#: Words any topic uses: the part of a sentence that says nothing about its label.
FILLER_WORDS = [
    "the",
    "a",
    "this",
    "that",
    "today",
    "yesterday",
    "people",
    "said",
    "new",
    "report",
    "after",
    "before",
    "week",
    "city",
    "local",
    "many",
    "some",
    "reports",
    "officials",
    "announced",
    "according",
    "to",
    "during",
    "while",
    "most",
    "several",
    "early",
    "late",
    "year",
    "month",
    "again",
    "still",
    "also",
    "under",
    "over",
    "near",
    "around",
    "across",
    "their",
    "our",
    "its",
    "was",
    "were",
    "has",
    "have",
    "will",
    "could",
    "may",
    "might",
    "very",
    "more",
    "less",
    "than",
    "about",
    "from",
    "with",
    "into",
    "nearly",
]


def noisy_text_classification(
    n: int = 2000,
    seed: int = 0,
    *,
    test_size: int = 1000,
    exact_duplicates: float = 0.08,
    near_duplicates: float = 0.08,
    label_noise: float = 0.2,
    topic_words: int = 2,
    other_topic_words: int = 1,
    filler_words: int = 12,
):
    """A four-topic text-classification corpus with known duplicates and flipped labels (ch. 3).

    Returns a ``datasets.DatasetDict``. ``test`` holds ``test_size`` clean sentences.
    ``train`` holds ``n`` distinct sentences plus injected copies, shuffled, with the columns

    - ``text`` (str): ``topic_words`` words of the label's topic (one per synonym group of
      :data:`TOPIC_WORDS`), ``other_topic_words`` words of another topic (so that the task is
      not trivial) and ``filler_words`` of :data:`FILLER_WORDS`, in random order;
    - ``label`` (``ClassLabel``: sports, weather, business, technology): the *observed* label;
    - ``true_label`` (int) and ``label_flipped`` (bool): a fraction ``label_noise`` of the
      distinct sentences (never one that has copies) got a wrong label, uniform over the others;
    - ``duplicate_group`` (int, -1 for none) and ``duplicate_kind`` ("", "original", "exact",
      "near"): ``exact_duplicates * n`` copies that differ only in case, spacing and final
      punctuation, and ``near_duplicates * n`` copies with one or two words replaced, deleted
      or inserted; a copy shares its original's group and label.

    What it simulates: scraped text in which the same item appears several times, lightly
    edited, and labels produced by hurried annotators (uniform random errors). What it does
    not: grammar (the words come in random order: a grammar checker has nothing to check),
    systematic label errors (one class confused with one other), duplicates across the
    train/test boundary, or a vocabulary outside the four topics.
    """
    if n < 20:
        raise ValueError(f"n must be at least 20 sentences, got {n}")
    for name, value in (
        ("exact_duplicates", exact_duplicates),
        ("near_duplicates", near_duplicates),
        ("label_noise", label_noise),
    ):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1), got {value}")
    if exact_duplicates + near_duplicates + label_noise >= 1.0:
        raise ValueError("the duplicated and the mislabelled rows must leave some clean rows")
    if topic_words > min(len(groups) for groups in TOPIC_WORDS.values()):
        raise ValueError(
            f"topic_words must be at most 8 (synonym groups per topic), got {topic_words}"
        )
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    rng = np.random.default_rng(seed)
    topics = list(TOPIC_WORDS)

    def sentence(label: int) -> str:
        groups = TOPIC_WORDS[topics[label]]
        words = [rng.choice(groups[g]) for g in rng.choice(len(groups), topic_words, False)]
        for _ in range(other_topic_words):
            other = TOPIC_WORDS[topics[(label + rng.integers(1, len(topics))) % len(topics)]]
            words.append(rng.choice(other[rng.integers(len(other))]))
        words += list(rng.choice(FILLER_WORDS, filler_words))
        rng.shuffle(words)
        return " ".join(str(word) for word in words).capitalize() + "."

    def distinct_sentences(count: int, taken: set[str]) -> tuple[list[str], list[int]]:
        texts, labels = [], []
        while len(texts) < count:
            label = int(rng.integers(len(topics)))
            text = sentence(label)
            if text.lower() not in taken:  # a chance collision would be an unrecorded duplicate
                taken.add(text.lower())
                texts.append(text)
                labels.append(label)
        return texts, labels

    taken: set[str] = set()
    test_texts, test_labels = distinct_sentences(test_size, taken)
    texts, true_labels = distinct_sentences(n, taken)
    n_exact, n_near = round(exact_duplicates * n), round(near_duplicates * n)
    sources = rng.choice(n, n_exact + n_near, replace=True)
    group_of = {int(source): group for group, source in enumerate(dict.fromkeys(sources.tolist()))}
    groups = [group_of.get(index, -1) for index in range(n)]
    kinds = ["original" if index in group_of else "" for index in range(n)]
    rows = list(range(n))
    for position, source in enumerate(sources.tolist()):
        kind = "exact" if position < n_exact else "near"
        copy = (
            _exact_copy(texts[source], rng) if kind == "exact" else _near_copy(texts[source], rng)
        )
        texts.append(copy)
        true_labels.append(true_labels[source])
        groups.append(group_of[source])
        kinds.append(kind)
        rows.append(source)
    labels = list(true_labels)
    candidates = np.array([index for index in range(n) if groups[index] == -1])
    flipped = rng.choice(candidates, min(round(label_noise * n), len(candidates)), replace=False)
    for index in flipped.tolist():
        labels[index] = (true_labels[index] + int(rng.integers(1, len(topics)))) % len(topics)
    order = rng.permutation(len(texts))
    features = Features(
        {
            "text": Value("string"),
            "label": ClassLabel(names=topics),
            "true_label": Value("int64"),
            "label_flipped": Value("bool"),
            "duplicate_group": Value("int64"),
            "duplicate_kind": Value("string"),
        }
    )
    flipped_set = set(flipped.tolist())
    train = Dataset.from_dict(
        {
            "text": [texts[i] for i in order],
            "label": [labels[i] for i in order],
            "true_label": [true_labels[i] for i in order],
            "label_flipped": [int(i) in flipped_set for i in order],
            "duplicate_group": [groups[i] for i in order],
            "duplicate_kind": [kinds[i] for i in order],
        },
        features=features,
    )
    test = Dataset.from_dict(
        {
            "text": test_texts,
            "label": test_labels,
            "true_label": test_labels,
            "label_flipped": [False] * len(test_texts),
            "duplicate_group": [-1] * len(test_texts),
            "duplicate_kind": [""] * len(test_texts),
        },
        features=features,
    )
    return DatasetDict({"train": train, "test": test})


def _exact_copy(text: str, rng: np.random.Generator) -> str:
    """The same words with other case, spacing and final punctuation."""
    variants = [text.upper(), text.lower(), "  " + text.replace(" ", "  "), text[:-1] + "!"]
    return variants[int(rng.integers(len(variants)))]


def _near_copy(text: str, rng: np.random.Generator) -> str:
    """One or two words replaced by a filler word, deleted, or a filler word inserted."""
    words = text[:-1].split()
    for _ in range(int(rng.integers(1, 3))):
        position = int(rng.integers(len(words)))
        edit = int(rng.integers(3))
        if edit == 0:
            words[position] = str(rng.choice(FILLER_WORDS))
        elif edit == 1 and len(words) > 3:
            del words[position]
        else:
            words.insert(position, str(rng.choice(FILLER_WORDS)))
    return " ".join(words).capitalize() + "."


def redundant_rows(duplicate_group) -> np.ndarray:
    """The ground truth of deduplication: True for every row of a duplicate group except the
    group's first row in data order (the one a deduplicator should keep). ``duplicate_group``:
    ``(n,)`` ints, -1 for rows without copies."""
    groups = np.asarray(duplicate_group)
    seen: set[int] = set()
    redundant = np.zeros(len(groups), dtype=bool)
    for index, group in enumerate(groups.tolist()):
        if group < 0:
            continue
        redundant[index] = group in seen
        seen.add(group)
    return redundant


def malformed_records(records: list[dict], count: int, seed: int = 0) -> tuple[list[dict], dict]:
    """``records`` (dicts with ``text`` and ``label``) with ``count`` broken rows inserted.

    Returns the new list and ``{index: kind}`` of the broken rows, kinds: "missing text",
    "empty text", "text not a string", "missing label", "label not an integer",
    "label out of range". Simulates what a scraper or an export hands a pipeline; the broken
    rows are copies of real ones, damaged in one field each.
    """
    rng = np.random.default_rng(seed)
    kinds = [
        "missing text",
        "empty text",
        "text not a string",
        "missing label",
        "label not an integer",
        "label out of range",
    ]
    rows = [dict(record) for record in records]
    broken: dict[int, str] = {}
    for _ in range(count):
        kind = kinds[int(rng.integers(len(kinds)))]
        row = dict(records[int(rng.integers(len(records)))])
        if kind == "missing text":
            del row["text"]
        elif kind == "empty text":
            row["text"] = "   "
        elif kind == "text not a string":
            row["text"] = 42
        elif kind == "missing label":
            row["label"] = None
        elif kind == "label not an integer":
            row["label"] = "sports"
        else:
            row["label"] = 17
        position = int(rng.integers(len(rows) + 1))
        rows.insert(position, row)
        broken = {index + (index >= position): value for index, value in broken.items()}
        broken[position] = kind
    return rows, dict(sorted(broken.items()))
