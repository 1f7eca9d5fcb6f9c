"""LitServe serving the chapter-5 model (see :mod:`handbook.serving.peers`).

``python -m handbook.serving.peer_litserve --port N`` with the ``HANDBOOK_PEER_*`` variables set
(:class:`handbook.serving.peers.PeerProcess` sets them). Dynamic batching as LitServe's
documentation describes it: ``max_batch_size`` and ``batch_timeout`` on the ``LitAPI``; the
default ``batch`` collects the decoded inputs into a list, ``predict`` runs the model once per
batch, ``unbatch`` splits its answers.
"""

from __future__ import annotations

import argparse

import litserve as ls

from handbook.serving.peers import Classifier, PeerSettings
from handbook.serving.process import LOOPBACK


class TopicAPI(ls.LitAPI):
    def setup(self, device):
        self.classifier = Classifier(PeerSettings.from_environment())

    def decode_request(self, request):
        return request["texts"][0]

    def batch(self, inputs):
        return list(inputs)

    def predict(self, texts):
        return self.classifier.classify(texts)

    def unbatch(self, output):
        return list(output)

    def encode_response(self, output):
        return {"predictions": [output]}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m handbook.serving.peer_litserve")
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    settings = PeerSettings.from_environment()
    api = TopicAPI(
        max_batch_size=settings.max_batch_size, batch_timeout=settings.max_wait_ms / 1000
    )
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=30)
    server.run(host=LOOPBACK, port=port, num_api_servers=1, generate_client_file=False,
               log_level="warning")  # fmt: skip


if __name__ == "__main__":
    main()
