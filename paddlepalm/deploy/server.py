"""``paddlepalm serve MODEL_DIR``: every task of a saved model behind an HTTP JSON API.

Stack: Starlette (ASGI toolkit) on uvicorn (the ``[serve]`` extra). Both are small, maintained by
the Encode team, the base of FastAPI, and give what a model service needs without more: async
request handling (thousands of waiting clients cost no threads), lifespan hooks, and uvicorn's
graceful shutdown on SIGINT/SIGTERM (stop accepting, finish in-flight requests, then exit).

Endpoints::

    POST /v1/predict  {"task": "intent", "texts": ["play jazz", ...]}  -> {"task", "predictions": [...]}
    GET  /v1/tasks    -> {"backend", "tasks": [{"name", "head", "reader", "labels"}]}
    GET  /health      -> {"status": "ok", ...}   (503 {"status": "draining"} while shutting down)

``texts`` items are whatever the task's reader takes: a string, a ``[text_a, text_b]`` pair, or an
object of strings (MRC: ``{"question", "context"}``). Inference runs in a
:class:`~paddlepalm.deploy.batching.MicroBatcher` thread: concurrent requests of one task are merged
into one batch. Errors are JSON ``{"error": {"code", "message"}}`` with the status codes in
:data:`ERRORS`; one log line per request (logger ``paddlepalm.serve``) gives its latency.
"""
import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from paddlepalm.deploy.batching import MicroBatcher, Overloaded, ShuttingDown

logger = logging.getLogger("paddlepalm.serve")

# code -> (HTTP status, meaning): the documented error table (docs/deploy.md)
ERRORS = {
    "invalid_json": (400, "the body is not valid UTF-8 JSON"),
    "invalid_request": (400, "the JSON is not an object with 'task' and 'texts', or a field has the wrong type"),
    "empty_text": (400, "a text (or a string inside an item) is empty or only whitespace"),
    "invalid_input": (400, "the task's reader rejects an item (e.g. MRC without 'context')"),
    "not_found": (404, "no such endpoint"),
    "unknown_task": (404, "the model has no task of that name (GET /v1/tasks lists them)"),
    "method_not_allowed": (405, "wrong HTTP method for the endpoint"),
    "body_too_large": (413, "the body exceeds max_body_bytes"),
    "too_many_texts": (413, "more items than max_texts in one request"),
    "text_too_long": (413, "a text is longer than max_text_chars characters"),
    "unsupported_media_type": (415, "Content-Type is not application/json"),
    "overloaded": (429, "the queue is full; retry after a moment (Retry-After header)"),
    "internal_error": (500, "the model failed on valid input (a bug: the log has the traceback)"),
    "shutting_down": (503, "the service is draining for shutdown"),
}


@dataclass
class ServeSettings:
    """Limits and batching of the service (``paddlepalm serve --help`` documents each)."""

    max_body_bytes: int = 1 << 20
    max_texts: int = 64
    max_text_chars: int = 2000
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    workers: int = 1


class RequestError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.status = code, ERRORS[code][0]


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False).encode("utf-8")


