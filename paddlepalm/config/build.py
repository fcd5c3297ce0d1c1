"""Settings -> objects: backbone, readers, heads, trainers and optimizer, through the registries only.

:func:`build_run` is the one place a config becomes a :class:`~paddlepalm.MultiHeadTrainer`.
Head sizes the config leaves out are inferred (see :func:`infer_head_args`) and written back
into the settings, so ``config.resolved.yaml`` records them.
"""
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from paddlepalm.config.loader import Config, Problem, config_error
from paddlepalm.config.validate import validate

MODES = ("train", "evaluate", "predict", "export")
_LABEL_ARGS = ("label_map", "label_map_config")


@dataclass
class Run:
    """Everything a command needs: the settings and the built objects."""

    settings: Dict[str, Any]
    backbone: Any
    trainers: List[Any]
    engine: Any
    optimizer: Any = None
    objective: Any = None
    checkpoint: Optional[str] = None
    vocab: Optional[str] = None
    callbacks: List[Any] = field(default_factory=list)

    def trainer(self, name: str):
        return self.engine.trainers[self.engine.task_index(name)]


def _options(component: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in component.items() if k != "type"}


def _accepted(cls, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Keep the arguments ``cls`` takes (a custom class may not take every standard one)."""
    from paddlepalm.utils.init_args import init_params

    params = init_params(cls)
    return {k: v for k, v in kwargs.items() if k in params}


# ----------------------------------------------------------------------------- pieces
def pretrained_dir(settings: Dict[str, Any]) -> Optional[str]:
    """The backbone's checkpoint folder; a catalog name is downloaded first."""
    name = settings["backbone"]["pretrained"]
    if name is None or os.path.isdir(name):
        return name
    from paddlepalm import downloader

    return downloader.download("pretrain", name, settings["backbone"]["download_dir"])


def build_backbone(settings: Dict[str, Any], checkpoint: Optional[str] = None, phase: str = "train"):
    """The encoder: from a training checkpoint, the pretrained folder, or its config (random)."""
    from paddlepalm.artifact import BACKBONE_DIR
    from paddlepalm.registry import BACKBONES

    b = settings["backbone"]
    cls = BACKBONES.get(b["type"])
    if checkpoint is not None:
        return cls.from_pretrained(os.path.join(checkpoint, BACKBONE_DIR), phase=phase)
    if b["pretrained"] is not None:
        return cls.from_pretrained(pretrained_dir(settings), phase=phase, **b["overrides"])
    return cls.from_config(b["config"], phase=phase, **b["overrides"])


def build_reader(settings: Dict[str, Any], task: str, phase: str, vocab: str, label_vocab=None):
    """A reader of ``task`` for ``phase`` (without data); ``label_vocab`` fixes its label map.

    A reader whose batches feed several tasks (``joint_label``, see ``input_of``) takes the label
    map of each field from the task whose head reads it; its ``label_vocab`` is then a mapping
    ``{reader argument: labels}`` (what ``label_args()`` returns and a saved model records).
    """
    from paddlepalm.config.inputs import label_maps, shares_input
    from paddlepalm.registry import READERS

    t = settings["tasks"][task]
    tok = settings["tokenizer"]
    cls = READERS.get(t["reader"]["type"])
    kwargs = {"max_len": t["max_len"], "tokenizer": tok["type"], "do_lower_case": tok["do_lower_case"],
              "seed": settings["seed"], "phase": phase}
    if t["fields"]:
        kwargs["fields"] = t["fields"]
    if shares_input(cls):
        given = label_vocab if label_vocab is not None else label_maps(settings["tasks"], task, cls)
        kwargs.update({k: v for k, v in given.items() if v is not None})
        return cls(vocab, **_accepted(cls, kwargs), **_options(t["reader"]))
    label_map = label_vocab if label_vocab is not None else t["label_map"]
    if label_map is not None:
        kwargs.update({k: label_map for k in _LABEL_ARGS})
    return cls(vocab, **_accepted(cls, kwargs), **_options(t["reader"]))


def num_classes_of(reader) -> Optional[int]:
    """Size of the reader's label map, else the largest integer label + 1 (PALM files)."""
    vocab = reader.label_vocab()
    if vocab is not None:
        return len(vocab)
    labels = [f["label"] for f in reader.features if isinstance(f.get("label"), int)]
    return max(labels) + 1 if labels else None


def infer_head_args(head_cls, options: Dict[str, Any], reader, backbone,
                    known: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Head arguments the config left out: from ``known`` (a checkpoint's), else inferred.

    ``num_classes``: the label map's size, else the largest integer label + 1; ``input_dim``: the
    backbone's hidden size; ``vocab_size``: the tokenizer's; any other argument the train reader
    has as an attribute (``max_query_len``, ``multi_label``, ``learning_strategy``...).
    """
    from paddlepalm.utils.init_args import init_params

    inferred = {}
    for name, param in init_params(head_cls).items():
        if name in options or name == "phase":
            continue
        if known and name in known:
            inferred[name] = known[name]
        elif name == "num_classes":
            count = num_classes_of(reader) if reader is not None else None
            if count is not None:
                inferred[name] = count
        elif name == "input_dim":
            inferred[name] = backbone.config.hidden_size
        elif name == "vocab_size":
            inferred[name] = reader.tokenizer.vocab_size if reader is not None else backbone.config.vocab_size
        elif reader is not None and hasattr(reader, name) and \
                (name in getattr(reader, "_init_args", {}) or param.default is param.empty):
            inferred[name] = getattr(reader, name)
    return inferred


def build_optimizer(settings: Dict[str, Any]):
    """The optimizer (with its LR schedule) named by the settings."""
    from paddlepalm.registry import OPTIMIZERS, SCHEDULERS

    o, sch = settings["optimizer"], settings["schedule"]
    sched_cls = SCHEDULERS.get(sch["type"])
    schedule = sched_cls(**_accepted(sched_cls, {"warmup_steps": sch["warmup_steps"],
                                                 "warmup_ratio": sch["warmup_ratio"]}))
    cls = OPTIMIZERS.get(o["type"])
    kwargs = {k: v for k, v in o.items() if k != "type" and not (k == "weight_decay" and v is None)}
    return cls(lr_scheduler=schedule, **kwargs)


def read_checkpoint_meta(checkpoint: str) -> Dict[str, Any]:
    from paddlepalm.artifact import MODEL_FILE

    with open(os.path.join(checkpoint, MODEL_FILE), encoding="utf-8") as f:
        return json.load(f)


def resolve_checkpoint(path: str) -> str:
    """A model folder: ``path`` itself, or a training output's ``best/`` (else newest ckpt) --
    the same rule as ``palm.load`` (:func:`paddlepalm.engine.checkpoints.resolve_model_dir`)."""
    from paddlepalm.engine.checkpoints import resolve_model_dir

    return resolve_model_dir(path)


# ----------------------------------------------------------------------------- the run
def build_run(config: Config, mode: str = "train", checkpoint: Optional[str] = None,
              split: str = "dev") -> Run:
    """Build backbone, readers, heads and trainers for ``mode``.

    * ``train``: train readers loaded (and ``dev`` ones), heads initialised, optimizer made.
    * ``evaluate``: every task's ``split`` file loaded as its dev reader, weights from ``checkpoint``
      still to be loaded by the caller (``run.engine.load_ckpt``).
    * ``predict`` / ``export``: empty predict readers, for the caller to fill.

    Outside training, label maps and inferred head sizes come from the checkpoint. Tasks over the
    same inputs (``input_of``) get views of one reader per phase (``reader.for_head(head)``): one
    tokenization, and in training one encoder pass per batch for all of them.
    """
    import paddle

    from paddlepalm.compat.palm2 import MultiHeadTrainer, Trainer
    from paddlepalm.config.inputs import INPUT_OF, field_of, shares_input, source_of
    from paddlepalm.registry import HEADS, READERS

    if mode not in MODES:
        raise ValueError("mode must be one of %s, got %r" % (", ".join(MODES), mode))
    settings = config.settings if config.settings is not None else validate(config)
    meta = read_checkpoint_meta(checkpoint)["tasks"] if checkpoint else {}
    paddle.seed(settings["seed"])
    backbone = build_backbone(settings, checkpoint, "train" if mode == "train" else "predict")
    vocab = settings["tokenizer"]["vocab"]
    if vocab == settings["backbone"]["pretrained"]:
        vocab = pretrained_dir(settings)
    problems: List[Problem] = []
    tasks = settings["tasks"]
    sources: Dict[str, Dict[str, Any]] = {}  # task with a reader -> its readers, by Trainer argument
    shared: Dict[str, Any] = {}  # such a task -> its reader class, when its batches feed several tasks
    for name, t in tasks.items():
        if t[INPUT_OF] is not None:
            continue  # reads the batches of its source (views below)
        cls = READERS.get(t["reader"]["type"])
        if shares_input(cls):
            shared[name] = cls
        if mode == "train":
            train = build_reader(settings, name, "train", vocab).load_data(
                t["train"], t["batch_size"], file_format=t["file_format"])
            label_vocab = train.label_args() if name in shared else train.label_vocab()
            sources[name] = {"reader": train}
        else:
            label_vocab = _saved_labels(meta, tasks, name, name in shared)
            sources[name] = {"predict_reader": build_reader(settings, name, "predict", vocab, label_vocab)}
        eval_file = t["dev"] if mode == "train" else t[split] if mode == "evaluate" else None
        if eval_file:
            sources[name]["dev_reader"] = build_reader(settings, name, "dev", vocab, label_vocab).load_data(
                eval_file, t["batch_size"], file_format=t["file_format"])

    def readers_of(name: str, head=None) -> Dict[str, Any]:
        """The task's readers: its own, or its view of the shared ones (by head, else by field)."""
        source = source_of(tasks, name)
        if source not in shared:
            return sources[source]
        field = field_of(tasks, name, shared[source])
        return {k: r.for_head(head) if head is not None else r.view(field) for k, r in sources[source].items()}

    heads: Dict[str, Any] = {}
    for name, t in tasks.items():
        if t["reuse_head_with"] is not None:
            continue
        head_cls = HEADS.get(t["head"]["type"])
        options = _options(t["head"])
        reader = readers_of(name).get("reader")
        _check_head_size(config, name, options, reader, problems)
        known = meta.get(name, {}).get("head", {}).get("args")
        t["head"].update(infer_head_args(head_cls, options, reader, backbone, known))
        try:
            heads[name] = head_cls(**_options(t["head"]))
        except (TypeError, ValueError) as e:
            problems.append(config.problem(("tasks", name, "head"), "cannot build %s: %s" % (head_cls.__name__, e)))
    if problems:
        raise config_error(problems, config.source)

    built = [Trainer(name, mix_ratio=t["mix_ratio"], reuse_head_with=t["reuse_head_with"],
                     head=heads.get(t["reuse_head_with"] or name), loss_weight=t["loss_weight"], is_aux=t["aux"],
                     **readers_of(name, heads.get(t["reuse_head_with"] or name)))
             for name, t in tasks.items()]
    engine = MultiHeadTrainer(built, backbone=backbone, main_task=settings["main_task"],
                              sampling=settings["sampling"]["strategy"],
                              temperature=settings["sampling"]["temperature"], seed=settings["seed"],
                              step_mode=settings["sampling"]["step_mode"],
                              tasks_per_step=settings["sampling"]["tasks_per_step"],
                              balancer=build_balancer(config, settings) if mode == "train" else None)
    engine.build_forward()
    objective = _objective(config, settings, engine) if mode == "train" else None
    optimizer = build_optimizer(settings) if mode == "train" else None
    callbacks = build_callbacks(config, settings) if mode == "train" else []
    return Run(settings, backbone, built, engine, optimizer, objective, checkpoint, vocab, callbacks)


def _saved_labels(meta: Dict[str, Any], tasks: Dict[str, Any], name: str, shared: bool):
    """The label names a checkpoint recorded for the reader of ``name``: its ``label_vocab``, or
    for a reader shared by several tasks every label map (``label_args``) of any of them."""
    if not shared:
        return meta.get(name, {}).get("label_vocab")
    from paddlepalm.config.inputs import members

    for member in members(tasks, name):
        args = meta.get(member, {}).get("reader", {}).get("label_args")
        if args is not None:
            return args
    return None


def build_balancer(config: Config, settings: Dict[str, Any]):
    """The ``balancing:`` component (None: the loss_weight-weighted sum)."""
    spec = settings.get("balancing")
    if not spec:
        return None
    import paddlepalm.balancing  # noqa: F401  (registers the built-ins)
    from paddlepalm.registry import BALANCERS

    options = dict(spec)
    try:
        cls = BALANCERS.get(options.pop("type"))
        return cls(**options)
    except (KeyError, TypeError, ValueError) as e:
        raise config_error([config.problem(("balancing",), "cannot build the balancer: %s"
                                           % str(e).strip("'\""))], config.source) from None


def build_callbacks(config: Config, settings: Dict[str, Any]) -> List[Any]:
    """The user's ``callbacks:``: dotted paths or ``{type: path, <options>}``, each a Callback."""
    from paddlepalm.engine import Callback
    from paddlepalm.registry import CALLBACKS

    built, problems = [], []
    for i, entry in enumerate(settings.get("callbacks") or []):
        spec = {"type": entry} if isinstance(entry, str) else dict(entry) if isinstance(entry, dict) else None
        if spec is None or not isinstance(spec.get("type"), str):
            problems.append(config.problem(("callbacks", i), "expected a dotted path 'pkg.module:Class' or a "
                                                             "mapping with 'type', got %r" % (entry,)))
            continue
        try:
            cls = CALLBACKS.get(spec.pop("type"))
            callback = cls(**spec)
        except (KeyError, TypeError, ValueError) as e:
            problems.append(config.problem(("callbacks", i), "cannot build the callback: %s" % str(e).strip("'\"")))
            continue
        if not isinstance(callback, Callback):
            problems.append(config.problem(("callbacks", i), "%s is not a paddlepalm.engine.Callback"
                                           % type(callback).__name__))
            continue
        built.append(callback)
    if problems:
        raise config_error(problems, config.source)
    return built


def _check_head_size(config: Config, name: str, options: Dict[str, Any], reader, problems: List[Problem]) -> None:
    """A ``num_classes`` the config gives must fit the training labels."""
    given = options.get("num_classes")
    if reader is None or not isinstance(given, int):
        return
    count = num_classes_of(reader)
    if count is None:
        return
    if reader.label_vocab() is not None and given != count:
        problems.append(config.problem(("tasks", name, "head", "num_classes"),
                                       "head has %d classes but the label map has %d labels: %s"
                                       % (given, count, ", ".join(reader.label_vocab()[:10]))))
    elif reader.label_vocab() is None and given < count:
        problems.append(config.problem(("tasks", name, "head", "num_classes"), "head has %d classes but %s "
                                       "has label %d" % (given, reader.input_file, count - 1)))


def _objective(config: Config, settings: Dict[str, Any], engine):
    """The configured objective (its metric names checked), else the main task's first metric."""
    objective = settings["objective"]
    main = engine.trainers[engine.task_index(settings["main_task"])]
    if objective is None:
        names = getattr(main.head, "metric_names", ())
        return "%s.%s" % (main.name, names[0]) if names and main.dev_reader is not None else None
    weights = {objective: 1.0} if isinstance(objective, str) else objective
    problems = []
    for key in weights:
        task, _, metric = key.partition(".")
        names = getattr(engine.trainers[engine.task_index(task)].head, "metric_names", ())
        if names and metric not in names:
            path = ("objective",) if isinstance(objective, str) else ("objective", key)
            problems.append(config.problem(path, "task %r reports %s, not %r" % (task, ", ".join(names), metric)))
    if problems:
        raise config_error(problems, config.source)
    return objective
