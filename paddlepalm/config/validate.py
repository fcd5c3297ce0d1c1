"""Checking a config before any work starts, and resolving it into settings for :mod:`.build`.

:func:`validate` reports every problem at once in one :class:`~paddlepalm.errors.ConfigError`
(``file:line: key.path: message``) and otherwise returns the *settings*: the data with every
default filled in, input paths made absolute, readers and heads as ``{type: ..., options}``.
"""
import difflib
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from paddlepalm.config.loader import Config, Problem, config_error
from paddlepalm.config.schema import (COMPONENT, LONG_TEXT_HEAD_OPTIONS, LONG_TEXT_READER_OPTIONS, NAMED, SCHEMA,
                                      SECTION, TYPE_NAMES, Key, with_defaults)

# Reader and head arguments that other keys set: argument -> the key to use instead.
READER_ARGS_SET_ELSEWHERE = {
    "vocab_path": "tokenizer.vocab", "tokenizer": "tokenizer.type", "do_lower_case": "tokenizer.do_lower_case",
    "max_len": "tasks.<name>.max_len", "fields": "tasks.<name>.fields", "label_map": "tasks.<name>.label_map",
    "label_map_config": "tasks.<name>.label_map", "seed": "seed", "phase": "the command",
    "tag_map": "tasks.<name>.label_map of the task whose head reads the tags",
}
HEAD_ARGS_SET_ELSEWHERE = {"phase": "the command"}
OPTIMIZER_ARGS_SET_ELSEWHERE = {"loss_var": "nothing (unused)", "lr_schedualer": "schedule",
                                "lr_scheduler": "schedule"}
LABEL_MAP_ARGS = ("label_map", "label_map_config")
# Head (or reader) options that change which metrics a head reports: with one of them set, the
# objective's metric name is checked when the head is built instead.
METRIC_OPTIONS = ("multi_label", "learning_strategy")


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return " (did you mean %r?)" % close[0] if close else "; expected one of: %s" % ", ".join(known)


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping", type(None): "null"}.get(type(value), type(value).__name__)


def _is(value: Any, type_name: str) -> bool:
    if isinstance(value, bool):
        return type_name == "bool"
    return isinstance(value, {"int": int, "float": (int, float), "str": str, "list": list,
                              "mapping": dict, "bool": bool}[type_name])


def resolve_path(config: Config, value: str) -> str:
    """``~`` and ``$VARS`` expanded; relative paths taken from the config file's folder."""
    value = os.path.expandvars(os.path.expanduser(str(value)))
    return os.path.normpath(value if os.path.isabs(value) else os.path.join(config.base_dir, value))


def resolve_component_file(config: Config, type_name: str) -> str:
    """``my_readers.py:MyReader`` (a module file, relative to the config's folder) made absolute;
    registered names and dotted paths are returned as they are."""
    module, sep, attr = type_name.rpartition(":")
    if not sep or not module.endswith(".py"):
        return type_name
    return "%s:%s" % (resolve_path(config, module), attr)


