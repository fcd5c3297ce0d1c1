#!/usr/bin/env python
"""Extractive question answering on XQuAD (English) with MiniLM-L6 -- a TINY training set.

    python examples/mrc/run.py
    python examples/mrc/run.py --max-steps 10 --limit 40     # smoke test

XQuAD is an evaluation set (240 paragraphs from 48 Wikipedia articles, 1,190 questions, SQuAD
v1.1 format). Here its last ``--held-out`` articles (default 10) are set aside for evaluation and
the model is fine-tuned on the 970 questions of the other 38 -- about 1% of SQuAD's training
set, so expect scores far below SQuAD-trained models: the example shows the MRC reader (document
windows with a stride, offset-exact answers) and head (n-best span decoding), not a benchmark.
Splitting by article keeps every held-out paragraph unseen. Outputs: ``results.json`` (EM and F1
in percent on the held-out questions), ``metrics.jsonl``, ``model/``, ``predictions/``
(``predictions.json`` qid -> answer, ``nbest_predictions.json``).
"""
import argparse
import os

from paddlepalm.datasets import find_xquad, pretrained_dir, split_articles
from paddlepalm.datasets.xquad import XQUAD_EN_FILE
from paddlepalm.utils.results import read_results, training_speed, write_results
from paddlepalm.utils.script import add_common_args, data_out, finish_prepare_only, optimizer_from_args
from paddlepalm.utils.seed import seed_everything
from paddlepalm.utils.timing import Stopwatch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_common_args(parser, "xquad", os.path.join("outputs", "mrc"), epochs=4, batch_size=16,
                    lr=2e-4, max_len=256, head_lr=1e-3)
    parser.add_argument("--max-query-len", type=int, default=48)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--held-out", type=int, default=10, help="articles (from the end) held out for evaluation")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    watch = Stopwatch()
    args = parse_args(argv)
    data_dir = find_xquad(args.data_dir, os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    pretrained = pretrained_dir(args.pretrained)
    out = args.output_dir
    try:
        files, counts = split_articles(os.path.join(data_dir, XQUAD_EN_FILE), args.held_out,
                                       data_out(args, __file__), args.limit, args.seed)
    except ValueError as e:  # --held-out out of range, or a malformed file (named in the message)
        raise SystemExit("error: %s" % e) from None
    if args.prepare_only:
        return finish_prepare_only(pretrained, data_out(args, __file__))

    import paddlepalm as palm

    seed_everything(args.seed)
    reader_args = dict(max_query_len=args.max_query_len, doc_stride=args.doc_stride)
    train = palm.reader.MRCReader(pretrained, args.max_len, seed=args.seed, bucket_by_length=True, **reader_args)
    train.load_data(files["train"], args.batch_size, file_format="json")
    held_out = palm.reader.MRCReader(pretrained, args.max_len, phase="predict", **reader_args)
    held_out.load_data(files["eval"], 32, file_format="json")
    backbone = palm.backbone.BERT.from_pretrained(pretrained)
    head = palm.head.MRC(args.max_query_len, backbone.config.hidden_size)
    task = palm.Trainer("qa", reader=train, head=head)
    trainer = palm.MultiHeadTrainer([task], backbone=backbone, seed=args.seed)
    trainer.log_path = os.path.join(out, "metrics.jsonl")
    if os.path.exists(trainer.log_path):
        os.remove(trainer.log_path)
    watch.lap("prepare")
    print("XQuAD en: %d training questions (%d windows), %d held-out questions"
          % (counts["train"], train.num_examples, counts["eval"]))
    summary = trainer.fit(optimizer=optimizer_from_args(args), num_epochs=args.epochs, max_steps=args.max_steps,
                          print_steps=args.print_steps)
    watch.lap("train")
    scores = task.predict(os.path.join(out, "predictions"), reader=held_out, print_steps=0)
    watch.lap("eval")
    model_dir = trainer.save(os.path.join(out, "model"))
    context = ("paddlepalm is a multi-task fine-tuning toolkit built on PaddlePaddle. It was released by "
               "Baidu in 2019 and trains one shared encoder with a head per task.")
    answer = palm.load(model_dir).predict("qa", [("Who released paddlepalm?", context)])[0]
    speed = training_speed(summary, {"qa": args.batch_size})
    run = {"example": "mrc", "split": "held-out XQuAD articles", "questions": counts,
           "train_windows": train.num_examples, "steps": summary["steps"], **speed,
           "phases_seconds": watch.laps, "settings": vars(args), "metric_scale": "percent"}
    path = write_results(out, {"qa": scores}, watch.seconds, run)
    print()
    print("palm.load(...).predict('qa', [('Who released paddlepalm?', ...)]) -> %r" % answer.get("text"))
    print("| task | held-out EM (%%) | held-out F1 (%%) | train questions |\n|---|---|---|---|\n"
          "| qa | %.2f | %.2f | %d |" % (scores["exact_match"], scores["f1"], counts["train"]))
    print("wall time %.0f s (training %.0f s, %.1f train windows/s); results: %s"
          % (watch.seconds, speed["train_seconds"], speed["train_examples_per_second"], path))
    return read_results(path)


if __name__ == "__main__":
    main()
