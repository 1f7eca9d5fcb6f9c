"""Chapter 5 - Serving: a validated, batched, observable prediction service.

- :mod:`handbook.serve.model`: the topic classifier, its artifact folder (safetensors weights,
  ONNX fp32 and INT8, a manifest with checksums) and :func:`~handbook.serve.model.build_artifact`.
- :mod:`handbook.serve.artifact`: the folder's manifest, vocabulary and checks, without torch
  (a server of the ONNX files starts without importing it).
- :mod:`handbook.serve.backends`: eager PyTorch, ONNX Runtime and INT8 behind one interface.
- :mod:`handbook.serve.batching`: dynamic micro-batching (:func:`should_flush`, MicroBatcher).
- :mod:`handbook.serve.metrics`: the Prometheus metrics and ``histogram_quantile``.
- :mod:`handbook.serve.app`: the FastAPI app (``create_app``, ``Settings``).
- :mod:`handbook.serve.process`: the server as a child process that always stops.
- :mod:`handbook.serve.loadtest`: a bounded, loopback-only load test and the ``make bench`` rows.
- :mod:`handbook.serve.autoscale`: what an HPA would do with one replica's measured capacity.

``python -m handbook.serve`` (or ``make serve``) runs the server. Nothing else in the package
imports this subpackage, so ``import handbook`` never loads FastAPI.
"""
