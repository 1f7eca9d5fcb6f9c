"""Chapter 3: data engineering. Clean, augment and bucket, each measured against known truth.

- **Validate** raw records before anything else (:func:`validate_records`): every rejected row
  keeps its reason, and rows in = rows kept + rows rejected.
- **Deduplicate**: exact duplicates by hashing a normalized text (:func:`exact_duplicates`),
  near duplicates by MinHash signatures of character shingles and locality-sensitive hashing
  (:class:`MinHasher`, :func:`near_duplicates`; Broder 1997).
- **Find label errors** from out-of-fold predicted probabilities with the confident-learning
  rule (:func:`confident_learning_issues`; Northcutt et al. 2021).
- **Augment**: synonym replacement with a pluggable synonym source (:func:`replace_synonyms`),
  back-translation with chapter 1's translator (:func:`back_translate`; Sennrich et al. 2016),
  negative sampling for a click-log recommender (:func:`sample_negatives`).
- **Bucket**: a batch sampler that groups similar lengths (:class:`BucketBatchSampler`) and a
  loader that trims every batch to its longest row (:func:`trimmed_loader`).
"""

from __future__ import annotations

import hashlib
import re
import string
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler, TensorDataset

from handbook import bench, train, translation

# Validation -----------------------------------------------------------------------------------


@dataclass
class ValidationReport:
    """Rows that passed validation and rows that did not, each with its reason.

    ``kept``: the valid records, in input order; ``rejected``: ``(index, reason, record)`` per
    rejected row, ``index`` counting from 0 in the input.
    """

    kept: list[dict]
    rejected: list[tuple[int, str, dict]]

    @property
    def reasons(self) -> dict[str, int]:
        """How many rows were rejected for each reason."""
        counts: dict[str, int] = {}
        for _, reason, _ in self.rejected:
            counts[reason] = counts.get(reason, 0) + 1
        return dict(sorted(counts.items()))

    def dataset(self, label_names: Sequence[str]):
        """The kept rows as a ``datasets.Dataset`` (``text`` string, ``label`` ClassLabel)."""
        from datasets import ClassLabel, Dataset, Features, Value

        features = Features({"text": Value("string"), "label": ClassLabel(names=list(label_names))})
        return Dataset.from_dict(
            {
                "text": [row["text"] for row in self.kept],
                "label": [row["label"] for row in self.kept],
            },
            features=features,
        )


def validation_error(record: Mapping, num_labels: int) -> str | None:
    """Why ``record`` is malformed (one short reason), or None when it is a valid
    ``{"text": non-empty str, "label": int in [0, num_labels)}``."""
    if "text" not in record or record["text"] is None:
        return "missing text"
    if not isinstance(record["text"], str):
        return "text not a string"
    if not record["text"].strip():
        return "empty text"
    label = record.get("label")
    if label is None:
        return "missing label"
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        return "label not an integer"
    if not 0 <= label < num_labels:
        return "label out of range"
    return None


def validate_records(records: Iterable[Mapping], num_labels: int) -> ValidationReport:
    """Split raw records into valid and rejected ones; nothing is dropped silently.

    Raises if the count does not balance (rows in = kept + rejected), which would mean a bug.
    """
    kept, rejected, count = [], [], 0
    for index, record in enumerate(records):
        count += 1
        reason = validation_error(record, num_labels)
        if reason is None:
            kept.append({"text": record["text"], "label": int(record["label"])})
        else:
            rejected.append((index, reason, dict(record)))
    if count != len(kept) + len(rejected):
        raise RuntimeError(f"{count} rows in, {len(kept)} kept + {len(rejected)} rejected")
    return ValidationReport(kept, rejected)


# Exact duplicates -----------------------------------------------------------------------------

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Unicode NFKC, lower case, punctuation removed, runs of white space made one space."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACES.sub(" ", _PUNCTUATION.sub("", text)).strip()


def text_hash(text: str) -> str:
    """SHA-1 of the normalized text: 40 hex characters, equal for texts equal after
    normalization (a collision between different texts has probability about 2^-160)."""
    return hashlib.sha1(normalize_text(text).encode("utf-8")).hexdigest()


