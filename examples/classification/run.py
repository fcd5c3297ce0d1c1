#!/usr/bin/env python
"""SNIPS intent classification (7 intents) with MiniLM-L6, written the PALM 2.x way.

    python examples/classification/run.py
    python examples/classification/run.py --max-steps 20 --limit 200     # smoke test

This script keeps the shape of PALM 2.x's ``examples/classification/run.py``: reader ->
backbone -> head -> ``Trainer.build_forward`` -> ``build_backward`` -> ``fit_reader`` ->
``load_pretrain`` -> ``set_saver`` -> ``train``, then a separate predict backbone and head,
``build_predict_forward`` -> ``load_ckpt`` -> ``predict``. The flagship
(``examples/multi-task/run.py --single-task intent``) trains the same task with the plain API.
Outputs in ``--output-dir``: ``results.json`` (test accuracy), ``metrics.jsonl``,
``ckpt.step<N>/`` and ``predictions/predictions.json``.
"""
import argparse
import os

from paddlepalm.datasets import find_snips, prepare_snips, pretrained_dir
from paddlepalm.utils.results import read_results, training_speed, write_results
from paddlepalm.utils.script import add_common_args, data_out, finish_prepare_only
from paddlepalm.utils.seed import seed_everything
from paddlepalm.utils.table import format_table
from paddlepalm.utils.timing import Stopwatch

# the SNIPS files of the multi-task example (where its download_data.py puts them)
SNIPS_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "multi-task", "data")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_common_args(parser, "snips", os.path.join("outputs", "classification"), epochs=1,
                    batch_size=32, lr=1e-4, max_len=48)
    parser.add_argument("--dropout", type=float, default=0.1)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    watch = Stopwatch()
    args = parse_args(argv)
    data_dir = find_snips(args.data_dir, SNIPS_DATA)
    pretrained = pretrained_dir(args.pretrained)
    out = args.output_dir
    data = prepare_snips(data_dir, data_out(args, __file__), limit=args.limit)
    if args.prepare_only:
        return finish_prepare_only(pretrained, data_out(args, __file__))

    import paddlepalm as palm

    files, intents = data["files"], data["intent_labels"]
    seed_everything(args.seed)

    # -- training, PALM 2.x style
    train_reader = palm.reader.ClassifyReader(pretrained, args.max_len, seed=args.seed, label_map=intents,
                                              bucket_by_length=True)
    train_reader.load_data(files["train"]["intent"], batch_size=args.batch_size, num_epochs=args.epochs)
    backbone = palm.backbone.BERT.from_config(pretrained)  # weights come from load_pretrain below
    train_reader.register_with(backbone)
    head = palm.head.Classify(len(intents), backbone.config.hidden_size, args.dropout)
    trainer = palm.Trainer("intent")
    loss_var = trainer.build_forward(backbone, head)
    n_steps = args.max_steps or int(train_reader.num_examples * args.epochs // args.batch_size)
    schedule = palm.lr_sched.TriangularSchedualer(int(args.warmup * n_steps), n_steps)
    adam = palm.optimizer.Adam(loss_var, args.lr, schedule, head_lr=args.head_lr)  # head_lr: new in paddlepalm 3
    trainer.build_backward(optimizer=adam, weight_decay=0.01)
    trainer.fit_reader(train_reader)
    trainer.load_pretrain(pretrained)
    save_path = out  # ckpt.step<N>/ and metrics.jsonl (for `paddlepalm report`) go here
    trainer.set_saver(save_path=save_path, save_steps=10 ** 9, save_type="ckpt")  # final save only
    metrics_log = os.path.join(save_path, "metrics.jsonl")
    if os.path.exists(metrics_log):
        os.remove(metrics_log)
    watch.lap("prepare")
    summary = trainer.train(print_steps=args.print_steps, max_steps=args.max_steps)
    watch.lap("train")

    # -- prediction on the held-out test split, PALM 2.x style
    predict_reader = palm.reader.ClassifyReader(pretrained, args.max_len, label_map=intents, phase="predict")
    predict_reader.load_data(files["test"]["intent"], batch_size=64)
    pred_backbone = palm.backbone.BERT.from_config(pretrained, phase="predict")
    predict_reader.register_with(pred_backbone)
    pred_head = palm.head.Classify(len(intents), pred_backbone.config.hidden_size, phase="predict")
    trainer.build_predict_forward(pred_backbone, pred_head)
    checkpoint = os.path.join(save_path, "ckpt.step%d" % summary["steps"])
    trainer.load_ckpt(checkpoint)
    trainer.fit_reader(predict_reader, phase="predict")
    test = trainer.predict(output_dir=os.path.join(out, "predictions"))
    watch.lap("test")

    speed = training_speed(summary, {"intent": args.batch_size})
    run = {"example": "classification", "split": "test", "sizes": data["sizes"], "steps": summary["steps"],
           "checkpoint": checkpoint, **speed, "phases_seconds": watch.laps, "settings": vars(args)}
    path = write_results(out, {"intent": test}, watch.seconds, run)
    print()
    print(format_table(["task", "test accuracy (%)", "macro F1 (%)", "steps"],
                       [("intent", test["accuracy"], test["macro_f1"], summary["steps"])]))
    print("wall time %.0f s (training %.0f s, %.1f train examples/s); results: %s"
          % (watch.seconds, speed["train_seconds"], speed["train_examples_per_second"], path))
    return read_results(path)


if __name__ == "__main__":
    main()
