#!/usr/bin/env python
"""Predict new text with a trained model: ``palm.load`` (Python) and an exported static model.

    python examples/multi-task/run.py                   # first: train and save outputs/multi-task/model
    python examples/predict/run.py                      # sample sentences
    python examples/predict/run.py "play the new album by adele" "is it going to rain in rome"
    echo "add this song to my workout playlist" | python examples/predict/run.py -

1. ``palm.load(model_dir)`` rebuilds encoder, heads, readers and label names from the saved
   folder -- no training code -- and ``predict(task, texts)`` tokenizes raw text like the
   task's reader did.
2. ``paddlepalm.export.export_model`` turns each task into a static Paddle inference program
   (for Paddle Inference / Serving); ``paddlepalm.export.Predictor`` runs it on padded batches.
   The script checks that both give the same labels.
Writes ``<output-dir>/predictions.jsonl`` (one line per input: text, intent, slots) and
``<output-dir>/export/``.
"""
import argparse
import json
import os
import sys

from paddlepalm.utils.timing import Stopwatch

SAMPLES = ["play the new album by adele", "is it going to rain in rome this weekend",
           "book a table for four at a mexican restaurant tonight", "rate the hobbit five stars",
           "find the movie schedule at the nearest cinema", "add this song to my workout playlist",
           "show me the trailer of the matrix"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("texts", nargs="*", help="sentences to label ('-' reads lines from stdin)")
    parser.add_argument("--model", default=os.path.join("outputs", "multi-task", "model"),
                        help="a saved model, best/ or ckpt.step<N>/ folder")
    parser.add_argument("--output-dir", default=os.path.join("outputs", "predict"))
    parser.add_argument("--no-export", action="store_true", help="skip the export + Predictor part")
    return parser.parse_args(argv)


def read_texts(args):
    if args.texts == ["-"]:
        return [line.strip() for line in sys.stdin if line.strip()]
    return args.texts or SAMPLES


def export_saved_model(model, path: str) -> str:
    """Export every task of a loaded model (``export_model`` takes a trainer; wrap the model in one)."""
    import paddlepalm as palm
    from paddlepalm.export import export_model

    trainers = [palm.Trainer(task, reader=model.readers[task], head=model.heads[task]) for task in model.tasks]
    return export_model(palm.MultiHeadTrainer(trainers, backbone=model.backbone), path)


def predict_exported(export_dir: str, model, task: str, texts, batch_size: int = 32):
    """Labels from the exported program. The task's reader makes the batches, ``Predictor`` runs
    the network, and the task's head turns the outputs into labels -- for a CRF head that is
    Viterbi decoding with the saved transition scores (the program outputs the emissions)."""
    from paddlepalm.export import Predictor

    predictor = Predictor(export_dir, task)
    head = model.heads[task]
    reader = model.readers[task].clone("predict")
    reader.load_examples(reader.make_examples(texts), batch_size)
    records = []
    for batch in reader.iterator(num_epochs=1):
        records += head.batch_postprocess(predictor.run(batch), batch)
    return [row.get("label_name", row.get("labels")) for row in head.predictions(records, reader)]


def main(argv=None) -> list:
    args = parse_args(argv)
    if not os.path.isfile(os.path.join(args.model, "paddlepalm_model.json")):
        raise SystemExit("error: no saved model at %s. Train one first:\n    python examples/multi-task/run.py\n"
                         "or pass --model DIR (a trainer.save() folder, best/ or ckpt.step<N>/)" % args.model)
    import paddlepalm as palm

    texts = read_texts(args)
    watch = Stopwatch()
    model = palm.load(args.model)
    print("loaded %s (tasks: %s) in %.1f s" % (args.model, ", ".join(model.tasks), watch.lap("load")))
    results = [{"text": t} for t in texts]
    for task in model.tasks:
        for row, prediction in zip(results, model.predict(task, texts)):
            if "label_name" in prediction:
                row[task] = prediction["label_name"]
                row[task + "_probability"] = round(max(prediction["probs"]), 4)
            else:
                row[task] = prediction["labels"]
    watch.lap("predict")
    for row in results:  # classes first, then the words not tagged 'O'
        tasks = sorted(model.tasks, key=lambda t: not isinstance(row[t], str))
        cells = [row[t] if isinstance(row[t], str) else
                 " ".join("%s/%s" % wt for wt in zip(row["text"].split(), row[t]) if wt[1] != "O")
                 for t in tasks]
        print("%-44s %s" % (row["text"][:44], "  ".join("%-20s" % c for c in cells)))
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "predictions.jsonl"), "w", encoding="utf-8") as f:
        for row in results:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print("palm.load + predict: %.2f s for %d texts" % (watch.laps["predict"], len(texts)))

    if not args.no_export:
        export_dir = export_saved_model(model, os.path.join(args.output_dir, "export"))
        watch.lap("export")
        same = True
        for task in model.tasks:
            exported = predict_exported(export_dir, model, task, texts)
            python = [row[task] for row in results]
            agree = sum(a == b for a, b in zip(exported, python))
            same = same and agree == len(texts)
            print("exported %-7s Predictor agrees with palm.load on %d/%d texts" % (task, agree, len(texts)))
        watch.lap("exported_predict")
        print("export %.1f s -> %s; Predictor: %.2f s" % (watch.laps["export"], export_dir,
                                                          watch.laps["exported_predict"]))
        if not same:
            raise SystemExit("error: the exported model disagrees with palm.load")
    return results


if __name__ == "__main__":
    main()
