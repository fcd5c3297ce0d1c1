#!/usr/bin/env python
"""Distil the SNIPS intent + slot flagship into a 3- (or 2-) layer student, both tasks at once.

    python examples/multi-task/run.py --shared-input --balancer uncertainty       # the teacher, once
    python examples/distill/run.py --teacher outputs/multi-task/model             # student L3 (layers 0,2,4)
    python examples/distill/run.py --teacher outputs/multi-task/model --layers 1,4 --output-dir outputs/distill-l2
    python examples/distill/run.py --teacher outputs/multi-task/model --no-teacher --output-dir outputs/distill-base
    python examples/distill/run.py --teacher outputs/multi-task/model --max-steps 20 --limit 200 --output-dir /tmp/d

The student is the teacher's encoder cut to ``--layers`` (DistilBERT's initialisation: embeddings,
pooler and those layers copied) with the teacher's heads, trained exactly like the flagship's
shared-input run (one joint_label reader, one encoder pass per batch for both heads, CRF slot
head, uncertainty weighting of the two task losses, 2 epochs, batch 32, lr 2e-4, heads 1e-3) with
each task's loss replaced by ``hard_weight * labels + soft_weight * T^2 * KL(teacher || student)``
(``paddlepalm.distill``). ``--no-teacher`` is the baseline at the same budget: the same student
architecture cut from the *pretrained* MiniLM (not the fine-tuned teacher), fresh heads, labels
only. The student is evaluated on the 700 SNIPS test utterances, the teacher on the same files;
``results.json`` has the student's metrics per task, a ``teacher`` block and ``retention``.
"""
import argparse
import hashlib
import json
import os

from paddlepalm.datasets import find_snips, prepare_snips, pretrained_dir
from paddlepalm.utils.results import read_results, retention, training_speed, write_results
from paddlepalm.utils.script import (SNIPS_TASKS, add_common_args, data_out, default_eval_steps,
                                     optimizer_from_args, snips_shared_input_trainers)
from paddlepalm.utils.seed import seed_everything
from paddlepalm.utils.table import format_table
from paddlepalm.utils.timing import Stopwatch

TASKS = SNIPS_TASKS  # ("slot", "intent"): slot, the main task, fixes the length of training
OBJECTIVE = {"intent": "accuracy", "slot": "f1"}  # the metric compared per task (and the dev objective)
DEMO = {"intent": "play some jazz", "slot": "book a table for two at a sushi place in paris"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_common_args(parser, "snips", os.path.join("outputs", "distill"), epochs=2, batch_size=32, lr=2e-4,
                    max_len=48, head_lr=1e-3)
    g = parser.add_argument_group("distillation")
    g.add_argument("--teacher", metavar="DIR",
                   help="the saved teacher: a paddlepalm model with the tasks slot and intent, e.g. the flagship's "
                        "outputs/multi-task/model (a training output folder or checkpoint works too: palm.load "
                        "resolves it). Required, except with --no-teacher (then only evaluated, for the table)")
    g.add_argument("--layers", default="0,2,4",
                   help="the student's layers: these 0-based layers of the teacher's (of the pretrained MiniLM's "
                        "with --no-teacher), e.g. 0,2,4 (L3) or 1,4 (L2)")
    g.add_argument("--temperature", type=float, default=2.0,
                   help="softmax temperature of the soft labels (the soft loss is scaled by T^2)")
    g.add_argument("--soft-weight", type=float, default=0.9, help="weight of the teacher (soft-label) loss")
    g.add_argument("--hard-weight", type=float, default=0.1,
                   help="weight of the gold-label loss (it also keeps training the CRF transitions, which the "
                        "soft loss on the emissions does not reach)")
    g.add_argument("--match-hidden", action="store_true",
                   help="also match hidden states (MSE over real tokens): student layer j <- teacher layer "
                        "(j+1)*T/S-1 (TinyBERT's uniform mapping: 0<-1, 1<-3, 2<-5 for 3 of 6 layers; 0<-2, 1<-5 for "
                        "2), once per step (added to the slot loss; the encoder pass is shared)")
    g.add_argument("--match-weight", type=float, default=1.0, help="weight of each hidden-state match")
    g.add_argument("--no-cache", dest="cache", action="store_false",
                   help="run the teacher at every step instead of once per training utterance")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--no-teacher", action="store_true",
                      help="the baseline at the same budget: the student's layers taken from the PRETRAINED MiniLM, "
                           "fresh heads, gold labels only")
    mode.add_argument("--init-from-teacher-no-kd", action="store_true",
                      help="ablation: the student from the teacher's layers and heads, gold labels only (no soft loss)")
    parser.add_argument("--dropout", type=float, default=0.1, help="dropout of the fresh heads (--no-teacher)")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="seed of the standard split; must be the teacher's (else its training data leaks "
                             "into the test set)")
    parser.add_argument("--step-mode", choices=("sampled", "joint"), default="sampled",
                        help="as the flagship's (with one shared reader both tasks run at every step either way)")
    parser.add_argument("--balancer", choices=("fixed", "uncertainty", "dwa", "gradnorm", "pcgrad", "cagrad"),
                        default="uncertainty", help="how the two task losses combine (docs/balancing.md)")
    parser.add_argument("--diagnostics-steps", type=int, default=50,
                        help="log the task-gradient cosine and task weights every N steps")
    args = parser.parse_args(argv)
    try:
        args.layers = [int(x) for x in args.layers.split(",") if x.strip()]
    except ValueError:
        parser.error("--layers: expected comma-separated layer indices such as 0,2,4, got %r" % args.layers)
    if args.prepare_only:
        parser.error("--prepare-only: this example has no config.yaml (the YAML route is `paddlepalm distill CONFIG`, "
                     "docs/distillation.md); examples/multi-task/run.py --prepare-only writes the SNIPS files")
    if not args.teacher and not args.no_teacher:
        parser.error("--teacher DIR is required (a saved model with the tasks slot and intent), except with "
                     "--no-teacher")
    args.mode = "no-teacher" if args.no_teacher else ("teacher-init" if args.init_from_teacher_no_kd else "distill")
    return args