# ----------------------------------------------------------------------------- structure
class _Structure:
    """Walks the data along the schema; keeps only the well-typed parts (for the semantic checks)."""

    def __init__(self, config: Config, problems: List[Problem]):
        self.config, self.problems = config, problems

    def report(self, path, message):
        self.problems.append(self.config.problem(path, message))

    def section(self, key: Key, value: Any, path: Tuple) -> Optional[dict]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.report(path, "expected a mapping (keys: %s), got %s"
                        % (", ".join(k.name for k in key.keys), _type_name(value)))
            return None
        clean = {}
        known = [k.name for k in key.keys]
        for name, item in value.items():
            child = key.child(name) if isinstance(name, str) else None
            if child is None:
                if key.extra_options and isinstance(name, str):
                    clean[name] = item  # checked against the component's constructor later
                else:
                    self.report(path + (name,), "unknown key %r%s" % (name, _suggest(name, known)))
                continue
            ok, checked = self.value(child, item, path + (name,))
            if ok:
                clean[name] = checked
        for child in key.keys:
            if child.required and child.name not in value and not (child.unless and value.get(child.unless)):
                self.report(path, "missing required key %r (%s)" % (child.name, child.doc.split(".")[0]))
        return clean

    def value(self, key: Key, value: Any, path: Tuple) -> Tuple[bool, Any]:
        if key.kind == SECTION:
            clean = self.section(key, value, path)
            return clean is not None, clean
        if key.kind == NAMED:
            return self.named(key, value, path)
        if key.kind == COMPONENT:
            return self.component(value, path)
        if value is None:
            if key.nullable:
                return True, None
            self.report(path, "must not be null; expected %s" % " or ".join(TYPE_NAMES[t] for t in key.types))
            return False, None
        if not any(_is(value, t) for t in key.types):
            self.report(path, "expected %s, got %r (%s)" % (" or ".join(TYPE_NAMES[t] for t in key.types),
                                                          value, _type_name(value)))
            return False, None
        if key.choices and value not in key.choices:
            self.report(path, "%r is not one of %s%s" % (value, ", ".join(map(str, key.choices)),
                                                         _suggest(value, [str(c) for c in key.choices])
                                                         if isinstance(value, str) else ""))
            return False, None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if key.minimum is not None and (value <= key.minimum if key.above_minimum else value < key.minimum):
                self.report(path, "must be %s %g, got %r" % (">" if key.above_minimum else ">=", key.minimum, value))
                return False, None
            if key.maximum is not None and value > key.maximum:
                self.report(path, "must be <= %g, got %r" % (key.maximum, value))
                return False, None
        if key.types == ("str",) and not value.strip():
            self.report(path, "must not be empty")
            return False, None
        return True, float(value) if key.types == ("float",) else value

    def named(self, key: Key, value: Any, path: Tuple) -> Tuple[bool, Any]:
        if not isinstance(value, dict) or not value:
            self.report(path, "expected a mapping of task name -> task, got %s"
                        % ("an empty mapping" if isinstance(value, dict) else _type_name(value)))
            return False, None
        clean = {}
        for name, entry in value.items():
            if not isinstance(name, str) or not name or "." in name or "/" in name:
                self.report(path + (name,), "a task name must be a non-empty string without '.' or '/', "
                                            "got %r" % (name,))
                continue
            checked = self.section(key, entry, path + (name,))
            if checked is not None:
                clean[name] = checked
        return True, clean

    def component(self, value: Any, path: Tuple) -> Tuple[bool, Any]:
        if isinstance(value, str) and value.strip():
            return True, {"type": value}
        if isinstance(value, dict):
            if not isinstance(value.get("type"), str) or not value["type"].strip():
                self.report(path + (("type",) if "type" in value else ()),
                            "needs 'type': a registered name or a dotted path 'pkg.module:Class'")
                return False, None
            bad = [k for k in value if not isinstance(k, str)]
            for k in bad:
                self.report(path + (k,), "an option name must be a string")
            return not bad, dict(value)
        self.report(path, "expected a registered name, a dotted path or a mapping with 'type', got %r (%s)"
                    % (value, _type_name(value)))
        return False, None


# ----------------------------------------------------------------------------- meaning
def _lookup(registry, name: str):
    """(class, None) or (None, error message) for a registry name or dotted path."""
    try:
        return registry.get(name), None
    except KeyError as e:
        return None, str(e.args[0])


def _check_options(config: Config, cls, options: Dict[str, Any], path: Tuple, reserved: Dict[str, str],
                   problems: List[Problem]) -> None:
    from paddlepalm.utils.init_args import init_params

    params = [p for p in init_params(cls) if p not in reserved]
    for name in options:
        if name == "type":
            continue
        if name in reserved:
            problems.append(config.problem(path + (name,), "is set by %s, not here" % reserved[name]))
        elif name not in params:
            problems.append(config.problem(path + (name,), "%s takes no option %r%s"
                                           % (cls.__name__, name, _suggest(name, params))))


def _check_long_text(config: Config, t: Dict[str, Any], path: Tuple, problems: List[Problem]) -> None:
    """Values of the long-input reader/head options (types, ranges, choices, how they fit together)."""
    structure = _Structure(config, problems)
    for part, keys in (("reader", LONG_TEXT_READER_OPTIONS), ("head", LONG_TEXT_HEAD_OPTIONS)):
        for key in keys:
            if isinstance(t.get(part), dict) and key.name in t[part]:
                structure.value(key, t[part][key.name], path + (part, key.name))
    reader = t["reader"] or {}
    per_batch = reader.get("max_chunks_per_batch", 64)
    for cap in ("max_chunks", "max_windows"):
        if _is_int(reader.get(cap)) and _is_int(per_batch) and reader[cap] > per_batch:
            problems.append(config.problem(path + ("reader", cap), "%d is more than max_chunks_per_batch=%d: a "
                                           "document's chunks must fit in one batch" % (reader[cap], per_batch)))
    for stride in ("chunk_stride", "window_stride"):
        if _is_int(reader.get(stride)) and _is_int(t["max_len"]) and reader[stride] > t["max_len"] - 2:
            problems.append(config.problem(path + ("reader", stride), "%d is more than the %d pieces a chunk "
                                           "of max_len=%d holds" % (reader[stride], t["max_len"] - 2, t["max_len"])))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _component_path(config: Config, path: Tuple) -> Tuple:
    """The key path of a component's type: ``...reader.type`` when written as a mapping."""
    return path + ("type",) if isinstance(config.get(path), dict) else path


