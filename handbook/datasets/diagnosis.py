"""Patients with a clinical note and a chest image, each diagnosis separable by one modality or
both (chapter 6)."""

from __future__ import annotations

import numpy as np

from handbook.datasets.base import stratified_split

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
    return stratified_split(table, labels, test_size, rng)


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
