"""What ``paddlepalm check`` reads of the data before any training: the tasks' files and the encoder.

* every ``train``/``dev``/``test`` file a reader reads as records (TSV, CSV, JSON lines, JSON
  arrays) is read in full, the way training will read it: the declared ``file_format`` against the
  content, the columns against the reader's inputs and ``fields``, column counts, nulls, UTF-8;
* its labels against the ``label_map`` (or, without one, against the labels of the training file),
  and labels that differ only in case or whitespace; a file read by several tasks (``input_of``,
  ``joint_label``) is read once, its sentence labels and its tags each against the ``label_map`` of
  the task whose head reads them;
* ``max_len`` against the positions the encoder has (``max_position_embeddings``).

Each problem is reported at the config key that names the file (``tasks.<name>.train``), with the
data file, line and field in the message.
"""
import dataclasses
import logging
from typing import Any, Dict, Iterable, List, Optional, Tuple

from paddlepalm.config.loader import Config, Problem
from paddlepalm.errors import DataError

logger = logging.getLogger("paddlepalm")
SPLITS = ("train", "dev", "test")


def check_task_files(config: Config, s: Dict[str, Any], name: str, reader_cls, problems: List[Problem]) -> None:
    """Read the task's files as its reader will; one problem per broken file."""
    from paddlepalm.config.inputs import shares_input
    from paddlepalm.utils.init_args import init_params

    t = s["tasks"][name]
    options = t["reader"]
    if shares_input(reader_cls):
        _check_shared_files(config, s, name, reader_cls, problems)
        return
    labelled = "label" in reader_cls.required_fields and "label_map" in init_params(reader_cls)
    tagged = "label_map_config" in init_params(reader_cls) and hasattr(reader_cls, "tags_field")
    label_map = _label_map(config, t, name, options, problems) if labelled or tagged else None
    if label_map is False:
        return
    for split, path, fmt in _task_files(t, reader_cls):
        try:
            examples = _read_examples(t, reader_cls, path, fmt)
            if labelled:
                label_map = _check_labels(examples, label_map, options, split)
                if split == "train" and label_map is None:
                    _check_integer_labels(config, t, name, examples, path, problems)
            elif tagged:
                _check_tags(examples, label_map, reader_cls.tags_field, options)
        except DataError as e:
            problems.append(config.problem(("tasks", name, split), str(e)))


def _check_shared_files(config: Config, s: Dict[str, Any], name: str, reader_cls, problems: List[Problem]) -> None:
    """The files of a reader whose batches feed several tasks (``joint_label``), read once: the
    sentence labels against the ``label_map`` of the task whose head reads ``label``, the tags
    against that of the task whose head reads ``word_labels`` (without one: against the training
    file's labels, and one tag per word)."""
    from paddlepalm.config.inputs import field_of, members
    from paddlepalm.reader.joint_label import SENTENCE_FIELD, TAGS_FIELD

    tasks = s["tasks"]
    t = tasks[name]
    options = t["reader"]
    readers_of = {field_of(tasks, member, reader_cls): member for member in members(tasks, name)}
    maps = {}
    for field in reader_cls.label_map_args:
        member = readers_of.get(field)
        maps[field] = _label_map(config, tasks[member], member, options, problems) if member else None
    if any(m is False for m in maps.values()):
        return
    label_map, tag_map = maps.get(SENTENCE_FIELD), maps.get(TAGS_FIELD)
    for split, path, fmt in _task_files(t, reader_cls):
        reader = None  # the task whose labels are being checked
        try:
            examples = _read_examples(t, reader_cls, path, fmt)
            reader = readers_of.get(SENTENCE_FIELD)
            label_map = _check_labels(examples, label_map, options, split)
            if split == "train" and label_map is None and reader:
                _check_integer_labels(config, tasks[reader], reader, examples, path, problems)
            reader = readers_of.get(TAGS_FIELD)
            _check_tags(examples, tag_map, reader_cls.tags_field, options)
        except DataError as e:
            hint = "; task %r reads this field (input_of: %s)" % (reader, name) if reader not in (None, name) else ""
            problems.append(config.problem(("tasks", name, split), str(e) + hint))


def _task_files(t: Dict[str, Any], reader_cls) -> Iterable[Tuple[str, str, str]]:
    """``(split, path, record format)`` of each of the task's files that exists and that
    ``reader_cls`` reads as records."""
    import os

    from paddlepalm.reader.formats import resolve_format

    for split in SPLITS:
        path = t[split]
        if path is None or not os.path.isfile(path):
            continue
        fmt = reader_cls.record_format(path, resolve_format(path, t["file_format"]))
        if fmt is not None:
            yield split, path, fmt


def _read_examples(t: Dict[str, Any], reader_cls, path: str, fmt: str) -> List[Dict[str, Any]]:
    """The file's records as the reader will see them, each with ``_file`` and ``_line``;
    raises DataError naming file and line."""
    from paddlepalm.reader.formats import read_records

    required = list(reader_cls.required_fields)
    used = required + list(getattr(reader_cls, "optional_fields", ())) + list(t["fields"] or {})
    records = read_records(path, fmt, required, t["fields"], t["reader"].get("header", True),
                           list(dict.fromkeys(used)))
    return [dict(record, _file=path, _line=line) for line, record in records]