def validate_request(payload: Any, tasks: List[str], settings: ServeSettings) -> Tuple[str, List[Any]]:
    """A decoded JSON body -> (task, texts), or :class:`RequestError` naming the field."""
    if not isinstance(payload, dict):
        raise RequestError("invalid_request", "the body must be a JSON object {\"task\": ..., \"texts\": [...]}")
    unknown = sorted(set(payload) - {"task", "texts"})
    if unknown:
        raise RequestError("invalid_request", "unknown field(s) %s; expected 'task' and 'texts'" % ", ".join(unknown))
    task, texts = payload.get("task"), payload.get("texts")
    if not isinstance(task, str):
        raise RequestError("invalid_request", "'task' must be a string (one of %s)" % ", ".join(tasks))
    if task not in tasks:
        raise RequestError("unknown_task", "unknown task %r; this model has %s" % (task, ", ".join(tasks)))
    if not isinstance(texts, list) or not texts:
        raise RequestError("invalid_request", "'texts' must be a non-empty list")
    if len(texts) > settings.max_texts:
        raise RequestError("too_many_texts", "'texts' has %d items; at most %d per request"
                           % (len(texts), settings.max_texts))
    for i, item in enumerate(texts):
        if isinstance(item, str):
            strings = [("texts[%d]" % i, item)]
        elif isinstance(item, list) and len(item) == 2:
            strings = [("texts[%d][%d]" % (i, j), s) for j, s in enumerate(item)]
        elif isinstance(item, dict) and item:
            strings = [("texts[%d].%s" % (i, k), s) for k, s in item.items()]
        else:
            raise RequestError("invalid_request", "texts[%d] must be a string, a [text_a, text_b] pair or an "
                                                  "object of strings, got %s" % (i, _kind(item)))
        for where, s in strings:
            if not isinstance(s, str):
                raise RequestError("invalid_request", "%s must be a string, got %s" % (where, _kind(s)))
            if not s.strip():
                raise RequestError("empty_text", "%s is empty" % where)
            if len(s) > settings.max_text_chars:
                raise RequestError("text_too_long", "%s has %d characters; at most %d"
                                   % (where, len(s), settings.max_text_chars))
    return task, texts


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _describe_tasks(model) -> List[Dict[str, Any]]:
    out = []
    for name, spec in model.meta["tasks"].items():
        out.append({"name": name, "head": spec["head"]["type"], "reader": spec["reader"]["type"],
                    "labels": spec.get("label_vocab")})
    return out