def _label_count(label_map: Any) -> Optional[int]:
    from paddlepalm.reader.labels import LabelMap

    try:
        loaded = LabelMap.load(label_map)
    except (ValueError, OSError):
        return None
    return None if loaded is None else len(loaded)


def _check_backbone(config: Config, s: Dict[str, Any], problems: List[Problem]) -> None:
    from paddlepalm.backbone.config import CanineConfig, EncoderConfig
    from paddlepalm.errors import CheckpointError
    from paddlepalm.registry import BACKBONES

    b = s["backbone"]
    _, error = _lookup(BACKBONES, b["type"])
    if error:
        problems.append(config.problem(("backbone", "type"), error))
    if (b["pretrained"] is None) == (b["config"] is None):
        problems.append(config.problem(("backbone",), "give exactly one of 'pretrained' (a checkpoint) or "
                                                      "'config' (random initialisation)"))
    if b["pretrained"] is not None and not os.path.isdir(b["pretrained"]):
        names = _catalog_names()
        name = config.get(("backbone", "pretrained"))
        if name not in names:
            hint = _suggest(name, names) if names and difflib.get_close_matches(name, names, n=1) else ""
            problems.append(config.problem(("backbone", "pretrained"), "%s is neither a checkpoint folder nor a "
                                                                       "catalog name%s"
                                           % (b["pretrained"], hint)))
    fields = sorted(set(EncoderConfig.__dataclass_fields__) | set(CanineConfig.__dataclass_fields__))
    for name in b["overrides"]:
        if name not in fields:
            problems.append(config.problem(("backbone", "overrides", name),
                                           "not an encoder config key%s" % _suggest(name, fields)))
    if isinstance(b["config"], str) and not os.path.exists(b["config"]):
        problems.append(config.problem(("backbone", "config"), "file not found: %s" % b["config"]))
    elif isinstance(b["config"], dict):
        try:
            EncoderConfig.from_dict(dict(b["config"], **b["overrides"]), strict=True,
                                    model_type="canine" if b["type"] == "canine" else None)
        except (CheckpointError, TypeError, ValueError) as e:
            problems.append(config.problem(("backbone", "config"), str(e)))


def _catalog_names() -> List[str]:
    try:
        from paddlepalm.downloader import load_catalog

        return [e.name for e in load_catalog().entries("pretrain")]
    except Exception:  # noqa: BLE001 - an unreadable catalog only loses the suggestion
        return []


def _check_task(config: Config, s: Dict[str, Any], name: str, problems: List[Problem]) -> None:
    from paddlepalm.reader.base import Reader
    from paddlepalm.registry import READERS
    from paddlepalm.utils.init_args import init_params

    t = s["tasks"][name]
    path = ("tasks", name)
    if t["input_of"] is not None:
        _check_reading_task(config, s, name, problems)
        return
    reader_cls, error = _lookup(READERS, t["reader"]["type"]) if t["reader"] else (None, None)
    if error:
        problems.append(config.problem(_component_path(config, path + ("reader",)), error))
    elif reader_cls is not None and not (isinstance(reader_cls, type) and issubclass(reader_cls, Reader)):
        problems.append(config.problem(_component_path(config, path + ("reader",)),
                                       "%r is not a paddlepalm.reader.Reader subclass" % t["reader"]["type"]))
        reader_cls = None
    if reader_cls is not None:
        before = len(problems)
        _check_options(config, reader_cls, t["reader"], path + ("reader",), READER_ARGS_SET_ELSEWHERE, problems)
        _check_reader_values(config, t["reader"], path + ("reader",), problems)
        _check_long_text(config, t, path, problems)
        if len(problems) == before and all(_is_column(c) for c in (t["fields"] or {}).values()):
            from paddlepalm.config.data_checks import check_task_files

            check_task_files(config, s, name, reader_cls, problems)
    for split in ("train", "dev", "test"):
        if t[split] is not None and not os.path.isfile(t[split]):
            problems.append(config.problem(path + (split,), "file not found: %s" % t[split]))
    for field, column in (t["fields"] or {}).items():
        if not _is_column(column):
            problems.append(config.problem(path + ("fields", field), "expected the name of a column (or its "
                                           "number, from 1), got %r" % (column,)))
    if isinstance(t["label_map"], str) and not os.path.isfile(t["label_map"]):
        problems.append(config.problem(path + ("label_map",), "file not found: %s" % t["label_map"]))
    elif t["label_map"] is not None and reader_cls is not None and \
            not any(p in init_params(reader_cls) for p in LABEL_MAP_ARGS):
        problems.append(config.problem(path + ("label_map",), "%s takes no label map" % reader_cls.__name__))

    if _check_reused_head(config, s, name, problems):
        return
    if t["head"] is None:
        if reader_cls is None:
            return  # the reader's problem is reported already
        problems.append(config.problem(path, "missing key 'head': no head is registered under the reader's "
                                             "name %r" % t["reader"]["type"]))
        return
    _check_head(config, s, name, problems)


