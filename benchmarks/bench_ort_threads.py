#!/usr/bin/env python
"""ONNX Runtime thread pools: one per session vs one for the process, the Predictor's engines, paired.

  python benchmarks/bench_ort_threads.py EXPORT_DIR --threads 2 --processes 3
  python benchmarks/bench_ort_threads.py EXPORT_DIR --precisions fp32,int8 --shapes 1x14,32x16

``EXPORT_DIR`` is what ``paddlepalm export MODEL_DIR --format onnx --int8`` wrote. A worker
process builds what a ``Predictor(..., precision=P, thread_pool=MODE)`` builds -- one engine per
task of the manifest, for each precision asked (``paddlepalm.deploy.predictor._OnnxRuntimeEngine``,
so the library's own session options) -- and times ``session.run`` on fixed batches of random token
ids, tasks and precisions alternating within each round, so every session runs beside the others'
pools as in a multi-task Predictor. The process-wide pool is one per process (it cannot be undone),
so each mode needs its own worker: ``--processes`` pairs of workers, the order of the two modes
alternating pair by pair. Cells: median over the workers of each worker's median ms per run, and
session / process (above 1: the shared pool is faster).
"""
import argparse
import os
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, os.path.dirname(BENCH_DIR))
import common  # noqa: E402
from bench_onnx_graph import _feed  # noqa: E402

MODES = ("session", "process")


def worker(args) -> None:
    import numpy as np

    import paddlepalm  # noqa: F401  (MKL_DEBUG_CPU_TYPE etc. before anything loads)
    from paddlepalm.deploy.predictor import _OnnxRuntimeEngine, read_manifest

    manifest = read_manifest(args.export_dir)
    sessions = {}
    for precision in args.precisions:
        for task, spec in manifest["tasks"].items():
            engine = _OnnxRuntimeEngine(args.export_dir, task, spec, precision, args.worker_threads,
                                        thread_pool=args.worker_mode)
            sessions[(task, precision)] = engine.session
    rng = np.random.default_rng(0)
    rows = []
    for batch, length in args.shapes:
        feeds = {key: _feed(session, batch, length, rng) for key, session in sessions.items()}
        for key, session in sessions.items():  # warm-up
            session.run(None, feeds[key])
        times = {key: [] for key in sessions}
        for _, _, key in common.round_schedule(list(sessions), [args.worker_threads], args.rounds):
            start = time.perf_counter()
            for _ in range(args.runs):
                sessions[key].run(None, feeds[key])
            times[key].append((time.perf_counter() - start) / args.runs * 1e3)
        for (task, precision), values in times.items():
            rows.append({"task": task, "precision": precision, "shape": "%dx%d" % (batch, length),
                         "ms": common.median(values)})
    common.emit_result({"rows": rows})


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export_dir")
    p.add_argument("--precisions", default="int8,fp32", help="comma list; each adds one engine per task")
    p.add_argument("--shapes", default="1x14,32x16", help="comma list of BATCHxLENGTH")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all cores)")
    p.add_argument("--processes", type=int, default=3, help="worker pairs (one worker per mode each)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--runs", type=int, default=20, help="session.run calls per timing")
    p.add_argument("--worker-mode", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--worker-threads", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.precisions = args.precisions.split(",")
    args.shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    if args.worker_mode:
        return worker(args)
    threads = args.threads or common.parse_thread_counts(None)[-1]
    print(common.machine_description())
    results = {mode: [] for mode in MODES}
    for pair in range(args.processes):
        for mode in (MODES if pair % 2 == 0 else MODES[::-1]):
            cmd = [sys.executable, os.path.abspath(__file__), args.export_dir, "--precisions", ",".join(args.precisions),
                   "--shapes", ",".join("%dx%d" % s for s in args.shapes), "--rounds", str(args.rounds),
                   "--runs", str(args.runs), "--worker-mode", mode, "--worker-threads", str(threads)]
            results[mode].append(common.run_worker(cmd, env=common.thread_env(threads))["rows"])
    table = []
    for i, row in enumerate(results["session"][0]):
        ms = {mode: common.median([rows[i]["ms"] for rows in results[mode]]) for mode in MODES}
        spread = {mode: "%.2f-%.2f" % (min(r[i]["ms"] for r in results[mode]), max(r[i]["ms"] for r in results[mode]))
                  for mode in MODES}
        table.append([threads, row["task"], row["precision"], row["shape"], ms["session"], spread["session"],
                      ms["process"], spread["process"], ms["session"] / ms["process"]])
    print(common.format_table(["threads", "task", "precision", "batch x len", "session pools ms", "range",
                               "process pool ms", "range", "session / process"], table))
    print("session.run of the Predictor's engines, every task and precision loaded in each worker; medians of %d "
          "workers per mode (each: median of %d alternating rounds of %d runs); %s"
          % (args.processes, args.rounds, args.runs, common.load_note()))


if __name__ == "__main__":
    main()
