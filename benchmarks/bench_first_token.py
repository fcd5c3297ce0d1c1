#!/usr/bin/env python
"""What ``first_token_only`` (the encoder's last layer computing [CLS] alone) buys a classification
task at inference, paired: the same model with the option on and off, full pipeline.

  python benchmarks/bench_first_token.py MODEL_DIR --task intent --batch-sizes 1,8,32 --threads 1,2

``MODEL_DIR`` is a saved model (``palm.load``'s) with a classify task. The model (every task: a
``Predictor`` loads them all) is exported twice to ONNX into a temporary folder, with the option and without it (``Encoder.accepts_first_token_only``
set to False while exporting); dygraph runs with the class attribute switched between rounds.
Per thread count one worker process times ``predict(task, texts)`` over the SNIPS test utterances
for dygraph and ONNX Runtime fp32 / int8, on and off alternating within each of ``--rounds``
rounds; the table gives medians of examples/s, the on/off ratio and the accuracy of each.
"""
import argparse
import os
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, os.path.dirname(BENCH_DIR))
import common  # noqa: E402


def _export(model_dir: str, out: str, narrow: bool) -> str:
    from paddlepalm.backbone.encoder import Encoder
    from paddlepalm.deploy.exporter import export

    Encoder.accepts_first_token_only = narrow
    try:
        export(model_dir, out, int8=True, log=lambda line: None)
    finally:
        Encoder.accepts_first_token_only = True
    return out


def worker(args) -> None:
    import paddlepalm  # noqa: F401  (first: MKL_DEBUG_CPU_TYPE on AMD before paddle loads)
    from bench_infer import _score, _snips_test
    from paddlepalm.backbone.encoder import Encoder
    from paddlepalm.deploy import Predictor

    texts, gold, _, _ = _snips_test(args.data_dir)
    texts, gold = texts[:args.limit], gold[:args.limit]
    threads = args.worker_threads
    variants = {}  # name -> (predictor, first_token_only on?)
    for narrow, export_dir in ((True, args.export_on), (False, args.export_off)):
        tag = "on" if narrow else "off"
        variants["onnxruntime fp32 " + tag] = (Predictor(args.model_dir, threads=threads, export_dir=export_dir), narrow)
        variants["onnxruntime int8 " + tag] = (Predictor(args.model_dir, precision="int8", threads=threads,
                                                         export_dir=export_dir), narrow)
    dygraph = Predictor(args.model_dir, backend="dygraph", threads=threads)
    variants["dygraph on"], variants["dygraph off"] = (dygraph, True), (dygraph, False)
    rows = []
    for size in args.batch_sizes:
        times = {v: [] for v in variants}
        scores = {}
        for r in range(args.rounds + 1):  # round 0 warms up
            for name in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
                predictor, narrow = variants[name]
                Encoder.accepts_first_token_only = narrow  # only the dygraph rows read it at run time
                start = time.perf_counter()
                predictions = []
                for i in range(0, len(texts), size):
                    predictions += predictor.predict(args.task, texts[i:i + size])
                if r:
                    times[name].append(time.perf_counter() - start)
                scores[name] = _score("intent", predictions, gold)
        Encoder.accepts_first_token_only = True
        for name in variants:
            if name.endswith(" on"):
                base = name[:-3]
                on, off = (len(texts) / common.median(times[base + t]) for t in (" on", " off"))
                rows.append({"threads": threads, "batch": size, "engine": base, "off": off, "on": on,
                             "ratio": on / off, "acc_off": scores[base + " off"], "acc_on": scores[name]})
        print("threads %d batch %d done" % (threads, size), file=sys.stderr, flush=True)
    common.emit_result({"rows": rows})


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir")
    p.add_argument("--task", default="intent", help="a classify task of the model, scored on SNIPS intents")
    p.add_argument("--batch-sizes", default="1,8,32")
    p.add_argument("--threads", default=None, help="thread counts, one worker each (default: 1 and all cores)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--limit", type=int, default=700)
    p.add_argument("--data-dir", default=common.default_snips_dir())
    p.add_argument("--worker-threads", type=int, help=argparse.SUPPRESS)
    p.add_argument("--export-on", help=argparse.SUPPRESS)
    p.add_argument("--export-off", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.worker_threads:
        return worker(args)
    print(common.machine_description())
    with tempfile.TemporaryDirectory() as tmp:
        on = _export(args.model_dir, os.path.join(tmp, "on"), True)
        off = _export(args.model_dir, os.path.join(tmp, "off"), False)
        rows = []
        for threads in common.parse_thread_counts(args.threads):
            cmd = [sys.executable, os.path.abspath(__file__), args.model_dir, "--task", args.task,
                   "--batch-sizes", ",".join(map(str, args.batch_sizes)), "--rounds", str(args.rounds),
                   "--limit", str(args.limit), "--data-dir", args.data_dir, "--worker-threads", str(threads),
                   "--export-on", on, "--export-off", off]
            rows += common.run_worker(cmd, env=common.thread_env(threads))["rows"]
    print(common.format_table(
        ["threads", "batch", "engine", "off: examples/s", "on: examples/s", "on / off", "acc off %", "acc on %"],
        [[r["threads"], r["batch"], r["engine"], r["off"], r["on"], r["ratio"], r["acc_off"], r["acc_on"]]
         for r in rows]))
    print("first_token_only on vs off, full pipeline predict(task, texts); medians of %d alternating rounds"
          % args.rounds)


if __name__ == "__main__":
    main()