def hidden_matches(student_layers: int, teacher_layers: int, weight: float, task: str):
    """TinyBERT's uniform layer mapping: student layer j <- teacher layer (j+1)*T/S - 1.

    The matches compare encoder states, which both tasks share (one encoder pass per batch), so
    they are attached to one task (``task``): attached to both, each task's loss would carry the
    same term and it would count twice."""
    return [{"layer_T": (j + 1) * teacher_layers // student_layers - 1, "layer_S": j, "feature": "hidden",
             "loss": "mse", "weight": weight, "tasks": [task]} for j in range(student_layers)]


def fingerprint(layers) -> str:
    """sha1 over every parameter of ``layers`` (a changed teacher weight changes it)."""
    h = hashlib.sha1()
    for layer in layers:
        for name, p in layer.named_parameters():
            h.update(name.encode())
            h.update(p.numpy().tobytes())
    return h.hexdigest()


def check_teacher_split(teacher_dir: str, args) -> None:
    """Warn when the teacher's run (results.json beside its model) used another split of SNIPS."""
    path = os.path.join(os.path.dirname(os.path.abspath(teacher_dir.rstrip(os.sep))), "results.json")
    if not os.path.isfile(path):
        return
    settings = read_results(path).get("run", {}).get("settings", {})
    if "split_seed" in settings and settings["split_seed"] != args.split_seed:
        print("WARNING: the teacher was trained with --split-seed %s, this run tests on --split-seed %s: part of "
              "the test set is the teacher's training data" % (settings["split_seed"], args.split_seed))


def build_student(args, trainers, vocab):
    """(student encoder, its Distillation or None); the student heads are set on ``trainers``."""
    import paddlepalm as palm
    from paddlepalm.distill import build_distillation, student_from_teacher

    if args.mode == "no-teacher":  # the same architecture, from the pretrained encoder, fresh heads
        pretrained = palm.backbone.BERT.from_pretrained(vocab)
        return student_from_teacher(pretrained, args.layers, key="--layers"), None
    teacher_model = palm.load(args.teacher)
    section = {"teacher": teacher_model, "student": {"layers": args.layers, "heads": "copy"},
               "temperature": args.temperature, "soft_weight": args.soft_weight, "hard_weight": args.hard_weight,
               "cache": args.cache and args.mode == "distill"}
    if args.match_hidden and args.mode == "distill":
        section["matches"] = hidden_matches(len(args.layers), teacher_model.backbone.config.num_hidden_layers,
                                            args.match_weight, TASKS[0])
    dist = build_distillation(section, [t.name for t in trainers], readers={t.name: t.reader for t in trainers})
    for t in trainers:
        t.head = dist.heads[t.name]
    return dist.student, dist


