#!/usr/bin/env python
"""Loopback load test of ``paddlepalm serve`` on a trained SNIPS intent+slot model.

  python benchmarks/bench_serve.py MODEL_DIR                  # 2,000 requests, 32 clients, ONNX Runtime
  python benchmarks/bench_serve.py MODEL_DIR --backend dygraph --requests 500

Starts ``python -m paddlepalm serve MODEL_DIR`` as a subprocess on 127.0.0.1 and, with
``paddlepalm.deploy.loadgen`` (one keep-alive connection per client thread):

1. **load**: ``--requests`` POST /v1/predict from ``--concurrency`` clients, alternating the
   ``intent`` and ``slot`` tasks, one SNIPS test utterance each; every answer is compared with
   ``palm.load(MODEL_DIR).predict`` for the same text (intent label, slot tags);
2. **micro-batching gain**: the same load against a second server with ``--max-batch 1``; the
   two servers alternate for ``--rounds`` rounds (paired), medians reported
   (``--thread-pools process,session``: both pairs, all four servers alternating);
3. **overload**: a burst of ``--burst`` requests from ``--burst-clients`` clients against a
   server with ``--max-queue 4``: only 200s and 429s are allowed, then /health and a normal
   request must still succeed;
4. **graceful shutdown**: SIGTERM while a burst is in flight: every request already accepted
   must get its 200, and the process must exit 0.

Bounded: each phase has a request count and every request a timeout.
"""
import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, ROOT)
import common  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m paddlepalm serve`` in a subprocess, its log in a file."""

    def __init__(self, args, log_dir, name, *extra, thread_pool=None):
        self.port = _free_port()
        self.log_path = os.path.join(log_dir, name + ".log")
        self.log = open(self.log_path, "w")
        cmd = [sys.executable, "-m", "paddlepalm", "serve", args.model, "--port", str(self.port),
               "--backend", args.backend, "--precision", args.precision, "--max-wait-ms", str(args.max_wait_ms),
               "--thread-pool", thread_pool or args.thread_pools[0]]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(cmd + list(extra), stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited (%d); log: %s" % (self.proc.returncode, self.log_path))
            try:
                if health(self.port)[0] == 200:
                    return
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("server did not start in 180 s; log: %s" % self.log_path)
            time.sleep(0.2)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        self.log.close()
        return self.proc.returncode

    def request_lines(self) -> int:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if "POST /v1/predict " in line and " ms" in line)


def health(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/health")
    r = conn.getresponse()
    return r.status, json.loads(r.read())


def load_phase(port, bodies, concurrency):
    from paddlepalm.deploy.loadgen import percentile, run_load

    out = run_load("127.0.0.1", port, bodies, concurrency)
    lat = [r["latency_s"] for r in out["results"] if r["status"] == 200]
    return {"results": out["results"], "wall_s": out["wall_s"], "rps": len(bodies) / out["wall_s"],
            "p50_ms": 1000 * percentile(lat, 50), "p99_ms": 1000 * percentile(lat, 99),
            "errors": sum(r["status"] != 200 for r in out["results"])}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL_DIR", help="saved SNIPS model with tasks 'intent' and 'slot'")
    p.add_argument("--backend", default="onnxruntime", choices=("dygraph", "inference", "onnxruntime"))
    p.add_argument("--precision", default="fp32")
    p.add_argument("--threads", type=int, default=None, help="engine threads of the server")
    p.add_argument("--thread-pools", default="process",
                   help="the servers' --thread-pool (onnxruntime): process (serve's default), session, or both "
                        "('process,session': a batched and a max_batch-1 server each, all rounds alternating)")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds batched / batch-size-1")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--burst", type=int, default=600)
    p.add_argument("--burst-clients", type=int, default=128)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    args.thread_pools = args.thread_pools.split(",")
    if not set(args.thread_pools) <= {"process", "session"}:
        p.error("--thread-pools: process and/or session, got %r" % ",".join(args.thread_pools))
    import paddlepalm as palm
    from paddlepalm.reader.snips import load_snips

    print("machine: %s" % common.machine_description(), flush=True)
    texts = [" ".join(u.words) for u in load_snips(args.data_dir or common.default_snips_dir())["test"]]
    reference = palm.load(args.model)
    expected = {"intent": [r["label_name"] for r in reference.predict("intent", texts)],
                "slot": [r["labels"] for r in reference.predict("slot", texts)]}
    bodies = [{"task": ("intent", "slot")[i % 2], "texts": [texts[(i // 2) % len(texts)]]}
              for i in range(args.requests)]
    log_dir = tempfile.mkdtemp(prefix="bench_serve_")
    servers = {}  # (thread pool, "batched" | "batch1") -> Server; every pair's rounds alternate
    for pool in args.thread_pools:
        servers[(pool, "batched")] = Server(args, log_dir, "batched-" + pool, "--max-batch", str(args.max_batch),
                                            thread_pool=pool)
        servers[(pool, "batch1")] = Server(args, log_dir, "batch1-" + pool, "--max-batch", "1", thread_pool=pool)
    rounds = {key: [] for key in servers}
    mismatches = 0
    try:
        for r in range(args.rounds):
            order = list(servers)
            for key in (order if r % 2 == 0 else order[::-1]):
                phase = load_phase(servers[key].port, bodies, args.concurrency)
                rounds[key].append(phase)
                for i, (body, res) in enumerate(zip(bodies, phase["results"])):
                    if res["status"] != 200:
                        continue
                    got = res["answer"]["predictions"][0]
                    want = expected[body["task"]][(i // 2) % len(texts)]
                    mismatches += (got["label_name"] if body["task"] == "intent" else got["labels"]) != want
        logged = servers[(args.thread_pools[0], "batched")].request_lines()
    finally:
        codes = {"%s/%s" % key: server.stop() for key, server in servers.items()}
    # overload burst
    small = Server(args, log_dir, "overload", "--max-batch", str(args.max_batch), "--max-queue", "4")
    try:
        burst = load_phase(small.port, [{"task": "slot", "texts": [t]} for t in
                                        (texts * (args.burst // len(texts) + 1))[:args.burst]], args.burst_clients)
        statuses = [r["status"] for r in burst["results"]]
        after = health(small.port)[0]
        follow = load_phase(small.port, bodies[:20], 1)
    finally:
        codes["overload"] = small.stop()
    # graceful shutdown with requests in flight
    draining = Server(args, log_dir, "shutdown", "--max-batch", str(args.max_batch), "--max-wait-ms", "200")
    box = {}
    worker = threading.Thread(target=lambda: box.update(load_phase(draining.port, bodies[:64], 32)))
    worker.start()
    time.sleep(0.1)
    draining.proc.send_signal(signal.SIGTERM)
    worker.join(120)
    codes["shutdown"] = draining.proc.wait(60)
    draining.log.close()
    shutdown_statuses = [r["status"] for r in box["results"]]
    with open(draining.log_path, encoding="utf-8", errors="replace") as f:
        drained = "Application shutdown complete" in f.read()

    med = {k: {m: common.median([ph[m] for ph in v]) for m in ("rps", "p50_ms", "p99_ms")} for k, v in rounds.items()}
    errors = {k: sum(ph["errors"] for ph in v) for k, v in rounds.items()}
    print()
    rows = []
    for (pool, kind) in rounds:
        label = ("max_batch %d, max_wait %g ms" % (args.max_batch, args.max_wait_ms) if kind == "batched"
                 else "max_batch 1 (no micro-batching)")
        rows.append([label, pool, "%d x %d" % (args.requests, args.rounds), args.concurrency, errors[(pool, kind)],
                     med[(pool, kind)]["rps"], med[(pool, kind)]["p50_ms"], med[(pool, kind)]["p99_ms"]])
    print(common.format_table(["server", "thread pool", "requests x rounds", "clients", "errors", "req/s", "p50 ms",
                               "p99 ms"], rows))
    for pool in args.thread_pools:
        print("micro-batching gain (throughput, median of paired rounds): %.2fx; backend %s %s, threads %s, thread "
              "pool %s" % (med[(pool, "batched")]["rps"] / med[(pool, "batch1")]["rps"], args.backend, args.precision,
                           args.threads or "default", pool))
    if len(args.thread_pools) == 2:
        first, second = args.thread_pools
        print("thread pool %s / %s (throughput, same rounds): batched %.2fx, max_batch 1 %.2fx" % (
            first, second, *(med[(first, kind)]["rps"] / med[(second, kind)]["rps"] for kind in ("batched", "batch1"))))
    print("answers differing from palm.load(...).predict: %d of %d" % (
        mismatches, sum(len(v) for v in rounds.values()) * args.requests))
    print("log lines 'POST /v1/predict ... ms' of the batched server: %d (requests sent %d)"
          % (logged, args.requests * args.rounds))
    print("overload burst (%d requests, %d clients, max_queue 4): %d x 200, %d x 429, %d other; /health after: %d; "
          "20 follow-up requests: %d errors" % (args.burst, args.burst_clients, statuses.count(200),
                                                 statuses.count(429), len(statuses) - statuses.count(200)
                                                 - statuses.count(429), after, follow["errors"]))
    print("SIGTERM with 64 requests in flight: %d x 200, %d refused before being accepted (status 0), %d other; "
          "log says 'Application shutdown complete': %s; exit code %s (uvicorn re-raises SIGTERM after a clean "
          "shutdown: -15)" % (shutdown_statuses.count(200), shutdown_statuses.count(0),
                              len(shutdown_statuses) - shutdown_statuses.count(200) - shutdown_statuses.count(0),
                              drained, codes["shutdown"]))
    print("server exit codes: %s; logs in %s" % (codes, log_dir))


if __name__ == "__main__":
    main()
