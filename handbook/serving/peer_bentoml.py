"""BentoML serving the chapter-5 model (see :mod:`handbook.serving.peers`).

``bentoml serve handbook.serving.peer_bentoml:TopicService`` with the ``HANDBOOK_PEER_*``
variables set (:class:`handbook.serving.peers.PeerProcess` sets them). Adaptive batching as
BentoML's documentation describes it: a ``batchable`` API taking a list, with
``max_batch_size`` and ``max_latency_ms``; the dispatcher merges the lists of concurrent
requests (``batch_dim=0``) and splits the answer. One worker process, like the other servers.
"""

from __future__ import annotations

import bentoml

from handbook.serving.peers import BENTOML_MAX_LATENCY_MS, Classifier, PeerSettings

_SETTINGS = PeerSettings.from_environment()


@bentoml.service(workers=1, traffic={"timeout": 30})
class TopicService:
    def __init__(self) -> None:
        self.classifier = Classifier(_SETTINGS)

    @bentoml.api(
        batchable=True,
        batch_dim=0,
        max_batch_size=_SETTINGS.max_batch_size,
        max_latency_ms=BENTOML_MAX_LATENCY_MS,
    )
    def predict(self, texts: list[str]) -> list[dict]:
        return self.classifier.classify(texts)
