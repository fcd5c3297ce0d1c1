"""The ``serve`` sub-command (``export`` lives with the config commands: it also takes a CONFIG)."""
from paddlepalm.cli import arguments, command


@arguments("serve")
def _serve_args(p) -> None:
    from paddlepalm.deploy.ort_threads import THREAD_POOLS
    from paddlepalm.deploy.server import ServeSettings

    d = ServeSettings()
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a saved model folder (or a training output_dir)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s, loopback only)")
    p.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    p.add_argument("--backend", default="auto", choices=("auto", "dygraph", "inference", "onnxruntime"),
                   help="auto (default): onnxruntime when MODEL_DIR has an ONNX export, else dygraph")
    p.add_argument("--precision", default="fp32", help="fp32 (default), int8 (onnxruntime), bf16 (inference)")
    p.add_argument("--threads", type=int, help="intra-op threads of the engine (default: the engine's)")
    p.add_argument("--thread-pool", default="process", choices=THREAD_POOLS,
                   help="onnxruntime: one intra-op pool for every task's session (process, default) or one each")
    p.add_argument("--export-dir", help="the export folder (default: MODEL_DIR/export)")
    p.add_argument("--max-batch", type=int, default=d.max_batch,
                   help="most inputs merged into one forward pass (default: %(default)s)")
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                   help="how long the oldest request waits for others to batch with (default: %(default)s)")
    p.add_argument("--max-queue", type=int, default=d.max_queue,
                   help="requests waiting at most; beyond, answers 429 (default: %(default)s)")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="default: %(default)s")
    p.add_argument("--max-texts", type=int, default=d.max_texts, help="items per request (default: %(default)s)")
    p.add_argument("--max-text-chars", type=int, default=d.max_text_chars,
                   help="characters per text (default: %(default)s)")
    p.add_argument("--workers", type=int, default=d.workers, help="inference threads (default: %(default)s)")
    p.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="seconds to finish in-flight requests on SIGINT/SIGTERM (default: %(default)s)")


@command("serve", help="serve every task of a saved model over HTTP JSON (POST /v1/predict, GET /v1/tasks, /health)")
def _serve(args) -> int:
    import logging

    from paddlepalm.config.build import resolve_checkpoint
    from paddlepalm.deploy.server import ServeSettings, serve

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServeSettings(max_body_bytes=args.max_body_bytes, max_texts=args.max_texts,
                             max_text_chars=args.max_text_chars, max_batch=args.max_batch,
                             max_wait_ms=args.max_wait_ms, max_queue=args.max_queue, workers=args.workers)
    from paddlepalm.errors import PalmError

    try:
        serve(resolve_checkpoint(args.model_dir), args.host, args.port, args.backend, args.precision, args.threads,
              args.export_dir, settings, args.graceful_timeout, args.thread_pool)
    except (ImportError, ValueError) as e:  # a missing extra, a bad backend/precision: one clear line
        if isinstance(e, PalmError):
            raise
        raise PalmError(str(e)) from e
    return 0