def _check_reused_head(config: Config, s: Dict[str, Any], name: str, problems: List[Problem]) -> bool:
    """``reuse_head_with``: another task, which has its own head. True when the task reuses one."""
    path = ("tasks", name)
    owner = s["tasks"][name]["reuse_head_with"]
    if owner is None:
        return False
    if owner not in s["tasks"] or owner == name:
        problems.append(config.problem(path + ("reuse_head_with",), "%r is not another task%s"
                                       % (owner, _suggest(owner, [n for n in s["tasks"] if n != name]))))
    elif s["tasks"][owner]["reuse_head_with"] is not None:
        problems.append(config.problem(path + ("reuse_head_with",), "task %r itself reuses the head of %r; "
                                       "name that task instead" % (owner, s["tasks"][owner]["reuse_head_with"])))
    if config.get(path + ("head",)) is not None:
        problems.append(config.problem(path + ("head",), "give 'head' or 'reuse_head_with', not both"))
    return True


def _check_reading_task(config: Config, s: Dict[str, Any], name: str, problems: List[Problem]) -> None:
    """A task with ``input_of``: its label map and head (the reader, files and how they fit
    together are checked by :func:`_check_shared_inputs`)."""
    t = s["tasks"][name]
    path = ("tasks", name)
    if isinstance(t["label_map"], str) and not os.path.isfile(t["label_map"]):
        problems.append(config.problem(path + ("label_map",), "file not found: %s" % t["label_map"]))
    if _check_reused_head(config, s, name, problems):
        return
    if t["head"] is None:
        problems.append(config.problem(path, "missing key 'head': a task with input_of needs the head that reads "
                                             "its part of the batches (e.g. classify for the sentence label, "
                                             "sequence_label for the tags)"))
        return
    _check_head(config, s, name, problems)


def _check_shared_inputs(config: Config, s: Dict[str, Any], problems: List[Problem]) -> None:
    """``input_of``: a declared other task with its own reader and files, whose reader feeds
    several heads; no keys of that task repeated here; each task's head reads a field of the
    shared batches that no other task of the group reads."""
    from paddlepalm.config.inputs import INPUT_OF, SOURCE_KEYS, head_class, head_fields, members, shares_input
    from paddlepalm.registry import READERS

    tasks = s["tasks"]
    for name, t in tasks.items():
        other = t[INPUT_OF]
        if other is None:
            continue
        path = ("tasks", name)
        for key in SOURCE_KEYS:
            if config.get(path + (key,)) is not None:
                why = ("the two tasks run together, one batch and one encoder pass" if key == "mix_ratio"
                       else "this task reads that task's batches")
                problems.append(config.problem(path + (key,), "comes from task %r (input_of), not here: %s"
                                               % (other, why)))
        where = path + (INPUT_OF,)
        if other == name:
            problems.append(config.problem(where, "a task cannot read its own batches: name the task whose reader "
                                                  "and files this one shares"))
            continue
        if other not in tasks:
            problems.append(config.problem(where, "%r is not a declared task%s"
                                           % (other, _suggest(other, [n for n in tasks if n != name]))))
            continue
        if tasks[other][INPUT_OF] is not None:
            chain, following = [name], other
            while following in tasks and following not in chain:
                chain.append(following)
                following = tasks[following][INPUT_OF]
            if following == name:
                problems.append(config.problem(where, "input_of goes round in a cycle: %s: one of these tasks must "
                                                      "have the reader and files"
                                               % " -> ".join(chain + [name])))
            else:
                problems.append(config.problem(where, "task %r itself reads the batches of %r (input_of does not "
                                                      "chain): name the task that has the reader and files"
                                               % (other, tasks[other][INPUT_OF])))
            continue
        spec = tasks[other]["reader"]
        reader_cls, error = _lookup(READERS, spec["type"]) if spec else (None, None)
        if reader_cls is not None and not error and not shares_input(reader_cls):
            problems.append(config.problem(where, "task %r reads with %r, whose batches feed one head; input_of needs "
                                                  "a reader whose batches carry several tasks' labels (joint_label)"
                                           % (other, spec["type"])))
    for source, t in tasks.items():
        if t[INPUT_OF] is not None or not t["reader"]:
            continue
        reader_cls, error = _lookup(READERS, t["reader"]["type"])
        if error or not shares_input(reader_cls):
            continue
        fields = reader_cls.label_map_args
        read_by: Dict[str, str] = {}
        for name in members(tasks, source):
            head_cls = head_class(tasks, name)
            if head_cls is None:
                continue  # no head, or an unknown one: reported with the task
            path = ("tasks", name)
            where = path + ("reuse_head_with",) if tasks[name]["reuse_head_with"] is not None else \
                _component_path(config, path + ("head",)) if config.get(path + ("head",)) is not None else path
            reads = head_fields(head_cls, reader_cls)
            if len(reads) != 1:
                problems.append(config.problem(where, "%s reads the label field(s) %s; the batches of a %s reader "
                                                      "carry %s, each read by one task's head (e.g. a classify "
                                                      "head reads 'label', a sequence_label head 'word_labels')"
                                               % (head_cls.__name__,
                                                  ", ".join(map(repr, getattr(head_cls, "label_fields", ()))),
                                                  t["reader"]["type"], " and ".join(map(repr, fields)))))
            elif reads[0] in read_by:
                problems.append(config.problem(where, "reads %r of the shared batches, as task %r does: each label "
                                                      "field feeds one task" % (reads[0], read_by[reads[0]])))
            else:
                read_by[reads[0]] = name


