"""``python -m handbook.serving``: build the model folder if asked, then serve it with uvicorn."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from handbook.serving.backends import BACKENDS
from handbook.serving.batching import WINDOWS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m handbook.serving",
        description="Serve the chapter-5 topic classifier: POST /predict, GET /health, "
        "/ready, /metrics.",
    )
    parser.add_argument("--model-dir", type=Path, help="default: _build/models/topics")
    parser.add_argument("--backend", choices=BACKENDS, default="onnx")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container only")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-batching", action="store_true", help="one model call per request")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--max-texts-per-request", type=int, default=32)
    parser.add_argument("--threads", type=int, help="intra-op threads of the backend")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument("--no-request-log", action="store_true", help="no JSON line per request")
    parser.add_argument(
        "--ort-spinning",
        action="store_true",
        help="let ONNX Runtime's idle threads spin (its default; slower here: make bench shows it)",
    )
    parser.add_argument(
        "--batch-window",
        choices=WINDOWS,
        default="worker",
        help="when a batch's wait for company starts: when the worker begins gathering it "
        "(default) or when its oldest request arrived",
    )
    parser.add_argument(
        "--build", action="store_true", help="build the model folder first if it is missing"
    )
    parser.add_argument(
        "--build-only", action="store_true", help="build the model folder (always) and exit"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    from handbook.serving import artifact

    model_dir = arguments.model_dir or artifact.default_model_dir()
    if arguments.build_only or (arguments.build and not (model_dir / artifact.MANIFEST).exists()):
        from handbook.serving.model import build_artifact  # torch: only when a model is trained

        print(f"building the topic classifier in {model_dir} (about 50 s) ...", flush=True)
        build_artifact(model_dir)
        print(f"model folder written: {model_dir}", flush=True)
        if arguments.build_only:
            return 0
    try:
        artifact.verify_artifact(model_dir)
    except artifact.ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    import uvicorn

    from handbook.serving.app import Settings, configure_json_logging, create_app

    settings = Settings(
        model_dir=model_dir,
        backend=arguments.backend,
        batching=not arguments.no_batching,
        max_batch_size=arguments.max_batch_size,
        max_wait_ms=arguments.max_wait_ms,
        max_texts_per_request=arguments.max_texts_per_request,
        threads=arguments.threads,
        log_requests=not arguments.no_request_log,
        ort_spinning=arguments.ort_spinning,
        batch_window=arguments.batch_window,
        load_in_background=True,  # /health answers while the model loads; /ready waits for it
    )
    configure_json_logging(arguments.log_level)
    uvicorn.run(
        create_app(settings),
        host=arguments.host,
        port=arguments.port,
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