def create_app(model, settings: Optional[ServeSettings] = None, backend: str = "dygraph"):
    """The Starlette app serving ``model`` (``palm.load`` or a deploy ``Predictor``)."""
    try:
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route
    except ImportError as e:  # pragma: no cover - depends on the extra
        raise ImportError("paddlepalm serve needs the [serve] extra: pip install 'paddlepalm[serve]'") from e
    import contextlib

    settings = settings or ServeSettings()
    tasks = model.tasks
    state: Dict[str, Any] = {"draining": False, "batcher": None}

    def error(code: str, message: str, headers: Optional[Dict[str, str]] = None) -> Response:
        return Response(_error_body(code, message), status_code=ERRORS[code][0], media_type="application/json",
                        headers=headers)

    async def read_body(request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise RequestError("body_too_large", "the body has %s bytes; at most %d" % (declared,
                                                                                       settings.max_body_bytes))
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_body_bytes:
                raise RequestError("body_too_large", "the body exceeds %d bytes" % settings.max_body_bytes)
            chunks.append(chunk)
        return b"".join(chunks)

    async def predict(request):
        try:
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                raise RequestError("unsupported_media_type", "Content-Type must be application/json, got %r"
                                   % (media or "none"))
            body = await read_body(request)
            try:
                payload = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise RequestError("invalid_json", "the body is not valid JSON: %s" % e) from None
            task, texts = validate_request(payload, tasks, settings)
            try:
                model.readers[task].make_examples(texts)  # the reader's own checks, before queueing
            except (ValueError, TypeError) as e:
                raise RequestError("invalid_input", str(e)) from None
            request.state.task, request.state.texts = task, len(texts)
            try:
                future = state["batcher"].submit(task, texts)
            except Overloaded as e:
                return error("overloaded", str(e), {"Retry-After": "1"})
            except ShuttingDown as e:
                return error("shutting_down", str(e))
            try:
                predictions = await asyncio.wrap_future(future)
            except (ValueError, TypeError) as e:  # a reader/head check the pre-validation missed
                raise RequestError("invalid_input", str(e)) from None
        except RequestError as e:
            return error(e.code, str(e))
        except Exception:  # noqa: BLE001 -- answer 500, keep serving
            logger.exception("predict failed")
            return error("internal_error", "prediction failed; see the server log")
        return JSONResponse({"task": task, "predictions": predictions})

    async def list_tasks(request):
        return JSONResponse({"backend": backend, "tasks": _describe_tasks(model)})

    async def health(request):
        if state["draining"]:
            return JSONResponse({"status": "draining"}, status_code=503)
        return JSONResponse({"status": "ok", "backend": backend, "tasks": tasks,
                             "queued": state["batcher"].queued if state["batcher"] else 0})

    async def http_error(request, exc):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        if code is None:
            return Response(_error_body("invalid_request", str(exc.detail)), status_code=exc.status_code,
                            media_type="application/json")
        return error(code, "%s %s: %s" % (request.method, request.url.path, ERRORS[code][1]))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state["batcher"] = MicroBatcher(model.predict, settings.max_batch, settings.max_wait_ms,
                                        settings.max_queue, settings.workers)
        logger.info("serving tasks %s (backend %s; max_batch %d, max_wait %.1f ms, max_queue %d)",
                    ", ".join(tasks), backend, settings.max_batch, settings.max_wait_ms, settings.max_queue)
        try:
            yield
        finally:  # uvicorn has finished the in-flight requests by now
            state["draining"] = True
            await asyncio.get_running_loop().run_in_executor(None, state["batcher"].close)
            logger.info("batcher closed (batch sizes: %s)", dict(sorted(state["batcher"].batch_sizes.items())))

    app = Starlette(routes=[Route("/v1/predict", predict, methods=["POST"]),
                            Route("/v1/tasks", list_tasks, methods=["GET"]),
                            Route("/health", health, methods=["GET"])],
                    exception_handlers={HTTPException: http_error}, lifespan=lifespan)
    app.state.serve = state
    return _AccessLog(app)


class _AccessLog:
    """ASGI middleware: one log line per HTTP request (method, path, status, latency, task, texts)."""

    def __init__(self, app):
        self.app = app

    def __getattr__(self, name):
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            extra = scope.get("state") or {}
            task = " task=%s texts=%d" % (extra["task"], extra["texts"]) if "task" in extra else ""
            logger.info("%s %s %d %.1f ms%s", scope["method"], scope["path"], status["code"],
                        1000 * (time.perf_counter() - start), task)


def serve(model_dir: str, host: str = "127.0.0.1", port: int = 8000, backend: str = "auto",
          precision: str = "fp32", threads: Optional[int] = None, export_dir: Optional[str] = None,
          settings: Optional[ServeSettings] = None, graceful_timeout: float = 30.0,
          thread_pool: str = "process") -> None:
    """Load ``model_dir`` on ``backend`` and serve it until SIGINT/SIGTERM (blocking).

    ``thread_pool`` (ONNX Runtime): ``'process'`` (default; the service owns its process) runs every
    task's session on one intra-op pool, ``'session'`` gives each its own
    (:mod:`paddlepalm.deploy.ort_threads`).
    """
    try:
        import uvicorn
    except ImportError as e:  # pragma: no cover - depends on the extra
        raise ImportError("paddlepalm serve needs the [serve] extra: pip install 'paddlepalm[serve]'") from e
    model, backend = load_backend(model_dir, backend, precision, threads, export_dir, thread_pool)
    app = create_app(model, settings, backend)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info",
                timeout_graceful_shutdown=graceful_timeout)


def load_backend(model_dir: str, backend: str = "auto", precision: str = "fp32", threads: Optional[int] = None,
                 export_dir: Optional[str] = None, thread_pool: str = "session"):
    """``(model, backend name)``: ``auto`` is ONNX Runtime when an ONNX export and onnxruntime exist.

    ``thread_pool`` applies to ONNX Runtime only; the other backends ignore it.
    """
    import importlib.util
    import os

    from paddlepalm.deploy.predictor import MANIFEST, Predictor, default_export_dir

    if backend == "auto":
        exported = os.path.isfile(os.path.join(export_dir or default_export_dir(model_dir), MANIFEST))
        backend = "onnxruntime" if exported and importlib.util.find_spec("onnxruntime") else "dygraph"
    options = {"thread_pool": thread_pool} if backend == "onnxruntime" else {}
    return Predictor(model_dir, backend, precision, threads, export_dir, **options), backend