def _check_head(config: Config, s: Dict[str, Any], name: str, problems: List[Problem]) -> None:
    """The task's own head: registered, a Head, its options, ``num_classes`` against the label map."""
    from paddlepalm.head.base import Head
    from paddlepalm.registry import HEADS

    t = s["tasks"][name]
    path = ("tasks", name)
    head_cls, error = _lookup(HEADS, t["head"]["type"])
    if error:
        problems.append(config.problem(_component_path(config, path + ("head",)), error))
        return
    if not (isinstance(head_cls, type) and issubclass(head_cls, Head)):
        problems.append(config.problem(_component_path(config, path + ("head",)),
                                       "%r is not a paddlepalm.head.Head subclass" % t["head"]["type"]))
        return
    _check_options(config, head_cls, t["head"], path + ("head",), HEAD_ARGS_SET_ELSEWHERE, problems)
    given = t["head"].get("num_classes")
    count = _label_count(t["label_map"]) if t["label_map"] is not None else None
    if isinstance(given, int) and count is not None and given != count:
        problems.append(config.problem(path + ("head", "num_classes"), "head has %d classes but the label map "
                                                                       "has %d labels" % (given, count)))


def _is_column(column: Any) -> bool:
    """A column name, or a column number from 1."""
    if isinstance(column, bool):
        return False
    return (isinstance(column, str) and bool(column)) or (isinstance(column, int) and column >= 1)


def _check_reader_values(config: Config, options: Dict[str, Any], path: Tuple, problems: List[Problem]) -> None:
    """Values of the reading options every reader shares."""
    from paddlepalm.reader.labels import NORMALIZERS

    if "header" in options and not isinstance(options["header"], bool):
        problems.append(config.problem(path + ("header",), "expected true or false, got %r" % (options["header"],)))
    normalize = options.get("label_normalize")
    if normalize is not None and normalize not in NORMALIZERS:
        problems.append(config.problem(path + ("label_normalize",), "%r is not one of %s (or null)"
                                       % (normalize, ", ".join(NORMALIZERS))))


def _head_of(s: Dict[str, Any], task: str) -> Optional[Dict[str, Any]]:
    t = s["tasks"][task]
    owner = t["reuse_head_with"]
    return s["tasks"][owner]["head"] if owner in s["tasks"] else t["head"]


def _check_metric(config: Config, s: Dict[str, Any], task: str, metric: str, path: Tuple,
                  problems: List[Problem]) -> None:
    """The objective's metric must be one the task's head reports."""
    from paddlepalm.head.base import Head
    from paddlepalm.registry import HEADS

    head = _head_of(s, task)
    if not head:
        return
    cls, error = _lookup(HEADS, head["type"])
    if error or not (isinstance(cls, type) and issubclass(cls, Head)):
        return  # reported with the task
    from paddlepalm.config.inputs import source_of

    reader = s["tasks"][source_of(s["tasks"], task)]["reader"] or {}
    if any(head.get(k) or reader.get(k) for k in METRIC_OPTIONS):
        return
    names = tuple(getattr(cls, "metric_names", ()) or ())
    if names and metric not in names:
        problems.append(config.problem(path, "task %r reports %s, not %r%s"
                                       % (task, ", ".join(names), metric, _suggest(metric, names)
                                          if difflib.get_close_matches(metric, names, n=1, cutoff=0.6) else "")))