def _label_map(config: Config, t: Dict[str, Any], name: str, options: Dict[str, Any],
               problems: List[Problem]):
    """The task's label map (``label_normalize`` applied), None without one, False if broken."""
    from paddlepalm.reader.labels import LabelMap

    import os

    if t["label_map"] is None:
        return None
    if isinstance(t["label_map"], str) and not os.path.isfile(t["label_map"]):
        return False  # reported with the task
    try:
        return LabelMap.load(t["label_map"], options.get("label_normalize"))
    except (DataError, ValueError, OSError) as e:
        problems.append(config.problem(("tasks", name, "label_map"), str(e)))
        return False


def _labels(examples: List[Dict[str, Any]], options: Dict[str, Any]) -> Iterable[Tuple[str, Dict[str, Any]]]:
    from paddlepalm.reader.labels import split_labels

    for e in examples:
        value = e.get("label")
        if value in (None, ""):
            continue
        if options.get("multi_label"):
            for v in split_labels(value, options.get("label_sep", ",")):
                yield v, e
        else:
            yield value, e


def _check_labels(examples, label_map, options: Dict[str, Any], split: str):
    """Every label must be in the map; the training file's labels make the map when none is given."""
    from paddlepalm.reader.labels import LabelMap, encode_label

    normalize = options.get("label_normalize")
    pairs = list(_labels(examples, options))
    if label_map is None:
        if split != "train":
            return None
        if pairs and not options.get("multi_label") and any(str(v).strip().lstrip("-").isdigit() for v, _ in pairs):
            return None  # PALM integer labels: no map
        return LabelMap.from_examples(pairs, normalize)
    for value, example in pairs:
        encode_label(label_map, value, example, normalize=normalize)
    return label_map


def _check_tags(examples, tag_map, field: str, options: Dict[str, Any]) -> None:
    """Sequence labelling: one tag per word, and (with a tag map and no ``unknown_label``) every
    tag in the map -- the reader's own rules, checked before training."""
    sep = options.get("token_sep", "\x02")
    for e in examples:
        value = e.get(field)
        if value in (None, ""):
            continue
        words = [w for w in str(e.get("text_a", "")).strip().split(sep)]
        tags = [t.strip() for t in str(value).strip().split(sep)]
        if len(words) != len(tags):
            raise DataError("%d words but %d tags" % (len(words), len(tags)), path=e["_file"], line=e["_line"],
                            field=field)
        if tag_map is not None and options.get("unknown_label") is None:
            unknown = [t for t in tags if t not in tag_map]
            if unknown:
                raise DataError("tag %r is not in the label map (%d tags: %s)" % (
                    unknown[0], len(tag_map.labels), ", ".join(list(tag_map.labels)[:8])),
                    path=e["_file"], line=e["_line"], field=field)


def _check_integer_labels(config: Config, t: Dict[str, Any], name: str, examples, path: str,
                          problems: List[Problem]) -> None:
    """PALM integer labels: a given ``num_classes`` must exceed the largest one."""
    given = (t["head"] or {}).get("num_classes")
    labels = [int(str(e["label"]).strip()) for e in examples
              if e.get("label") not in (None, "") and str(e["label"]).strip().lstrip("-").isdigit()]
    if isinstance(given, int) and not isinstance(given, bool) and labels and max(labels) >= given:
        problems.append(config.problem(("tasks", name, "head", "num_classes"), "head has %d classes but %s "
                                       "has label %d" % (given, path, max(labels))))


# ----------------------------------------------------------------------------- encoder positions
def position_limit(backbone: Dict[str, Any]) -> Optional[int]:
    """Tokens the encoder can take (``max_position_embeddings`` less RoBERTa's offset), if known."""
    import os

    from paddlepalm.backbone.config import EncoderConfig
    from paddlepalm.errors import CheckpointError

    source = backbone["config"] if backbone["config"] is not None else backbone["pretrained"]
    if source is None or (isinstance(source, str) and not os.path.exists(source)):
        return None
    try:
        if isinstance(source, dict):
            cfg = EncoderConfig.load(dict(source, **backbone["overrides"]))
        else:
            cfg = EncoderConfig.load(source)
            overrides = backbone["overrides"]
            if "max_position_embeddings" in overrides or "position_offset" in overrides:
                cfg = EncoderConfig.load(dict(dataclasses.asdict(cfg), **overrides))
    except (CheckpointError, TypeError, ValueError, OSError):
        return None  # reported by the backbone checks, or read at build time
    return int(cfg.max_position_embeddings) - int(getattr(cfg, "position_offset", 0) or 0)


def check_max_len(config: Config, s: Dict[str, Any], problems: List[Problem]) -> None:
    """An explicit ``max_len`` over the encoder's positions is an error; the default is lowered."""
    limit = position_limit(s["backbone"])
    if limit is None:
        return
    explicit_top = config.get(("max_len",)) is not None
    if s["max_len"] > limit and not explicit_top:
        s["max_len"] = limit
    reported = set()
    for name, t in s["tasks"].items():
        if t["max_len"] is None or t["max_len"] <= limit:
            continue
        key = ("tasks", name, "max_len") if config.get(("tasks", name, "max_len")) is not None else \
            ("max_len",) if explicit_top else None
        if key is None:
            if t.get("input_of") is None:  # a task reading another's batches has that task's max_len
                logger.info("task %s: max_len lowered from the default %d to %d, the encoder's positions",
                            name, t["max_len"], limit)
            t["max_len"] = limit
        elif key not in reported:
            reported.add(key)
            problems.append(config.problem(key, "%d is more than the encoder's %d positions "
                                                "(max_position_embeddings); use at most %d"
                                           % (t["max_len"], limit, limit)))
