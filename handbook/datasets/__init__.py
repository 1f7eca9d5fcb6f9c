"""Offline datasets: data that ships with a package or comes from a seeded generator.

Nothing here downloads. Every dataset is a HuggingFace ``datasets.Dataset`` /
``DatasetDict`` so that the chapter code also accepts the real corpora on a machine with a
network; asking for one of those without a network raises :class:`OfflineDataError`, which
names the offline stand-in.

One module per data source (``digit_images``, ``number_translation``, ``topics``, ``clicks``,
``news``, ``fraud``, ``diagnosis``, ``captions``, ``hiring``) on a small shared ``base``; the names
below are re-exported so that ``handbook.datasets.digits()`` works as before. A module's top level
only defines names (a test checks it), so that the execution cache of :mod:`handbook.cache` can
tell which chapter uses which source from the imports alone.
"""

from handbook.datasets.base import OFFLINE_ALTERNATIVES, OfflineDataError
from handbook.datasets.captions import CAPTION_ATTRIBUTES, digit_captions, digit_stroke_measures
from handbook.datasets.catalog import load
from handbook.datasets.clicks import click_logs
from handbook.datasets.diagnosis import (
    DIAGNOSES,
    DIAGNOSIS_FINDINGS,
    NOTE_FILLER_WORDS,
    SYMPTOM_WORDS,
    diagnosis_records,
)
from handbook.datasets.digit_images import DIGIT_CLASSES, digits, image_tensors, mnist
from handbook.datasets.fraud import FRAUD_EVENTS, FRAUD_PATTERNS, fraud_sequences
from handbook.datasets.hiring import HIRING_FEATURES, hiring
from handbook.datasets.news import NEWS_TOPICS, news_stream
from handbook.datasets.number_translation import number_words, number_words_sample, wmt14
from handbook.datasets.topics import (
    FILLER_WORDS,
    TOPIC_WORDS,
    malformed_records,
    noisy_text_classification,
    redundant_rows,
)

__all__ = [
    "CAPTION_ATTRIBUTES",
    "DIAGNOSES",
    "DIAGNOSIS_FINDINGS",
    "DIGIT_CLASSES",
    "FILLER_WORDS",
    "FRAUD_EVENTS",
    "FRAUD_PATTERNS",
    "HIRING_FEATURES",
    "NEWS_TOPICS",
    "NOTE_FILLER_WORDS",
    "OFFLINE_ALTERNATIVES",
    "OfflineDataError",
    "SYMPTOM_WORDS",
    "TOPIC_WORDS",
    "click_logs",
    "diagnosis_records",
    "digit_captions",
    "digit_stroke_measures",
    "digits",
    "fraud_sequences",
    "hiring",
    "image_tensors",
    "load",
    "malformed_records",
    "mnist",
    "news_stream",
    "noisy_text_classification",
    "number_words",
    "number_words_sample",
    "redundant_rows",
    "wmt14",
]
