"""A served model's folder on disk, without torch: names, manifest, vocabulary, verification.

What a server needs before it answers: :func:`load_artifact` checks every file of the folder
against the SHA-256 in ``manifest.json`` and returns the vocabulary and labels. The network
itself is :mod:`handbook.serving.model`'s (which imports torch, and this module): only the eager
backend loads it (``load_network(artifact)``), so an ONNX Runtime server is ready in about a
third of the time.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from handbook import config

PAD_ID = 0
UNKNOWN_ID = 1
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
ARTIFACT_FILES = (WEIGHTS, ONNX_FP32, ONNX_INT8)
_WORD = re.compile(r"[a-z]+")


class ArtifactError(RuntimeError):
    """A model folder that is missing, incomplete or altered since it was written."""


def default_model_dir() -> Path:
    """Where ``make serve`` and the chapter keep the model: ``<build dir>/models/topics``."""
    return config.build_dir() / "models" / "topics"


def words(text: str) -> list[str]:
    """Lower-cased alphabetic words of ``text``: the tokenizer's only rule."""
    return _WORD.findall(text.lower())


@dataclass
class Vocabulary:
    """Word -> id; 0 is padding, 1 stands for any word not seen in training."""

    tokens: list[str]
    max_tokens: int = 32

    def __post_init__(self):
        self.index = {token: position for position, token in enumerate(self.tokens)}

    @classmethod
    def from_texts(cls, texts: Sequence[str], max_tokens: int = 32) -> Vocabulary:
        seen = sorted({word for text in texts for word in words(text)})
        return cls(["<pad>", "<unk>", *seen], max_tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def coverage(self, text: str) -> dict[str, int | bool]:
        """What the model sees of ``text``: ``words`` found, ``unknown_words`` among them (all
        become one "unknown" token) and whether words past ``max_tokens`` were ``truncated``.
        The server returns it with every prediction, so that no input is cut silently."""
        found = words(text)
        return {
            "words": len(found),
            "unknown_words": sum(word not in self.index for word in found),
            "truncated": len(found) > self.max_tokens,
        }

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids ``(len(texts), longest)`` int64, padded with 0, cut at ``max_tokens``.

        A text with no word becomes one unknown token, so every row attends to something.
        """
        rows = [[self.index.get(w, UNKNOWN_ID) for w in words(t)][: self.max_tokens] for t in texts]
        rows = [row or [UNKNOWN_ID] for row in rows]
        ids = np.full((len(rows), max((len(row) for row in rows), default=1)), PAD_ID, np.int64)
        for position, row in enumerate(rows):
            ids[position, : len(row)] = row
        return ids


@dataclass
class Manifest:
    """What ``manifest.json`` holds."""

    version: str
    labels: list[str]
    vocabulary: list[str]
    model: dict
    metrics: dict
    sha256: dict[str, str]
    created_at: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    )


@dataclass
class Artifact:
    """A verified model folder: its manifest and vocabulary. The network is not loaded here
    (:func:`handbook.serving.model.load_network` does, with torch): the ONNX Runtime backends
    never ask for it, so a server of ``model.onnx`` or ``model.int8.onnx`` starts without torch.
    """

    directory: Path
    manifest: Manifest
    vocabulary: Vocabulary

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels

    @property
    def version(self) -> str:
        return self.manifest.version


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_version(
    weights_sha256: str, labels: list[str], vocabulary: list[str], model: dict
) -> str:
    """``topics-`` + 12 hex digits of a hash of the weights' hash, labels, vocabulary and sizes:
    the same model always has the same version, and an edited manifest no longer matches it."""
    content = json.dumps([weights_sha256, labels, vocabulary, model], sort_keys=True)
    return "topics-" + hashlib.sha256(content.encode()).hexdigest()[:12]


def read_manifest(directory: str | Path) -> Manifest:
    """The folder's manifest; :class:`ArtifactError` if it is missing or not a manifest."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            f"no model in {Path(directory)}: {MANIFEST} is missing. Build one with "
            f"`python -m handbook.serving --build-only --model-dir {directory}` (about 50 s)"
        )
    try:
        return Manifest(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as error:
        raise ArtifactError(f"{path} is not a model manifest: {error}") from error


def verify_artifact(directory: str | Path) -> Manifest:
    """Check every file against the manifest's SHA-256; return the manifest or raise."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    expected_version = model_version(
        manifest.sha256.get(WEIGHTS, ""), manifest.labels, manifest.vocabulary, manifest.model
    )
    if manifest.version != expected_version:
        raise ArtifactError(
            f"{directory / MANIFEST} was edited: its labels, vocabulary or sizes no longer match "
            f"version {manifest.version} (they give {expected_version}); rebuild the model folder"
        )
    for name in ARTIFACT_FILES:
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path} is missing; rebuild the model folder")
        expected = manifest.sha256.get(name)
        actual = sha256_of(path)
        if actual != expected:
            raise ArtifactError(
                f"{path} does not match its manifest (sha256 {actual[:12]}..., "
                f"expected {str(expected)[:12]}...): the file was altered or is from another build"
            )
    return manifest


def load_artifact(directory: str | Path | None = None) -> Artifact:
    """Verify a model folder (every file against the manifest's SHA-256) and load its manifest
    and vocabulary; :func:`handbook.serving.model.load_network` loads the network."""
    directory = Path(directory or default_model_dir())
    manifest = verify_artifact(directory)
    max_tokens = manifest.model.get("max_tokens", Vocabulary.max_tokens)
    return Artifact(directory, manifest, Vocabulary(manifest.vocabulary, max_tokens))
