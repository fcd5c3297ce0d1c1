"""paddlepalm serve: the HTTP JSON service (tiny random model, dygraph backend, real uvicorn on loopback).

Needs the [serve] extra (starlette, uvicorn); .ci/run installs it.
"""
import contextlib
import http.client
import json
import socket
import threading
import time

import pytest

pytest.importorskip("starlette", reason="the [serve] extra (starlette) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the [serve] extra (uvicorn) is not installed")

import paddlepalm as palm  # noqa: E402
from paddlepalm.deploy.loadgen import post_json, run_load  # noqa: E402
from paddlepalm.deploy.server import ERRORS, ServeSettings, create_app  # noqa: E402
from tests.deploy_fixtures import CLS_TEXTS, CONTEXT, SLOT_TEXTS, build_model  # noqa: E402

LIMITS = dict(max_body_bytes=4096, max_texts=8, max_text_chars=200)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return palm.load(build_model(str(tmp_path_factory.mktemp("serve"))))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(model, **settings):
    """uvicorn serving ``model`` in a thread; yields (host, port, server, app)."""
    port = _free_port()
    app = create_app(model, ServeSettings(**settings))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield "127.0.0.1", port, server, app
    finally:
        server.should_exit = True
        thread.join(20)


def _get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, json.loads(r.read())


LONG = "play " * 50  # 250 characters > max_text_chars
MALFORMED = [  # (name, body bytes or JSON, headers, expected status, expected code)
    ("bad JSON", b'{"task": "cls", "texts": [', None, 400, "invalid_json"),
    ("not UTF-8", '{"task": "cls", "texts": ["caf\xe9"]}'.encode("latin-1"), None, 400, "invalid_json"),
    ("body is a list", ["cls", ["play jazz"]], None, 400, "invalid_request"),
    ("missing task", {"texts": ["play jazz"]}, None, 400, "invalid_request"),
    ("task not a string", {"task": 3, "texts": ["play jazz"]}, None, 400, "invalid_request"),
    ("unknown task", {"task": "sentiment", "texts": ["play jazz"]}, None, 404, "unknown_task"),
    ("missing texts", {"task": "cls"}, None, 400, "invalid_request"),
    ("texts empty", {"task": "cls", "texts": []}, None, 400, "invalid_request"),
    ("texts a string", {"task": "cls", "texts": "play jazz"}, None, 400, "invalid_request"),
    ("text a number", {"task": "cls", "texts": ["play jazz", 7]}, None, 400, "invalid_request"),
    ("text null", {"task": "cls", "texts": [None]}, None, 400, "invalid_request"),
    ("empty text", {"task": "cls", "texts": ["play jazz", ""]}, None, 400, "empty_text"),
    ("whitespace text", {"task": "slot", "texts": ["  \t "]}, None, 400, "empty_text"),
    ("pair with a number", {"task": "match", "texts": [["play jazz", 1]]}, None, 400, "invalid_request"),
    ("unknown field", {"task": "cls", "texts": ["a"], "top_k": 3}, None, 400, "invalid_request"),
    ("MRC without context", {"task": "qa", "texts": [{"question": "what ?"}]}, None, 400, "invalid_input"),
    ("too many texts", {"task": "cls", "texts": ["play jazz"] * 9}, None, 413, "too_many_texts"),
    ("text too long", {"task": "cls", "texts": [LONG]}, None, 413, "text_too_long"),
    ("body too large", {"task": "cls", "texts": ["play " * 1000]}, None, 413, "body_too_large"),
    ("not JSON content type", {"task": "cls", "texts": ["a"]}, {"Content-Type": "text/plain"}, 415,
     "unsupported_media_type"),
]


def test_malformed_requests_get_the_documented_4xx(model):
    assert len(MALFORMED) >= 12
    with running(model, **LIMITS) as (host, port, _, _):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        for name, body, headers, status, code in MALFORMED:
            got_status, answer, _ = post_json(conn, "/v1/predict", body, headers)
            assert (got_status, answer["error"]["code"]) == (status, code), (name, answer)
            assert ERRORS[code][0] == status and answer["error"]["message"], name
        conn.request("GET", "/v1/predict")
        r = conn.getresponse()
        assert r.status == 405 and json.loads(r.read())["error"]["code"] == "method_not_allowed"
        conn.request("GET", "/nope")
        r = conn.getresponse()
        assert r.status == 404 and json.loads(r.read())["error"]["code"] == "not_found"
        # the service is still up and right after all of that
        status, answer, _ = post_json(conn, "/v1/predict", {"task": "cls", "texts": ["play jazz"]})
        assert status == 200 and answer["predictions"][0]["label"] == model.predict("cls", ["play jazz"])[0]["label"]


def test_tasks_health_and_every_head(model):
    with running(model) as (host, port, _, _):
        status, tasks = _get(port, "/v1/tasks")
        assert status == 200 and [t["name"] for t in tasks["tasks"]] == model.tasks
        slot = next(t for t in tasks["tasks"] if t["name"] == "slot")
        assert slot["head"] == "sequence_label" and "B-genre" in slot["labels"]
        assert _get(port, "/health") == (200, {"status": "ok", "backend": "dygraph", "tasks": model.tasks,
                                               "queued": 0})
        conn = http.client.HTTPConnection(host, port, timeout=10)
        for task, texts in [("slot", SLOT_TEXTS[:3]), ("match", [["play jazz", "play jazz music"]]),
                            ("qa", [{"question": "when will it rain ?", "context": CONTEXT}])]:
            status, answer, _ = post_json(conn, "/v1/predict", {"task": task, "texts": texts})
            expected = model.predict(task, [tuple(t) if isinstance(t, list) else t for t in texts])
            assert status == 200 and answer["task"] == task
            assert json.loads(json.dumps(expected)) == answer["predictions"]


