#!/usr/bin/env python
"""WNUT-17 named entity recognition (emerging and rare entities, 6 types, BIO) with MiniLM-L6.

    python examples/sequence-labeling/run.py
    python examples/sequence-labeling/run.py --no-crf           # per-word softmax instead of the CRF
    python examples/sequence-labeling/run.py --max-steps 20 --limit 100   # smoke test

Reads the CoNLL files as they are (word TAB tag, blank line between sentences): train
``wnut17train.conll`` (3,394 tweets), dev ``emerging.dev.conll`` (1,009), test
``emerging.test.annotated`` (1,287). One task, the plain API: ``palm.Trainer(name, reader=,
head=, dev_reader=).fit(backbone=...)``. The model with the best dev entity F1 (evaluated every
epoch) is kept in ``<output-dir>/best`` and scored on test: entity F1 (conlleval rules) over every
word of the file. Outputs: ``results.json``, ``metrics.jsonl``, ``best/``,
``predictions/predictions.json`` (words and predicted tags per sentence).
"""
import argparse
import os

from paddlepalm.datasets import WNUT17_FILES, find_wnut17, pretrained_dir, wnut17_readers
from paddlepalm.utils.results import read_results, training_speed, write_results
from paddlepalm.utils.script import add_common_args, copy_files, data_out, finish_prepare_only, optimizer_from_args
from paddlepalm.utils.seed import seed_everything
from paddlepalm.utils.table import format_table
from paddlepalm.utils.timing import Stopwatch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_common_args(parser, "wnut17", os.path.join("outputs", "sequence-labeling"), epochs=4,
                    batch_size=32, lr=2e-4, max_len=128, head_lr=1e-3)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--no-crf", dest="crf", action="store_false",
                        help="per-word softmax instead of the linear-chain CRF (Viterbi decoding)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    watch = Stopwatch()
    args = parse_args(argv)
    data_dir = find_wnut17(args.data_dir, os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    pretrained = pretrained_dir(args.pretrained)
    out = args.output_dir
    if args.prepare_only:  # config.yaml reads the CoNLL files as they are: copy them
        return finish_prepare_only(pretrained, copy_files(
            data_dir, WNUT17_FILES.values(), data_out(args, __file__)))
    os.makedirs(out, exist_ok=True)

    import paddlepalm as palm

    seed_everything(args.seed)
    readers = wnut17_readers(data_dir, pretrained, args.max_len, args.batch_size, args.seed, args.limit,
                             data_out(args, __file__))
    tags = readers["train"].label_vocab()
    backbone = palm.backbone.BERT.from_pretrained(pretrained)
    head = palm.head.SequenceLabel(len(tags), backbone.config.hidden_size, args.dropout, use_crf=args.crf,
                                   crf_lr=10.0)
    task = palm.Trainer("ner", reader=readers["train"], head=head, dev_reader=readers["dev"])
    steps_per_epoch = readers["train"].steps_per_epoch
    log = os.path.join(out, "metrics.jsonl")
    if os.path.exists(log):
        os.remove(log)
    watch.lap("prepare")
    summary = task.fit(backbone=backbone, num_epochs=args.epochs, max_steps=args.max_steps,
                       optimizer=optimizer_from_args(args), save_path=out, keep_last=1,
                       eval_steps=args.eval_steps or steps_per_epoch,
                       objective="ner.f1", print_steps=args.print_steps)
    watch.lap("train")
    task.load_ckpt(os.path.join(out, "best"))  # the best dev F1
    test = task.predict(os.path.join(out, "predictions"), reader=readers["test"], print_steps=0)
    watch.lap("test")

    speed = training_speed(summary, {"ner": args.batch_size})
    run = {"example": "sequence-labeling", "split": "test", "tags": tags, "steps": summary["steps"],
           "best_dev_f1": summary["best_score"], "sizes": {k: r.num_examples for k, r in readers.items()},
           **speed, "phases_seconds": watch.laps, "settings": vars(args)}
    path = write_results(out, {"ner": test}, watch.seconds, run)
    print()
    print(format_table(["task", "test entity F1 (%)", "precision (%)", "recall (%)", "best dev F1 (%)"],
                       [("ner", test["f1"], test["precision"], test["recall"], summary["best_score"])]))
    print("wall time %.0f s (training %.0f s, %.1f train examples/s); results: %s"
          % (watch.seconds, speed["train_seconds"], speed["train_examples_per_second"], path))
    return read_results(path)


if __name__ == "__main__":
    main()