def _check_training(config: Config, s: Dict[str, Any], problems: List[Problem]) -> None:
    from paddlepalm.config.inputs import source_of, valid_source
    from paddlepalm.registry import OPTIMIZERS, SCHEDULERS

    tasks = s["tasks"]
    main = s["main_task"]
    if main is not None and main not in tasks:
        problems.append(config.problem(("main_task",), "%r is not a declared task%s"
                                       % (main, _suggest(main, list(tasks)))))
    elif main is not None and tasks[main]["aux"]:
        problems.append(config.problem(("main_task",), "%r is an aux task; the main task cannot be" % main))
    elif main is None and tasks and all(t["aux"] for t in tasks.values()):
        problems.append(config.problem(("tasks",), "every task is aux: name a main_task that is not"))
    if s["sampling"]["strategy"] == "mix_ratio" and tasks and sum(t["mix_ratio"] for t in tasks.values()) <= 0:
        problems.append(config.problem(("tasks",), "the mix_ratio values sum to 0: no task would be sampled"))
    opt_cls, error = _lookup(OPTIMIZERS, s["optimizer"]["type"])
    if error:
        problems.append(config.problem(("optimizer", "type"), error))
    else:
        extra = {k: v for k, v in s["optimizer"].items() if SCHEMA.child("optimizer").child(k) is None}
        _check_options(config, opt_cls, extra, ("optimizer",), OPTIMIZER_ARGS_SET_ELSEWHERE, problems)
    _, error = _lookup(SCHEDULERS, s["schedule"]["type"])
    if error:
        problems.append(config.problem(("schedule", "type"), error))
    if s["schedule"]["warmup_steps"] and s["schedule"]["warmup_ratio"] is not None:
        problems.append(config.problem(("schedule",), "give warmup_steps or warmup_ratio, not both"))
    objective = s["objective"]
    if objective is not None:
        weights = {objective: 1.0} if isinstance(objective, str) else objective
        for key, weight in weights.items():
            path = ("objective",) if isinstance(objective, str) else ("objective", key)
            task, dot, metric = str(key).partition(".")
            if not dot or not metric:
                problems.append(config.problem(path, "expected 'task.metric' (e.g. %s.accuracy), got %r"
                                               % (next(iter(tasks), "intent"), key)))
            elif task not in tasks:
                problems.append(config.problem(path, "%r is not a declared task%s"
                                               % (task, _suggest(task, list(tasks)))))
            elif valid_source(tasks, task) is None:
                pass  # its input_of is reported with the task
            elif tasks[source_of(tasks, task)]["dev"] is None:
                source = source_of(tasks, task)
                problems.append(config.problem(path, "task %r has no 'dev' file to evaluate%s" % (
                    task, "" if source == task else " (it reads the files of task %r, input_of)" % source)))
            else:
                _check_metric(config, s, task, metric, path, problems)
            if not _is(weight, "float"):
                problems.append(config.problem(path, "a weight must be a number, got %r" % (weight,)))


def _check_distill(config: Config, s: Dict[str, Any], problems: List[Problem]) -> None:
    """The ``distill:`` section (only when given): teacher folders and tasks, student, schedules,
    matches. Resolves its paths in ``s``."""
    if config.get(("distill",)) is None:
        s["distill"] = None
        return
    d, tasks = s["distill"], s["tasks"]

    def report(path, message):
        problems.append(config.problem(("distill",) + tuple(path), message))

    for i, name in enumerate(d["tasks"] or ()):
        if name not in tasks:
            report(("tasks", i), "%r is not a declared task%s" % (name, _suggest(name, list(tasks))))
    if d["tasks"]:
        tasks = {name: t for name, t in tasks.items() if name in d["tasks"]}
    teacher_layers = _check_distill_teachers(config, d, tasks, report)
    student_layers = _check_distill_student(config, d["student"], teacher_layers, report)
    _check_distill_weights(d, tasks, report)
    _check_distill_matches(d["matches"], tasks, teacher_layers, student_layers, report)


def _teacher_model(path: str, where, report) -> Optional[Tuple[List[str], int]]:
    """(tasks, layer count) of a saved model folder, or None after reporting why not."""
    import json

    from paddlepalm.backbone.config import EncoderConfig
    from paddlepalm.errors import CheckpointError
    from paddlepalm.model import BACKBONE_DIR, MODEL_FILE

    meta = os.path.join(path, MODEL_FILE)
    if not os.path.isfile(meta):
        report(where, "not a saved paddlepalm model (no %s in %s)" % (MODEL_FILE, path))
        return None
    try:
        with open(meta, encoding="utf-8") as f:
            names = list(json.load(f)["tasks"])
        layers = EncoderConfig.load(os.path.join(path, BACKBONE_DIR)).num_hidden_layers
    except (OSError, ValueError, KeyError, CheckpointError) as e:
        report(where, "cannot read the teacher model %s: %s" % (path, e))
        return None
    return names, layers