def exact_duplicates(texts: Sequence[str]) -> np.ndarray:
    """For each text, the index of the first earlier text with the same normalized form, or -1.

    Returns ``(n,)`` int64; rows with a value >= 0 are the ones to drop.
    """
    first: dict[str, int] = {}
    result = np.full(len(texts), -1, dtype=np.int64)
    for index, text in enumerate(texts):
        key = text_hash(text)
        if key in first:
            result[index] = first[key]
        else:
            first[key] = index
    return result


# Near duplicates: shingles, Jaccard, MinHash, LSH ---------------------------------------------


def shingles(text: str, k: int = 5) -> set[str]:
    """The set of character ``k``-grams of the normalized text (one shingle, the whole text,
    when it is shorter than ``k``; none when it is empty)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    text = normalize_text(text)
    if len(text) <= k:
        return {text} if text else set()
    return {text[start : start + k] for start in range(len(text) - k + 1)}


def jaccard(first: set, second: set) -> float:
    """``|A ∩ B| / |A ∪ B|``; 1.0 for two empty sets (they are equal)."""
    union = len(first | second)
    return 1.0 if union == 0 else len(first & second) / union


_MERSENNE_PRIME = np.uint64((1 << 61) - 1)
_MAX_HASH = np.uint64((1 << 32) - 1)


def _hash32(item: str) -> int:
    """First 4 bytes of SHA-1, little-endian: the 32-bit base hash datasketch uses too."""
    return int.from_bytes(hashlib.sha1(item.encode("utf-8")).digest()[:4], "little")


class MinHasher:
    """MinHash signatures: ``num_perm`` random hash functions, each keeping the minimum.

    Function ``i`` maps a shingle's 32-bit hash ``x`` to ``((a_i x + b_i) mod p) mod 2^32``
    with ``p = 2^61 - 1`` and ``a_i, b_i`` drawn from ``seed``; for two sets the probability
    that their minima agree is their Jaccard similarity. The arithmetic and the random draws
    follow ``datasketch.MinHash(scheme="legacy")``, so signatures agree bit for bit.
    """

    def __init__(self, num_perm: int = 128, seed: int = 1):
        if num_perm < 1:
            raise ValueError(f"num_perm must be at least 1, got {num_perm}")
        generator = np.random.RandomState(seed)
        pairs = [
            (
                generator.randint(1, _MERSENNE_PRIME, dtype=np.uint64),
                generator.randint(0, _MERSENNE_PRIME, dtype=np.uint64),
            )
            for _ in range(num_perm)
        ]
        self.a, self.b = np.array(pairs, dtype=np.uint64).T
        self.num_perm = num_perm

    def signature(self, items: Iterable[str]) -> np.ndarray:
        """``(num_perm,)`` uint64 minima over ``items`` (all ``2^32 - 1`` for an empty set)."""
        hashes = np.array([_hash32(item) for item in items], dtype=np.uint64)
        if hashes.size == 0:
            return np.full(self.num_perm, _MAX_HASH, dtype=np.uint64)
        with np.errstate(over="ignore"):  # uint64 wrap-around is part of the recipe
            values = (self.a[:, None] * hashes[None, :] + self.b[:, None]) % _MERSENNE_PRIME
        return np.bitwise_and(values, _MAX_HASH).min(axis=1)

    def signatures(self, sets: Sequence[Iterable[str]]) -> np.ndarray:
        """``(n, num_perm)`` signatures of ``n`` sets."""
        return (
            np.stack([self.signature(items) for items in sets])
            if len(sets)
            else np.zeros((0, self.num_perm), dtype=np.uint64)
        )


def estimated_jaccard(first: np.ndarray, second: np.ndarray) -> float:
    """The share of signature positions on which two MinHash signatures agree."""
    return float(np.mean(first == second))


def lsh_candidate_pairs(signatures: np.ndarray, bands: int) -> set[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, whose signatures agree on every row of at least one band.

    The signature ``(n, num_perm)`` is cut into ``bands`` bands of ``r = num_perm / bands`` rows;
    two sets of Jaccard similarity ``s`` become candidates with probability ``1 - (1 - s^r)^b``.
    """
    n, num_perm = signatures.shape
    if bands < 1 or num_perm % bands:
        raise ValueError(f"bands must divide the signature length {num_perm}, got {bands}")
    rows = num_perm // bands
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = {}
        for index in range(n):
            key = signatures[index, band * rows : (band + 1) * rows].tobytes()
            buckets.setdefault(key, []).append(index)
        for members in buckets.values():
            pairs.update(
                (members[i], members[j])
                for i in range(len(members))
                for j in range(i + 1, len(members))
            )
    return pairs


