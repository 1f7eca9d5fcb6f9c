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