def _check_distill_teachers(config: Config, d: Dict[str, Any], tasks, report) -> set:
    """``distill.teacher``: one model folder, or one per task (folder or ``{path, task}``); every
    distilled task must be in its teacher. Returns the teachers' layer counts."""
    from paddlepalm.model import MODEL_FILE

    teacher_layers = set()

    def needs(path, where, inner):
        found = _teacher_model(path, where, report)
        if found:
            teacher_layers.add(found[1])
            for name in inner:
                if name not in found[0]:
                    report(where[:2], "the teacher %s has no task %r (it has: %s)"
                           % (os.path.join(path, MODEL_FILE), name, ", ".join(found[0])))

    if isinstance(d["teacher"], str):
        d["teacher"] = resolve_path(config, d["teacher"])
        needs(d["teacher"], ("teacher",), list(tasks))
    elif isinstance(d["teacher"], dict):
        for name in tasks:
            if name not in d["teacher"]:
                report(("teacher",), "no teacher for task %r" % name)
        for name, spec in d["teacher"].items():
            where = ("teacher", name)
            if name not in tasks:
                report(where, "%r is not a declared task%s" % (name, _suggest(name, list(tasks))))
                continue
            path, inner = (spec, name) if isinstance(spec, str) else \
                (spec.get("path"), spec.get("task", name)) if isinstance(spec, dict) else (None, None)
            if not isinstance(path, str) or (isinstance(spec, dict) and set(spec) - {"path", "task"}):
                report(where, "expected a model folder or {path, task}, got %r" % (spec,))
                continue
            path = resolve_path(config, path)
            d["teacher"][name] = path if isinstance(spec, str) else dict(spec, path=path)
            needs(path, where + (("path",) if isinstance(spec, dict) else ()), [inner])
    return teacher_layers


def _check_distill_student(config: Config, student: Dict[str, Any], teacher_layers: set, report) -> Optional[int]:
    """``distill.student``: exactly one of ``layers`` (teacher layer indices, in range, distinct) or
    ``config``. Returns the student's layer count when known."""
    if (student["layers"] is None) == (student["config"] is None):
        report(("student",), "give exactly one of 'layers' (initialise from the teacher's layers) or 'config' "
                             "(a fresh encoder)")
        return None
    if student["layers"] is not None:
        layers = student["layers"]
        if not layers or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers):
            report(("student", "layers"), "expected a non-empty list of 0-based teacher layer indices, got %r"
                   % (layers,))
            return None
        for i, layer in enumerate(layers):
            for n in teacher_layers:
                if not 0 <= layer < n:
                    report(("student", "layers", i), "layer %d is out of range: the teacher has %d layers "
                                                     "(0..%d)" % (layer, n, n - 1))
        if len(set(layers)) != len(layers):
            report(("student", "layers"), "layer indices repeat: %s" % layers)
        return len(layers)
    if isinstance(student["config"], str):
        student["config"] = resolve_path(config, student["config"])
        if not os.path.exists(student["config"]):
            report(("student", "config"), "file not found: %s" % student["config"])
        return None
    return student["config"].get("num_hidden_layers")


def _check_distill_weights(d: Dict[str, Any], tasks, report) -> None:
    """The temperature and loss-weight schedules, and the per-task weights."""
    from paddlepalm.distill.schedules import Schedule

    for name in ("temperature", "soft_weight", "hard_weight"):
        try:
            schedule = Schedule.build(d[name], "distill." + name)
        except ValueError as e:
            report((name,), str(e).partition(": ")[2])
            continue
        low = min(schedule.start, schedule.end)
        if low < 0 or (name == "temperature" and low <= 0):
            report((name,), "must stay %s 0, got %s" % (">" if name == "temperature" else ">=", schedule))
    for name, weight in d["task_weights"].items():
        if name not in tasks:
            report(("task_weights", name), "%r is not a declared task%s" % (name, _suggest(name, list(tasks))))
        elif not _is(weight, "float") or weight < 0:
            report(("task_weights", name), "expected a number >= 0, got %r" % (weight,))


def _check_distill_matches(matches, tasks, teacher_layers: set, student_layers: Optional[int], report) -> None:
    """Each intermediate match: its fields, layer indices in range, tasks declared."""
    from paddlepalm.distill.distiller import Match
    from paddlepalm.errors import ConfigError

    for i, spec in enumerate(matches):
        try:
            match = Match.from_dict(spec, "distill.matches[%d]" % i)
        except ConfigError as e:
            head, _, message = str(e).partition(": ")
            report(("matches", i) + tuple(head.split(".")[2:]), message)
            continue
        for who, layer, counts in (("layer_T", match.layer_T, teacher_layers),
                                   ("layer_S", match.layer_S, {student_layers} - {None})):
            for n in counts:
                if layer is not None and not 0 <= layer < n:
                    report(("matches", i, who), "layer %d is out of range: the %s has %d layers (0..%d)"
                           % (layer, "teacher" if who == "layer_T" else "student", n, n - 1))
        for name in match.tasks or ():
            if name not in tasks:
                report(("matches", i, "tasks"), "%r is not a declared task%s" % (name, _suggest(name, list(tasks))))


