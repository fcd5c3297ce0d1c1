#!/usr/bin/env python
"""Joint intent classification + slot filling on SNIPS with one shared MiniLM-L6 encoder.

    python examples/multi-task/run.py                      # the measured run of the README
    python examples/multi-task/run.py --single-task intent # a single-task baseline, same budget
    python examples/multi-task/run.py --separate-inputs    # PALM 2.x style: two readers, tasks sampled
    python examples/multi-task/run.py --max-steps 20 --limit 200   # a smoke test (seconds)

Steps: find the SNIPS files, convert the real all-MiniLM-L6-v2 weights (once), write the standard
split (13,084 train / 700 dev / 700 test) as PALM TSV files, train two tasks over one encoder with
``palm.MultiHeadTrainer`` -- by default both tasks read one ``joint_label`` file, so every batch
goes through the encoder once for both heads and uncertainty weighting balances the two losses
(the best of the methods measured in README.md) -- evaluate on dev during training and on the held-out test split at the
end, save the model, reload it with ``palm.load`` and predict new text. Everything lands in
``--output-dir``: ``results.json``, ``metrics.jsonl`` (for ``paddlepalm report``),
``predictions/<task>/predictions.json`` and ``model/``.
"""
import argparse
import os

from paddlepalm.datasets import find_snips, prepare_snips, pretrained_dir
from paddlepalm.utils.results import read_results, training_speed, write_results
from paddlepalm.utils.script import (SNIPS_TASKS, add_balancing_args, add_common_args, balancer_from_args,
                                     data_out, default_eval_steps, finish_prepare_only, optimizer_from_args,
                                     snips_head, snips_shared_input_trainers)
from paddlepalm.utils.seed import seed_everything
from paddlepalm.utils.table import format_table
from paddlepalm.utils.timing import Stopwatch

TASKS = SNIPS_TASKS  # ("slot", "intent"): the first is the main task, it fixes the length of training
DEMO = {"intent": ["play some jazz", "will it snow in boston tomorrow"],
        "slot": ["play some jazz by miles davis", "book a table for two at a sushi place in paris"]}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_common_args(parser, "snips", os.path.join("outputs", "multi-task"), epochs=2,
                    batch_size=32, lr=2e-4, max_len=48, head_lr=1e-3)
    parser.add_argument("--single-task", choices=TASKS,
                        help="train only this task (the baseline for the multi-task run)")
    parser.add_argument("--intent-mix-ratio", type=float, default=0.5,
                        help="sampling weight of the intent task; slot, the main task, has 1.0 and runs --epochs "
                             "epochs")
    parser.add_argument("--dropout", type=float, default=0.1, help="dropout of both heads")
    parser.add_argument("--no-crf", dest="crf", action="store_false",
                        help="per-word softmax slot head instead of the linear-chain CRF (Viterbi decoding)")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="seed of the standard split (100 test utterances per intent)")
    inputs = parser.add_mutually_exclusive_group()
    inputs.add_argument("--shared-input", dest="shared_input", action="store_true", default=True,
                        help="(the default) both tasks read one joint_label file (words, intent, tags): one "
                             "tokenization and ONE encoder pass per batch for both heads (JointBERT-style); --epochs "
                             "is then the epochs over the utterances")
    inputs.add_argument("--separate-inputs", dest="shared_input", action="store_false", default=argparse.SUPPRESS,
                        help="PALM 2.x style: one reader per task (intent TSV, slot TSV), one task per step drawn "
                             "by mix ratio (--intent-mix-ratio); --balancer applies only with --step-mode joint")
    add_balancing_args(parser, balancer="uncertainty")
    return parser.parse_args(argv)


def build_trainers(args, data, vocab, hidden_size):
    """One ``palm.Trainer`` per task: train reader, dev reader and head."""
    import paddlepalm as palm

    if args.shared_input and not args.single_task:  # one joint_label reader, a view per task
        return snips_shared_input_trainers(data, vocab, hidden_size, args.max_len, args.batch_size, args.seed,
                                           args.dropout, args.crf, TASKS)
    tasks = [args.single_task] if args.single_task else list(TASKS)
    files = data["files"]
    trainers = []
    for offset, task in enumerate(tasks):
        if task == "intent":
            make = lambda phase, seed=None: palm.reader.ClassifyReader(
                vocab, args.max_len, label_map=data["intent_labels"], phase=phase, seed=seed,
                bucket_by_length=True)
            ratio = args.intent_mix_ratio if len(tasks) > 1 else 1.0
        else:
            make = lambda phase, seed=None: palm.reader.SequenceLabelReader(
                vocab, args.max_len, label_map_config=data["slot_label_map"], phase=phase, seed=seed,
                bucket_by_length=True)
            ratio = 1.0
        head = snips_head(task, data, hidden_size, args.dropout, args.crf)
        train = make("train", args.seed + offset).load_data(files["train"][task], args.batch_size)
        dev = make("dev").load_data(files["dev"][task], 64)
        trainers.append(palm.Trainer(task, mix_ratio=ratio, reader=train, head=head, dev_reader=dev))
    return trainers, make_test_readers(args, trainers, files)