def near_duplicates(
    texts: Sequence[str],
    *,
    threshold: float = 0.6,
    k: int = 5,
    num_perm: int = 128,
    bands: int = 32,
    seed: int = 1,
) -> np.ndarray:
    """For each text, the first earlier text of its near-duplicate cluster, or -1.

    Candidates come from LSH on MinHash signatures of character ``k``-shingles; a candidate
    pair is kept when its exact shingle Jaccard similarity is at least ``threshold``; clusters
    are the connected components of the kept pairs. Returns ``(n,)`` int64.
    """
    sets = [shingles(text, k) for text in texts]
    signatures = MinHasher(num_perm, seed).signatures(sets)
    parent = list(range(len(texts)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for first, second in sorted(lsh_candidate_pairs(signatures, bands)):
        if jaccard(sets[first], sets[second]) >= threshold:
            low, high = sorted((root(first), root(second)))
            parent[high] = low
    roots = np.array([root(index) for index in range(len(texts))], dtype=np.int64)
    return np.where(roots == np.arange(len(texts)), -1, roots)


@dataclass
class DetectionScores:
    """Precision, recall and F1 of a detector's flags against the known truth."""

    precision: float
    recall: float
    f1: float
    flagged: int
    true: int


def detection_scores(flagged: np.ndarray, truth: np.ndarray) -> DetectionScores:
    """Score boolean flags ``(n,)`` against boolean truth ``(n,)`` (precision 1 if none
    flagged, recall 1 if nothing to find)."""
    flagged, truth = np.asarray(flagged, dtype=bool), np.asarray(truth, dtype=bool)
    if flagged.shape != truth.shape:
        raise ValueError(
            f"expected flags and truth of one shape, got {flagged.shape}, {truth.shape}"
        )
    hits = int((flagged & truth).sum())
    precision = hits / flagged.sum() if flagged.any() else 1.0
    recall = hits / truth.sum() if truth.any() else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return DetectionScores(
        float(precision), float(recall), float(f1), int(flagged.sum()), int(truth.sum())
    )


# Label errors: confident learning -------------------------------------------------------------


def text_classifier(seed: int = 0):
    """TF-IDF of words + multinomial logistic regression (scikit-learn)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 1), sublinear_tf=True),
        LogisticRegression(max_iter=2000, C=4.0, random_state=seed),
    )


def out_of_fold_probabilities(
    texts: Sequence[str], labels: Sequence[int], *, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """``(n, classes)`` probabilities, each row from a classifier that never saw that row."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(
        text_classifier(seed), list(texts), np.asarray(labels), cv=splitter, method="predict_proba"
    )


def confident_learning_issues(
    labels: Sequence[int], probabilities: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose given label disagrees with a confidently predicted one (Northcutt et al.).

    ``probabilities`` ``(n, k)`` must be out-of-fold. Class ``j``'s threshold ``t_j`` is the
    mean predicted probability of ``j`` over the rows labelled ``j``; row ``i`` is *confidently*
    of class ``j`` when ``p_ij >= t_j`` (the most probable such class when several are). A row
    is an issue when it is confidently of some class and that class is not its label.
    Returns ``(issues (n,) bool, confident_class (n,) int, -1 where no class is confident)``.
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise ValueError(
            f"expected probabilities (n, classes) for n={len(labels)} labels, "
            f"got {probabilities.shape}"
        )
    classes = probabilities.shape[1]
    thresholds = np.array(
        [
            probabilities[labels == j, j].mean() if np.any(labels == j) else np.inf
            for j in range(classes)
        ]
    )
    # the small tolerance makes a probability equal to its threshold count as confident
    confident = probabilities >= thresholds - 1e-6
    masked = np.where(confident, probabilities, -np.inf)
    confident_class = np.where(confident.any(axis=1), masked.argmax(axis=1), -1)
    issues = (confident_class >= 0) & (confident_class != labels)
    return issues, confident_class


def accuracy_after_training(
    train_texts: Sequence[str], train_labels: Sequence[int], test_texts, test_labels, seed: int = 0
) -> float:
    """Test accuracy of :func:`text_classifier` trained on the given rows."""
    model = text_classifier(seed).fit(list(train_texts), np.asarray(train_labels))
    return float(np.mean(model.predict(list(test_texts)) == np.asarray(test_labels)))


# Synonym replacement --------------------------------------------------------------------------

#: The offline synonym source: groups of interchangeable words (every word of a group is a
#: synonym of the others). Written for this book's corpora and everyday news English; a real
#: project would use WordNet (:func:`wordnet_synonyms`) or a thesaurus for its domain.
SYNONYM_GROUPS = (
    ("match", "game", "fixture"),
    ("team", "side", "squad"),
    ("won", "triumphed", "prevailed"),
    ("coach", "manager", "trainer"),
    ("goal", "score", "point"),
    ("league", "championship", "tournament"),
    ("player", "athlete", "striker"),
    ("stadium", "arena", "ground"),
    ("rain", "showers", "drizzle"),
    ("storm", "gale", "tempest"),
    ("cold", "chilly", "freezing"),
    ("forecast", "outlook", "prediction"),
    ("sunny", "bright", "clear"),
    ("wind", "breeze", "gust"),
    ("temperature", "heat", "warmth"),
    ("cloud", "fog", "mist"),
    ("profit", "earnings", "revenue"),
    ("firm", "corporation", "company"),
    ("shares", "stocks", "equities"),
    ("market", "exchange", "trading"),
    ("investor", "shareholder", "backer"),
    ("bank", "lender", "creditor"),
    ("growth", "expansion", "increase"),
    ("deal", "merger", "acquisition"),
    ("software", "program", "application"),
    ("computer", "laptop", "device"),
    ("internet", "web", "online"),
    ("chip", "processor", "semiconductor"),
    ("startup", "venture"),
    ("data", "information", "records"),
    ("robot", "machine", "automaton"),
    ("update", "release", "upgrade"),
    ("said", "stated", "reported"),
    ("announced", "declared", "revealed"),
    ("many", "numerous", "several"),
    ("nearly", "almost", "about"),
    ("city", "town"),
    ("new", "fresh", "recent"),
    ("people", "residents", "citizens"),
    ("big", "large", "huge"),
    ("small", "little", "tiny"),
    ("fast", "quick", "rapid"),
    ("good", "fine", "great"),
    ("bad", "poor", "awful"),
)


def lexicon_synonyms(groups: Iterable[Sequence[str]] = SYNONYM_GROUPS) -> Callable[[str], list]:
    """A synonym source from groups of words: ``source("game") == ["match", "fixture"]``."""
    table: dict[str, set[str]] = {}
    for group in groups:
        for word in group:
            table.setdefault(word, set()).update(other for other in group if other != word)
    return lambda word: sorted(table.get(word.lower(), ()))


def wordnet_synonyms() -> Callable[[str], list]:
    """A synonym source from WordNet through NLTK: single-word lemmas of the word's synsets.

    Raises ``LookupError`` (naming the offline default) when NLTK or its WordNet data is
    missing, as it is on a machine that cannot run ``nltk.download("wordnet")``.
    """
    try:
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
    except (ImportError, LookupError) as error:
        raise LookupError(
            "WordNet is not available (pip install nltk, then nltk.download('wordnet')); "
            "use handbook.data.lexicon_synonyms(), the offline lexicon, instead"
        ) from error

    def source(word: str) -> list:
        names = {
            lemma.name().lower()
            for synset in wordnet.synsets(word)
            for lemma in synset.lemmas()
            if "_" not in lemma.name()
        }
        return sorted(names - {word.lower()})

    return source


def synonym_source(name: str = "auto") -> Callable[[str], list]:
    """``"wordnet"``, ``"lexicon"``, or ``"auto"``: WordNet where installed, else the lexicon."""
    if name == "lexicon":
        return lexicon_synonyms()
    if name == "wordnet":
        return wordnet_synonyms()
    if name == "auto":
        try:
            return wordnet_synonyms()
        except LookupError:
            return lexicon_synonyms()
    raise ValueError(f"unknown synonym source {name!r}: expected 'auto', 'wordnet' or 'lexicon'")


def replace_synonyms(
    text: str, synonyms: Callable[[str], Sequence[str]], rng: np.random.Generator, rate: float = 0.2
) -> str:
    """Replace ``max(1, round(rate * words))`` words that have synonyms by a random synonym.

    Words are split on white space; a trailing punctuation mark stays where it was.
    """
    words = text.split()
    replaceable = [i for i, word in enumerate(words) if synonyms(word.strip(string.punctuation))]
    if not replaceable:
        return text
    count = min(len(replaceable), max(1, round(rate * len(words))))
    for index in rng.choice(replaceable, count, replace=False):
        word = words[index]
        core = word.strip(string.punctuation)
        replacement = str(rng.choice(synonyms(core)))
        if core[:1].isupper():
            replacement = replacement.capitalize()
        words[index] = word.replace(core, replacement)
    return " ".join(words)


def augment_with_synonyms(
    texts: Sequence[str],
    labels: Sequence[int],
    synonyms: Callable[[str], Sequence[str]],
    *,
    copies: int = 1,
    rate: float = 0.2,
    seed: int = 0,
) -> tuple[list[str], list[int]]:
    """The original rows followed by ``copies`` synonym-replaced copies of each, same labels."""
    rng = np.random.default_rng(seed)
    new_texts, new_labels = list(texts), list(labels)
    for _ in range(copies):
        new_texts += [replace_synonyms(text, synonyms, rng, rate) for text in texts]
        new_labels += list(labels)
    return new_texts, new_labels


# Length bucketing -----------------------------------------------------------------------------


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices whose lengths are close, in a random order of batches.

    Each epoch: shuffle all indices, cut them into pools of ``pool_batches * batch_size``, sort
    each pool by length (ties in random order), cut it into batches, shuffle the batches. A pool
    of the whole data set gives the least padding; smaller pools keep more randomness in which
    examples meet. The last batch of a pool may be smaller; no index is dropped or repeated.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, *, pool_batches: int = 100, seed: int = 0
    ):
        if batch_size < 1 or pool_batches < 1:
            raise ValueError(
                f"batch_size and pool_batches must be positive, got {batch_size}, {pool_batches}"
            )
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.pool_batches = pool_batches
        self.seed = seed
        self.epoch = 0

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches of ``epoch`` (deterministic given ``seed`` and ``epoch``)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        pool_size = self.pool_batches * self.batch_size
        batches = []
        for start in range(0, len(order), pool_size):
            pool = order[start : start + pool_size]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches += [
                pool[i : i + self.batch_size].tolist() for i in range(0, len(pool), self.batch_size)
            ]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self):
        batches = self.batches(self.epoch)
        self.epoch += 1
        return iter(batches)

    def __len__(self) -> int:
        pool_size = self.pool_batches * self.batch_size
        full, rest = divmod(len(self.lengths), pool_size)
        return full * self.pool_batches + -(-rest // self.batch_size)


def random_batches(count: int, batch_size: int, seed: int = 0) -> BatchSampler:
    """The usual batching: a seeded random permutation cut into batches."""
    generator = torch.Generator().manual_seed(seed)
    return BatchSampler(RandomSampler(range(count), generator=generator), batch_size, False)


def padding_ratio(batches: Iterable[Sequence[int]], *lengths: Sequence[int]) -> float:
    """Share of padding among all positions when each batch is padded to its longest row:

    ``sum_b sum_i (max_{j in b} l_j - l_i) / sum_b |b| max_{j in b} l_j``, summed over every
    length array given (e.g. source and target lengths).
    """
    arrays = [np.asarray(values) for values in lengths]
    padded = real = 0
    for batch in batches:
        for values in arrays:
            chunk = values[list(batch)]
            if len(chunk):
                padded += int(chunk.max()) * len(chunk)
                real += int(chunk.sum())
    return 0.0 if padded == 0 else 1.0 - real / padded


def row_lengths(tokens: torch.Tensor, pad_value: int) -> torch.Tensor:
    """Length of each right-padded row ``(n, width)`` -> ``(n,)``: one past its last non-pad."""
    real = tokens != pad_value
    positions = torch.arange(1, tokens.shape[1] + 1).expand_as(tokens)
    return (positions * real).max(dim=1).values


class TrimPadding:
    """Collate function: stack rows, then cut each tensor to its batch's longest row.

    ``pad_values``: one per tensor, or None for a tensor that is not cut (e.g. class labels).
    ``groups`` (optional, one id per tensor): tensors with the same id are cut to one common
    width, as a decoder's input and its shifted targets must be.
    """

    def __init__(self, pad_values: Sequence[int | None], groups: Sequence[int] | None = None):
        self.pad_values = list(pad_values)
        self.groups = list(range(len(self.pad_values))) if groups is None else list(groups)
        if len(self.groups) != len(self.pad_values):
            raise ValueError(
                f"expected one group per tensor, got {len(self.groups)} groups "
                f"for {len(self.pad_values)} pad values"
            )

    def __call__(self, rows):
        stacked = [torch.stack(column) for column in zip(*rows, strict=True)]
        widths: dict[int, int] = {}
        for tensor, pad, group in zip(stacked, self.pad_values, self.groups, strict=True):
            if pad is not None and tensor.ndim == 2 and len(tensor):
                longest = int(row_lengths(tensor, pad).max())
                widths[group] = max(widths.get(group, 1), longest)
        return tuple(
            tensor[:, : widths[group]] if pad is not None and group in widths else tensor
            for tensor, pad, group in zip(stacked, self.pad_values, self.groups, strict=True)
        )


def trimmed_loader(
    *tensors: torch.Tensor,
    pad_values: Sequence[int | None],
    batch_sampler: Iterable[Sequence[int]],
    groups: Sequence[int] | None = None,
) -> DataLoader:
    """A loader over aligned right-padded tensors whose batches come from ``batch_sampler``
    and are trimmed to their longest row (what ``train.fit`` expects: inputs then targets)."""
    return DataLoader(
        TensorDataset(*tensors),
        batch_sampler=batch_sampler,
        collate_fn=TrimPadding(pad_values, groups),
        num_workers=0,
    )


# Translation with scarce data: back-translation -----------------------------------------------


def parallel_tensors(
    sources: Sequence[str], targets: Sequence[str], source_tokenizer, target_tokenizer
):
    """``(source, target_in, target_out)`` ids for sentence pairs, as in chapter 1:
    ``target_in = [BOS] y``, ``target_out = y [EOS]`` with padding set to ``IGNORE_INDEX``."""
    pad = source_tokenizer.token_to_id(translation.PAD)
    source = translation.encode(list(sources), source_tokenizer, pad_id=pad)
    target = translation.encode(
        list(targets), target_tokenizer, add_bos=True, add_eos=True, pad_id=pad
    )
    target_in, target_out = target[:, :-1], target[:, 1:].clone()
    target_out[target_out == pad] = train.IGNORE_INDEX
    return source, target_in, target_out


def small_translator(source_vocab_size: int, target_vocab_size: int, pad_id: int = 0):
    """Chapter 1's translator: d_model 64, 4 heads, 2 + 2 layers, d_ff 128."""
    from handbook.models import Transformer

    return Transformer(
        source_vocab_size,
        target_vocab_size,
        d_model=64,
        num_heads=4,
        num_encoder_layers=2,
        num_decoder_layers=2,
        d_ff=128,
        pad_id=pad_id,
    )


def translation_loader(
    tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    batch_size: int,
    bucketed: bool,
    seed: int = 0,
    pad_id: int = 0,
) -> DataLoader:
    """A trimmed loader of ``(source, target_in, target_out)``, bucketed or random batches."""
    source, target_in, target_out = tensors
    if bucketed:
        lengths = (row_lengths(source, pad_id) + row_lengths(target_in, pad_id)).numpy()
        sampler = BucketBatchSampler(lengths, batch_size, seed=seed)
    else:
        sampler = random_batches(len(source), batch_size, seed)
    return trimmed_loader(
        source,
        target_in,
        target_out,
        pad_values=(pad_id, pad_id, train.IGNORE_INDEX),
        groups=(0, 1, 1),
        batch_sampler=sampler,
    )


def train_translator(
    sources: Sequence[str],
    targets: Sequence[str],
    source_tokenizer,
    target_tokenizer,
    *,
    steps: int,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
    description: str = "translator",
):
    """Train :func:`small_translator` on pairs for about ``steps`` optimizer steps (whole
    epochs, at least one) with bucketed batches; returns ``(model, history)``."""
    tensors = parallel_tensors(sources, targets, source_tokenizer, target_tokenizer)
    pad = source_tokenizer.token_to_id(translation.PAD)
    train.set_seed(seed)
    loader = translation_loader(
        tensors, batch_size=batch_size, bucketed=True, seed=seed, pad_id=pad
    )
    epochs = max(1, round(steps / len(loader)))
    model = small_translator(
        source_tokenizer.get_vocab_size(), target_tokenizer.get_vocab_size(), pad
    )
    # foreach: one call per operation for all the tensors, where the CPU default loops over them
    # in Python; the same numbers, bit for bit
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, foreach=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    history = train.fit(
        model,
        loader,
        epochs=epochs,
        optimizer=optimizer,
        scheduler=scheduler,
        loss_fn=translation.sequence_loss,
        device="cpu",
        description=description,
    )
    return model, history


def translate_with(model, texts: Sequence[str], source_tokenizer, target_tokenizer) -> list[str]:
    """Greedy translations of ``texts`` with any pair of tokenizers (either direction)."""
    task = translation.TranslationTask(None, source_tokenizer, target_tokenizer)
    return translation.translate(model, list(texts), task)


def back_translate(
    reverse_model, target_texts: Sequence[str], target_tokenizer, source_tokenizer
) -> list[str]:
    """Synthetic sources for monolingual target-language texts (Sennrich et al. 2016).

    ``reverse_model`` translates target -> source (here German -> English); the returned
    sources, paired with the untouched ``target_texts``, are synthetic parallel data for the
    source -> target model. The noise is on the source side, so the target side the decoder
    learns to produce is real language.
    """
    return translate_with(reverse_model, target_texts, target_tokenizer, source_tokenizer)


def round_trip(
    source_texts: Sequence[str],
    forward_model,
    reverse_model,
    source_tokenizer,
    pivot_tokenizer,
) -> list[str]:
    """Paraphrases of ``source_texts`` through a pivot language (here English -> German ->
    English): ``forward_model`` translates source -> pivot, ``reverse_model`` pivot -> source.

    Paired with the real targets of ``source_texts``, the paraphrases are extra training pairs
    whose noise is on the source side, as in back-translation; a text that comes back unchanged
    adds only a copy. Returns one paraphrase per text, in order.
    """
    pivot = translate_with(forward_model, source_texts, source_tokenizer, pivot_tokenizer)
    return translate_with(reverse_model, pivot, pivot_tokenizer, source_tokenizer)


# Recommender: matrix factorization and negative sampling --------------------------------------


class MatrixFactorization(nn.Module):
    """Click logit of (user, item): ``b + b_u + b_i + <p_u, q_i>`` with ``factors`` dimensions.

    Inputs: user ids ``(batch,)`` and item ids ``(batch,)``; output: logits ``(batch,)``.
    """

    def __init__(self, n_users: int, n_items: int, factors: int = 8):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, factors)
        self.item_factors = nn.Embedding(n_items, factors)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.bias = nn.Parameter(torch.zeros(1))
        for embedding in (self.user_factors, self.item_factors):
            nn.init.normal_(embedding.weight, std=0.1)
        for embedding in (self.user_bias, self.item_bias):
            nn.init.zeros_(embedding.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors(users) * self.item_factors(items)).sum(dim=-1)
        return self.bias + self.user_bias(users)[:, 0] + self.item_bias(items)[:, 0] + dot


