"""Offline datasets: data that ships with a package or comes from a seeded generator.

Nothing here downloads. Every dataset is a HuggingFace ``datasets.Dataset`` /
``DatasetDict`` so that the chapter code also accepts the real corpora on a machine with a
network; asking for one of those without a network raises :class:`OfflineDataError`, which
names the offline stand-in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DIGIT_CLASSES = [str(digit) for digit in range(10)]

#: Datasets that need a download, and the offline stand-in the book uses instead.
OFFLINE_ALTERNATIVES = {
    "mnist": (
        "handbook.datasets.digits() "
        "(scikit-learn's 8x8 handwritten digits, shipped with the package)"
    ),
    "wmt14": (
        "handbook.datasets.number_words() (English -> German number words generated with num2words)"
    ),
}


class OfflineDataError(RuntimeError):
    """A dataset that needs a download was asked for where none is possible."""


def digits(test_size: float = 0.2, seed: int = 0):
    """scikit-learn's 1,797 handwritten digits (8x8, pixel values 0..16) with a stratified split.

    Returns a ``datasets.DatasetDict`` with ``train`` and ``test`` splits; columns ``image``
    (64 floats, row-major 8x8) and ``label`` (a ``ClassLabel`` with names "0" ... "9").
    The split keeps each digit's share equal in both halves and depends only on ``seed``.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction between 0 and 1, got {test_size}")
    from datasets import ClassLabel, Dataset, Features, Sequence, Value
    from sklearn.datasets import load_digits

    bunch = load_digits()
    features = Features(
        {"image": Sequence(Value("float32"), length=64), "label": ClassLabel(names=DIGIT_CLASSES)}
    )
    table = Dataset.from_dict(
        {"image": bunch.data.astype(np.float32), "label": bunch.target.astype(np.int64)},
        features=features,
    )
    return table.train_test_split(test_size=test_size, seed=seed, stratify_by_column="label")


def mnist(root: str | Path = "data", download: bool = False):
    """Real MNIST (28x28, 70,000 images) through torchvision, in the same form as :func:`digits`.

    The one-line swap for a machine with a network: ``data = mnist(download=True)``. Pixel
    values are rescaled to 0..16 so that code written for the 8x8 digits needs no change except
    the image side (28 instead of 8). Without the files and with ``download=False`` this raises
    :class:`OfflineDataError` naming the offline alternative.
    """
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value
    from torchvision.datasets import MNIST

    features = Features(
        {"image": Sequence(Value("float32"), length=784), "label": ClassLabel(names=DIGIT_CLASSES)}
    )
    splits = {}
    for split, train in (("train", True), ("test", False)):
        try:
            source = MNIST(str(root), train=train, download=download)
        except RuntimeError as exc:
            raise OfflineDataError(
                f"MNIST is not in {root!s} and download={download}: {exc}. "
                f"Offline, use {OFFLINE_ALTERNATIVES['mnist']}."
            ) from exc
        images = source.data.reshape(len(source.data), -1).numpy().astype(np.float32) * (16 / 255)
        splits[split] = Dataset.from_dict(
            {"image": images, "label": source.targets.numpy()}, features=features
        )
    return DatasetDict(splits)


def number_words(max_number: int = 9999, test_size: float = 0.1, seed: int = 0):
    """An English -> German translation corpus of number words, generated with ``num2words``.

    Every integer in ``1..max_number`` appears once: ``"three hundred and twelve"`` ->
    ``"dreihundertzwölf"``. The split is by number, so no test number (and no test sentence)
    is ever seen in training. Returns a ``datasets.DatasetDict`` (``train``/``test``) with
    columns ``number`` (int), ``english`` and ``german`` (str).

    What it simulates: a real translation problem with reordering (German says the units
    before the tens: "einundzwanzig" = one-and-twenty), compounding (one German word for a
    whole English phrase) and an exact reference. What it does not: ambiguity, synonyms,
    rare words, noise; BLEU here is far higher than on WMT14 and not comparable with it.
    """
    if max_number < 10:
        raise ValueError(f"max_number must be at least 10, got {max_number}")
    if max_number >= 1_000_000:
        raise ValueError(
            f"max_number must be below 1,000,000 (German switches to separate "
            f"words for millions), got {max_number}"
        )
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction between 0 and 1, got {test_size}")
    table = _number_word_pairs(list(range(1, max_number + 1)))
    return table.train_test_split(test_size=test_size, seed=seed)


def _number_word_pairs(numbers: list[int]):
    """A ``datasets.Dataset`` with columns number, english, german for ``numbers``."""
    from datasets import Dataset
    from num2words import num2words

    return Dataset.from_dict(
        {
            "number": numbers,
            "english": [num2words(number, lang="en") for number in numbers],
            "german": [num2words(number, lang="de") for number in numbers],
        }
    )


