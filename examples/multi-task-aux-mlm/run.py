#!/usr/bin/env python
"""WNUT-17 NER with a masked-LM auxiliary task on the training tweets' text.

    python examples/multi-task-aux-mlm/run.py                  # NER + aux MLM (mix ratio 0.3)
    python examples/multi-task-aux-mlm/run.py --mlm-mix-ratio 0  # the same run without the aux task
    python examples/multi-task-aux-mlm/run.py --step-mode joint --balancer uncertainty   # both tasks every step
    python examples/multi-task-aux-mlm/run.py --max-steps 10 --limit 100   # smoke test

The main task is examples/sequence-labeling's NER task with the same settings; the auxiliary task
(``palm.Trainer(..., is_aux=True)``) masks 15% of the tokens of the same tweets and predicts them
through the encoder's own word embeddings (``palm.head.MaskLM``): in-domain language modelling
on Twitter text, which the encoder (pre-trained on other text) has seen little of. The main task
still runs ``--epochs`` epochs; the aux task adds ``mix_ratio`` extra steps per main step (sampled
mode), or, with ``--step-mode joint``, rides along in every step with its loss weighted by
``--balancer``.
Outputs: ``results.json`` (test entity F1, and MLM accuracy on dev tweets), ``metrics.jsonl``,
``best/``, ``predictions/``.
"""
import argparse
import os

from paddlepalm.datasets import WNUT17_FILES, find_wnut17, pretrained_dir, wnut17_readers
from paddlepalm.utils.results import read_results, training_speed, write_results
from paddlepalm.utils.script import (add_balancing_args, add_common_args, balancer_from_args, copy_files,
                                     data_out, default_eval_steps, finish_prepare_only, optimizer_from_args)
from paddlepalm.utils.seed import seed_everything
from paddlepalm.utils.table import format_table
from paddlepalm.utils.timing import Stopwatch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_common_args(parser, "wnut17", os.path.join("outputs", "multi-task-aux-mlm"), epochs=4,
                    batch_size=32, lr=2e-4, max_len=128, head_lr=1e-3)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--mlm-mix-ratio", type=float, default=0.3,
                        help="sampling weight of the aux MLM task (NER has 1.0); 0 trains NER alone")
    parser.add_argument("--mask-prob", type=float, default=0.15)
    add_balancing_args(parser)
    return parser.parse_args(argv)


def write_text(reader, path: str) -> str:
    """The sentences of a CoNLL reader as plain text, one per line (MaskLMReader's 'txt' format)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for example in reader.examples:
            f.write(" ".join(example["words"]) + "\n")
    return path


def main(argv=None) -> dict:
    watch = Stopwatch()
    args = parse_args(argv)
    data_dir = find_wnut17(args.data_dir, os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    pretrained = pretrained_dir(args.pretrained)
    out = args.output_dir
    work = data_out(args, __file__)
    if args.prepare_only:  # the CoNLL files as they are, and the tweets' text for the MLM task
        copy_files(data_dir, WNUT17_FILES.values(), work)
    else:
        os.makedirs(out, exist_ok=True)

    import paddlepalm as palm

    seed_everything(args.seed)
    ner_readers = wnut17_readers(data_dir, pretrained, args.max_len, args.batch_size, args.seed,
                                 args.limit, work)
    if args.prepare_only:
        for split in ("train", "dev"):
            write_text(ner_readers[split], os.path.join(work, split + ".txt"))
        return finish_prepare_only(pretrained, work)
    backbone = palm.backbone.BERT.from_pretrained(pretrained)
    hidden = backbone.config.hidden_size
    tags = ner_readers["train"].label_vocab()
    ner = palm.Trainer("ner", reader=ner_readers["train"], dev_reader=ner_readers["dev"],
                       head=palm.head.SequenceLabel(len(tags), hidden, args.dropout, use_crf=True, crf_lr=10.0))
    trainers = [ner]
    if args.mlm_mix_ratio > 0:
        mlm_train = palm.reader.MaskLMReader(pretrained, args.max_len, seed=args.seed, mask_prob=args.mask_prob,
                                             bucket_by_length=True)
        mlm_train.load_data(write_text(ner_readers["train"], os.path.join(work, "train.txt")), args.batch_size,
                            file_format="txt")
        mlm_dev = mlm_train.clone("dev").load_data(write_text(ner_readers["dev"], os.path.join(work, "dev.txt")),
                                                   64, file_format="txt")
        mlm = palm.Trainer("mlm", mix_ratio=args.mlm_mix_ratio, reader=mlm_train, dev_reader=mlm_dev,
                           head=palm.head.MaskLM(hidden, backbone.config.vocab_size, "gelu"))
        mlm.set_as_aux()  # trained, but never the task that decides when training stops
        trainers.append(mlm)
    joint = args.step_mode == "joint" and len(trainers) > 1
    trainer = palm.MultiHeadTrainer(trainers, backbone=backbone, seed=args.seed, step_mode=args.step_mode,
                                    balancer=balancer_from_args(args) if joint else None)
    log = os.path.join(out, "metrics.jsonl")
    if os.path.exists(log):
        os.remove(log)
    watch.lap("prepare")
    steps_per_epoch = ner_readers["train"].steps_per_epoch
    total = args.max_steps or int(round(args.epochs * steps_per_epoch * (1 if joint else 1 + max(0.0, args.mlm_mix_ratio))))
    summary = trainer.fit(optimizer=optimizer_from_args(args), num_epochs=args.epochs, max_steps=args.max_steps,
                          main_task="ner", save_path=out, keep_last=1, objective="ner.f1",
                          eval_steps=args.eval_steps or default_eval_steps(total, 4),
                          print_steps=args.print_steps, diagnostics_steps=args.diagnostics_steps)
    watch.lap("train")
    trainer.load_ckpt(os.path.join(out, "best"))  # the best dev entity F1
    metrics = {"ner": ner.predict(os.path.join(out, "predictions"), reader=ner_readers["test"], print_steps=0)}
    if len(trainers) > 1:
        metrics["mlm"] = trainer.predict_task(trainers[1], trainers[1].dev_reader, print_steps=0)  # dev tweets
    watch.lap("test")

    speed = training_speed(summary, {t.name: args.batch_size for t in trainers})
    run = {"example": "multi-task-aux-mlm", "split": "test (ner), dev text (mlm)", "steps": summary["steps"],
           "task_steps": summary["task_steps"], "best_dev_f1": summary["best_score"], **speed,
           "phases_seconds": watch.laps, "settings": vars(args)}
    path = write_results(out, metrics, watch.seconds, run)
    print()
    rows = [("ner", "test entity F1", metrics["ner"]["f1"], summary["task_steps"]["ner"])]
    if "mlm" in metrics:
        rows.append(("mlm (aux)", "dev masked-token accuracy", metrics["mlm"]["accuracy"],
                     summary["task_steps"]["mlm"]))
    print(format_table(["task", "metric", "value (%)", "steps"], rows))
    print("best dev F1 %.2f%%; wall time %.0f s (training %.0f s, %.1f train examples/s); results: %s"
          % (100 * summary["best_score"], watch.seconds, speed["train_seconds"],
             speed["train_examples_per_second"], path))
    return read_results(path)


if __name__ == "__main__":
    main()
