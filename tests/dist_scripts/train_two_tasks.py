"""A tiny two-task run for tests/test_distributed.py: alone, or under the launcher::

    python -m paddle.distributed.launch --nproc_per_node 2 tests/dist_scripts/train_two_tasks.py OUT

``--batch`` is the global batch size (each of N ranks trains on batch/N rows). Rank 0 writes the
checkpoints, logs and predictions under OUT; every rank writes ``OUT/rank<r>.json`` with what it
saw, so the test can check that the ranks agree. ``--crash-rank R --crash-step K`` makes rank R
raise after K steps while the others go on training.
"""
import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# 9 and 7 rows: with a global batch of 4 the last batches (1 and 3 rows) split unevenly over 2 ranks
ROWS_A = [("0", "play jazz music"), ("1", "what is the weather in paris"), ("2", "book a table for two"),
          ("0", "play rock songs"), ("1", "will it rain tomorrow"), ("2", "book the restaurant"),
          ("0", "play a song by the rock"), ("1", "is it sunny in paris"), ("2", "book a table at the cinema")]
ROWS_B = [("1", "great song"), ("0", "terrible movie"), ("1", "good book"), ("0", "bad weather in paris"),
          ("1", "i want this novel"), ("0", "no"), ("1", "yes , great stars !")]


def write_data(folder):
    from tests.helpers import write_vocab

    vocab = write_vocab(os.path.join(folder, "vocab"))
    paths = {}
    for name, rows in (("a", ROWS_A), ("b", ROWS_B)):
        paths[name] = os.path.join(folder, name + ".tsv")
        with open(paths[name], "w", encoding="utf-8") as f:
            f.write("label\ttext_a\n" + "".join("%s\t%s\n" % r for r in rows))
    return vocab, paths


def build(batch, seed=0, step_mode="sampled", balancer=None):
    import paddle

    import paddlepalm as palm
    from tests.helpers import tiny_config

    vocab, paths = write_data(tempfile.mkdtemp(prefix="palm-dist-data-"))
    # ranks other than 0 start from other weights and data orders on purpose: training must
    # replace them with rank 0's, or the result would differ from the one-process run
    offset = 1000 * palm.distributed.rank()
    paddle.seed(seed + offset)
    backbone = palm.backbone.BERT.from_config(tiny_config("bert"))  # dropout 0
    tasks = []
    for name, classes, ratio, reader_seed in (("a", 3, 1.0, 11), ("b", 2, 0.7, 12)):
        reader = palm.reader.ClassifyReader(vocab, 16, seed=reader_seed + offset).load_data(paths[name], batch_size=batch)
        dev = palm.reader.ClassifyReader(vocab, 16, phase="dev").load_data(paths[name], batch_size=3)
        tasks.append(palm.Trainer(name, mix_ratio=ratio, reader=reader, dev_reader=dev,
                                  head=palm.head.Classify(classes, 32, 0.0)))
    return palm.MultiHeadTrainer(tasks, backbone=backbone, seed=seed, step_mode=step_mode, balancer=balancer)


def run(out, batch=4, steps=20, crash_rank=None, crash_step=None, step_mode="sampled", balancer=None):
    import paddlepalm as palm

    palm.distributed.init()
    trainer = build(batch, step_mode=step_mode, balancer=balancer)
    kwargs = dict(optimizer=palm.optimizer.AdamW(lr=3e-3), max_steps=steps, save_path=os.path.join(out, "ckpt"),
                  save_steps=10, eval_steps=10, keep_last=1, print_steps=5, progress=False,
                  objective=None)  # no best/ (the default objective is the main task's first metric)
    if crash_rank is not None:
        trainer.fit(stop_after=crash_step, **kwargs)
        if palm.distributed.rank() == crash_rank:
            raise RuntimeError("rank %d fails on purpose at step %d" % (crash_rank, trainer.global_step))
        trainer.train(print_steps=5, progress=False)  # the others block in the next all-reduce
        return None
    summary = trainer.fit(**kwargs)
    metrics = trainer.evaluate(output_dir=os.path.join(out, "eval"))
    trainer.save(os.path.join(out, "model"))
    view = {"rank": palm.distributed.rank(), "world": palm.distributed.world_size(),
            "task_steps": summary["task_steps"], "metrics": metrics,
            "pooler": trainer.backbone.pooler.dense.weight.numpy().ravel()[:8].tolist()}
    with open(os.path.join(out, "rank%d.json" % view["rank"]), "w") as f:
        json.dump(view, f)
    return view


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--crash-rank", type=int)
    p.add_argument("--crash-step", type=int, default=3)
    p.add_argument("--step-mode", default="sampled")
    p.add_argument("--balancer")
    args = p.parse_args(argv)
    run(args.out, args.batch, args.steps, args.crash_rank, args.crash_step, args.step_mode, args.balancer)


if __name__ == "__main__":
    main()