def number_words_sample(sizes: dict[str, int], *, max_number: int = 99_999, seed: int = 0):
    """A small English -> German number-words corpus: ``sizes`` numbers per split, disjoint.

    The same pairs as :func:`number_words` (``num2words``), but drawn at
    random from ``1..max_number`` so that a few hundred training pairs cover a wide range, and
    without generating the whole range. Returns a ``datasets.DatasetDict`` with one split per
    key of ``sizes`` and columns ``number``, ``english``, ``german``.
    """
    import random

    from datasets import DatasetDict

    total = sum(sizes.values())
    if total > max_number:
        raise ValueError(f"asked for {total} distinct numbers but max_number is {max_number}")
    numbers = random.Random(seed).sample(range(1, max_number + 1), total)
    splits, start = {}, 0
    for name, size in sizes.items():
        chosen = numbers[start : start + size]
        start += size
        splits[name] = _number_word_pairs(chosen)
    return DatasetDict(splits)


def wmt14(*_, **__):
    """WMT14 English-German needs a download; this raises :class:`OfflineDataError`.

    With a network: ``datasets.load_dataset("wmt14", "de-en")``.
    """
    raise OfflineDataError(
        "WMT14 must be downloaded from the HuggingFace hub, and this book downloads nothing. "
        f"Offline, use {OFFLINE_ALTERNATIVES['wmt14']}; with a network, "
        "datasets.load_dataset('wmt14', 'de-en')."
    )


def load(name: str, **options):
    """Load a dataset by name: offline ones, or real corpora where a network exists."""
    loaders = {"digits": digits, "mnist": mnist, "number_words": number_words, "wmt14": wmt14}
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}: expected one of {sorted(loaders)}")
    return loaders[name](**options)


def image_tensors(split, side: int | None = None):
    """``(images, labels)`` tensors of a digits-style split.

    images: float32 ``(n, 1, side, side)`` scaled to [0, 1] (pixel value / 16); labels: int64
    ``(n,)``. ``side`` defaults to the square root of the row length (8 for digits, 28 for MNIST).
    """
    import torch

    pixels = np.asarray(split["image"], dtype=np.float32)
    if pixels.ndim != 2:
        raise ValueError(
            f"expected a split whose 'image' rows are flat pixel lists, got {pixels.shape}"
        )
    side = side or int(round(pixels.shape[1] ** 0.5))
    if side * side != pixels.shape[1]:
        raise ValueError(f"rows of {pixels.shape[1]} pixels do not form a {side}x{side} image")
    images = torch.from_numpy(pixels / 16.0).reshape(-1, 1, side, side)
    labels = torch.as_tensor(np.asarray(split["label"]), dtype=torch.int64)
    return images, labels


#: The applicant features of :func:`hiring`, in the order the chapter-9 models read them.
HIRING_FEATURES = ("years_experience", "skill_test", "education", "group", "neighbourhood")


