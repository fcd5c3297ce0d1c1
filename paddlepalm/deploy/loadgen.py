"""A bounded HTTP load generator for ``paddlepalm serve`` (benchmarks/bench_serve.py and the tests).

``run_load(host, port, bodies, concurrency)`` sends every body once as ``POST /v1/predict`` from
``concurrency`` client threads, each on its own keep-alive connection (stdlib ``http.client``:
no extra dependency), and returns per-request status, latency and decoded answer, in input order.
"""
import http.client
import json
import threading
import time
from typing import Any, Dict, List, Optional, Sequence


def post_json(conn: http.client.HTTPConnection, path: str, body: Any, headers: Optional[Dict[str, str]] = None):
    """``(status, decoded JSON or None, headers)`` of one request on ``conn``."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    conn.request("POST", path, data, {"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    raw = response.read()
    try:
        decoded = json.loads(raw.decode("utf-8"))
    except ValueError:
        decoded = None
    return response.status, decoded, dict(response.getheaders())


def run_load(host: str, port: int, bodies: Sequence[Any], concurrency: int = 32, timeout: float = 60.0,
             path: str = "/v1/predict") -> Dict[str, Any]:
    """Send ``bodies`` from ``concurrency`` threads; returns ``{"results", "wall_s"}``.

    ``results[i]`` = ``{"status", "latency_s", "answer"}`` for ``bodies[i]`` (status 0: the
    connection failed; ``answer`` then holds the error text).
    """
    results: List[Optional[Dict[str, Any]]] = [None] * len(bodies)
    cursor = iter(range(len(bodies)))
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            while True:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                start = time.perf_counter()
                try:
                    status, answer, _ = post_json(conn, path, bodies[i])
                except (OSError, http.client.HTTPException) as e:
                    status, answer = 0, "%s: %s" % (type(e).__name__, e)
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                results[i] = {"status": status, "latency_s": time.perf_counter() - start, "answer": answer}
        finally:
            conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(max(1, min(concurrency, len(bodies))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"results": results, "wall_s": time.perf_counter() - start}


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest-rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[rank]
