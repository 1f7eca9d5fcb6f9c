"""The model the chapter serves: a small Transformer topic classifier, and its artifact on disk.

``build_artifact`` trains :class:`TopicClassifier` for a few seconds on the four-topic corpus of
:func:`handbook.datasets.noisy_text_classification` (clean labels, no duplicates) and writes one
folder that holds everything a server needs, and nothing it would have to unpickle:

- ``model.safetensors``: the weights (safetensors stores tensors only, no code);
- ``model.onnx``: the same network exported for ONNX Runtime (fp32);
- ``model.int8.onnx``: ONNX Runtime dynamic quantization of it (INT8 weights, chapter 4);
- ``manifest.json``: version, labels, vocabulary, network sizes, test accuracy, and the SHA-256
  of every file above. ``load_artifact`` refuses a folder whose files do not match.

The folder's names, manifest, vocabulary and checks (:func:`load_artifact`) live in
:mod:`handbook.serving.artifact`, which does not import torch: a server of the ONNX files never
loads it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from handbook import compression, datasets, models, train
from handbook.serving.artifact import (
    ARTIFACT_FILES,
    MANIFEST,
    ONNX_FP32,
    ONNX_INT8,
    PAD_ID,
    WEIGHTS,
    Artifact,
    Manifest,
    Vocabulary,
    default_model_dir,
    model_version,
    sha256_of,
)


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
    :class:`handbook.models.EncoderBlock` that ignore padding (id 0) -> mean over the real
    tokens -> LayerNorm -> linear. No input checks that read token values, so the same module
    exports to ONNX.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=PAD_ID)
        self.register_buffer(
            "positions",
            models.sinusoidal_positional_encoding(cfg.max_tokens, cfg.d_model),
            persistent=False,
        )
        self.layers = nn.ModuleList(
            models.EncoderBlock(cfg.d_model, cfg.num_heads, cfg.d_ff, dropout=0.0, norm_first=True)
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
    compression.export_onnx(
        model,
        (example,),
        directory / ONNX_FP32,
        input_names=["tokens"],
        dynamic_axes={"tokens": {0: "batch", 1: "seq"}},
        dynamo=False,
    )
    compression.quantize_onnx_dynamic(directory / ONNX_FP32, directory / ONNX_INT8)


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

    About 50 s on two CPU cores with the defaults (30 s of it training). ``cfg`` overrides
    :class:`ModelConfig` sizes (``{"num_layers": 2}``). The version is :func:`model_version`:
    the same weights, labels and vocabulary always carry the same version.
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


def load_network(artifact: Artifact) -> TopicClassifier:
    """The :class:`TopicClassifier` of a verified folder (:func:`load_artifact`), in eval mode;
    weights read with safetensors (no pickle, no code)."""
    from safetensors.torch import load_file

    model = TopicClassifier(ModelConfig(**artifact.manifest.model))
    model.load_state_dict(load_file(Path(artifact.directory) / WEIGHTS))
    return model.eval()
