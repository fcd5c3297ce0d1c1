"""Tasks over the same inputs in a config (``tasks.<name>.input_of``): who reads whose batches.

A task with ``input_of: OTHER`` has no reader or files of its own: it reads OTHER's batches, whose
reader feeds several heads (``joint_label``: a reader with ``label_map_args`` and ``for_head``).
Each task of such a group takes the batch field its head reads (``label`` for ``classify``,
``word_labels`` for ``sequence_label``) and gives that field's label map as its ``label_map``.
"""
from typing import Any, Dict, List, Optional

INPUT_OF = "input_of"
# Keys of the task whose batches are read: a task with input_of leaves them out.
SOURCE_KEYS = ("reader", "train", "dev", "test", "file_format", "fields", "batch_size", "max_len", "mix_ratio")


def source_of(tasks: Dict[str, Dict[str, Any]], name: str) -> str:
    """The task whose reader ``name`` reads: its ``input_of`` when that is a declared task, else itself."""
    other = tasks[name].get(INPUT_OF)
    return other if isinstance(other, str) and other in tasks and other != name else name


def valid_source(tasks: Dict[str, Dict[str, Any]], name: str) -> Optional[str]:
    """Like :func:`source_of`, but None when ``input_of`` is broken (unknown, itself, a chain)."""
    source = source_of(tasks, name)
    if tasks[name].get(INPUT_OF) is not None and (source == name or tasks[source].get(INPUT_OF) is not None):
        return None
    return source


def members(tasks: Dict[str, Dict[str, Any]], source: str) -> List[str]:
    """``source`` and the tasks reading its batches, in config order."""
    return [n for n in tasks if n == source or (n != source and tasks[n].get(INPUT_OF) == source)]


def shares_input(reader_cls) -> bool:
    """Whether the reader's batches can feed several heads (one view per label field)."""
    return bool(getattr(reader_cls, "label_map_args", None)) and callable(getattr(reader_cls, "for_head", None))


def head_spec(tasks: Dict[str, Dict[str, Any]], name: str) -> Optional[Dict[str, Any]]:
    """The head a task trains: its own, or the one of the task it reuses the head of."""
    owner = tasks[name].get("reuse_head_with")
    return (tasks[owner] if owner in tasks else tasks[name]).get("head")


def head_class(tasks: Dict[str, Dict[str, Any]], name: str):
    """The task's head class, or None when it has none or it cannot be found (reported elsewhere)."""
    from paddlepalm.registry import HEADS

    spec = head_spec(tasks, name)
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        return None
    try:
        return HEADS.get(spec["type"])
    except KeyError:
        return None


def head_fields(head_cls, reader_cls) -> List[str]:
    """The label fields of ``reader_cls``'s batches that ``head_cls`` reads."""
    return [f for f in getattr(head_cls, "label_fields", ()) if f in reader_cls.label_map_args]


def field_of(tasks: Dict[str, Dict[str, Any]], name: str, reader_cls) -> Optional[str]:
    """The one batch field the task's head reads over the shared reader, or None (not known, or
    not exactly one: reported by validation)."""
    cls = head_class(tasks, name)
    fields = head_fields(cls, reader_cls) if cls is not None else []
    return fields[0] if len(fields) == 1 else None


def label_maps(tasks: Dict[str, Dict[str, Any]], source: str, reader_cls) -> Dict[str, Any]:
    """``{reader argument: label map}`` from the group's tasks: each task's ``label_map`` is the map
    of the field its head reads (``joint_label``: ``label_map`` and ``tag_map``)."""
    out = {}
    for name in members(tasks, source):
        field = field_of(tasks, name, reader_cls)
        if field is not None and tasks[name].get("label_map") is not None:
            out[reader_cls.label_map_args[field]] = tasks[name]["label_map"]
    return out
