"""Chapter 5 - Serving: a validated, batched, observable prediction service.

- :mod:`handbook.serving.model`: the topic classifier, its artifact folder (safetensors weights,
  ONNX fp32 and INT8, a manifest with checksums) and :func:`~handbook.serving.model.build_artifact`.
- :mod:`handbook.serving.artifact`: the folder's manifest, vocabulary and checks, without torch
  (a server of the ONNX files starts without importing it).
- :mod:`handbook.serving.backends`: eager PyTorch, ONNX Runtime and INT8 behind one interface.
- :mod:`handbook.serving.batching`: dynamic micro-batching (:func:`should_flush`, MicroBatcher).
- :mod:`handbook.serving.metrics`: the Prometheus metrics and ``histogram_quantile``.
- :mod:`handbook.serving.app`: the FastAPI app (``create_app``, ``Settings``).
- :mod:`handbook.serving.process`: the server as a child process that always stops.
- :mod:`handbook.serving.loadtest`: bounded, loopback-only load tests (closed and open loop).
- :mod:`handbook.serving.peers`: the same model served by LitServe and BentoML, compared.
- :mod:`handbook.serving.benchmarks`: the ``make bench`` rows.
- :mod:`handbook.serving.autoscale`: what an HPA would do with one replica's measured capacity.

``python -m handbook.serving`` (or ``make serve``) runs the server. Nothing else in the package
imports this subpackage, so ``import handbook`` never loads FastAPI.
"""