def main(argv=None) -> dict:
    watch = Stopwatch()
    args = parse_args(argv)
    data_dir = find_snips(args.data_dir, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                      "multi-task", "data"))
    vocab = pretrained_dir(args.pretrained)
    out = args.output_dir
    data = prepare_snips(data_dir, data_out(args, __file__), seed=args.split_seed, limit=args.limit)
    os.makedirs(out, exist_ok=True)
    if args.teacher:
        check_teacher_split(args.teacher, args)

    import paddlepalm as palm
    from paddlepalm.distill import attach

    print("SNIPS from %s: %s" % (data_dir, ", ".join("%s %d" % kv for kv in data["sizes"].items())))
    seed_everything(args.seed)
    hidden_size = palm.backbone.EncoderConfig.load(vocab).hidden_size  # the fresh heads' width (= the student's)
    trainers, test_readers = snips_shared_input_trainers(data, vocab, hidden_size, args.max_len, args.batch_size,
                                                         args.seed, args.dropout, True, TASKS)
    student, dist = build_student(args, trainers, vocab)
    teacher_before = fingerprint([dist.teacher.backbone(TASKS[0])] + [dist.teacher.head(t) for t in TASKS]) \
        if dist else None
    watch.lap("prepare")

    trainer = palm.MultiHeadTrainer(trainers, backbone=student, seed=args.seed, step_mode=args.step_mode,
                                    balancer=args.balancer)
    callbacks = [attach(trainer, dist)] if args.mode == "distill" else []
    trainer.log_path = os.path.join(out, "metrics.jsonl")  # read by `paddlepalm report`
    if os.path.exists(trainer.log_path):
        os.remove(trainer.log_path)
    planned = args.max_steps or int(round(args.epochs * trainers[0].reader.steps_per_epoch))
    print("student: %d layers (%s layers %s), %s; %s"
          % (len(args.layers), "pretrained MiniLM" if dist is None else "teacher", args.layers,
             "fresh heads" if dist is None else "the teacher's heads",
             {"distill": "soft %.2f x T^2 KL (T=%g) + hard %.2f x labels%s" % (
                 args.soft_weight, args.temperature, args.hard_weight,
                 " + hidden-state MSE" if args.match_hidden else ""),
              "teacher-init": "labels only (no soft loss)", "no-teacher": "labels only"}[args.mode]))
    summary = trainer.fit(optimizer=optimizer_from_args(args), num_epochs=args.epochs, main_task=TASKS[0],
                          max_steps=args.max_steps, print_steps=args.print_steps,
                          eval_steps=args.eval_steps or default_eval_steps(planned),
                          objective={"%s.%s" % (t, OBJECTIVE[t]): 1.0 for t in TASKS},
                          diagnostics_steps=args.diagnostics_steps, callbacks=callbacks)
    watch.lap("train")

    metrics = {t.name: trainer.predict_task(t, test_readers[t.name], os.path.join(out, "predictions", t.name),
                                            print_steps=0) for t in trainers}
    watch.lap("test")
    teacher_metrics, teacher_unchanged = None, None
    if args.teacher:  # the teacher on the same test file (its own reader, no training involved)
        teacher = dist.teacher.model(TASKS[0]) if dist else palm.load(args.teacher)
        teacher_metrics = {t: teacher.evaluate(t, data["files"]["test"]["joint"], 64) for t in TASKS}
        if dist:
            teacher_unchanged = fingerprint([dist.teacher.backbone(TASKS[0])]
                                            + [dist.teacher.head(t) for t in TASKS]) == teacher_before
            if not teacher_unchanged:
                raise RuntimeError("the teacher's parameters changed during distillation")
    watch.lap("teacher_test")
    model_dir = trainer.save(os.path.join(out, "model"))
    reloaded = palm.load(model_dir)
    demo = {t: reloaded.predict(t, [DEMO[t]])[0] for t in TASKS}
    watch.lap("save_and_reload")

    speed = training_speed(summary, {t.name: args.batch_size for t in trainers})
    run = {"example": "distill", "mode": args.mode, "tasks": list(TASKS), "split": "test", "sizes": data["sizes"],
           "teacher": os.path.abspath(args.teacher) if args.teacher else None,
           "student": {"layers": args.layers, "num_hidden_layers": reloaded.backbone.config.num_hidden_layers,
                       "init": "pretrained" if args.mode == "no-teacher" else "teacher",
                       "heads": "fresh" if args.mode == "no-teacher" else "teacher",
                       "parameters": sum(int(p.size) for p in reloaded.backbone.parameters())},
           "teacher_unchanged": teacher_unchanged,
           "steps": summary["steps"], "task_steps": summary["task_steps"], "dev": summary["last_eval"], **speed,
           "phases_seconds": watch.laps, "settings": dict(vars(args)), "threads": summary["threads"]}
    path = write_results(out, metrics, watch.seconds, run, teacher=teacher_metrics, teacher_metric=OBJECTIVE)
    print_report(metrics, teacher_metrics, summary, speed, watch.seconds, demo, path, model_dir, args)
    return read_results(path)


def print_report(metrics, teacher_metrics, summary, speed, wall, demo, results_path, model_dir, args):
    print()
    for task, row in demo.items():
        shown = "%s (p=%.3f)" % (row["label_name"], max(row["probs"])) if "label_name" in row else \
            " ".join("%s/%s" % wl for wl in zip(row["words"], row["labels"]))
        print("student palm.load(...).predict(%r, [%r]) -> %s" % (task, DEMO[task], shown))
    print()
    names = {"intent": "intent accuracy", "slot": "slot entity F1"}
    kept = retention(metrics, teacher_metrics or {}, OBJECTIVE)
    rows = []
    for task in ("intent", "slot"):
        k = kept.get(task)
        rows.append((names[task], k["teacher"] if k else "–", metrics[task][OBJECTIVE[task]],
                     "%.1f" % k["kept_percent"] if k and k["kept_percent"] is not None else "–"))
    print(format_table(["task", "teacher", "student L%d %s" % (len(args.layers), json.dumps(args.layers)), "kept %"],
                       rows))
    print("%s; wall time %.0f s (training %.0f s, %d steps, %.2f steps/s, %.1f train examples/s)"
          % (args.mode, wall, speed["train_seconds"], summary["steps"], speed["steps_per_second"],
             speed["train_examples_per_second"]))
    print("results: %s   model: %s" % (results_path, model_dir))


if __name__ == "__main__":
    main()