def make_test_readers(args, trainers, files):
    return {t.name: t.dev_reader.clone("test").load_data(files["test"][t.name], 64) for t in trainers}


OBJECTIVE = {"intent": "accuracy", "slot": "f1"}


def main(argv=None) -> dict:
    watch = Stopwatch()
    args = parse_args(argv)
    data_dir = find_snips(args.data_dir, os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    vocab = pretrained_dir(args.pretrained)
    out = args.output_dir
    data = prepare_snips(data_dir, data_out(args, __file__), seed=args.split_seed, limit=args.limit)
    if args.prepare_only:
        return finish_prepare_only(vocab, data_out(args, __file__))
    os.makedirs(out, exist_ok=True)

    import paddlepalm as palm

    print("SNIPS from %s: %s" % (data_dir, ", ".join("%s %d" % kv for kv in data["sizes"].items())))
    seed_everything(args.seed)
    backbone = palm.backbone.BERT.from_pretrained(vocab)
    trainers, test_readers = build_trainers(args, data, vocab, backbone.config.hidden_size)
    watch.lap("prepare")

    several_per_step = len(trainers) > 1 and (args.shared_input or args.step_mode == "joint")
    trainer = palm.MultiHeadTrainer(trainers, backbone=backbone, seed=args.seed, step_mode=args.step_mode,
                                    balancer=balancer_from_args(args) if several_per_step else None)
    trainer.log_path = os.path.join(out, "metrics.jsonl")  # read by `paddlepalm report`
    if os.path.exists(trainer.log_path):
        os.remove(trainer.log_path)
    steps_per_epoch = trainers[0].reader.steps_per_epoch
    every_step = several_per_step or len(trainers) == 1  # the main task runs at every step
    planned = args.max_steps or int(round(args.epochs * steps_per_epoch * (
        1 if every_step else sum(t.mix_ratio for t in trainers) / trainers[0].mix_ratio)))
    summary = trainer.fit(optimizer=optimizer_from_args(args), num_epochs=args.epochs, main_task=trainers[0].name,
                          max_steps=args.max_steps, print_steps=args.print_steps,
                          eval_steps=args.eval_steps or default_eval_steps(planned),
                          objective={"%s.%s" % (t.name, OBJECTIVE[t.name]): 1.0 for t in trainers},
                          diagnostics_steps=args.diagnostics_steps)
    watch.lap("train")

    # held-out test split, with the final weights
    metrics = {}
    for t in trainers:
        metrics[t.name] = trainer.predict_task(t, test_readers[t.name], os.path.join(out, "predictions", t.name),
                                               print_steps=0)
    watch.lap("test")
    model_dir = trainer.save(os.path.join(out, "model"))
    model = palm.load(model_dir)
    demo = {t: model.predict(t, DEMO[t]) for t in model.tasks}
    watch.lap("save_and_reload")

    speed = training_speed(summary, {t.name: args.batch_size for t in trainers})
    run = {"example": "multi-task", "tasks": [t.name for t in trainers], "split": "test",
           "sizes": data["sizes"], "steps": summary["steps"], "task_steps": summary["task_steps"],
           "dev": summary["last_eval"], **speed, "phases_seconds": watch.laps,
           "settings": {k: v for k, v in vars(args).items()}, "threads": summary["threads"]}
    path = write_results(out, metrics, watch.seconds, run)
    print_report(metrics, summary, speed, watch.seconds, demo, path, model_dir)
    return read_results(path)


def print_report(metrics, summary, speed, wall, demo, results_path, model_dir):
    print()
    for task, rows in demo.items():
        for text, row in zip(DEMO[task], rows):
            if "label_name" in row:
                print("palm.load(...).predict(%r, [%r]) -> %s (p=%.3f)"
                      % (task, text, row["label_name"], max(row["probs"])))
            else:
                print("palm.load(...).predict(%r, [%r]) -> %s"
                      % (task, text, " ".join("%s/%s" % wl for wl in zip(row["words"], row["labels"]))))
    print()
    headers = ["task", "test metric", "value (%)", "steps"]
    rows = [("intent", "accuracy", metrics["intent"]["accuracy"], summary["task_steps"]["intent"])
            if "intent" in metrics else None,
            ("slot", "entity F1", metrics["slot"]["f1"], summary["task_steps"]["slot"])
            if "slot" in metrics else None]
    print(format_table(headers, [r for r in rows if r]))
    print("wall time %.0f s (training %.0f s, %.2f steps/s, %.1f train examples/s)"
          % (wall, speed["train_seconds"], speed["steps_per_second"], speed["train_examples_per_second"]))
    print("results: %s   model: %s" % (results_path, model_dir))


if __name__ == "__main__":
    main()