def sample_negatives(
    users: np.ndarray,
    items: np.ndarray,
    clicked: np.ndarray,
    n_items: int,
    *,
    per_click: int,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Negative sampling: for each click, ``per_click`` items that user was never shown,
    drawn uniformly and labelled 0. Returns the logs with those rows appended."""
    rng = np.random.default_rng(seed)
    seen: dict[int, set[int]] = {}
    for user, item in zip(users.tolist(), items.tolist(), strict=True):
        seen.setdefault(user, set()).add(item)
    new_users, new_items = [], []
    for user in users[clicked == 1].tolist():
        drawn = 0
        while drawn < per_click:
            item = int(rng.integers(n_items))
            if item not in seen[user]:
                new_users.append(user)
                new_items.append(item)
                drawn += 1
    return (
        np.concatenate([users, np.array(new_users, dtype=users.dtype)]),
        np.concatenate([items, np.array(new_items, dtype=items.dtype)]),
        np.concatenate([clicked, np.zeros(len(new_users), dtype=clicked.dtype)]),
    )


def train_recommender(
    users: np.ndarray,
    items: np.ndarray,
    clicked: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    factors: int = 8,
    steps: int = 200,
    l2: float = 0.03,
    seed: int = 0,
) -> MatrixFactorization:
    """Fit :class:`MatrixFactorization` to the clicks: full-batch Adam on the binary
    cross-entropy plus ``l2`` times the mean squared norm of the factors used (the logs are
    small, so one batch is the whole log)."""
    train.set_seed(seed)
    model = MatrixFactorization(n_users, n_items, factors)
    user_ids, item_ids = torch.as_tensor(users), torch.as_tensor(items)
    targets = torch.as_tensor(clicked, dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(user_ids, item_ids), targets)
        norms = model.user_factors(user_ids).pow(2).sum(1) + model.item_factors(item_ids).pow(
            2
        ).sum(1)
        (loss + l2 * norms.mean()).backward()
        optimizer.step()
    return model


@torch.no_grad()
def click_scores(model: MatrixFactorization, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Predicted click logits ``(n,)`` (rank order is what AUC needs)."""
    model.eval()
    return model(torch.as_tensor(users), torch.as_tensor(items)).numpy()


# Benchmarks -----------------------------------------------------------------------------------


@dataclass
class EpochMeasurement:
    """One training epoch: wall time, padding share and real tokens per second."""

    seconds: float
    padding: float
    tokens: int
    batches: list[list[int]] = field(default_factory=list, repr=False)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


def measure_epoch(
    model: nn.Module,
    tensors: tuple[torch.Tensor, ...],
    *,
    batch_size: int,
    bucketed: bool,
    seed: int = 0,
    pad_id: int = 0,
) -> EpochMeasurement:
    """Train ``model`` for one epoch on ``(source, target_in, target_out)``; time it."""
    source_lengths = row_lengths(tensors[0], pad_id).numpy()
    target_lengths = row_lengths(tensors[1], pad_id).numpy()
    if bucketed:
        sampler = BucketBatchSampler(source_lengths + target_lengths, batch_size, seed=seed)
        batches = sampler.batches(0)
    else:
        batches = [list(batch) for batch in random_batches(len(tensors[0]), batch_size, seed)]
    loader = trimmed_loader(
        *tensors,
        pad_values=(pad_id, pad_id, train.IGNORE_INDEX),
        groups=(0, 1, 1),
        batch_sampler=batches,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    train.fit(
        model,
        loader,
        epochs=1,
        optimizer=optimizer,
        loss_fn=translation.sequence_loss,
        device="cpu",
        progress=False,
    )
    seconds = time.perf_counter() - start
    return EpochMeasurement(
        seconds,
        padding_ratio(batches, source_lengths, target_lengths),
        int(source_lengths.sum() + target_lengths.sum()),
        batches,
    )


def compare_epochs(
    model: nn.Module,
    tensors: tuple[torch.Tensor, ...],
    *,
    batch_size: int,
    rounds: int,
    seed: int = 0,
    pad_id: int = 0,
    budget_s: float = 0.0,
) -> tuple[dict[str, EpochMeasurement], bench.Ratio, list[bench.Measurement]]:
    """Random against length-bucketed batches: one epoch of each per round, interleaved
    (:func:`handbook.bench.compare`), at least ``rounds`` rounds.

    Returns the last epoch of each (``"random"``, ``"bucketed"``: padding, batches, time), the
    bucketed epoch's speed-up with its interquartile range over rounds, and the timing rows.
    """
    last: dict[str, EpochMeasurement] = {}

    def epoch(name: str) -> Callable[[], None]:
        def run() -> None:
            last[name] = measure_epoch(
                model,
                tensors,
                batch_size=batch_size,
                bucketed=name == "bucketed",
                seed=seed,
                pad_id=pad_id,
            )

        return run

    rows = bench.compare(
        f"translator epoch, batch {batch_size}",
        {"random": epoch("random"), "bucketed": epoch("bucketed")},
        baseline="random",
        warmup=0,
        repeats=rounds,
        budget_s=budget_s,
    )
    for row in rows:
        row.detail = f"padding {100 * last[row.variant].padding:.1f}%"
    return last, bench.speedup(rows[0], rows[1]), rows


def benchmarks(smoke: bool = False) -> list[bench.Measurement]:
    """``make bench``: one epoch of chapter 1's translator, random vs length-bucketed batches
    (batch 128, batches trimmed to their longest row in both cases)."""
    from handbook import datasets

    data = datasets.number_words(max_number=999 if smoke else 9999, seed=0)
    task = translation.build_task(data)
    tensors = translation.teacher_forcing_tensors(task, "train")
    model = small_translator(task.source_vocab_size, task.target_vocab_size, task.pad_id)
    measure_epoch(model, tuple(tensor[:256] for tensor in tensors), batch_size=128, bucketed=False)
    return compare_epochs(model, tensors, batch_size=128, rounds=1 if smoke else 3)[2]