def test_concurrent_clients_are_batched_and_answer_like_palm_load(model):
    texts = {"cls": CLS_TEXTS, "slot": SLOT_TEXTS}
    expected = {t: model.predict(t, v) for t, v in texts.items()}
    bodies = [{"task": t, "texts": [texts[t][i % len(texts[t])], texts[t][(i + 3) % len(texts[t])]]}
              for i in range(120) for t in ("cls", "slot")]
    with running(model, max_batch=16, max_wait_ms=20) as (host, port, _, app):
        load = run_load(host, port, bodies, concurrency=16)
        batcher = app.state.serve["batcher"]
        sizes = dict(batcher.batch_sizes)
    assert [r["status"] for r in load["results"]] == [200] * len(bodies)
    for body, r in zip(bodies, load["results"]):
        task = body["task"]
        want = [dict(expected[task][texts[task].index(x)], index=k) for k, x in enumerate(body["texts"])]
        got = r["answer"]["predictions"]
        if task == "cls":
            assert [p["label"] for p in got] == [p["label"] for p in want]
            for p, w in zip(got, want):
                assert p["index"] == w["index"] and max(abs(a - b) for a, b in zip(p["probs"], w["probs"])) < 1e-4
        else:
            assert [(p["index"], p["labels"]) for p in got] == [(w["index"], w["labels"]) for w in want]
    assert sum(n * c for n, c in sizes.items()) == 2 * len(bodies)
    assert max(sizes) > 2  # concurrent requests were merged (2 texts each)


def test_overload_gets_429_and_the_service_stays_up(model):
    with running(model, max_queue=2, max_wait_ms=100, max_batch=64) as (host, port, _, _):
        load = run_load(host, port, [{"task": "cls", "texts": ["play jazz"]}] * 40, concurrency=40)
        statuses = [r["status"] for r in load["results"]]
        assert set(statuses) <= {200, 429} and statuses.count(429) > 0 and statuses.count(200) > 0
        refused = next(r["answer"] for r in load["results"] if r["status"] == 429)
        assert refused["error"]["code"] == "overloaded"
        assert _get(port, "/health")[0] == 200
        again = run_load(host, port, [{"task": "cls", "texts": ["play jazz"]}] * 4, concurrency=1)
        assert [r["status"] for r in again["results"]] == [200] * 4


def test_graceful_shutdown_finishes_in_flight_requests(model):
    with running(model, max_wait_ms=400, max_batch=64) as (host, port, server, _):
        box = {}

        def slow():
            box["load"] = run_load(host, port, [{"task": "slot", "texts": SLOT_TEXTS}] * 3, concurrency=3)

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.15)  # the requests wait in the batcher (max_wait 400 ms)
        server.should_exit = True  # what uvicorn's SIGTERM handler does
        t.join(20)
        assert [r["status"] for r in box["load"]["results"]] == [200] * 3
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                time.sleep(0.05)
            except OSError:
                break
        else:
            pytest.fail("the server still accepts connections after shutdown")


def test_batcher_keeps_other_requests_when_one_fails():
    from paddlepalm.deploy.batching import MicroBatcher, Overloaded, ShuttingDown

    def predict(task, inputs):
        if "bad" in inputs:
            raise ValueError("bad input")
        return [{"index": i, "text": x} for i, x in enumerate(inputs)]

    batcher = MicroBatcher(predict, max_batch=8, max_wait_ms=100, max_queue=3)
    good, bad, other = batcher.submit("t", ["a", "b"]), batcher.submit("t", ["bad"]), batcher.submit("t", ["c"])
    with pytest.raises(Overloaded):
        batcher.submit("t", ["d"])
    assert good.result(5) == [{"index": 0, "text": "a"}, {"index": 1, "text": "b"}]
    assert other.result(5) == [{"index": 0, "text": "c"}]
    with pytest.raises(ValueError, match="bad input"):
        bad.result(5)
    batcher.close()
    with pytest.raises(ShuttingDown):
        batcher.submit("t", ["e"])


def test_one_log_line_per_request_with_latency(model, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="paddlepalm.serve")
    with running(model) as (host, port, _, _):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        post_json(conn, "/v1/predict", {"task": "cls", "texts": ["play jazz", "book a table"]})
        post_json(conn, "/v1/predict", {"task": "nope", "texts": ["x"]})
        conn.request("GET", "/health")
        conn.getresponse().read()
    lines = [r.getMessage() for r in caplog.records if r.name == "paddlepalm.serve" and r.getMessage().endswith(
             ("ms", "texts=2"))]
    assert len(lines) == 3
    assert lines[0].startswith("POST /v1/predict 200 ") and lines[0].endswith(" ms task=cls texts=2")
    assert lines[1].startswith("POST /v1/predict 404 ") and lines[2].startswith("GET /health 200 ")
    assert float(lines[0].split()[3]) > 0  # the latency in ms


def test_serve_binds_loopback_by_default():
    from paddlepalm.cli import build_parser

    args = build_parser().parse_args(["serve", "some/model"])
    assert args.host == "127.0.0.1" and args.backend == "auto" and args.max_queue >= 1
    assert args.thread_pool == "process"  # the service owns its process: one ONNX Runtime pool for every task
    assert build_parser().parse_args(["serve", "m", "--thread-pool", "session"]).thread_pool == "session"
