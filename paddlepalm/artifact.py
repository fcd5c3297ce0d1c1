"""The saved model artifact: one directory with the encoder, every head, label maps, tokenizer
files and task definitions -- written by training, read by ``palm.load`` and ``load_ckpt``.

Layout::

    <dir>/paddlepalm_model.json    task definitions: reader/head types and arguments, label vocab
    <dir>/backbone/                encoder in paddlepalm's checkpoint layout + tokenizer files
    <dir>/heads.pdparams           every head's parameters, keyed "<task>.<param>"
"""
import json
import os
from typing import Any, Dict, Sequence

from paddlepalm.errors import CheckpointError

MODEL_FILE = "paddlepalm_model.json"
HEADS_FILE = "heads.pdparams"
BACKBONE_DIR = "backbone"
FORMAT_VERSION = 1
_PATH_ARGS = ("vocab_path", "tokenizer", "label_map_config")


def _jsonable(value: Any, where: str):
    from paddlepalm.reader.labels import LabelMap

    if isinstance(value, LabelMap):
        return list(value.labels)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    raise CheckpointError("%s: cannot save argument of type %s in %s" % (where, type(value).__name__, MODEL_FILE))


def task_definition(task) -> Dict[str, Any]:
    """The JSON description of one trainer's reader and head."""
    from paddlepalm.registry import HEADS, READERS
    from paddlepalm.utils.init_args import component_type

    reader = task.reader or task.predict_reader
    head = task.head or task.pred_head
    if reader is None or head is None:
        raise CheckpointError("task %r needs a reader and a head to be saved" % task.name)
    source = getattr(reader, "input_source", reader)  # a view of a shared reader: save the reader
    reader_args = {k: v for k, v in getattr(source, "_init_args", {}).items() if k not in _PATH_ARGS
                   and k != "phase"}
    head_args = {k: v for k, v in getattr(head, "_init_args", {}).items() if k != "phase"}
    reader_spec = {"type": component_type(source, READERS), "args": _jsonable(reader_args, "task %r reader" % task.name)}
    if source is not reader:  # which view this task reads, and every label map of the reader
        reader_spec["view"] = reader.field
        reader_spec["label_args"] = _jsonable(source.label_args(), "task %r reader" % task.name)
    return {
        "reader": reader_spec,
        "head": {"type": component_type(head, HEADS), "args": _jsonable(head_args, "task %r head" % task.name)},
        "label_vocab": reader.label_vocab(),
        "mix_ratio": task.mix_ratio,
    }


def save_model(path: str, backbone, tasks: Sequence, tokenizer) -> str:
    """Write the artifact into ``path`` (non-atomic: callers write into a temporary folder of
    :func:`paddlepalm.utils.atomic_dir.atomic_directory`)."""
    import paddle

    from paddlepalm.backbone.weights import save_native

    os.makedirs(path, exist_ok=True)
    save_native(backbone, os.path.join(path, BACKBONE_DIR), extra_files=tuple(tokenizer.files))
    heads = {}
    seen = set()
    for t in tasks:
        head = t.head or t.pred_head
        if id(head) in seen:
            continue
        seen.add(id(head))
        for k, v in head.state_dict().items():
            heads["%s.%s" % (t.head_owner, k)] = v
    paddle.save(heads, os.path.join(path, HEADS_FILE))
    meta = {"format_version": FORMAT_VERSION, "backbone_class": type(backbone).__name__,
            "tasks": {t.name: dict(task_definition(t), head_owner=t.head_owner) for t in tasks}}
    with open(os.path.join(path, MODEL_FILE), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
    return path




def read_meta(path: str) -> Dict[str, Any]:
    """The task definitions of a saved model; a missing or damaged file names the path."""
    from paddlepalm.utils.checkpoint_io import read_json

    meta_path = os.path.join(path, MODEL_FILE)
    if not os.path.isfile(meta_path):
        raise CheckpointError("%s: not a paddlepalm model directory (missing %s)" % (path, MODEL_FILE))
    return read_json(meta_path)


def read_head_weights(path: str) -> Dict[str, Any]:
    """``heads.pdparams`` of a saved model: ``{"<owner>.<param>": tensor}``."""
    from paddlepalm.utils.checkpoint_io import load_paddle_file

    return load_paddle_file(os.path.join(path, HEADS_FILE))


def load_head_weights(head, heads_state: Dict[str, Any], owner: str, source: str) -> None:
    """Set ``head``'s parameters from the ``<owner>.*`` entries; missing ones raise naming ``source``."""
    prefix = owner + "."
    sub = {k[len(prefix):]: v for k, v in heads_state.items() if k.startswith(prefix)}
    missing = [k for k in head.state_dict() if k not in sub]
    if missing:
        raise CheckpointError("%s: no weights for the head of task %r: %s" % (source, owner, ", ".join(missing)))
    head.set_state_dict(sub)
