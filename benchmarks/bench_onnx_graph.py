#!/usr/bin/env python
"""The exported ONNX graphs alone, with paddlepalm's attention fusion and without, paired.

  python benchmarks/bench_onnx_graph.py EXPORT_DIR --shapes 1x14,8x20,32x16 --threads 1,2

``EXPORT_DIR`` is what ``paddlepalm export MODEL_DIR --format onnx --int8`` wrote
(``<model>/export``). For every task and precision in its manifest, the ONNX Runtime Predictor's
engine is built twice -- ``fuse_attention=False`` (the graph as exported) and ``True`` (after
:func:`paddlepalm.deploy.onnx_fusion.fuse_attention`) -- and their sessions run the same fixed batches of random token
ids (a random share of each row padded, [CLS] kept) in alternating rounds, one worker process per
thread count. The table gives the median milliseconds per ``session.run`` and fused / unfused, and
the largest output difference between the two. No tokenizer, no post-processing: for the whole
pipeline see ``bench_infer.py --pipeline MODEL_DIR --with-unfused``.
"""
import argparse
import os
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, os.path.dirname(BENCH_DIR))
import common  # noqa: E402


def _feed(session, batch: int, length: int, rng):
    import numpy as np

    mask = np.ones((batch, length), np.int64)
    for row in range(1, batch):  # the first row full length, the others padded at random
        mask[row, rng.integers(1, length + 1):] = 0
    feed = {}
    for i in session.get_inputs():
        if i.name == "input_ids":
            feed[i.name] = rng.integers(1000, 5000, (batch, length)).astype(np.int64) * mask
        elif i.name == "attention_mask":
            feed[i.name] = mask if "int64" in i.type else mask.astype(np.float32)
        elif i.name == "word_starts":
            feed[i.name] = np.tile(np.arange(length), (batch, 1)).astype(np.int64)
        else:
            feed[i.name] = np.zeros((batch, length), np.int64)
    return feed


def worker(args) -> None:
    import numpy as np

    import paddlepalm  # noqa: F401  (MKL_DEBUG_CPU_TYPE etc. before anything loads)
    from paddlepalm.deploy.predictor import _OnnxRuntimeEngine, read_manifest

    manifest = read_manifest(args.export_dir)
    rng = np.random.default_rng(0)
    rows = []
    for task, spec in manifest["tasks"].items():
        for precision, key in (("fp32", "onnx"), ("int8", "onnx_int8")):
            if not spec.get(key):
                continue
            # the Predictor's own engines (session options, fusion), with and without the fusion
            engines = {fused: _OnnxRuntimeEngine(args.export_dir, task, spec, precision, args.worker_threads,
                                                 fuse_attention=fused) for fused in (False, True)}
            plain, fused = engines[False].session, engines[True].session
            blocks = engines[True].fused_attention_blocks
            for batch, length in args.shapes:
                feed = _feed(plain, batch, length, rng)
                diff = max(float(np.abs(a - b).max()) for a, b in zip(plain.run(None, feed), fused.run(None, feed)))
                times = {"plain": [], "fused": []}
                sessions = {"plain": plain, "fused": fused}
                for _, _, name in common.round_schedule(("plain", "fused"), [args.worker_threads], args.rounds):
                    start = time.perf_counter()
                    for _ in range(args.runs):
                        sessions[name].run(None, feed)
                    times[name].append((time.perf_counter() - start) / args.runs * 1e3)
                unfused_ms, fused_ms = common.median(times["plain"]), common.median(times["fused"])
                rows.append({"threads": args.worker_threads, "task": task, "precision": precision,
                             "shape": "%dx%d" % (batch, length), "blocks": blocks, "unfused_ms": unfused_ms,
                             "fused_ms": fused_ms, "speedup": unfused_ms / fused_ms, "max_diff": diff})
    common.emit_result({"rows": rows})


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export_dir")
    p.add_argument("--shapes", default="1x14,8x20,32x16", help="comma list of BATCHxLENGTH")
    p.add_argument("--threads", default=None, help="thread counts, one worker each (default: 1 and all cores)")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--runs", type=int, default=20, help="session.run calls per timing")
    p.add_argument("--worker-threads", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    if args.worker_threads:
        return worker(args)
    print(common.machine_description())
    rows = []
    for threads in common.parse_thread_counts(args.threads):
        cmd = [sys.executable, os.path.abspath(__file__), args.export_dir, "--rounds", str(args.rounds),
               "--runs", str(args.runs), "--shapes", ",".join("%dx%d" % s for s in args.shapes),
               "--worker-threads", str(threads)]
        rows += common.run_worker(cmd, env=common.thread_env(threads))["rows"]
    print(common.format_table(
        ["threads", "task", "precision", "batch x len", "blocks fused", "unfused ms", "fused ms", "fused speed-up",
         "max |diff|"],
        [[r["threads"], r["task"], r["precision"], r["shape"], r["blocks"], r["unfused_ms"], r["fused_ms"],
          r["speedup"], "%.1e" % r["max_diff"]] for r in rows]))
    print("session.run alone, medians of %d alternating rounds of %d runs; %s" % (args.rounds, args.runs,
                                                                               common.load_note()))


if __name__ == "__main__":
    main()
