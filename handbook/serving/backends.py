"""Three ways to run the same classifier, behind one interface.

A backend turns token ids ``(batch, seq)`` int64 into class probabilities ``(batch, classes)``
float32: :class:`EagerBackend` (the PyTorch module), :class:`OnnxBackend` on ``model.onnx``
(fp32 in ONNX Runtime) or on ``model.int8.onnx`` (INT8 weights, chapter 4). The server, the
micro-batcher and the load test never know which one they hold.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from handbook.serving.artifact import ONNX_FP32, ONNX_INT8, Artifact

#: Names accepted by :func:`make_backend` (and by ``--backend``).
BACKENDS = ("eager", "onnx", "int8")


class Backend(Protocol):
    name: str

    def predict_proba(self, tokens: np.ndarray) -> np.ndarray:
        """Token ids ``(batch, seq)`` int64 -> probabilities ``(batch, classes)`` float32."""
        ...


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)


class EagerBackend:
    """The PyTorch module in inference mode (no autograd bookkeeping)."""

    name = "eager"

    def __init__(self, artifact: Artifact, threads: int | None = None):
        import torch  # here, not at the top: a server of the ONNX files never imports torch

        if threads is not None:
            torch.set_num_threads(threads)
        from handbook.serving.model import load_network

        self.model = load_network(artifact)

    def predict_proba(self, tokens: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logits = self.model(torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64)))
        return _softmax(logits.numpy())


class OnnxBackend:
    """ONNX Runtime on the CPU; ``quantized=True`` runs the INT8 file."""

    def __init__(
        self,
        artifact: Artifact,
        *,
        quantized: bool,
        threads: int | None = None,
        spinning: bool = False,
    ):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        # Intra-op threads that spin between operators keep a core busy while the server's event
        # loop (or a peer's API process) needs it; on a few cores shared with HTTP work, waiting
        # threads should sleep. The same setting for every server compared in chapter 5;
        # ``spinning=True`` is ONNX Runtime's default, kept for make bench's tail ablation.
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if spinning else "0"
        )
        self.name = "int8" if quantized else "onnx"
        path = artifact.directory / (ONNX_INT8 if quantized else ONNX_FP32)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def predict_proba(self, tokens: np.ndarray) -> np.ndarray:
        feeds = {self.input_name: np.ascontiguousarray(tokens, dtype=np.int64)}
        return _softmax(self.session.run(None, feeds)[0])


def make_backend(
    name: str, artifact: Artifact, threads: int | None = None, *, spinning: bool = False
) -> Backend:
    """The backend called ``name`` (one of :data:`BACKENDS`) over a loaded artifact;
    ``spinning`` lets ONNX Runtime's idle intra-op threads spin (its default; not ours)."""
    if name == "eager":
        return EagerBackend(artifact, threads)
    if name in ("onnx", "int8"):
        return OnnxBackend(artifact, quantized=name == "int8", threads=threads, spinning=spinning)
    raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")