# ----------------------------------------------------------------------------- settings
def _resolve_paths(config: Config, s: Dict[str, Any]) -> None:
    b = s["backbone"]
    for outputs, key in ((s, "output_dir"), (b, "download_dir")):
        outputs[key] = os.path.abspath(os.path.expandvars(os.path.expanduser(outputs[key])))
    if b["pretrained"] is not None:
        local = resolve_path(config, b["pretrained"])
        if os.path.isdir(local) or "/" in b["pretrained"] or os.sep in b["pretrained"]:
            b["pretrained"] = local
    if isinstance(b["config"], str):
        b["config"] = resolve_path(config, b["config"])
    for name, t in s["tasks"].items():
        for kind in ("reader", "head"):
            if isinstance(t[kind], dict) and isinstance(t[kind].get("type"), str):
                t[kind]["type"] = resolve_component_file(config, t[kind]["type"])
    if s["tokenizer"]["vocab"] is not None:
        s["tokenizer"]["vocab"] = resolve_path(config, s["tokenizer"]["vocab"])
    for t in s["tasks"].values():
        for k in ("train", "dev", "test"):
            if t[k] is not None:
                t[k] = resolve_path(config, t[k])
        if isinstance(t["label_map"], str):
            t["label_map"] = resolve_path(config, t["label_map"])


def _fill_implicit(s: Dict[str, Any]) -> None:
    from paddlepalm.config.inputs import valid_source
    from paddlepalm.registry import HEADS

    tasks = s["tasks"]
    for t in tasks.values():
        for k in ("batch_size", "max_len"):
            if t[k] is None:
                t[k] = s[k]
    for name, t in tasks.items():  # a task reading another's batches: that task's sizes and weight
        source = valid_source(tasks, name)
        if source not in (None, name):
            for k in ("batch_size", "max_len", "mix_ratio"):
                t[k] = tasks[source][k]
    for t in tasks.values():
        if t["head"] is None and t["reuse_head_with"] is None and t["reader"] and t["reader"]["type"] in HEADS:
            t["head"] = {"type": t["reader"]["type"]}
    if s["main_task"] is None:
        s["main_task"] = next((n for n, t in s["tasks"].items() if not t["aux"]), None)
    if s["tokenizer"]["vocab"] is None and s["backbone"]["pretrained"] is not None:
        s["tokenizer"]["vocab"] = s["backbone"]["pretrained"]


def check(config: Config) -> Tuple[List[Problem], Dict[str, Any]]:
    """Every problem of ``config`` and the settings (meaningful only when there is none)."""
    import paddlepalm.backbone  # noqa: F401 - fill the registries
    import paddlepalm.head  # noqa: F401
    import paddlepalm.lr_sched  # noqa: F401
    import paddlepalm.optimizer  # noqa: F401
    import paddlepalm.reader  # noqa: F401

    problems = list(config.problems)
    clean = _Structure(config, problems).section(SCHEMA, config.data, ()) or {}
    s = with_defaults(clean)
    _resolve_paths(config, s)
    _fill_implicit(s)
    if "backbone" in clean:
        _check_backbone(config, s, problems)
        if s["tokenizer"]["vocab"] is None and s["backbone"]["config"] is not None \
                and s["tokenizer"]["type"] != "codepoint":
            problems.append(config.problem(("tokenizer",), "missing key 'vocab': required when the backbone "
                                                           "has no 'pretrained' checkpoint"))
        elif s["tokenizer"]["vocab"] is not None and s["backbone"]["pretrained"] != s["tokenizer"]["vocab"] \
                and not os.path.exists(s["tokenizer"]["vocab"]):
            problems.append(config.problem(("tokenizer", "vocab"), "not found: %s" % s["tokenizer"]["vocab"]))
        from paddlepalm.config.data_checks import check_max_len

        check_max_len(config, s, problems)
    for name in s["tasks"]:
        _check_task(config, s, name, problems)
    _check_shared_inputs(config, s, problems)
    _check_training(config, s, problems)
    _check_distill(config, s, problems)
    return problems, s


def validate(config: Config) -> Dict[str, Any]:
    """Raise one ConfigError listing every problem; else return (and keep) the resolved settings."""
    problems, settings = check(config)
    if problems:
        raise config_error(_ordered(config, problems), config.source)
    config.settings = settings
    return settings


def _ordered(config: Config, problems: List[Problem]) -> List[Problem]:
    """Problems in file order (by line), ``--set`` ones last."""
    def line(p: Problem):
        tail = p.origin.rpartition(":")[2]
        return (p.origin.startswith("--set"), int(tail) if tail.isdigit() else 0)
    return sorted(problems, key=line)