def hiring(
    n: int = 20000,
    seed: int = 0,
    *,
    bias: float = 0.95,
    proxy_agreement: float = 0.85,
    minority_share: float = 0.4,
    test_size: float = 0.25,
):
    """A synthetic hiring history with a known, documented bias against one group (chapter 9).

    Returns a ``datasets.DatasetDict`` (``train``/``test``, stratified by group) of ``n``
    applicants with the columns of :data:`HIRING_FEATURES` and two outcomes:

    - ``years_experience`` (float, years, 0-30), ``skill_test`` (float, points, 0-100),
      ``education`` (int 0-3: none, bachelor, master, doctorate): drawn independently of the
      group, so both groups are equally able;
    - ``group`` (``ClassLabel`` "A"/"B"): the protected attribute; B, the minority, is
      ``minority_share`` of the applicants;
    - ``neighbourhood`` (int 0/1): the proxy. It says nothing about ability, but equals the group
      for a fraction ``proxy_agreement`` of applicants (as a postcode can reveal ethnicity);
    - ``qualified`` (int 0/1): the ground truth, ``merit + noise > 0``, where merit is
      ``0.15 (experience - 5) + 0.06 (skill - 60) + 0.5 (education - 1.3)`` and the noise
      (logistic, scale 0.7) is the part of suitability that no column shows;
    - ``hired`` (int 0/1): the historical decision, ``merit + noise - bias * [group B] > 0``:
      the same decision with a penalty of ``bias`` log-odds against group B. In group A
      ``hired == qualified``; in group B some qualified applicants were turned down.

    The default ``bias`` gives a historical pass-rate gap of about 22 percentage points, which
    a classifier trained on ``hired`` widens to about 28 (the article's figure; 25-30 over
    seeds). The default size keeps the sampling error of a gap measured on the test split near
    1.5 points: with 1,000 test applicants it is 3 points, as large as the effects measured.

    What it simulates: historical labels that encode discrimination, a protected attribute
    and a correlated proxy, so that dropping the attribute does not remove the bias.
    What it does not: real applicant distributions, intersecting or more than two groups,
    bias in the features themselves (unequal access to education, biased test scores), or
    selection bias (only applicants who were hired have an observed performance). The numbers
    are a teaching device, not evidence about any real population.
    """
    if n < 100:
        raise ValueError(f"n must be at least 100 applicants, got {n}")
    for name, value in (("proxy_agreement", proxy_agreement), ("minority_share", minority_share)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a probability between 0 and 1, got {value}")
    if not 0.0 < minority_share < 1.0:
        raise ValueError(f"minority_share must leave both groups non-empty, got {minority_share}")
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction between 0 and 1, got {test_size}")
    from datasets import ClassLabel, Dataset, Features, Value

    rng = np.random.default_rng(seed)
    group = (rng.random(n) < minority_share).astype(np.int64)
    neighbourhood = np.where(rng.random(n) < proxy_agreement, group, 1 - group)
    experience = np.clip(rng.gamma(2.0, 2.5, n), 0.0, 30.0)
    skill = np.clip(rng.normal(60.0, 15.0, n), 0.0, 100.0)
    education = rng.choice(4, size=n, p=[0.2, 0.4, 0.3, 0.1])
    merit = 0.15 * (experience - 5.0) + 0.06 * (skill - 60.0) + 0.5 * (education - 1.3)
    suitability = merit + rng.logistic(0.0, 0.7, n)
    features = Features(
        {
            "years_experience": Value("float32"),
            "skill_test": Value("float32"),
            "education": Value("int64"),
            "group": ClassLabel(names=["A", "B"]),
            "neighbourhood": Value("int64"),
            "qualified": Value("int64"),
            "hired": Value("int64"),
        }
    )
    table = Dataset.from_dict(
        {
            "years_experience": experience.astype(np.float32),
            "skill_test": skill.astype(np.float32),
            "education": education.astype(np.int64),
            "group": group,
            "neighbourhood": neighbourhood.astype(np.int64),
            "qualified": (suitability > 0).astype(np.int64),
            "hired": (suitability - bias * group > 0).astype(np.int64),
        },
        features=features,
    )
    return table.train_test_split(test_size=test_size, seed=seed, stratify_by_column="group")


# Chapter 3: data engineering -------------------------------------------------------------------

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


def click_logs(
    n_users: int = 400,
    n_items: int = 200,
    impressions_per_user: int = 24,
    seed: int = 0,
    *,
    factors: int = 4,
    test_share: float = 0.25,
):
    """Impressions and clicks of a small shop's recommender, from a known latent-factor model.

    Every user and item has a hidden taste vector (``factors`` dimensions) and an item its
    appeal; a user is shown ``impressions_per_user`` distinct items, popular items more often
    (popularity is ``exp(appeal + noise)``: appealing items are shown more), and clicks with
    probability ``sigmoid(-1.6 + appeal + 1.7 * <user, item>)``.
    Returns a ``datasets.DatasetDict``: ``train`` and ``test`` (each user's last ``test_share``
    of impressions) with columns ``user``, ``item`` (int ids), ``clicked`` (0/1) and
    ``click_probability`` (float, the ground truth: ranking test rows by it gives the best AUC
    any model can reach on this data).

    What it simulates: sparse implicit feedback with popularity-biased exposure, where most
    (user, item) pairs are never shown. What it does not: time, sessions, prices, positions on
    the page, or the feedback loop in which the recommender chooses what is shown.
    """
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must be a fraction between 0 and 1, got {test_share}")
    if not 2 <= impressions_per_user <= n_items:
        raise ValueError(
            f"impressions_per_user must be between 2 and n_items={n_items}, "
            f"got {impressions_per_user}"
        )
    from datasets import Dataset, DatasetDict

    rng = np.random.default_rng(seed)
    users = rng.normal(0.0, 1.0 / factors**0.25, (n_users, factors))
    items = rng.normal(0.0, 1.0 / factors**0.25, (n_items, factors))
    appeal = rng.normal(0.0, 0.8, n_items)
    popularity = np.exp(appeal + rng.normal(0.0, 0.7, n_items))  # appealing items sell more
    popularity /= popularity.sum()
    columns = {name: {"train": [], "test": []} for name in ("user", "item", "clicked", "p")}
    cut = impressions_per_user - max(1, round(test_share * impressions_per_user))
    for user in range(n_users):
        shown = rng.choice(n_items, impressions_per_user, replace=False, p=popularity)
        logits = -1.6 + appeal[shown] + 1.7 * items[shown] @ users[user]
        probability = 1.0 / (1.0 + np.exp(-logits))
        clicked = (rng.random(impressions_per_user) < probability).astype(np.int64)
        for position in range(impressions_per_user):
            split = "train" if position < cut else "test"
            columns["user"][split].append(user)
            columns["item"][split].append(int(shown[position]))
            columns["clicked"][split].append(int(clicked[position]))
            columns["p"][split].append(float(probability[position]))
    return DatasetDict(
        {
            split: Dataset.from_dict(
                {
                    "user": columns["user"][split],
                    "item": columns["item"][split],
                    "clicked": columns["clicked"][split],
                    "click_probability": columns["p"][split],
                }
            )
            for split in ("train", "test")
        }
    )


# Chapter 7: continual learning -----------------------------------------------------------------

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


# Chapter 6: industry cases ----------------------------------------------------------------------

#: The events of :func:`fraud_sequences`, in the order their ids are given (0 is kept for padding).
FRAUD_EVENTS = (
    "login",
    "login_new_device",
    "browse",
    "click",
    "add_to_cart",
    "buy",
    "buy_high_value",
    "payment_failed",
    "add_payment_method",
    "change_password",
    "change_address",
)

#: How :func:`fraud_sequences` made each user: three legitimate behaviours, three kinds of fraud.
FRAUD_PATTERNS = {
    "ordinary": "legitimate: shopping sessions with a few account events at random",
    "decoy": "legitimate: also logs in on a new device, changes the password and buys something "
    "expensive, in any order, at ordinary moments",
    "lookalike": "legitimate: does exactly what an account takeover does (a new phone, a password "
    "reset, an immediate big purchase)",
    "account takeover": "fraud: a new-device login, a password change and a high-value purchase, "
    "in that order, within minutes",
    "card testing": "fraud: a new payment method, then a burst of failed and small payments",
    "hidden": "fraud that leaves no trace in the events (a chargeback on an ordinary purchase)",
}

#: Within-session steps of an ordinary shopping session: a small Markov chain over the funnel,
#: ``{state: cumulative probabilities of the next step}`` over :data:`_SESSION_STEPS`.
_SESSION_STEPS = ("browse", "click", "add_to_cart", "buy", "end")
_SESSION_CUMULATIVE = {
    "login": (1.0, 1.0, 1.0, 1.0, 1.0),
    "browse": (0.40, 0.85, 0.85, 0.85, 1.0),
    "click": (0.40, 0.60, 0.90, 0.90, 1.0),
    "add_to_cart": (0.30, 0.30, 0.30, 0.80, 1.0),
    "buy": (0.30, 0.30, 0.30, 0.30, 1.0),
}
_TAKEOVER_STEPS = ("login_new_device", "change_password", "buy_high_value")
#: The pace of events, by the kind of gap before them: (median minutes, spread of the log).
#: Kinds: 0 the first event (0 minutes), 1 a new session, 2 within a session, 3 a fraudster's
#: scripted step.
_GAP_MEDIAN_MINUTES = np.array([0.0, 600.0, 0.5, 0.3])
_GAP_LOG_SPREAD = np.array([0.0, 1.2, 1.0, 0.8])
_NEW_SESSION, _IN_SESSION, _SCRIPTED = 1, 2, 3


def fraud_sequences(
    n_users: int = 10000,
    seed: int = 0,
    *,
    fraud_rate: float = 0.1,
    takeover_share: float = 0.4,
    hidden_share: float = 0.1,
    decoy_rate: float = 0.15,
    lookalike_rate: float = 0.005,
    test_size: float = 0.4,
):
    """Users' behaviour sequences with known fraud, some of it visible only in the order of
    events (chapter 6).

    Returns a ``datasets.DatasetDict`` (``train``/``test``, stratified by ``fraud``) with a row
    per user:

    - ``events`` (list of str, 4-70 of :data:`FRAUD_EVENTS`, 25 on average): two to five shopping
      sessions (a login, then browse/click/add-to-cart/buy steps of a Markov chain) with
      occasional account events at random places inside them (failed payments, a new payment
      method, an address change; rarely a new-device login, a password change or a high-value
      purchase);
    - ``minutes`` (list of float, one per event): minutes since the previous event (0 for the
      first), log-normal around 0.5 within a session, 600 (10 hours) before a session, 0.3
      between the steps of a fraudster's script;
    - ``fraud`` (``ClassLabel`` "legitimate"/"fraud") and ``pattern`` (str, a key of
      :data:`FRAUD_PATTERNS`): how the row was made.

    A share ``fraud_rate`` of users are fraudsters: ``takeover_share`` of them take over the
    account, ``hidden_share`` leave no trace, the rest test stolen cards. Card testing shows in
    the counts of events (several failed payments after a new payment method). Account
    takeover does not: a ``decoy_rate`` share of legitimate users do the same three things
    (new-device login, password change, high-value purchase) at ordinary moments and in any
    order, with as many extra browse/click events as the fraudster's script holds, so the
    counts of every event type have the same distribution for both; only the order and the
    timing differ (the fraudster's three steps form a session of their own, in that order,
    within minutes, with at most two browse/click events between two steps). A ``lookalike_rate``
    share of legitimate users do exactly what a fraudster does: no model can tell them apart.

    What it simulates: the behaviour sequences of a shop's accounts, where a count-based rules
    engine or a model on aggregates sees one kind of fraud and is blind to another, and where
    part of the fraud cannot be seen at all. What it does not: real base rates (fraud is far
    rarer than 10% in practice), fraudsters who adapt to the model, devices, amounts, IP
    addresses or any feature beyond the event type and its time, delayed or wrong labels, or
    drift over time. The gain of a sequence model here is set by ``takeover_share`` and
    ``decoy_rate``: it illustrates the mechanism, not the size of any real system's gain.
    """
    if n_users < 50:
        raise ValueError(f"n_users must be at least 50, got {n_users}")
    for name, value in (
        ("fraud_rate", fraud_rate),
        ("takeover_share", takeover_share),
        ("hidden_share", hidden_share),
        ("decoy_rate", decoy_rate),
        ("lookalike_rate", lookalike_rate),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a fraction between 0 and 1, got {value}")
    if takeover_share + hidden_share > 1.0:
        raise ValueError(
            f"takeover_share + hidden_share must be at most 1 (the rest is card testing), "
            f"got {takeover_share} + {hidden_share}"
        )
    if decoy_rate + lookalike_rate > 1.0:
        raise ValueError(
            f"decoy_rate + lookalike_rate must be at most 1, got {decoy_rate} + {lookalike_rate}"
        )
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction between 0 and 1, got {test_size}")
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    rng = np.random.default_rng(seed)
    is_fraud = rng.random(n_users) < fraud_rate
    fraud_kind = rng.choice(
        ["account takeover", "hidden", "card testing"],
        size=n_users,
        p=[takeover_share, hidden_share, max(0.0, 1.0 - takeover_share - hidden_share)],
    )
    legitimate_kind = rng.choice(
        ["decoy", "lookalike", "ordinary"],
        size=n_users,
        p=[decoy_rate, lookalike_rate, max(0.0, 1.0 - decoy_rate - lookalike_rate)],
    )
    patterns = np.where(is_fraud, fraud_kind, legitimate_kind).tolist()
    events, gap_kinds = [], []
    for pattern in patterns:
        user_events, user_gaps = _user_sequence(pattern, rng)
        events.append(user_events)
        gap_kinds.append(user_gaps)
    kinds = np.concatenate(gap_kinds)
    minutes = _GAP_MEDIAN_MINUTES[kinds] * np.exp(
        _GAP_LOG_SPREAD[kinds] * rng.standard_normal(len(kinds))
    )
    boundaries = np.cumsum([len(user) for user in gap_kinds])[:-1]
    features = Features(
        {
            "user": Value("int64"),
            "events": Sequence(Value("string")),
            "minutes": Sequence(Value("float32")),
            "fraud": ClassLabel(names=["legitimate", "fraud"]),
            "pattern": Value("string"),
        }
    )
    table = Dataset.from_dict(
        {
            "user": list(range(n_users)),
            "events": events,
            "minutes": np.split(minutes.round(3).astype(np.float32), boundaries),
            "fraud": is_fraud.astype(np.int64),
            "pattern": patterns,
        },
        features=features,
    )
    return _stratified_split(table, is_fraud.astype(np.int64), test_size, rng)


def _stratified_split(table, labels: np.ndarray, test_size: float, rng: np.random.Generator):
    """``train``/``test`` splits of ``table`` that keep each label's share (a ``DatasetDict``);
    ``Dataset.train_test_split`` does the same but reads the table row by row, 50x slower."""
    from datasets import DatasetDict

    test = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        test.extend(members[: round(test_size * len(members))].tolist())
    in_test = np.zeros(len(labels), dtype=bool)
    in_test[test] = True
    return DatasetDict(
        {
            "train": table.select(np.flatnonzero(~in_test)),
            "test": table.select(np.flatnonzero(in_test)),
        }
    )


def _shopping_sessions(rng: np.random.Generator) -> list[list[tuple[str, int]]]:
    """Two to five sessions, each a list of ``(event, kind of gap before it)``."""
    sessions = []
    for _ in range(int(rng.integers(2, 6))):
        session, state = [("login", _NEW_SESSION)], "login"
        while len(session) < 12:
            draw = rng.random()
            state = next(
                step
                for step, bound in zip(_SESSION_STEPS, _SESSION_CUMULATIVE[state], strict=True)
                if draw < bound
            )
            if state == "end":
                break
            session.append((state, _IN_SESSION))
        sessions.append(session)
    return sessions


def _scripted_session(
    steps: tuple[str, ...], rng: np.random.Generator
) -> tuple[list[tuple[str, int]], int]:
    """A fraudster's script: ``steps`` in order, each step after the first preceded by zero,
    one or two browse/click events. Returns the session and how many of those it has."""
    session, fillers = [(steps[0], _NEW_SESSION)], 0
    for step in steps[1:]:
        for _ in range(int(rng.integers(0, 3))):
            session.append(("browse" if rng.random() < 0.5 else "click", _SCRIPTED))
            fillers += 1
        session.append((step, _SCRIPTED))
    return session, fillers


def _user_sequence(pattern: str, rng: np.random.Generator) -> tuple[list[str], list[int]]:
    """One user's events and the kinds of gap before them, for a key of
    :data:`FRAUD_PATTERNS`."""
    sessions = _shopping_sessions(rng)
    scattered = ["payment_failed"] * int(rng.poisson(0.4))
    for event, probability in (
        ("add_payment_method", 0.1),
        ("change_address", 0.05),
        ("login_new_device", 0.05),
        ("change_password", 0.05),
        ("buy_high_value", 0.05),
    ):
        if rng.random() < probability:
            scattered.append(event)
    script = None
    if pattern in ("account takeover", "lookalike"):
        script, _ = _scripted_session(_TAKEOVER_STEPS, rng)
    elif pattern == "card testing":
        tries = int(rng.integers(2, 7))
        burst = ["payment_failed" if rng.random() < 0.7 else "buy" for _ in range(tries)]
        script, _ = _scripted_session(("add_payment_method", *burst), rng)
    elif pattern == "decoy":  # the takeover's events, fillers included, at ordinary moments
        _, fillers = _scripted_session(_TAKEOVER_STEPS, rng)
        scattered += _TAKEOVER_STEPS
        scattered += ["browse" if rng.random() < 0.5 else "click" for _ in range(fillers)]
    for event in scattered:
        session = sessions[int(rng.integers(len(sessions)))]
        session.insert(int(rng.integers(1, len(session) + 1)), (event, _IN_SESSION))
    if script is not None:
        sessions.insert(int(rng.integers(1, len(sessions) + 1)), script)
    events = [event for session in sessions for event, _ in session]
    kinds = [kind for session in sessions for _, kind in session]
    kinds[0] = 0
    return events, kinds


#: The diagnoses of :func:`diagnosis_records` and the findings that define them: what the image
#: shows and what the note reports. Each pair of diagnoses that shares a finding can only be told
#: apart by the other modality.
DIAGNOSIS_FINDINGS = {
    "healthy": ("clear", "none"),
    "bronchitis": ("clear", "infection"),
    "pneumonia": ("opacity", "infection"),
    "benign nodule": ("nodule", "none"),
    "lung cancer": ("nodule", "malignancy"),
}
DIAGNOSES = tuple(DIAGNOSIS_FINDINGS)

#: Symptom words a note may report, by text finding.
SYMPTOM_WORDS = {
    "infection": ("cough", "fever", "sputum", "chills", "wheezing"),
    "malignancy": ("haemoptysis", "weight-loss", "night-sweats", "hoarseness", "smoker"),
}

#: Words of a clinical note that say nothing about the diagnosis.
NOTE_FILLER_WORDS = (
    "patient",
    "seen",
    "in",
    "clinic",
    "today",
    "referred",
    "by",
    "gp",
    "for",
    "review",
    "reports",
    "since",
    "last",
    "week",
    "month",
    "mild",
    "stable",
    "vitals",
    "normal",
    "exam",
    "chest",
    "imaging",
    "requested",
    "follow-up",
    "history",
    "of",
    "and",
    "with",
)


def diagnosis_records(
    n: int = 4000,
    seed: int = 0,
    *,
    prior: tuple[float, ...] = (0.3, 0.2, 0.2, 0.15, 0.15),
    silent_note_rate: float = 0.1,
    stray_symptom_rate: float = 0.1,
    side: int = 16,
    test_size: float = 0.3,
):
    """Paired records of a clinical note and a small chest image with a known diagnosis
    (chapter 6).

    Returns a ``datasets.DatasetDict`` (``train``/``test``, stratified by ``label``) with columns:

    - ``note`` (str): 5-15 lower-case words. One to three symptom words of the diagnosis's text
      finding (:data:`SYMPTOM_WORDS`), negated symptoms of another finding ("no fever",
      "denies smoker") with probability 1/2, and filler words (:data:`NOTE_FILLER_WORDS`), in
      random phrase order. With probability ``silent_note_rate`` the note reports no symptom at
      all; with probability ``stray_symptom_rate`` it also reports one symptom of another
      finding, not negated;
    - ``image`` (``side * side`` floats, row-major, about -1..1.5): a noisy chest image. Its
      background is pixel noise plus one or two broad faint bumps; an *opacity* is a broad
      blob (width 2.5-4 pixels, contrast 0.3-0.8), a *nodule* a small bright spot (width
      0.6-1.1, contrast 0.4-1.0); *clear* adds nothing;
    - ``label`` (``ClassLabel`` with the names of :data:`DIAGNOSES`, drawn with probabilities
      ``prior``), ``image_finding`` and ``text_finding`` (str): the diagnosis's findings of
      :data:`DIAGNOSIS_FINDINGS`.

    The findings are chosen so that each modality alone is ambiguous: the image cannot tell
    healthy from bronchitis (both clear) nor a benign nodule from a cancer; the note cannot
    tell bronchitis from pneumonia (both infections) nor healthy from a benign nodule (no
    symptoms). Every diagnosis is determined by the pair of findings, so only a model that
    reads both can get them all right.

    What it simulates: a multimodal record in which the modalities carry complementary
    evidence, with noise in both (faint lesions, background bumps that look like lesions,
    silent or misleading notes, negation). What it does not: real anatomy, real radiology or
    clinical language, diseases that coexist, modalities that repeat each other (a real
    imaging report often describes what the image shows), missing modalities, or the label
    noise of real diagnoses. Its accuracies say nothing about clinical performance.
    """
    if n < 50:
        raise ValueError(f"n must be at least 50 records, got {n}")
    if len(prior) != len(DIAGNOSES) or min(prior) < 0 or not np.isclose(sum(prior), 1.0):
        raise ValueError(
            f"prior must give {len(DIAGNOSES)} non-negative probabilities summing to 1 "
            f"(one per diagnosis of DIAGNOSES), got {tuple(prior)}"
        )
    for name, value in (
        ("silent_note_rate", silent_note_rate),
        ("stray_symptom_rate", stray_symptom_rate),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a probability between 0 and 1, got {value}")
    if side < 8:
        raise ValueError(f"side must be at least 8 pixels, got {side}")
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction between 0 and 1, got {test_size}")
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    rng = np.random.default_rng(seed)
    labels = rng.choice(len(DIAGNOSES), size=n, p=np.asarray(prior, dtype=np.float64))
    rows, columns = np.mgrid[0:side, 0:side].astype(np.float32)
    notes, images = [], np.empty((n, side * side), dtype=np.float32)
    for index, label in enumerate(labels):
        image_finding, text_finding = DIAGNOSIS_FINDINGS[DIAGNOSES[label]]
        notes.append(_clinical_note(text_finding, silent_note_rate, stray_symptom_rate, rng))
        images[index] = _chest_image(image_finding, rows, columns, rng).ravel()
    features = Features(
        {
            "note": Value("string"),
            "image": Sequence(Value("float32"), length=side * side),
            "label": ClassLabel(names=list(DIAGNOSES)),
            "image_finding": Value("string"),
            "text_finding": Value("string"),
        }
    )
    table = Dataset.from_dict(
        {
            "note": notes,
            "image": images,
            "label": labels.astype(np.int64),
            "image_finding": [DIAGNOSIS_FINDINGS[DIAGNOSES[label]][0] for label in labels],
            "text_finding": [DIAGNOSIS_FINDINGS[DIAGNOSES[label]][1] for label in labels],
        },
        features=features,
    )
    return _stratified_split(table, labels, test_size, rng)


def _clinical_note(
    text_finding: str, silent_rate: float, stray_rate: float, rng: np.random.Generator
) -> str:
    phrases: list[str] = []
    if text_finding != "none" and rng.random() >= silent_rate:
        words = SYMPTOM_WORDS[text_finding]
        phrases += [str(word) for word in rng.choice(words, int(rng.integers(1, 4)), False)]
    others = [finding for finding in SYMPTOM_WORDS if finding != text_finding]
    if rng.random() < 0.5:
        word = rng.choice(SYMPTOM_WORDS[others[int(rng.integers(len(others)))]])
        phrases.append(f"{rng.choice(['no', 'denies'])} {word}")
    if rng.random() < stray_rate:
        phrases.append(str(rng.choice(SYMPTOM_WORDS[others[int(rng.integers(len(others)))]])))
    filler = rng.choice(NOTE_FILLER_WORDS, int(rng.integers(5, 10)))
    phrases += [str(word) for word in filler]
    rng.shuffle(phrases)
    return " ".join(phrases)


def _chest_image(
    finding: str, rows: np.ndarray, columns: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    side = rows.shape[0]

    def blob(width: float, contrast: float) -> np.ndarray:
        centre = rng.uniform(0.2 * side, 0.8 * side, 2)
        distance = (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2
        return contrast * np.exp(-distance / (2 * width**2))

    image = rng.normal(0.0, 0.15, (side, side))
    for _ in range(int(rng.integers(1, 3))):
        image += blob(rng.uniform(3.0, 5.0), rng.uniform(-0.3, 0.3))
    if finding == "opacity":
        image += blob(rng.uniform(2.5, 4.0), rng.uniform(0.3, 0.8))
    elif finding == "nodule":
        image += blob(rng.uniform(0.6, 1.1), rng.uniform(0.4, 1.0))
    return image.astype(np.float32)


# Chapter 8: multimodal learning -----------------------------------------------------------------

#: The two visual attributes a :func:`digit_captions` caption names besides the digit, each
#: with its two values; the value's index is what the ``weight`` and ``slant`` columns hold.
CAPTION_ATTRIBUTES = {"weight": ("thin", "bold"), "slant": ("left", "right")}
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_WEIGHT_WORDS = (("thin", "light", "faint"), ("bold", "thick", "heavy"))
_SLANT_PHRASES = (
    ("leaning left", "slanted to the left", "tilted left"),
    ("leaning right", "slanted to the right", "tilted right"),
)
_CAPTION_TEMPLATES = (
    "a {weight} {digit} {slant}",
    "the digit {digit} written {weight} and {slant}",
    "{slant} , a {weight} {digit}",
    "handwritten {digit} , {weight} strokes , {slant}",
)


def digit_stroke_measures(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ink and slant of 8x8 digits: two arrays ``(n,)``.

    ``images``: ``(n, 64)`` pixel values (0..16, row-major). Ink is the sum of the pixel
    values; slant is how far the ink's centre moves right per row going up (the ink-weighted
    regression of column on row, negated), in pixels per row: positive for a digit that leans
    right, negative for one that leans left.
    """
    pixels = np.asarray(images, dtype=np.float64).reshape(len(images), 8, 8)
    rows, columns = np.mgrid[0:8, 0:8].astype(np.float64)
    ink = pixels.sum(axis=(1, 2))
    mass = np.maximum(ink, 1e-9)
    row_mean = (pixels * rows).sum(axis=(1, 2)) / mass
    column_mean = (pixels * columns).sum(axis=(1, 2)) / mass
    row_offset = rows[None] - row_mean[:, None, None]
    column_offset = columns[None] - column_mean[:, None, None]
    covariance = (pixels * row_offset * column_offset).sum(axis=(1, 2)) / mass
    row_variance = (pixels * row_offset**2).sum(axis=(1, 2)) / mass
    return ink, -covariance / np.maximum(row_variance, 1e-9)


def digit_captions(test_size: float = 0.2, seed: int = 0):
    """scikit-learn's 8x8 digits, each paired with a generated caption (chapter 8).

    Returns a ``datasets.DatasetDict`` (the ``train``/``test`` split of :func:`digits`) with
    columns ``image`` (64 floats, 0..16), ``label`` (the digit, a ``ClassLabel``), ``weight``
    (0 thin, 1 bold), ``slant`` (0 left, 1 right), ``ink`` and ``slant_value`` (the
    measurements of :func:`digit_stroke_measures`) and ``caption`` (str), e.g. "a thick seven
    tilted right" or "handwritten 7 , bold strokes , leaning right".

    The attributes are measured on the image and split at the median *of the same digit* over
    the whole collection, so every digit is bold half of the time and leans right half of the
    time, and neither attribute reveals the digit. A caption names the digit (as a numeral or a
    word), the weight (one of three synonyms) and the slant (one of three phrasings) in one of
    four templates, all drawn with ``seed``; so a search for a caption must read both the digit
    and the strokes, and only 1 image in about 4 of the right digit matches it.

    What it simulates: image-text pairs whose text describes the content (the digit) and the
    appearance (the strokes) in varied words, as alt texts and product titles do. What it does
    not: real language (a vocabulary of 40 words, no typos, no irrelevant words), captions
    that are wrong or describe something the image does not show, or attributes with clear
    boundaries (an image just above its digit's median ink is "bold" and looks like one just
    below: those pairs are ambiguous by construction).
    """
    from datasets import DatasetDict

    collection = digits(test_size=test_size, seed=seed)
    splits = {name: collection[name] for name in ("train", "test")}
    measures = {
        name: digit_stroke_measures(np.asarray(split["image"])) for name, split in splits.items()
    }
    labels = {name: np.asarray(split["label"]) for name, split in splits.items()}
    all_labels = np.concatenate(list(labels.values()))
    all_ink = np.concatenate([measures[name][0] for name in splits])
    all_slant = np.concatenate([measures[name][1] for name in splits])
    ink_median = np.array([np.median(all_ink[all_labels == digit]) for digit in range(10)])
    slant_median = np.array([np.median(all_slant[all_labels == digit]) for digit in range(10)])
    rng = np.random.default_rng(seed)
    result = {}
    for name, split in splits.items():
        ink, slant_value = measures[name]
        weight = (ink > ink_median[labels[name]]).astype(np.int64)
        slant = (slant_value > slant_median[labels[name]]).astype(np.int64)
        captions = [
            _digit_caption(int(digit), int(bold), int(right), rng)
            for digit, bold, right in zip(labels[name], weight, slant, strict=True)
        ]
        result[name] = (
            split.add_column("weight", weight.astype(np.int64).tolist())
            .add_column("slant", slant.astype(np.int64).tolist())
            .add_column("ink", ink.astype(np.float32).tolist())
            .add_column("slant_value", slant_value.astype(np.float32).tolist())
            .add_column("caption", captions)
        )
    return DatasetDict(result)


def _digit_caption(digit: int, bold: int, right: int, rng: np.random.Generator) -> str:
    template = _CAPTION_TEMPLATES[int(rng.integers(len(_CAPTION_TEMPLATES)))]
    digit_text = str(digit) if rng.random() < 0.5 else _DIGIT_WORDS[digit]
    return template.format(
        digit=digit_text,
        weight=str(rng.choice(_WEIGHT_WORDS[bold])),
        slant=str(rng.choice(_SLANT_PHRASES[right])),
    )
