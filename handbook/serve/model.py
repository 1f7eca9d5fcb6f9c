"""The model the chapter serves: a small Transformer topic classifier, and its artifact on disk.

``build_artifact`` trains :class:`TopicClassifier` for a few seconds on the four-topic corpus of
:func:`handbook.datasets.noisy_text_classification` (clean labels, no duplicates) and writes one
folder that holds everything a server needs, and nothing it would have to unpickle:

- ``model.safetensors``: the weights (safetensors stores tensors only, no code);
- ``model.onnx``: the same network exported for ONNX Runtime (fp32);
- ``model.int8.onnx``: ONNX Runtime dynamic quantization of it (INT8 weights, chapter 4);
- ``manifest.json``: version, labels, vocabulary, network sizes, test accuracy, and the SHA-256
  of every file above. :func:`load_artifact` refuses a folder whose files do not match.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from handbook import attention, compress, config, datasets, train

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
class ModelConfig:
    """Sizes of :class:`TopicClassifier`."""

    vocab_size: int
    num_classes: int
    d_model: int = 256
    num_heads: int = 4
    d_ff: int = 1024
    num_layers: int = 6
    max_tokens: int = 32


class TopicClassifier(nn.Module):
    """Token ids ``(batch, seq)`` int64 -> class logits ``(batch, num_classes)``.

    Embedding * sqrt(d_model) + sinusoidal positions -> ``num_layers`` pre-norm
    :class:`handbook.attention.EncoderBlock` that ignore padding (id 0) -> mean over the real
    tokens -> LayerNorm -> linear. No input checks that read token values, so the same module
    exports to ONNX.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=PAD_ID)
        self.register_buffer(
            "positions",
            attention.sinusoidal_positional_encoding(cfg.max_tokens, cfg.d_model),
            persistent=False,
        )
        self.layers = nn.ModuleList(
            attention.EncoderBlock(
                cfg.d_model, cfg.num_heads, cfg.d_ff, dropout=0.0, norm_first=True
            )
            for _ in range(cfg.num_layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        real = tokens != PAD_ID  # (batch, seq)
        x = self.embedding(tokens) * math.sqrt(self.cfg.d_model)
        x = x + self.positions[: tokens.shape[1]]
        for layer in self.layers:
            x = layer(x, key_mask=real)
        weights = real.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(self.norm(pooled))


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
    """A verified model folder, loaded: the network (eval mode), its vocabulary and manifest."""

    directory: Path
    manifest: Manifest
    vocabulary: Vocabulary
    model: TopicClassifier

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


def topic_corpus(train_size: int, test_size: int, seed: int):
    """Clean four-topic sentences: ``(train texts, labels, test texts, labels, label names)``."""
    corpus = datasets.noisy_text_classification(
        train_size,
        seed,
        test_size=test_size,
        exact_duplicates=0.0,
        near_duplicates=0.0,
        label_noise=0.0,
    )
    names = corpus["train"].features["label"].names
    return (
        list(corpus["train"]["text"]),
        list(corpus["train"]["label"]),
        list(corpus["test"]["text"]),
        list(corpus["test"]["label"]),
        names,
    )


def train_classifier(
    cfg: ModelConfig,
    vocabulary: Vocabulary,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    epochs: int,
    seed: int,
) -> TopicClassifier:
    """Train a fresh :class:`TopicClassifier` with AdamW through :func:`handbook.train.fit`."""
    generator_seed = train.set_seed(seed).initial_seed()
    model = TopicClassifier(cfg)
    loader = train.make_loader(
        torch.from_numpy(vocabulary.encode(texts)),
        torch.tensor(list(labels)),
        batch_size=64,
        shuffle=True,
        seed=generator_seed,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    train.fit(
        model,
        loader,
        epochs=epochs,
        optimizer=optimizer,
        device="cpu",
        description="topic classifier",
    )
    return model.eval()


def export_artifact_onnx(model: TopicClassifier, directory: Path) -> None:
    """``model.onnx`` (fp32, batch and sequence length free) and ``model.int8.onnx``."""
    example = torch.ones(2, 8, dtype=torch.int64)
    compress.export_onnx(
        model,
        (example,),
        directory / ONNX_FP32,
        input_names=["tokens"],
        dynamic_axes={"tokens": {0: "batch", 1: "seq"}},
        dynamo=False,
    )
    compress.quantize_onnx_dynamic(directory / ONNX_FP32, directory / ONNX_INT8)


def build_artifact(
    directory: str | Path | None = None,
    *,
    train_size: int = 2000,
    test_size: int = 500,
    epochs: int = 3,
    seed: int = 0,
    cfg: dict | None = None,
) -> Path:
    """Train, export and write a model folder (see the module docstring); return its path.

    About 10-20 s on two CPU cores with the defaults. ``cfg`` overrides :class:`ModelConfig`
    sizes (``{"num_layers": 2}``). The version is :func:`model_version`: the same weights,
    labels and vocabulary always carry the same version.
    """
    from safetensors.torch import save_file

    directory = Path(directory or default_model_dir())
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train_texts, train_labels, test_texts, test_labels, names = topic_corpus(
        train_size, test_size, seed
    )
    vocabulary = Vocabulary.from_texts(train_texts)
    model_cfg = ModelConfig(len(vocabulary), len(names), **(cfg or {}))
    model = train_classifier(
        model_cfg, vocabulary, train_texts, train_labels, epochs=epochs, seed=seed
    )
    with torch.inference_mode():
        logits = model(torch.from_numpy(vocabulary.encode(test_texts)))
    accuracy = float((logits.argmax(-1) == torch.tensor(test_labels)).float().mean())
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, directory / WEIGHTS)
    export_artifact_onnx(model, directory)
    hashes = {name: sha256_of(directory / name) for name in ARTIFACT_FILES}
    manifest = Manifest(
        version=model_version(hashes[WEIGHTS], list(names), vocabulary.tokens, asdict(model_cfg)),
        labels=list(names),
        vocabulary=vocabulary.tokens,
        model=asdict(model_cfg),
        metrics={
            "test_accuracy": accuracy,
            "test_size": len(test_texts),
            "train_size": len(train_texts),
            "epochs": epochs,
            "seed": seed,
            "build_seconds": round(time.perf_counter() - started, 2),
        },
        sha256=hashes,
    )
    (directory / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    return directory


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
            f"`python -m handbook.serve --build-only --model-dir {directory}` (about 20 s)"
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
    """Verify and load a model folder. Weights are read with safetensors: no pickle, no code."""
    from safetensors.torch import load_file

    directory = Path(directory or default_model_dir())
    manifest = verify_artifact(directory)
    cfg = ModelConfig(**manifest.model)
    model = TopicClassifier(cfg)
    model.load_state_dict(load_file(directory / WEIGHTS))
    vocabulary = Vocabulary(manifest.vocabulary, cfg.max_tokens)
    return Artifact(directory, manifest, vocabulary, model.eval())
