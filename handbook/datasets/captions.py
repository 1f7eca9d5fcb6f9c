"""8x8 digits with generated captions naming the digit, its stroke weight and slant (chapter 8)."""

from __future__ import annotations

import numpy as np

from handbook.datasets.digit_images import digits

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
