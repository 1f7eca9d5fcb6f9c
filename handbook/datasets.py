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
    from datasets import Dataset
    from num2words import num2words

    numbers = list(range(1, max_number + 1))
    table = Dataset.from_dict(
        {
            "number": numbers,
            "english": [num2words(number, lang="en") for number in numbers],
            "german": [num2words(number, lang="de") for number in numbers],
        }
    )
    return table.train_test_split(test_size=test_size, seed=seed)


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
    n: int = 4000,
    seed: int = 0,
    *,
    bias: float = 0.8,
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

    The default ``bias`` gives a historical pass-rate gap of about 20 percentage points, which
    a classifier trained on ``hired`` widens to about 28 (the article's figure).

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
